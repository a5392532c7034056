import FUSE
import Glibc
import Synchronization

/// One chunk of file content, filled in order by its download while readers take the
/// bytes already there: a reader waits only for the part it asked for, and replies while
/// those bytes are still in the CPU's cache (the FUSE copy of cold memory was the biggest
/// cost of a sequential read). A chunk may hold only its tail, from `start` on (a reader
/// that jumped into its middle does not wait for the bytes before it).
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
    /// The first byte it holds (chunk-relative); bytes before it are not in this buffer.
    let start: Int
    private let storage: UnsafeMutableRawBufferPointer
    private let state: Mutex<State>

    private let pool: StoragePool

    init(capacity: Int, start: Int = 0, pool: StoragePool) {
        self.capacity = max(capacity, 0)
        self.start = min(max(start, 0), self.capacity)
        self.pool = pool
        storage = pool.take(byteCount: max(capacity, 1))
        state = Mutex(State(filled: self.start))
    }

    /// Whether it holds (or will hold) the chunk-relative `range`.
    func covers(_ range: Range<Int>) -> Bool { range.lowerBound >= start }

    deinit { pool.give(storage) }

    /// The end of the bytes available (from `start`), chunk-relative.
    var filled: Int { state.withLock { $0.filled } }
    /// The download ended without an error (`filled` is all there will be).
    var isComplete: Bool { state.withLock { $0.finished && $0.failure == nil } }
    var failed: Bool { state.withLock { $0.failure != nil } }
    /// Some reader waits for bytes not there yet.
    var awaited: Bool { state.withLock { !$0.waiters.isEmpty } }

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

    /// A view of published bytes (`range` must lie within `start..<filled`).
    func view(_ range: Range<Int>) -> ChunkView { ChunkView(buffer: self, range: range) }

    /// Calls `body` with published bytes (`range` must lie within `start..<filled`).
    func withBytes<R>(_ range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(rebasing: storage[range]))
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
