import AliyunDrive
import Synchronization

/// Runs pieces of async work one after another, in the order they were queued: one file's
/// uploads, renames and unlinks never overlap. A caller that is cancelled (an interrupted
/// `close`) stops waiting; the work itself goes on.
final class SerialQueue: Sendable {
    private struct State {
        var last: (id: UInt64, task: Task<Void, any Error>)?
        var next: UInt64 = 1
        /// Every piece not finished yet (for `cancel`).
        var pending: [UInt64: Task<Void, any Error>] = [:]
    }

    private let state = Mutex(State())

    /// Work is queued or running.
    var isBusy: Bool { state.withLock { $0.last != nil } }

    func run(_ work: @escaping @Sendable () async throws -> Void) async throws {
        let task: Task<Void, any Error> = state.withLock { state in
            let previous = state.last?.task
            let id = state.next
            state.next += 1
            let task = Task {
                _ = await previous?.result
                let result = await Result { try await work() }
                // The queue forgets its last piece before the waiters hear of it.
                self.state.withLock { state in
                    if state.last?.id == id { state.last = nil }
                    state.pending[id] = nil
                }
                try result.get()
            }
            state.last = (id, task)
            state.pending[id] = task
            return task
        }
        try await cancellableValue(of: task)
    }
}

extension SerialQueue {
    /// Cancels every piece queued or running (at unmount: whatever is left is in the journal).
    func cancel() {
        for task in state.withLock({ Array($0.pending.values) }) { task.cancel() }
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
