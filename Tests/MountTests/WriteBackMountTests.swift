import Crypto
import EmulatorTestSupport
import Foundation
import Glibc
import Testing

/// `-o write_back=SECONDS`: close() returns once the content is safe on the local disk, the
/// uploads follow after the delay; fsync still waits for the drive; nothing is lost to a
/// crash, an unmount or a rename meanwhile.
@Suite(.serialized, .enabled(if: FUSEAvailability.canMount, "\(FUSEAvailability.problem ?? "")"))
struct WriteBackMountTests {
    /// Writes a local file (Foundation's write fsyncs it, which on the mount would upload at once).
    static func write(_ bytes: [UInt8], to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// Puts `bytes` at `name` on the mount as `cp` does: open, write, close (no fsync).
    static func put(_ bytes: [UInt8], _ name: String, _ m: MountedDrive) throws {
        let local = m.directory.appendingPathComponent("put-\(name)").path
        try write(bytes, to: local)
        try m.shell("cp", local, m.path(name))
    }

    static func sha1(_ bytes: [UInt8]) -> String { Insecure.SHA1.hash(data: bytes).map { String(format: "%02X", $0) }.joined() }

    @Test func closeReturnsBeforeTheUploadWhichFollowsAfterTheDelay() async throws {
        try await withMount(options: ["write_back=3"]) { m in
            let local = m.directory.appendingPathComponent("tree")
            try FileManager.default.createDirectory(at: local, withIntermediateDirectories: true)
            var files: [String: [UInt8]] = [:]
            for index in 0..<20 {
                let bytes = testBytes(4096 + index * 100, seed: UInt64(100 + index))
                files["f\(index).bin"] = bytes
                try Self.write(bytes, to: local.appendingPathComponent("f\(index).bin").path)
            }
            _ = try await m.drive.hook("stats/reset")
            try m.shell("cp", "-r", local.path, m.path("tree"))
            // Closed, readable here, and not on the drive yet.
            for (name, bytes) in files { #expect(try Data(contentsOf: URL(fileURLWithPath: m.path("tree/\(name)"))) == Data(bytes)) }
            let early = try await m.drive.stats()["bytes_uploaded"] as? Int ?? -1
            #expect(early == 0, "\(early) bytes uploaded before the write-back delay")
            #expect(try await m.remoteFile("/tree/f0.bin") == nil)
            // Then all of them, with their content.
            let uploaded = try await eventually(20) { () async throws -> Bool? in
                for name in files.keys where try await m.remoteFile("/tree/\(name)") == nil { return nil }
                return true
            }
            #expect(uploaded == true)
            for (name, bytes) in files {
                #expect((try await m.remoteFile("/tree/\(name)")?["content_hash"] as? String)?.uppercased() == Self.sha1(bytes), "\(name)")
            }
            #expect(m.journalEntries().isEmpty)
        }
    }

    @Test func fsyncStillWaitsForTheDrive() async throws {
        try await withMount(options: ["write_back=60"]) { m in
            let bytes = testBytes(50_000, seed: 7)
            try Self.write(bytes, to: m.path("synced.bin"))  // open, write, fsync, close
            #expect((try await m.remoteFile("/synced.bin")?["content_hash"] as? String)?.uppercased() == Self.sha1(bytes))
            // Without the fsync, the same content waits.
            try Self.put(bytes, "queued.bin", m)
            #expect(try await m.remoteFile("/queued.bin") == nil)
        }
    }

    @Test func aCrashAfterCloseLosesNothing() async throws {
        try await withMount(options: ["write_back=60"]) { m in
            let bytes = testBytes(70_000, seed: 8)
            try Self.put(bytes, "kept.bin", m)
            #expect(m.journalEntries().count == 1, "journaled (durably) when close returned")
            #expect(try await m.remoteFile("/kept.bin") == nil)
            await m.killDaemon()
            try await m.mount()
            let hash = try await eventually(20) { try await m.remoteFile("/kept.bin")?["content_hash"] as? String }
            #expect(hash?.uppercased() == Self.sha1(bytes))
        }
    }

    @Test func unmountWaitsForTheQueueAndRenamesApplyToIt() async throws {
        try await withMount(options: ["write_back=60"]) { m in
            let (first, second) = (testBytes(30_000, seed: 9), testBytes(40_000, seed: 10))
            try Self.put(first, "draft.txt", m)
            try Self.put(second, "other.txt", m)
            #expect(m.journalEntries().count == 2)
            try m.shell("mv", m.path("draft.txt"), m.path("final.txt"))
            try m.shell("rm", m.path("other.txt"))
            await m.unmount()
            #expect((try await m.remoteFile("/final.txt")?["content_hash"] as? String)?.uppercased() == Self.sha1(first))
            #expect(try await m.remoteFile("/draft.txt") == nil)
            #expect(try await m.remoteFile("/other.txt") == nil)
            #expect(m.journalEntries().isEmpty)
        }
    }
}
