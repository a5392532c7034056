@testable import DriveFS
import Testing

/// The read-ahead window against scripted arrival times: it grows while a window's worth
/// of chunks comes in faster, goes back when growing stops paying, shrinks when the rate
/// falls, and never leaves its bounds.
@Suite struct ReadAheadWindowTests {
    static let mib = 1 << 20

    /// Feeds chunks of 4 MiB that arrive at `rate(size)` bytes/s for the current window
    /// size, from `time` on; returns the sizes after each window's worth.
    static func run(_ window: inout ReadAheadWindow, windows: Int, time: inout Double, rate: (Int) -> Double) -> [Int] {
        var sizes: [Int] = []
        if time == 0 { window.arrived(bytes: Int64(4 * mib), at: time) }
        for _ in 0..<windows {
            let size = window.size
            for _ in 0..<size {
                time += Double(4 * mib) / rate(size)
                window.arrived(bytes: Int64(4 * mib), at: time)
            }
            sizes.append(window.size)
        }
        return sizes
    }

    @Test func growsWhileEachConnectionAddsItsShareThenHoldsAtTheLine() {
        // 10 MB/s per connection, 100 MB/s line: 10 connections fill it.
        var window = ReadAheadWindow(initial: 6, maximum: 16, chunkSize: 4 * Self.mib)
        var time = 0.0
        let sizes = Self.run(&window, windows: 10, time: &time) { Double(min($0 * 10, 100)) * 1e6 }
        // 6 → 9 (+50 %) → 13 (+11 %, line full) → 19 capped at 16 (no gain) → back to 13, and
        // stays; the window's worth after each change is not judged.
        #expect(sizes == [9, 9, 13, 13, 16, 16, 13, 13, 13, 13])
    }

    @Test func aReaderSlowerThanTheLinkKeepsItsWindow() {
        // The reader takes 5 MB/s whatever is in flight (a video playing).
        var window = ReadAheadWindow(initial: 6, maximum: 16, chunkSize: 4 * Self.mib)
        var time = 0.0
        let sizes = Self.run(&window, windows: 6, time: &time) { _ in 5e6 }
        // The first measure probes once (9), which does not pay: back to 6 for good.
        #expect(sizes == [9, 9, 6, 6, 6, 6])
    }

    @Test func shrinksAStepEachTimeTheRateFallsButNotBelowItsStart() {
        var window = ReadAheadWindow(initial: 4, maximum: 16, chunkSize: 4 * Self.mib)
        var time = 0.0
        let growing = Self.run(&window, windows: 9, time: &time) { Double($0) * 10e6 }
        #expect(growing == [6, 6, 9, 9, 13, 13, 16, 16, 16])
        // A steady rate holds the window; each fall of a fifth or more takes a step back.
        var sizes: [Int] = []
        for rate in [100e6, 100e6, 50e6, 50e6, 25e6, 12e6, 6e6, 3e6, 1.5e6, 0.7e6, 0.3e6, 0.3e6, 0.1e6] {
            sizes += Self.run(&window, windows: 1, time: &time) { _ in rate }
        }
        #expect(sizes == [12, 12, 9, 9, 7, 7, 6, 6, 5, 5, 4, 4, 4])
    }

    /// Fed as bytes arrive, in pieces from several connections at once, the window moves
    /// as it does when fed whole chunks — and bursts (chunks started together end
    /// together) do not make it swing.
    @Test func piecesFromSeveralConnectionsMeasureTheSameRate() {
        // 10 MB/s per connection, 100 MB/s line; each connection delivers 256 KiB slices,
        // the window's chunks side by side, so whole chunks end in bursts.
        var window = ReadAheadWindow(initial: 6, maximum: 16, chunkSize: 4 * Self.mib)
        var time = 0.0
        window.arrived(bytes: Int64(256 << 10), at: time)
        var sizes: [Int] = []
        for _ in 0..<10 {
            let streams = window.size
            let rate = Double(min(streams * 10, 100)) * 1e6
            // One window's worth, as `streams` connections each bringing 16 slices.
            for _ in 0..<16 {
                for _ in 0..<streams {
                    time += Double(256 << 10) / rate
                    window.arrived(bytes: Int64(256 << 10), at: time)
                }
            }
            sizes.append(window.size)
        }
        #expect(sizes == [9, 9, 13, 13, 16, 16, 13, 13, 13, 13])
    }

    @Test func staysWithinItsBounds() {
        let tiny = ReadAheadWindow(initial: 24, maximum: 10, chunkSize: 4 * Self.mib)
        #expect(tiny.size == 10 && tiny.initial == 10)
        var one = ReadAheadWindow(initial: 0, maximum: 0, chunkSize: 4 * Self.mib)
        #expect(one.size == 1)
        var time = 0.0
        #expect(Self.run(&one, windows: 3, time: &time) { Double($0) * 1e9 } == [1, 1, 1])
    }
}
