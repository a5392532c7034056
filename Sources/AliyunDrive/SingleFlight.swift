import Synchronization

/// Concurrent identical requests share one call: the first caller's task does the work,
/// the others await it (each can be cancelled on its own). Nothing is cached once it finishes (callers cache what they want).
public final class SingleFlight<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private let running = Mutex<[Key: Task<Value, any Error>]>([:])

    public init() {}

    public func run(_ key: Key, _ work: @escaping @Sendable () async throws -> Value) async throws -> Value {
        let task: Task<Value, any Error> = running.withLock { running in
            if let existing = running[key] { return existing }
            let task = Task {
                defer { _ = self.running.withLock { $0.removeValue(forKey: key) } }
                return try await work()
            }
            running[key] = task
            return task
        }
        // A cancelled caller stops waiting at once; the shared call goes on for the others.
        return try await cancellableValue(of: task)
    }
}
