import Synchronization

/// File content in fixed-size chunks, keyed by (file_id, content hash, index), bounded by
/// bytes with least-recently-used eviction. Concurrent requests for the same chunk share
/// one download (single-flight).
final class ChunkCache: Sendable {
    struct Key: Hashable, Sendable {
        var fileID: String
        var contentHash: String
        var index: Int64
    }

    private struct State {
        var chunks: [Key: (bytes: [UInt8], lastUse: UInt64)] = [:]
        var inFlight: [Key: Task<[UInt8], any Error>] = [:]
        var bytes = 0
        var clock: UInt64 = 0
    }

    let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int) { self.capacity = max(capacity, 0) }

    func cached(_ key: Key) -> [UInt8]? {
        state.withLock { state in
            guard let entry = state.chunks[key] else { return nil }
            state.clock += 1
            state.chunks[key] = (entry.bytes, state.clock)
            return entry.bytes
        }
    }

    func isPresentOrLoading(_ key: Key) -> Bool {
        state.withLock { $0.chunks[key] != nil || $0.inFlight[key] != nil }
    }

    /// The chunk, from memory or fetched by `load` (shared by concurrent callers). A
    /// cancelled caller stops waiting at once; the fetch carries on for the others.
    func chunk(_ key: Key, load: @escaping @Sendable () async throws -> [UInt8]) async throws -> [UInt8] {
        if let hit = cached(key) { return hit }
        let task: Task<[UInt8], any Error> = state.withLock { state in
            if let running = state.inFlight[key] { return running }
            let running = Task {
                do {
                    let bytes = try await load()
                    self.insert(key, bytes)
                    return bytes
                } catch {
                    self.state.withLock { _ = $0.inFlight.removeValue(forKey: key) }
                    throw error
                }
            }
            state.inFlight[key] = running
            return running
        }
        return try await cancellableValue(of: task)
    }

    /// Starts fetching a chunk in the background unless present or loading; returns the
    /// task so a reader can cancel stale prefetch.
    func prefetch(_ key: Key, load: @escaping @Sendable () async throws -> [UInt8]) -> Task<Void, Never>? {
        guard !isPresentOrLoading(key) else { return nil }
        return Task { _ = try? await self.chunk(key, load: load) }
    }

    private func insert(_ key: Key, _ bytes: [UInt8]) {
        state.withLock { state in
            state.inFlight[key] = nil
            guard capacity > 0, state.chunks[key] == nil else { return }
            state.clock += 1
            state.chunks[key] = (bytes, state.clock)
            state.bytes += bytes.count
            while state.bytes > capacity, let victim = state.chunks.min(by: { $0.value.lastUse < $1.value.lastUse }) {
                state.chunks[victim.key] = nil
                state.bytes -= victim.value.bytes.count
            }
        }
    }

    var usedBytes: Int { state.withLock { $0.bytes } }
}

/// The value of a shared task, or CancellationError as soon as the waiting task is
/// cancelled (the shared task itself goes on).
func cancellableValue<T: Sendable>(of task: Task<T, any Error>) async throws -> T {
    let waiter = Waiter<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            guard waiter.set(continuation) else { return }
            Task {
                let result: Result<T, any Error>
                do { result = .success(try await task.value) } catch { result = .failure(error) }
                waiter.resume(with: result)
            }
        }
    } onCancel: {
        waiter.resume(with: .failure(CancellationError()))
    }
}

/// Resumes a continuation once, from whichever side gets there first.
private final class Waiter<T: Sendable>: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<T, any Error>?, early: Result<T, any Error>?, done: Bool)>((nil, nil, false))

    /// Stores the continuation; false (and resumed) if a result came first.
    func set(_ continuation: CheckedContinuation<T, any Error>) -> Bool {
        let early: Result<T, any Error>? = state.withLock { state in
            if let early = state.early {
                state.done = true
                return early
            }
            state.continuation = continuation
            return nil
        }
        if let early {
            continuation.resume(with: early)
            return false
        }
        return true
    }

    func resume(with result: Result<T, any Error>) {
        let continuation: CheckedContinuation<T, any Error>? = state.withLock { state in
            guard !state.done else { return nil }
            guard let continuation = state.continuation else {
                if state.early == nil { state.early = result }
                return nil
            }
            state.done = true
            state.continuation = nil
            return continuation
        }
        continuation?.resume(with: result)
    }
}
