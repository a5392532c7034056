/// How many chunks a sequential reader keeps in flight, sized to the link: a distant
/// service throttles each connection, so what a reader gets is (chunks in flight) × (one
/// connection's rate) until the user's own line is full. Starting at `initial` (the
/// `read_ahead` option), the window grows by half whenever a window's worth of chunks
/// arrived at least 10 % faster than before the last change (the window's worth right
/// after a change is not judged: it still mostly measures the old window); when growing
/// stops paying, it goes back to the size that did and stays there; it shrinks a step when
/// the rate falls by a fifth. Never past `maximum` (`max_streams`, and what the memory cache can hold).
///
/// A reader that consumes slower than the link (a video playing) sees no gain from more
/// chunks, so its window stays where it started. Pure: fed chunk completions and times.
struct ReadAheadWindow: Sendable, Equatable {
    let initial: Int
    let maximum: Int
    private(set) var size: Int
    /// The size before the last growth (where to go back when growing did not pay).
    private(set) var previous: Int?
    private(set) var lastRate: Double = 0
    private var sampleStart: Double?
    private var sampleBytes: Int64 = 0
    /// The window just changed: the next sample still mostly measures the old one (the
    /// new streams start as the reader moves on), so it is not judged.
    private var settling = false
    private let chunkSize: Int64

    init(initial: Int, maximum: Int, chunkSize: Int) {
        self.maximum = max(1, maximum)
        self.initial = min(max(1, initial), self.maximum)
        size = self.initial
        self.chunkSize = Int64(max(1, chunkSize))
    }

    /// `bytes` more arrived at `time` (seconds); returns the window size.
    @discardableResult
    mutating func arrived(bytes: Int64, at time: Double) -> Int {
        guard let start = sampleStart else {
            // The first arrival starts the clock: it waited for a request before it.
            sampleStart = time
            return size
        }
        sampleBytes += bytes
        guard sampleBytes >= Int64(size) * chunkSize, time > start else { return size }
        let rate = Double(sampleBytes) / (time - start)
        (sampleStart, sampleBytes) = (time, 0)
        if settling {
            settling = false
            return size
        }
        let before = size
        defer { settling = size != before }
        if let back = previous {
            // Probing: `lastRate` is the rate at `back`, this one the rate after growing.
            if rate >= lastRate * 1.1 {
                lastRate = rate
                grow()
            } else {
                size = back
                previous = nil
            }
        } else if lastRate == 0 || rate >= lastRate * 1.1 {
            // The first measure, or the reader got faster at this size: try more.
            lastRate = rate
            grow()
        } else if rate < lastRate * 0.8 {
            size = max(initial, size - max(1, size / 4))
            lastRate = rate
        }
        return size
    }

    private mutating func grow() {
        guard size < maximum else {
            previous = nil
            return
        }
        previous = size
        size = min(maximum, size + max(1, size / 2))
    }
}
