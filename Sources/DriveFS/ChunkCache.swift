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
