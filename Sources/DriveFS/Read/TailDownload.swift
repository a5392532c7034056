import AliyunDrive
import Synchronization

/// A chunk's tail — from where a reader jumped into it to its end — fetched as a few
/// pieces on their own connections. The service throttles each connection, so on one
/// connection a reader who jumped waits for every byte before the one it needs at that
/// connection's rate (the kernel's read-ahead after a seek soon asks for a mebibyte or
/// two in one request); several pieces at once bring those bytes in a fraction of that.
///
/// The first piece starts at once; the others when `widen()` says the reader goes on
/// reading there (so a reader that only took one large read at random costs one small
/// piece, not the whole tail), or when the first piece is in without that. Pieces arrive
/// side by side and reach the chunk in order (`Order`). Cancelling the download cancels
/// every piece.
///
/// LOCK ORDERING: the order's lock → the chunk buffer's (bytes are appended under it so
/// that two pieces never append out of turn).
final class TailDownload: Sendable {
    /// The pieces of a tail `start..<end` (chunk-relative): two short ones first, for the
    /// bytes right after the jump, then larger ones (each piece waits a round trip for
    /// its first byte, so small pieces far out would only add round trips).
    static func pieces(from start: Int, to end: Int) -> [Range<Int>] {
        var pieces: [Range<Int>] = []
        var at = start
        for size in [512 << 10, 512 << 10, 512 << 10, 512 << 10] where at < end {
            pieces.append(at..<min(end, at + size))
            at = min(end, at + size)
        }
        if at < end { pieces.append(at..<end) }
        return pieces
    }

    /// Puts the pieces back in order: the bytes of the earliest piece not yet complete go
    /// straight to the chunk; a later piece's are held until every piece before it is in.
    /// Pure; the owner serializes calls.
    struct Order: Sendable, Equatable {
        enum Route: Equatable { case through, held }

        let count: Int
        /// The piece whose bytes go straight through.
        private(set) var current = 0
        private(set) var held: [Int: [UInt8]] = [:]
        private var complete: Set<Int> = []

        init(count: Int) { self.count = count }

        mutating func route(_ bytes: UnsafeRawBufferPointer, of piece: Int) -> Route {
            guard piece != current else { return .through }
            held[piece, default: []].append(contentsOf: bytes)
            return .held
        }

        /// `piece` is in; returns the held bytes that may now go to the chunk, in order.
        mutating func finished(_ piece: Int) -> [[UInt8]] {
            complete.insert(piece)
            var released: [[UInt8]] = []
            while complete.contains(current) {
                current += 1
                if let bytes = held.removeValue(forKey: current) { released.append(bytes) }
            }
            return released
        }

        var isComplete: Bool { current >= count }
    }

    private struct State {
        var order: Order
        var widened = false
        var waiting: CheckedContinuation<Void, Never>?
        /// Bytes received per piece (a piece shorter than asked fails the chunk).
        var received: [Int]
    }

    let pieces: [Range<Int>]
    private let state: Mutex<State>

    init(from start: Int, to end: Int) {
        pieces = Self.pieces(from: start, to: end)
        state = Mutex(State(order: Order(count: pieces.count), received: Array(repeating: 0, count: pieces.count)))
    }

    /// The reader goes on reading in this tail: the other pieces start now.
    func widen() {
        let waiting = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.widened = true
            defer { state.waiting = nil }
            return state.waiting
        }
        waiting?.resume()
    }

    /// Fills `buffer` (whose `start` is the first piece's) with the pieces that `fetch`
    /// streams, each given its chunk-relative range and a sink; `arrived` hears of every
    /// byte. Throws the first piece's failure (the others are cancelled).
    func run(
        into buffer: ChunkBuffer, fetch: @escaping @Sendable (Range<Int>, @escaping @Sendable (UnsafeRawBufferPointer) -> Void) async throws -> Void,
        arrived: @escaping @Sendable (Int) -> Void
    ) async throws {
        guard let first = pieces.first else { return }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await self.piece(0, first, into: buffer, fetch: fetch, arrived: arrived)
                self.widen()
            }
            if pieces.count > 1 {
                group.addTask {
                    await self.widened()
                    try Task.checkCancellation()
                    try await withThrowingTaskGroup(of: Void.self) { rest in
                        for (index, range) in self.pieces.enumerated().dropFirst() {
                            rest.addTask { try await self.piece(index, range, into: buffer, fetch: fetch, arrived: arrived) }
                        }
                        try await rest.waitForAll()
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    private func piece(
        _ index: Int, _ range: Range<Int>, into buffer: ChunkBuffer,
        fetch: @Sendable (Range<Int>, @escaping @Sendable (UnsafeRawBufferPointer) -> Void) async throws -> Void, arrived: @escaping @Sendable (Int) -> Void
    ) async throws {
        try await fetch(range) { bytes in
            self.state.withLock { state in
                state.received[index] += bytes.count
                if state.order.route(bytes, of: index) == .through { buffer.append(bytes) }
            }
            arrived(bytes.count)
        }
        try state.withLock { state in
            guard state.received[index] == range.count else {
                throw DriveError(.protocolViolation, "a piece of a chunk ended after \(state.received[index]) of \(range.count) bytes")
            }
            for bytes in state.order.finished(index) { bytes.withUnsafeBytes { buffer.append($0) } }
        }
    }

    /// Returns once `widen()` was called, or at once when cancelled.
    private func widened() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.widened || Task.isCancelled { return true }
                    state.waiting = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            state.withLock { state -> CheckedContinuation<Void, Never>? in
                defer { state.waiting = nil }
                return state.waiting
            }?.resume()
        }
    }
}
