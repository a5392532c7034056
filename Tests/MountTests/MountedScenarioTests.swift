import EmulatorTestSupport
import Foundation
import Glibc
import Testing

/// The scenario suite (`FileSystemScenarios`) through a real mount: the system calls on
/// the mount's paths. `DirectScenarioTests` (DriveFSTests) runs the same list without one.
@Suite(.serialized, .enabled(if: FUSEAvailability.canMount, "\(FUSEAvailability.problem ?? "")"))
struct MountedScenarioTests {
    @Test(arguments: FileSystemScenarios.all.map(\.name))
    func scenario(_ name: String) async throws {
        guard let scenario = FileSystemScenarios.all.first(where: { $0.name == name }) else {
            Issue.record("no scenario \(name)")
            return
        }
        // Failures the scenarios cause on purpose, and what they make the daemon say.
        let allowed = ["fault injected", "will retry", "InternalError", "staging file"]
        try await withMount(seed: .none, allow: allowed) { m in
            try await scenario.run(MountedDriver(m))
        }
    }
}

/// The scenarios' calls as system calls on a mount (and `cp` for a copy, as a user copies).
struct MountedDriver: FileSystemDriver, @unchecked Sendable {
    let m: MountedDrive

    init(_ m: MountedDrive) { self.m = m }

    var drive: TestDrive { m.drive }

    private func check(_ result: Int, _ call: String) throws -> Int {
        if result < 0 { throw DriverError(errno: Glibc.errno, call) }
        return result
    }

    func open(_ path: String, flags: Int32) async throws -> Int {
        try check(Int(Glibc.open(m.path(path), flags | O_CLOEXEC, 0o644)), "open \(path)")
    }

    func write(_ fd: Int, _ bytes: [UInt8], at offset: Int) async throws {
        let written = try check(bytes.withUnsafeBytes { pwrite(Int32(fd), $0.baseAddress, $0.count, off_t(offset)) }, "pwrite")
        if written != bytes.count { throw DriverError(errno: EIO, "short write") }
    }

    func read(_ fd: Int, at offset: Int, count: Int) async throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let got = try check(bytes.withUnsafeMutableBytes { pread(Int32(fd), $0.baseAddress, count, off_t(offset)) }, "pread")
        return Array(bytes.prefix(got))
    }

    func truncate(_ fd: Int, to size: Int) async throws { _ = try check(Int(ftruncate(Int32(fd), off_t(size))), "ftruncate") }

    func fsync(_ fd: Int) async throws { _ = try check(Int(Glibc.fsync(Int32(fd))), "fsync") }

    func close(_ fd: Int) async throws { _ = try check(Int(Glibc.close(Int32(fd))), "close") }

    func rename(_ from: String, _ to: String) async throws { _ = try check(Int(Glibc.rename(m.path(from), m.path(to))), "rename") }

    func unlink(_ path: String) async throws { _ = try check(Int(Glibc.unlink(m.path(path))), "unlink") }

    func copy(_ from: String, _ to: String) async throws { _ = try m.shell("cp", m.path(from), m.path(to)) }

    func names(in folder: String) async throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: folder.isEmpty ? m.mountpoint : m.path(folder))
    }

    /// kill -9 of the daemon, then a new mount on the same state folders.
    func crashAndRestart() async throws {
        await m.killDaemon()
        try await m.mount()
    }
}
