/// Tells sequential readers from random ones, read by read, and sizes the read-ahead
/// window (in chunks) for sequential ones.
///
/// The kernel sends a sequential reader's reads from several threads at once (its own
/// read-ahead), so they arrive slightly out of order: a read continues the pattern when
/// it starts at most 2 MiB beyond the furthest end seen so far (it overtook one or two
/// reads) or within 128 KiB of where one of the last few reads ended (it was overtaken).
/// A read that continues nothing starts a new run; the fourth read of a run (or any
/// read at offset 0) makes the reader sequential, and the window then doubles per read
/// up to `maxWindow` (set by `ReadAheadWindow`), but never past twice what the run has
/// read so far (at least two chunks): a player that jumps reads a mebibyte or two
/// before jumping again, and a window opened wide at once would fetch far more than
/// it reads. Anything else is random access and closes the window, so
/// scattered small reads practically never trigger read-ahead by chance.
struct AccessPattern: Sendable {
    /// The window's ceiling (the read-ahead's current size).
    var maxWindow: Int
    static let aheadSlack: Int64 = 2 << 20
    static let nearSlack: Int64 = 128 << 10
    /// How many recent read ends a read may continue (about what the kernel has in flight).
    static let memory = 8
    static let runLength = 4
    private(set) var frontier: Int64 = 0
    private(set) var recentEnds: [Int64] = []
    private(set) var run = 0
    private(set) var window = 0
    /// Where the current run began (its lowest offset).
    private(set) var runStart: Int64 = 0
    /// The current run began far from where the one before it was (a seek), not a few
    /// mebibytes ahead of it (reads the kernel sent out of order).
    private(set) var jumped = false
    static let jumpDistance: Int64 = 8 << 20

    let chunkSize: Int64

    init(maxWindow: Int, chunkSize: Int64 = 4 << 20) {
        self.maxWindow = maxWindow
        self.chunkSize = max(1, chunkSize)
    }

    /// Whether a read at `offset` is outside the current run (before its start, or beyond
    /// where it may continue).
    func hasLeft(_ offset: Int64) -> Bool {
        offset < runStart - Self.nearSlack || offset > frontier + Self.aheadSlack
    }

    mutating func observe(offset: Int64, end: Int64) -> Bool {
        let continues = (offset >= frontier - Self.nearSlack && offset <= frontier + Self.aheadSlack)
            || recentEnds.contains { abs(offset - $0) <= Self.nearSlack }
        run = offset == 0 ? max(run + 1, Self.runLength) : continues ? run + 1 : 1
        if run == 1 { jumped = abs(offset - frontier) > Self.jumpDistance }
        runStart = run == 1 ? offset : min(runStart, offset)
        if recentEnds.count == Self.memory { recentEnds.removeFirst() }
        recentEnds.append(end)
        if run >= Self.runLength {
            frontier = max(frontier, end)
            let earned = Int(min(2 * (frontier - runStart) / chunkSize, Int64(Int32.max)))
            window = min(maxWindow, max(2, min(window * 2, earned)))
            return true
        }
        window = 0
        frontier = run == 1 ? end : max(frontier, end)
        return false
    }
}

