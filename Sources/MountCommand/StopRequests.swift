/// What SIGINT and SIGTERM mean over a mount's life: the first unmounts; at
/// unmount, pending uploads are waited for (up to `upload_wait`) and the first signal is
/// answered by saying what is waited for; a second signal ends the wait at once, leaving
/// what is still pending journaled for the next mount. systemd sends SIGTERM and, after its
/// stop timeout, SIGKILL; a person presses Ctrl-C twice.
///
/// A pure state machine; `StopSignals` feeds it the signals and carries out its actions.
struct StopRequests: Equatable {
    enum Phase: Equatable {
        /// The FUSE loop runs.
        case serving
        /// The loop has returned; pending uploads are being waited for.
        case draining
        /// The wait is over.
        case done
    }

    enum Action: Equatable {
        case none
        /// End the FUSE session and unmount.
        case unmount
        /// Log what is being waited for, and that another signal stops waiting.
        case reportWaiting
        /// Stop waiting for uploads now.
        case endWait
    }

    private(set) var phase = Phase.serving
    private(set) var signals = 0

    /// A signal arrived.
    mutating func signal() -> Action {
        signals += 1
        switch phase {
        case .serving: return signals == 1 ? .unmount : .none
        case .draining: return signals >= 2 ? .endWait : .reportWaiting
        case .done: return .none
        }
    }

    /// The FUSE loop returned and the wait for uploads begins. Two signals while serving
    /// (Ctrl-C pressed twice) mean: do not wait.
    mutating func beginDrain() -> Action {
        guard phase == .serving else { return .none }
        phase = .draining
        return signals >= 2 ? .endWait : .none
    }

    mutating func endDrain() { phase = .done }
}
