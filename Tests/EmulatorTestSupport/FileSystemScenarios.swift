import Foundation
import Glibc

/// What a scenario needs from a filesystem under test: POSIX-shaped calls on paths
/// relative to its root, and the emulator behind it. Two drivers implement it (rclone's
/// `vfstest` runs one suite both ways): `DirectDriver` calls `DriveFileSystem` in-process,
/// no kernel mount (DriveFSTests); `MountedDriver` makes the system calls on a real mount
/// (MountTests). A failed call throws `DriverError` with its errno.
public protocol FileSystemDriver: Sendable {
    var drive: TestDrive { get }
    /// A descriptor for `path`, opened with `flags` (`O_CREAT`, `O_TRUNC`, `O_APPEND`, access mode).
    func open(_ path: String, flags: Int32) async throws -> Int
    func write(_ fd: Int, _ bytes: [UInt8], at offset: Int) async throws
    func read(_ fd: Int, at offset: Int, count: Int) async throws -> [UInt8]
    func truncate(_ fd: Int, to size: Int) async throws
    func fsync(_ fd: Int) async throws
    func close(_ fd: Int) async throws
    func rename(_ from: String, _ to: String) async throws
    func unlink(_ path: String) async throws
    /// A whole-file copy as `cp` makes it (copy_file_range first).
    func copy(_ from: String, _ to: String) async throws
    func names(in folder: String) async throws -> [String]
    /// Ends the filesystem as a crash would (no drain, no clean unmount) and starts a new
    /// one on the same state folders.
    func crashAndRestart() async throws
}

public struct DriverError: Error, CustomStringConvertible {
    public let errno: Int32
    public let call: String

    public init(errno: Int32, _ call: String) {
        self.errno = errno
        self.call = call
    }

    public var description: String { "\(call): \(String(cString: strerror(errno)))" }
}

public struct ScenarioFailure: Error, CustomStringConvertible {
    public let description: String
}

/// The scenarios, each a function of a driver; a failed check throws `ScenarioFailure`.
public enum FileSystemScenarios {
    public typealias Scenario = @Sendable (any FileSystemDriver) async throws -> Void

    public static let all: [(name: String, run: Scenario)] = [
        ("createWriteCloseReopenRead", createWriteCloseReopenRead),
        ("writesAtOffsetsTruncateAndAppend", writesAtOffsetsTruncateAndAppend),
        ("renameOverAnOpenFile", renameOverAnOpenFile),
        ("unlinkWhileOpen", unlinkWhileOpen),
        ("anUploadThatFailsSucceedsOnRetry", anUploadThatFailsSucceedsOnRetry),
        ("copyByHash", copyByHash),
        ("recoveryAfterACrash", recoveryAfterACrash),
        ("twoWritersOnOneFile", twoWritersOnOneFile),
    ]

    static func check(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        if !condition { throw ScenarioFailure(description: message()) }
    }

    /// The drive's content of `path` (from its root), nil if there is no such file.
    static func remote(_ d: any FileSystemDriver, _ path: String) async throws -> [UInt8]? {
        let (status, file) = try await d.drive.post("/v2/file/get_by_path", ["drive_id": d.drive.driveID, "file_path": "/" + path])
        guard status == 200, let id = file["file_id"] as? String else { return nil }
        let url = try await d.drive.downloadURL(id)
        return try await d.drive.get(url).body
    }

    static func remoteEventually(_ d: any FileSystemDriver, _ path: String, _ expected: [UInt8], seconds: Double) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try await remote(d, path) == expected { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        let got = try await remote(d, path)
        throw ScenarioFailure(description: "\(path) on the drive: \(got.map { "\($0.count) bytes, not the expected \(expected.count)" } ?? "missing") after \(seconds) s")
    }

    static func readAll(_ d: any FileSystemDriver, _ fd: Int) async throws -> [UInt8] {
        var content: [UInt8] = []
        while true {
            let piece = try await d.read(fd, at: content.count, count: 1 << 20)
            if piece.isEmpty { return content }
            content += piece
        }
    }

    /// Creates (or empties) `path` and writes `content` to it, as `cp` does.
    static func put(_ d: any FileSystemDriver, _ path: String, _ content: [UInt8]) async throws {
        let fd = try await d.open(path, flags: O_CREAT | O_WRONLY | O_TRUNC)
        try await d.write(fd, content, at: 0)
        try await d.close(fd)
    }

    /// `put` while the drive refuses every upload: the upload at close fails (close may
    /// say so); the content stays and is tried again.
    static func putWhileUploadsFail(_ d: any FileSystemDriver, _ path: String, _ content: [UInt8]) async throws {
        _ = try await d.drive.hook("faults", ["rules": [["path": "/adrive/v2/file/createWithFolders", "status": 503, "count": 100_000]]])
        _ = await errno { try await put(d, path, content) }
    }

    static func errno(of call: () async throws -> Void) async -> Int32? {
        do {
            try await call()
            return nil
        } catch let error as DriverError {
            return error.errno
        } catch {
            return -1
        }
    }

    static func createWriteCloseReopenRead(_ d: any FileSystemDriver) async throws {
        let content = testBytes(300_000, seed: 11)
        let fd = try await d.open("new.bin", flags: O_CREAT | O_WRONLY | O_TRUNC)
        try await d.write(fd, content, at: 0)
        try await d.close(fd)
        try check(try await remote(d, "new.bin") == content, "the drive holds the content once close returns")
        let again = try await d.open("new.bin", flags: O_RDONLY)
        try check(try await readAll(d, again) == content, "reopened, it reads back")
        try await d.close(again)
        try check(try await d.names(in: "").contains("new.bin"), "listed")
    }

    static func writesAtOffsetsTruncateAndAppend(_ d: any FileSystemDriver) async throws {
        var model = [UInt8]()
        func put(_ bytes: [UInt8], at offset: Int) {
            if model.count < offset + bytes.count { model += [UInt8](repeating: 0, count: offset + bytes.count - model.count) }
            model.replaceSubrange(offset..<offset + bytes.count, with: bytes)
        }
        let fd = try await d.open("edit.bin", flags: O_CREAT | O_RDWR | O_TRUNC)
        for (index, offset) in [0, 70_000, 5, 200_000, 69_990].enumerated() {
            let bytes = testBytes(10_000 + index * 3_000, seed: UInt64(20 + index))
            try await d.write(fd, bytes, at: offset)
            put(bytes, at: offset)
        }
        try await d.truncate(fd, to: 150_000)
        model = Array(model.prefix(150_000))
        try await d.truncate(fd, to: 180_000)
        model += [UInt8](repeating: 0, count: 30_000)
        let appender = try await d.open("edit.bin", flags: O_WRONLY | O_APPEND)
        let tail = testBytes(4_321, seed: 29)
        try await d.write(appender, tail, at: 0)
        model += tail
        try check(try await readAll(d, fd) == model, "reads see every write, truncate and append at once")
        try await d.close(appender)
        try await d.close(fd)
        try check(try await remote(d, "edit.bin") == model, "the drive holds the final content")
    }

    static func renameOverAnOpenFile(_ d: any FileSystemDriver) async throws {
        let (old, new) = (testBytes(50_000, seed: 31), testBytes(60_000, seed: 32))
        for (name, bytes) in [("target.txt", old), ("source.txt", new)] { try await put(d, name, bytes) }
        let reader = try await d.open("target.txt", flags: O_RDONLY)
        try await d.rename("source.txt", "target.txt")
        try check(try await readAll(d, reader) == old, "a descriptor open on the replaced file still reads its content")
        let fresh = try await d.open("target.txt", flags: O_RDONLY)
        try check(try await readAll(d, fresh) == new, "the name now opens the renamed file")
        try await d.close(fresh)
        try await d.close(reader)
        let names = try await d.names(in: "")
        try check(names.filter { $0.hasPrefix("target") } == ["target.txt"] && !names.contains("source.txt"), "one target, no source: \(names)")
        try check(try await remote(d, "target.txt") == new, "the drive holds the renamed content under the name")
    }

    static func unlinkWhileOpen(_ d: any FileSystemDriver) async throws {
        let content = testBytes(80_000, seed: 41)
        try await put(d, "doomed.bin", content)
        let reader = try await d.open("doomed.bin", flags: O_RDONLY)
        try await d.unlink("doomed.bin")
        try check(!(try await d.names(in: "")).contains("doomed.bin"), "gone from its folder at once")
        try check(await errno { _ = try await d.open("doomed.bin", flags: O_RDONLY) } == ENOENT, "opening it again is ENOENT")
        try check(try await readAll(d, reader) == content, "the open descriptor still reads it")
        try await d.close(reader)
        // Unlinked while being written: never uploaded.
        let local = try await d.open("scratch.bin", flags: O_CREAT | O_WRONLY | O_TRUNC)
        try await d.write(local, content, at: 0)
        try await d.unlink("scratch.bin")
        try await d.close(local)
        let (scratch, doomed) = (try await remote(d, "scratch.bin"), try await remote(d, "doomed.bin"))
        try check(scratch == nil && doomed == nil, "neither is on the drive")
    }

    static func anUploadThatFailsSucceedsOnRetry(_ d: any FileSystemDriver) async throws {
        let content = testBytes(120_000, seed: 51)
        try await putWhileUploadsFail(d, "retried.bin", content)
        try check(try await remote(d, "retried.bin") == nil, "not on the drive while it refuses")
        let reader = try await d.open("retried.bin", flags: O_RDONLY)
        try check(try await readAll(d, reader) == content, "readable here meanwhile")
        try await d.close(reader)
        _ = try await d.drive.hook("faults", ["clear": true])
        try await remoteEventually(d, "retried.bin", content, seconds: 30)
    }

    static func copyByHash(_ d: any FileSystemDriver) async throws {
        let content = testBytes(2 << 20, seed: 61)
        try await put(d, "original.bin", content)
        let before = try await d.drive.stats()["bytes_uploaded"] as? Int ?? -1
        try await d.copy("original.bin", "copy.bin")
        let after = try await d.drive.stats()["bytes_uploaded"] as? Int ?? -1
        try check(after == before, "a copy of content the drive has sends nothing (\(after - before) bytes sent)")
        try check(try await remote(d, "copy.bin") == content, "the copy has the content")
        let reader = try await d.open("copy.bin", flags: O_RDONLY)
        try check(try await readAll(d, reader) == content, "and reads it back")
        try await d.close(reader)
    }

    static func recoveryAfterACrash(_ d: any FileSystemDriver) async throws {
        let content = testBytes(90_000, seed: 71)
        try await putWhileUploadsFail(d, "survivor.bin", content)
        try await d.crashAndRestart()
        _ = try await d.drive.hook("faults", ["clear": true])
        try await remoteEventually(d, "survivor.bin", content, seconds: 30)
    }

    static func twoWritersOnOneFile(_ d: any FileSystemDriver) async throws {
        let first = try await d.open("shared.bin", flags: O_CREAT | O_RDWR | O_TRUNC)
        let second = try await d.open("shared.bin", flags: O_RDWR)
        let (a, b) = (testBytes(40_000, seed: 81), testBytes(40_000, seed: 82))
        try await d.write(first, a, at: 0)
        try await d.write(second, b, at: 30_000)
        let expected = Array(a.prefix(30_000)) + b
        let (seenFirst, seenSecond) = (try await readAll(d, first), try await readAll(d, second))
        try check(seenFirst == expected && seenSecond == expected, "both descriptors see both writes")
        try await d.close(first)
        try await d.write(second, [1, 2, 3], at: 0)
        try await d.close(second)
        try check(try await remote(d, "shared.bin") == [1, 2, 3] + expected.dropFirst(3), "the drive holds both writers' content")
    }
}
