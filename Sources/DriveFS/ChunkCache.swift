import FUSE
import Synchronization

/// One chunk of file content, filled in order by its download while readers take the
/// bytes already there: a reader waits only for the part it asked for, and replies while
/// those bytes are still in the CPU's cache (the FUSE copy of cold memory was the biggest
/// cost of a sequential read).
///
/// `@unchecked Sendable`: `storage` is written only by the one producer (the download),
/// always above `filled`; a byte below `filled` is never written again, and `filled` is
/// published under `state`'s lock, so readers of published bytes never race the producer.
final class ChunkBuffer: @unchecked Sendable {
    private struct State {
        var filled = 0
        var finished = false
        var failure: (any Error)?
        var waiters: [UInt64: (end: Int, continuation: CheckedContinuation<Void, any Error>)] = [:]
        var nextWaiter: UInt64 = 0

        /// Removes and returns the waiters whose end satisfies `ready`.
        mutating func take(where ready: (Int) -> Bool) -> [CheckedContinuation<Void, any Error>] {
            guard !waiters.isEmpty else { return [] }
            let due = waiters.filter { ready($0.value.end) }
            for key in due.keys { waiters.removeValue(forKey: key) }
            return due.values.map(\.continuation)
        }
    }

    let capacity: Int
    private let storage: UnsafeMutableRawBufferPointer
    private let state = Mutex(State())

    init(capacity: Int) {
        self.capacity = max(capacity, 0)
        storage = StoragePool.shared.take(byteCount: max(capacity, 1))
    }

    deinit { StoragePool.shared.give(storage) }

    /// Bytes available from the start of the chunk.
    var filled: Int { state.withLock { $0.filled } }
    /// The download ended without an error (`filled` is all there will be).
    var isComplete: Bool { state.withLock { $0.finished && $0.failure == nil } }
    var failed: Bool { state.withLock { $0.failure != nil } }

    // MARK: Producer

    /// Appends downloaded bytes (anything beyond `capacity` is dropped) and wakes the
    /// readers they complete.
    func append(_ bytes: UnsafeRawBufferPointer) {
        let at = state.withLock { $0.finished ? capacity : $0.filled }
        let count = min(bytes.count, capacity - at)
        guard count > 0 else { return }
        UnsafeMutableRawBufferPointer(rebasing: storage[at..<at + count]).copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<count]))
        let ready = state.withLock { state in
            state.filled = at + count
            return state.take { $0 <= at + count }
        }
        for continuation in ready { continuation.resume() }
    }

    /// The download is over: readers waiting beyond `filled` get what there is.
    func finish() {
        let waiting = state.withLock { state in
            state.finished = true
            return state.take { _ in true }
        }
        for continuation in waiting { continuation.resume() }
    }

    func fail(_ error: any Error) {
        let waiting = state.withLock { state in
            state.finished = true
            state.failure = error
            return state.take { _ in true }
        }
        for continuation in waiting { continuation.resume(throwing: error) }
    }

    // MARK: Readers

    /// Waits until the bytes up to `end` are there or the download is over, and returns
    /// how many bytes are there (at most `end`). Throws the download's failure; a cancelled
    /// caller stops waiting at once.
    func wait(until end: Int) async throws -> Int {
        let wanted = min(end, capacity)
        let id: UInt64 = try state.withLock { state in
            if let failure = state.failure, state.filled < wanted { throw failure }
            state.nextWaiter += 1
            return state.nextWaiter
        }
        if state.withLock({ $0.filled >= wanted || $0.finished }) == false {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    let resumeNow: Result<Void, any Error>? = state.withLock { state in
                        if state.filled >= wanted || state.finished { return .success(()) }
                        if Task.isCancelled { return .failure(CancellationError()) }
                        state.waiters[id] = (wanted, continuation)
                        return nil
                    }
                    if let resumeNow { continuation.resume(with: resumeNow) }
                }
            } onCancel: {
                state.withLock { $0.waiters.removeValue(forKey: id) }?.continuation.resume(throwing: CancellationError())
            }
        }
        return try state.withLock { state in
            if let failure = state.failure, state.filled < wanted { throw failure }
            return min(state.filled, wanted)
        }
    }

    /// A view of published bytes (`range` must lie below `filled`).
    func view(_ range: Range<Int>) -> ChunkView { ChunkView(buffer: self, range: range) }

    /// Calls `body` with published bytes (`range` must lie below `filled`).
    func withBytes<R>(_ range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(rebasing: storage[range]))
    }
}

/// Recycles chunk memory. Fresh memory costs a page fault per 4 KiB on first touch, and
/// chunks freed on one thread and allocated on another made glibc's per-thread arenas keep
/// hundreds of MiB; a few recycled buffers of the common sizes avoid both.
final class StoragePool: Sendable {
    static let shared = StoragePool(limit: 8)

    /// Addresses and sizes of idle buffers (raw pointers are not Sendable; addresses are).
    private let idle = Mutex<[(address: UInt, byteCount: Int)]>([])
    let limit: Int

    init(limit: Int) { self.limit = limit }

    func take(byteCount: Int) -> UnsafeMutableRawBufferPointer {
        let reused = idle.withLock { idle -> UInt? in
            guard let index = idle.firstIndex(where: { $0.byteCount == byteCount }) else { return nil }
            return idle.remove(at: index).address
        }
        if let reused, let pointer = UnsafeMutableRawPointer(bitPattern: reused) {
            return UnsafeMutableRawBufferPointer(start: pointer, count: byteCount)
        }
        return .allocate(byteCount: byteCount, alignment: 64)
    }

    func give(_ storage: UnsafeMutableRawBufferPointer) {
        guard let base = storage.baseAddress else { return }
        let kept = idle.withLock { idle in
            guard idle.count < limit else { return false }
            idle.append((UInt(bitPattern: base), storage.count))
            return true
        }
        if !kept { storage.deallocate() }
    }
}

/// Bytes of a chunk handed to FUSE without a copy; keeps the chunk alive until the reply.
struct ChunkView: ReadBytes {
    let buffer: ChunkBuffer
    let range: Range<Int>

    var count: Int { range.count }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withBytes(range, body)
    }
}

/// File content in fixed-size chunks, keyed by (file_id, content hash, index), bounded by
/// bytes with least-recently-used eviction. A chunk is in the cache from the moment its
/// download starts, so concurrent readers share one download (single-flight) and take its
/// bytes as they arrive.
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
    }

    private struct State {
        var chunks: [Key: Entry] = [:]
        var bytes = 0
        var clock: UInt64 = 0
    }

    let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int) { self.capacity = max(capacity, 0) }

    /// The chunk's buffer if it is cached or downloading (and not failed).
    func cached(_ key: Key) -> ChunkBuffer? {
        state.withLock { state in
            guard let entry = state.chunks[key], !entry.buffer.failed else { return nil }
            state.clock += 1
            state.chunks[key]?.lastUse = state.clock
            return entry.buffer
        }
    }

    /// The chunk's buffer: cached or downloading, else a new one that `load` fills (then
    /// finished, or failed and dropped from the cache so the next reader retries). The
    /// second value is true when this call started the download.
    func buffer(_ key: Key, length: Int, load: @escaping @Sendable (ChunkBuffer) async throws -> Void) -> (ChunkBuffer, started: Bool) {
        state.withLock { state in
            state.clock += 1
            if let entry = state.chunks[key], !entry.buffer.failed {
                state.chunks[key]?.lastUse = state.clock
                return (entry.buffer, false)
            }
            if let stale = state.chunks.removeValue(forKey: key) { state.bytes -= stale.buffer.capacity }
            let buffer = ChunkBuffer(capacity: length)
            let download = Task {
                do {
                    try await load(buffer)
                    buffer.finish()
                } catch {
                    buffer.fail(error)
                    self.remove(key, ifSame: buffer)
                }
            }
            state.chunks[key] = Entry(buffer: buffer, download: download, lastUse: state.clock)
            state.bytes += length
            while state.bytes > capacity, let victim = state.chunks.filter({ $0.key != key }).min(by: { $0.value.lastUse < $1.value.lastUse }) {
                state.chunks[victim.key] = nil
                state.bytes -= victim.value.buffer.capacity
            }
            return (buffer, true)
        }
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

    private func remove(_ key: Key, ifSame buffer: ChunkBuffer) {
        state.withLock { state in
            guard let entry = state.chunks[key], entry.buffer === buffer else { return }
            state.chunks[key] = nil
            state.bytes -= buffer.capacity
        }
    }

    var usedBytes: Int { state.withLock { $0.bytes } }
}
