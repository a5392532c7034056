import Glibc

/// A point in time as the kernel keeps it: whole seconds since the epoch and nanoseconds,
/// both integers, so a time set with `utimensat` reads back exactly (a `Double` of seconds
/// has too few digits for nanoseconds in this century).
public struct FileTime: Sendable, Hashable, Comparable, Codable {
    public var seconds: Int64
    /// 0 ..< 1_000_000_000.
    public var nanoseconds: Int32

    public init(seconds: Int64, nanoseconds: Int32) {
        // Normalized, so equal times compare equal.
        let carry = Int64(nanoseconds) / 1_000_000_000 - (nanoseconds < 0 && nanoseconds % 1_000_000_000 != 0 ? 1 : 0)
        self.seconds = seconds + carry
        self.nanoseconds = Int32(Int64(nanoseconds) - carry * 1_000_000_000)
    }

    /// From seconds as a floating-point number (the drive's millisecond times).
    public init(_ seconds: Double) {
        let whole = seconds.rounded(.down)
        let nanos = ((seconds - whole) * 1e9).rounded()
        self.init(seconds: Int64(whole), nanoseconds: Int32(min(999_999_999, max(0, nanos))))
    }

    init(_ time: Glibc.timespec) { self.init(seconds: Int64(time.tv_sec), nanoseconds: Int32(time.tv_nsec)) }

    /// The real-time clock, to the nanosecond.
    public static var now: FileTime {
        var time = Glibc.timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return FileTime(time)
    }

    var timespec: Glibc.timespec { Glibc.timespec(tv_sec: Int(seconds), tv_nsec: Int(nanoseconds)) }

    /// Seconds as a floating-point number (for comparisons and logs, not for storage).
    public var double: Double { Double(seconds) + Double(nanoseconds) / 1e9 }

    public static func < (a: FileTime, b: FileTime) -> Bool { (a.seconds, a.nanoseconds) < (b.seconds, b.nanoseconds) }
}

extension FileTime: ExpressibleByIntegerLiteral {
    /// Whole seconds.
    public init(integerLiteral seconds: Int64) { self.init(seconds: seconds, nanoseconds: 0) }
}
