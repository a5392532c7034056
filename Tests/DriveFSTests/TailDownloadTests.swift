import AliyunDrive
@testable import DriveFS
import Foundation
import Synchronization
import Testing

/// A chunk's tail in pieces: how it is cut, how pieces arriving side by side reach the
/// chunk in order, and when the pieces after the first start.
@Suite struct TailDownloadTests {
    static let kib = 1 << 10

    @Test func aTailIsCutIntoShortPiecesFirstThenTheRest() {
        let k = Self.kib
        #expect(TailDownload.pieces(from: 0, to: 4096 * k) == [0..<512 * k, 512 * k..<1024 * k, 1024 * k..<1536 * k, 1536 * k..<2048 * k, 2048 * k..<4096 * k])
        #expect(TailDownload.pieces(from: 3072 * k, to: 4096 * k) == [3072 * k..<3584 * k, 3584 * k..<4096 * k])
        #expect(TailDownload.pieces(from: 100, to: 300) == [100..<300])
        #expect(TailDownload.pieces(from: 5, to: 5) == [])
        // Pieces always cover the tail exactly, in order.
        for (start, end) in [(0, 1), (4095, 4 << 20), (1_364 * k, 4096 * k), (0, 2049 * k)] {
            let pieces = TailDownload.pieces(from: start, to: end)
            #expect(pieces.first?.lowerBound == start && pieces.last?.upperBound == end)
            #expect(zip(pieces, pieces.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound && !$0.isEmpty })
        }
    }

    @Test func piecesReachTheChunkInOrder() {
        // Each step: (piece, bytes received or nil for "finished") → what goes straight
        // through, and what finishing releases.
        var order = TailDownload.Order(count: 3)
        func route(_ byte: UInt8, _ piece: Int) -> TailDownload.Order.Route {
            [byte].withUnsafeBytes { order.route($0, of: piece) }
        }
        #expect(route(1, 1) == .held)
        #expect(route(0, 0) == .through)
        #expect(route(2, 2) == .held)
        #expect(route(1, 1) == .held)
        #expect(order.finished(2) == [], "piece 2 done early: nothing may go yet")
        #expect(route(0, 0) == .through)
        #expect(order.finished(0) == [[1, 1]], "piece 1's bytes so far are released; piece 2 waits behind it")
        #expect(order.current == 1)
        #expect(route(1, 1) == .through, "piece 1 now streams straight through")
        #expect(order.finished(1) == [[2]], "piece 2 was complete: released, and all are in")
        #expect(order.isComplete && order.held.isEmpty)
    }

    /// Fetches served from `content` by tasks that deliver in small steps, recording ranges.
    final class Fetcher: Sendable {
        let content: [UInt8]
        let ranges = Mutex<[Range<Int>]>([])
        let gate = Atomic<Bool>(true)
        let short = Atomic<Bool>(false)
        let cancelled = Atomic<Int>(0)

        init(_ content: [UInt8]) { self.content = content }

        func fetch(_ range: Range<Int>, _ sink: @escaping @Sendable (UnsafeRawBufferPointer) -> Void) async throws {
            ranges.withLock { $0.append(range) }
            var at = range.lowerBound
            let end = short.load(ordering: .relaxed) && range.lowerBound > 0 ? range.upperBound - 1 : range.upperBound
            while at < end {
                do {
                    try await Task.sleep(for: .milliseconds(range.lowerBound == 0 ? 3 : 1))
                    while !gate.load(ordering: .relaxed) { try await Task.sleep(for: .milliseconds(2)) }
                } catch {
                    cancelled.add(1, ordering: .relaxed)
                    throw error
                }
                let next = min(end, at + 16 << 10)
                content[at..<next].withUnsafeBytes { sink($0) }
                at = next
            }
        }
    }

    static let content = (0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }

    /// Waits (a loaded machine may take seconds) until `fetcher` was asked for `count` ranges.
    static func asked(_ fetcher: Fetcher, _ count: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while fetcher.ranges.withLock({ $0.count }) < count && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
    }

    @Test func aWidenedTailArrivesWholeAndInOrderFromPiecesSideBySide() async throws {
        let fetcher = Fetcher(Self.content)
        let start = 1_364 << 10
        let tail = TailDownload(from: start, to: Self.content.count)
        let buffer = ChunkBuffer(capacity: Self.content.count, start: start, pool: StoragePool(limit: 0))
        let arrived = Atomic<Int>(0)
        tail.widen()
        try await tail.run(into: buffer, fetch: { try await fetcher.fetch($0, $1) }, arrived: { arrived.add($0, ordering: .relaxed) })
        buffer.finish()
        #expect(buffer.filled == Self.content.count)
        #expect(buffer.withBytes(start..<Self.content.count) { Array($0) } == Array(Self.content[start...]))
        #expect(arrived.load(ordering: .relaxed) == Self.content.count - start)
        // All pieces were asked for before the first one was in (side by side).
        #expect(fetcher.ranges.withLock { $0 } .count == tail.pieces.count)
    }

    @Test func theOtherPiecesWaitForWidenOrTheFirstPiece() async throws {
        let fetcher = Fetcher(Self.content)
        fetcher.gate.store(false, ordering: .relaxed)
        let tail = TailDownload(from: 0, to: Self.content.count)
        let buffer = ChunkBuffer(capacity: Self.content.count, pool: StoragePool(limit: 0))
        let run = Task { try await tail.run(into: buffer, fetch: { try await fetcher.fetch($0, $1) }, arrived: { _ in }) }
        try await Self.asked(fetcher, 1)
        try await Task.sleep(for: .milliseconds(100))
        // Not widened, first piece held: only the first piece was asked for.
        #expect(fetcher.ranges.withLock { $0 } == [0..<(512 << 10)])
        tail.widen()
        try await Self.asked(fetcher, tail.pieces.count)
        #expect(fetcher.ranges.withLock { $0 } .count == tail.pieces.count, "widened: the rest at once, while the first is still held")
        fetcher.gate.store(true, ordering: .relaxed)
        try await run.value
        #expect(buffer.withBytes(0..<Self.content.count) { Array($0) } == Self.content)

        // Never widened: the rest follows the first piece.
        let alone = Fetcher(Self.content)
        let unwidened = TailDownload(from: 0, to: Self.content.count)
        let second = ChunkBuffer(capacity: Self.content.count, pool: StoragePool(limit: 0))
        try await unwidened.run(into: second, fetch: { try await alone.fetch($0, $1) }, arrived: { _ in })
        #expect(second.withBytes(0..<Self.content.count) { Array($0) } == Self.content)
        #expect(alone.ranges.withLock { $0 } .count == unwidened.pieces.count)
    }

    @Test func cancellingStopsEveryPieceAndAShortPieceFailsTheTail() async throws {
        let fetcher = Fetcher(Self.content)
        fetcher.gate.store(false, ordering: .relaxed)
        let tail = TailDownload(from: 0, to: Self.content.count)
        tail.widen()
        let buffer = ChunkBuffer(capacity: Self.content.count, pool: StoragePool(limit: 0))
        let run = Task { try await tail.run(into: buffer, fetch: { try await fetcher.fetch($0, $1) }, arrived: { _ in }) }
        try await Self.asked(fetcher, tail.pieces.count)
        run.cancel()
        await #expect(throws: CancellationError.self) { try await run.value }
        #expect(fetcher.cancelled.load(ordering: .relaxed) == tail.pieces.count)

        // Not widened and cancelled: the wait for the rest ends too.
        let narrow = TailDownload(from: 0, to: Self.content.count)
        let held = Fetcher(Self.content)
        held.gate.store(false, ordering: .relaxed)
        let narrowRun = Task { try await narrow.run(into: buffer, fetch: { try await held.fetch($0, $1) }, arrived: { _ in }) }
        try await Self.asked(held, 1)
        narrowRun.cancel()
        await #expect(throws: CancellationError.self) { try await narrowRun.value }
        #expect(held.ranges.withLock { $0 } .count == 1)

        let short = Fetcher(Self.content)
        short.short.store(true, ordering: .relaxed)
        let broken = TailDownload(from: 0, to: Self.content.count)
        broken.widen()
        let other = ChunkBuffer(capacity: Self.content.count, pool: StoragePool(limit: 0))
        await #expect(throws: DriveError.self) {
            try await broken.run(into: other, fetch: { try await short.fetch($0, $1) }, arrived: { _ in })
        }
    }
}
