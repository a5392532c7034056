import HTTPTransport
import Synchronization

/// How much of a ranged read has reached its sink, across attempts. A 206 body starts at
/// the requested byte; a server that ignores Range answers 200 with the whole file, whose
/// leading bytes are skipped. Bytes past `length` are never delivered.
final class RangeProgress: Sendable {
    private struct State {
        var delivered = 0
        /// Bytes of a 200 body still to skip this attempt.
        var skip: Int64 = 0
        var progressed = false
    }

    let length: Int
    private let sink: @Sendable (UnsafeRawBufferPointer) -> Void
    private let state = Mutex(State())

    init(length: Int, sink: @escaping @Sendable (UnsafeRawBufferPointer) -> Void) {
        self.length = length
        self.sink = sink
    }

    var delivered: Int { state.withLock { $0.delivered } }
    var madeProgress: Bool { state.withLock { $0.progressed } }

    /// Starts an attempt for the range that begins at file offset `start`.
    func begin(skipping start: Int64) {
        state.withLock {
            $0.skip = start
            $0.progressed = false
        }
    }

    /// Thrown from the body callback to stop a whole-file 200 once the range is delivered.
    struct Complete: Error {}

    /// On the transport's thread, one chunk at a time (never concurrently for one read).
    /// Returns false once the range is complete and the body goes on (a 200).
    func receive(status: Int, _ chunk: UnsafeRawBufferPointer) -> Bool {
        let (from, count) = state.withLock { state in
            var from = 0
            if status == 200 {
                from = Int(min(Int64(chunk.count), state.skip))
                state.skip -= Int64(from)
            }
            let count = max(0, min(chunk.count - from, length - state.delivered))
            state.delivered += count
            if count > 0 { state.progressed = true }
            return (from, count)
        }
        if count > 0 { sink(UnsafeRawBufferPointer(rebasing: chunk[from..<from + count])) }
        return status != 200 || delivered < length
    }
}
