import Synchronization

/// LOCK ORDERING: chunk cache → chunk buffer → storage pool (a buffer made or freed
/// under the cache's lock takes the pool's).
///
/// File content in fixed-size chunks, keyed by (file_id, content hash, index), bounded by
/// bytes with least-recently-used eviction. A chunk is in the cache from the moment its
/// download starts, so concurrent readers share one download (single-flight) and take its
/// bytes as they arrive. Chunks already read go first, then chunks fetched ahead, and a
/// chunk still arriving only when nothing else is left: with several readers, the faster
/// one's chunks were always the most recently used, and the slower one's chunks were
/// evicted while arriving or before being read, fetched again, and evicted again.
final class ChunkCache: Sendable {
    struct Key: Hashable, Sendable {
        var fileID: String
        var contentHash: String
        var index: Int64
    }

    private struct Entry {
        var buffer: ChunkBuffer
        var download: Task<Void, Never>
        var lastUse: UInt64
        /// A reader took (or waits for) its bytes.
        var read: Bool
    }

    private struct State {
        var chunks: [Key: Entry] = [:]
        var bytes = 0
        var clock: UInt64 = 0
        /// Lookups that found the chunk (cached or downloading) / that had to start it.
        var hits = 0
        var misses = 0
        /// Sequential readers reading ahead now (they share what the cache holds).
        var streaming: Set<ObjectIdentifier> = []
    }

    let capacity: Int
    /// The memory its chunks (and the reads that stream around it) are made of.
    let pool = StoragePool(limit: 8)
    private let state = Mutex(State())

    init(capacity: Int) { self.capacity = max(capacity, 0) }

    /// The chunk's buffer if it is cached or downloading (and not failed), for a reader
    /// about to take its bytes.
    func cached(_ key: Key) -> ChunkBuffer? {
        state.withLock { state in
            guard let entry = state.chunks[key], !entry.buffer.failed else { return nil }
            state.hits += 1
            state.clock += 1
            state.chunks[key]?.lastUse = state.clock
            state.chunks[key]?.read = true
            return entry.buffer
        }
    }

    /// Whether the chunk is cached or downloading (not failed); a look that is no use.
    func holds(_ key: Key) -> Bool {
        state.withLock { state in state.chunks[key].map { !$0.buffer.failed } ?? false }
    }

    /// The chunk's buffer: cached or downloading, else a new one, holding the chunk from
    /// `start` on, that `load` fills (then finished, or failed and dropped from the cache
    /// so the next reader retries). The second value is true when this call started the
    /// download. (A cached buffer may begin after the `start` asked for: callers check.)
    /// `reading`: the caller takes its bytes now (false: it is fetched ahead).
    func buffer(
        _ key: Key, length: Int, start: Int = 0, reading: Bool = true, load: @escaping @Sendable (ChunkBuffer) async throws -> Void
    ) -> (ChunkBuffer, started: Bool) {
        state.withLock { state in
            state.clock += 1
            if let entry = state.chunks[key], !entry.buffer.failed {
                state.chunks[key]?.lastUse = state.clock
                if reading { state.chunks[key]?.read = true }
                state.hits += 1
                return (entry.buffer, false)
            }
            state.misses += 1
            if let stale = state.chunks.removeValue(forKey: key) { state.bytes -= stale.buffer.capacity }
            let buffer = ChunkBuffer(capacity: length, start: start, pool: pool)
            let download = Task {
                do {
                    try await load(buffer)
                    buffer.finish()
                } catch {
                    buffer.fail(error)
                    self.remove(key, ifSame: buffer)
                }
            }
            state.chunks[key] = Entry(buffer: buffer, download: download, lastUse: state.clock, read: reading)
            state.bytes += length
            while state.bytes > capacity, let victim = Self.victim(in: state.chunks, sparing: key) {
                state.chunks[victim.key] = nil
                state.bytes -= victim.value.buffer.capacity
                // Still arriving and waited for by nobody: nobody will have its bytes.
                if !victim.value.buffer.isComplete, !victim.value.buffer.awaited { victim.value.download.cancel() }
            }
            return (buffer, true)
        }
    }

    /// Starts fetching a chunk ahead of its reader if there is room for it without evicting
    /// anything not read yet or still arriving; nil if there is not (a window larger than
    /// what the cache can spare evicted its own chunks and fetched them again, over and
    /// over), or if the chunk is here already.
    func prefetch(_ key: Key, length: Int, load: @escaping @Sendable (ChunkBuffer) async throws -> Void) -> ChunkBuffer? {
        let room = state.withLock { state -> Bool in
            if let entry = state.chunks[key], !entry.buffer.failed { return false }
            let spare = state.chunks.filter { $0.key != key && $0.value.read && $0.value.buffer.isComplete }.reduce(0) { $0 + $1.value.buffer.capacity }
            return state.bytes + length - spare <= capacity
        }
        guard room else { return nil }
        let (buffer, started) = buffer(key, length: length, reading: false, load: load)
        return started ? buffer : nil
    }

    /// What goes first: a chunk all there that a reader has read (least recently used
    /// first); then one not read yet, all there before one still arriving (evicting that
    /// loses what it received), the one fetched ahead last first (it is needed last: the
    /// first one is needed next); last, one being read, least recently used first.
    private static func victim(in chunks: [Key: Entry], sparing key: Key) -> (key: Key, value: Entry)? {
        let others = chunks.filter { $0.key != key }
        let byUse: ((key: Key, value: Entry), (key: Key, value: Entry)) -> Bool = { $0.value.lastUse < $1.value.lastUse }
        let read = others.filter { $0.value.read }
        let ahead = others.filter { !$0.value.read }
        return read.filter { $0.value.buffer.isComplete }.min(by: byUse) ?? ahead.filter { $0.value.buffer.isComplete }.max(by: byUse)
            ?? ahead.max(by: byUse) ?? read.min(by: byUse)
    }

    /// Cancels a chunk's download if it is still running (stale prefetch after a seek);
    /// readers waiting on it see it fail and start a new one.
    func cancelDownload(_ key: Key, of buffer: ChunkBuffer) {
        let download = state.withLock { state -> Task<Void, Never>? in
            guard let entry = state.chunks[key], entry.buffer === buffer else { return nil }
            return entry.download
        }
        download?.cancel()
    }

    /// Drops a chunk's buffer now and cancels its download: a reader that jumped far ahead
    /// of the bytes it has makes room for the chunk's tail from where it reads.
    func discard(_ key: Key, of buffer: ChunkBuffer) {
        let download = state.withLock { state -> Task<Void, Never>? in
            guard let entry = state.chunks[key], entry.buffer === buffer else { return nil }
            state.chunks[key] = nil
            state.bytes -= buffer.capacity
            return entry.download
        }
        download?.cancel()
    }

    private func remove(_ key: Key, ifSame buffer: ChunkBuffer) {
        state.withLock { state in
            guard let entry = state.chunks[key], entry.buffer === buffer else { return }
            state.chunks[key] = nil
            state.bytes -= buffer.capacity
        }
    }

    /// `reader` reads ahead now (or no longer): readers reading ahead at once share the
    /// cache, or each would evict the others' chunks before they are read.
    func streaming(_ reader: ObjectIdentifier, _ active: Bool) {
        state.withLock { state in
            if active { state.streaming.insert(reader) } else { state.streaming.remove(reader) }
        }
    }

    /// How many chunks of `chunkSize` one reader reading ahead may keep in flight: its
    /// share of the cache, less the chunks it reads (the kernel's reads in flight span
    /// two) and the one before (at least one). With only one spared for reading, a chunk
    /// still being read was the least recently used one and was evicted, then fetched again.
    func readAheadShare(chunkSize: Int) -> Int {
        let readers = state.withLock { max(1, $0.streaming.count) }
        return max(1, (capacity / max(1, chunkSize) - 3 * readers) / readers)
    }

    var usedBytes: Int { state.withLock { $0.bytes } }
    var counts: (hits: Int, misses: Int) { state.withLock { ($0.hits, $0.misses) } }
}
