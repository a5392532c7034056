import Foundation
import Synchronization

/// What the uploads of a mount are doing, for `adrivefs status`: those in progress (bytes
/// sent so far), and those that failed and wait for a retry (since when, the last error).
/// Fed by the upload path; read by the control socket. Holds no lock while calling out.
public final class UploadActivity: Sendable {
    public struct Running: Sendable, Equatable {
        public var path: String
        public var size: Int64
        public var sent: Int64
        public var started: Double
        /// Bytes per second since the start (0 before the first part is out).
        public var rate: Double
    }

    public struct Waiting: Sendable, Equatable {
        public var path: String
        public var since: Double
        public var error: String
    }

    private struct State {
        var running: [String: Running] = [:]
        var waiting: [String: Waiting] = [:]
    }

    private let state = Mutex(State())
    private let now: @Sendable () -> Double

    init(now: @escaping @Sendable () -> Double) { self.now = now }

    func started(_ id: String, path: String, size: Int64) {
        let current = now()
        state.withLock { $0.running[id] = Running(path: path, size: size, sent: 0, started: current, rate: 0) }
    }

    func sent(_ id: String, bytes: Int64) {
        let current = now()
        state.withLock { state in
            guard var running = state.running[id] else { return }
            running.sent = bytes
            running.rate = current > running.started ? Double(bytes) / (current - running.started) : 0
            state.running[id] = running
        }
    }

    func succeeded(_ id: String) {
        state.withLock { state in
            state.running[id] = nil
            state.waiting[id] = nil
        }
    }

    func failed(_ id: String, path: String, error: String) {
        let current = now()
        state.withLock { state in
            state.running[id] = nil
            state.waiting[id] = Waiting(path: path, since: state.waiting[id]?.since ?? current, error: error)
        }
    }

    /// No longer to be uploaded (unlinked).
    func dropped(_ id: String) { succeeded(id) }

    public var running: [Running] { state.withLock { $0.running.values.sorted { $0.started < $1.started } } }
    public var waiting: [Waiting] { state.withLock { $0.waiting.values.sorted { $0.since < $1.since } } }
}
