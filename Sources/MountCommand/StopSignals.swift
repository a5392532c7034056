import Dispatch
import Glibc
import Synchronization

/// Takes SIGINT and SIGTERM for the whole life of a mount — while it serves and
/// while unmount waits for uploads — and carries out what `StopRequests` decides. The
/// signals are taken by dispatch sources (any thread); the actions are the caller's.
final class StopSignals: Sendable {
    struct Actions: Sendable {
        var unmount: @Sendable () -> Void
        var reportWaiting: @Sendable () -> Void
        var endWait: @Sendable () -> Void
    }

    private let state = Mutex((requests: StopRequests(), actions: Actions?.none))
    /// Set once in `init`, cancelled in `deinit`; never touched in between.
    private nonisolated(unsafe) var sources: [any DispatchSourceSignal] = []

    init() {
        sources = [SIGINT, SIGTERM].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in self?.received() }
            source.resume()
            return source
        }
    }

    /// What to do from now on (set before the FUSE loop starts).
    func handle(_ actions: Actions) { state.withLock { $0.actions = actions } }

    /// The wait for uploads begins; true when it should not (two signals came already).
    func beginDrain() -> Bool {
        state.withLock { $0.requests.beginDrain() } == .endWait
    }

    func endDrain() { state.withLock { $0.requests.endDrain() } }

    private func received() {
        let (action, actions) = state.withLock { state in (state.requests.signal(), state.actions) }
        guard let actions else { return }
        switch action {
        case .none: break
        case .unmount: actions.unmount()
        case .reportWaiting: actions.reportWaiting()
        case .endWait: actions.endWait()
        }
    }

    deinit {
        sources.forEach { $0.cancel() }
    }
}
