import Foundation
import Glibc

/// The release `adrivefs` mounted (in the foreground, as a child) on the bench emulator.
final class MountProcess {
    let process = Process()
    let mountpoint: String
    let directory: String

    /// `source`: `adrive`, or `share:ID` (read with the same login); `options`: more `-o` options.
    init(binary: String, endpoint: String, refreshToken: String, source: String = "adrive", options: String = "") throws {
        directory = NSTemporaryDirectory() + "adrivefs-bench-\(getpid())-\(UUID().uuidString.prefix(8))"
        mountpoint = directory + "/mnt"
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: directory + "/state/adrivefs", withIntermediateDirectories: true)
        let tokenFile = directory + "/state/adrivefs/refresh_token"
        try Data((refreshToken + "\n").utf8).write(to: URL(fileURLWithPath: tokenFile))
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [source, mountpoint, "-f", "-o", "endpoint=\(endpoint),token_file=\(tokenFile)" + (options.isEmpty ? "" : "," + options)]
        var environment = ProcessInfo.processInfo.environment
        environment["XDG_CONFIG_HOME"] = directory + "/state"
        environment["XDG_CACHE_HOME"] = directory + "/cache"
        process.environment = environment
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        for _ in 0..<200 {
            let mountinfo = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
            if mountinfo.contains(" \(mountpoint) ") { return }
            guard process.isRunning else { throw BenchError("adrivefs exited before mounting") }
            usleep(50_000)
        }
        throw BenchError("the mount did not appear")
    }

    /// Peak resident set of the daemon (VmHWM), in bytes.
    var peakRSS: Int {
        let status = (try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8)) ?? ""
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
        }
        return 0
    }

    func stop() {
        let unmount = Process()
        unmount.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        unmount.arguments = ["fusermount3", "-u", "-z", mountpoint]
        try? unmount.run()
        unmount.waitUntilExit()
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

enum FileBench {
    /// Bytes per second of reading a whole file with 1 MiB reads.
    static func sequentialRead(_ path: String) throws -> (rate: Double, bytes: Int) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw BenchError("cannot open \(path)") }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var total = 0
        let start = ContinuousClock.now
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { throw BenchError("read failed: errno \(errno)") }
            if n == 0 { break }
            total += n
        }
        return (Double(total) / seconds(ContinuousClock.now - start), total)
    }

    /// Bytes per second of reading `length` bytes from `offset` with 1 MiB reads.
    static func rangeRead(_ path: String, offset: Int, length: Int) -> Double {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var done = 0
        let start = ContinuousClock.now
        while done < length {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, min($0.count, length - done), off_t(offset + done)) }
            if n <= 0 { break }
            done += n
        }
        return Double(done) / seconds(ContinuousClock.now - start)
    }

    /// Latencies of `count` 4 KiB reads at random offsets (seeded), with the page cache
    /// dropped by reading through O_DIRECT-free fresh opens of distinct offsets.
    static func randomReads(_ path: String, size: Int, count: Int) throws -> [Double] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw BenchError("cannot open \(path)") }
        defer { close(fd) }
        var generator = SplitMix(seed: 99)
        var buffer = [UInt8](repeating: 0, count: 4096)
        var latencies: [Double] = []
        for _ in 0..<count {
            let offset = Int(generator.next() % UInt64(size / 4096)) * 4096
            let start = ContinuousClock.now
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 4096, off_t(offset)) }
            if n != 4096 { throw BenchError("random read returned \(n)") }
            latencies.append(seconds(ContinuousClock.now - start))
        }
        return latencies
    }

    static func timeCommand(_ arguments: [String]) throws -> Double {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        let start = ContinuousClock.now
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw BenchError("\(arguments.joined(separator: " ")) failed") }
        return seconds(ContinuousClock.now - start)
    }
}

/// A seeded linear congruential generator (Knuth's MMIX constants): reproducible offsets.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return state >> 11
    }
}
