import Crypto
import DriveEmulator
import EmulatorTestSupport
import Foundation
import Glibc
import Testing

/// Pending uploads stay with the account, drive and endpoint they were written for; close()
/// tells the truth about content the drive holds; a second signal ends unmount's wait.
@Suite(.serialized, .enabled(if: FUSEAvailability.canMount, "\(FUSEAvailability.problem ?? "")"))
struct IsolationMountTests {
    static let secret = Array("account A private\n".utf8)
    static let allow = ["upload", "retry", "failed", "pending", "InternalError", "fault"]

    /// Writes `secret.txt` while the drive refuses every upload (the close fails and the
    /// upload is journaled), then kills the daemon.
    static func leavePendingUpload(_ m: MountedDrive, name: String = "secret.txt") async throws {
        _ = try await m.drive.hook("faults", ["rules": [["path": "/adrive/v2/file/createWithFolders", "status": 503, "probability": 1]]])
        let fd = open(m.path(name), O_CREAT | O_WRONLY, 0o644)
        #expect(fd >= 0)
        #expect(secret.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == secret.count)
        #expect(Glibc.close(fd) == -1, "the drive refused the upload")
        #expect(m.journalEntries().count == 1)
        await m.killDaemon()
        _ = try await m.drive.hook("faults", ["clear": true])
    }

    static func file(_ m: MountedDrive, _ path: String, drive driveID: String? = nil) async throws -> JSON? {
        let (status, file) = try await m.drive.post("/v2/file/get_by_path", ["drive_id": driveID ?? m.drive.driveID, "file_path": path])
        return status == 200 ? file : nil
    }

    @Test func anotherAccountsPendingUploadStaysOutOfThisDriveAndReachesItsOwn() async throws {
        let a = try await MountedDrive()
        a.allowedLogPatterns = Self.allow
        let b = try await MountedDrive(sharingStateWith: a)
        defer { _ = (a, b) }
        do {
            try await a.mount()
            try await Self.leavePendingUpload(a)
            try await b.mount()
            // B's mount has looked at the journal and left A's entry alone.
            _ = try await eventually(10) { b.daemonLog.contains("belong to another account or drive") ? true : nil }
            #expect(b.daemonLog.contains("1 pending upload(s) belong to another account or drive"))
            try await Task.sleep(for: .seconds(2))
            #expect(try await Self.file(b, "/secret.txt") == nil, "A's file reached B's drive")
            #expect(try await b.drive.stats()["bytes_uploaded"] as? Int == 0)
            #expect(a.journalEntries().count == 1)
            await b.unmount()
            // A's next mount finishes it, into A.
            try await a.mount()
            let arrived = try await eventually(30) { try await Self.file(a, "/secret.txt") }
            #expect(arrived?["content_hash"] as? String == WriteMountTests.sha1(Self.secret))
            #expect(try await a.remoteBytes("/secret.txt") == Self.secret)
            #expect(try await eventually(10) { a.journalEntries().isEmpty ? true : nil } == true)
        } catch {
            Issue.record(error)
        }
        await b.finish()
        await a.finish()
    }

    @Test func theResourceDriveDoesNotTakeTheDefaultDrivesUploads() async throws {
        try await withMount(allow: Self.allow) { m in
            try await Self.leavePendingUpload(m)
            let resource = m.drive.resourceDriveID
            #expect(!resource.isEmpty)
            try await m.mount(options: ["drive=resource"])
            _ = try await eventually(10) { m.daemonLog.contains("belong to another account or drive") ? true : nil }
            try await Task.sleep(for: .seconds(2))
            #expect(try await Self.file(m, "/secret.txt", drive: resource) == nil)
            #expect(try await Self.file(m, "/secret.txt") == nil)
            #expect(m.journalEntries().count == 1)
            await m.unmount()
            try await m.mount()
            let arrived = try await eventually(30) { try await Self.file(m, "/secret.txt") }
            #expect(arrived?["content_hash"] as? String == WriteMountTests.sha1(Self.secret))
        }
    }

    @Test func aReadOnlyMountUploadsNothingAndSaysItKeepsThem() async throws {
        try await withMount(allow: Self.allow) { m in
            try await Self.leavePendingUpload(m)
            try await m.mount(options: ["ro"])
            _ = try await eventually(10) { m.daemonLog.contains("keeping 1 pending upload(s) for a read-write mount") ? true : nil }
            #expect(m.daemonLog.contains("keeping 1 pending upload(s) for a read-write mount"))
            try await Task.sleep(for: .seconds(2))
            #expect(try await Self.file(m, "/secret.txt") == nil)
            #expect(m.journalEntries().count == 1)
            await m.unmount()
            try await m.mount()
            #expect(try await eventually(30) { try await Self.file(m, "/secret.txt") } != nil)
        }
    }

    @Test func aPendingUploadFromBeforeBindingsIsKeptAsideNotUploaded() async throws {
        try await withMount(allow: ["older adrivefs"], setup: { m in
            // What the previous release left: pending/ID.json naming a dead pid, staging/PID/ID.
            let id = UUID().uuidString
            let staging = m.cacheDirectory + "/adrivefs/staging/2147483000"
            try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
            try Data(Self.secret).write(to: URL(fileURLWithPath: staging + "/" + id))
            let pending = m.stateDirectory + "/adrivefs/pending"
            try FileManager.default.createDirectory(atPath: pending, withIntermediateDirectories: true)
            let json = #"{"id":"\#(id)","stagingPath":"\#(staging)/\#(id)","parentID":"root","name":"legacy.txt","displayPath":"legacy.txt","owner":2147483000}"#
            try Data(json.utf8).write(to: URL(fileURLWithPath: pending + "/" + id + ".json"))
        }) { m in
            let lostAndFound = m.cacheDirectory + "/adrivefs/staging/lost+found"
            let kept = try await eventually(10) { () -> String? in
                ((try? FileManager.default.contentsOfDirectory(atPath: lostAndFound)) ?? []).first { $0.hasPrefix("legacy.txt.") && !$0.hasSuffix(".json") }
            }
            let name = try #require(kept)
            #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: lostAndFound + "/" + name))) == Self.secret)
            // (The line is written after the move: the file may be there before it.)
            let said = try await eventually(10) { m.daemonLog.contains("kept in \(lostAndFound)/\(name)") ? true : nil }
            #expect(said == true, "\(m.daemonLog)")
            try await Task.sleep(for: .seconds(1))
            #expect(try await Self.file(m, "/legacy.txt") == nil)
            #expect(try await m.drive.stats()["bytes_uploaded"] as? Int == 0)
            #expect(m.journalEntries().isEmpty)
        }
    }

    @Test func twoAccountsMountedAtOnceKeepTheirStagingApart() async throws {
        let a = try await MountedDrive()
        let b = try await MountedDrive(sharingStateWith: a)
        do {
            try await a.mount()
            try await b.mount()
            // Both write while their drives refuse uploads: both stage and journal.
            for m in [a, b] {
                _ = try await m.drive.hook("faults", ["rules": [["path": "/adrive/v2/file/createWithFolders", "status": 503, "probability": 1]]])
            }
            a.allowedLogPatterns = Self.allow
            b.allowedLogPatterns = Self.allow
            for (m, text) in [(a, "from A\n"), (b, "from B\n")] {
                _ = try? m.shell("sh", "-c", "printf '\(text)' > '\(m.path("note.txt"))'")
            }
            let staging = a.cacheDirectory + "/adrivefs/staging"
            let scopes = StateLayoutProbe.subfolders(staging)
            #expect(scopes.count == 2, "one staging folder per account: \(scopes)")
            for m in [a, b] { _ = try await m.drive.hook("faults", ["clear": true]) }
            for (m, text) in [(a, "from A\n"), (b, "from B\n")] {
                let arrived = try await eventually(30) { try await Self.file(m, "/note.txt") }
                #expect(arrived?["content_hash"] as? String == WriteMountTests.sha1(Array(text.utf8)))
                #expect(try await m.remoteBytes("/note.txt") == Array(text.utf8))
            }
        } catch {
            Issue.record(error)
        }
        await b.finish()
        await a.finish()
    }

    @Test func closeSucceedsWhenTheDriveHoldsTheContentWhateverCompleteAnswers() async throws {
        try await withMount(options: ["dir_cache_ttl=0"]) { m in
            let bytes = testBytes(3 << 20, seed: 61)
            let local = m.directory.appendingPathComponent("known.bin").path
            try Data(bytes).write(to: URL(fileURLWithPath: local))
            try m.shell("cp", local, m.path("known.bin"))
            // A server that closes rapid upload sessions refuses the complete that follows.
            _ = try await m.drive.hook("faults", ["rapid_upload_sessions": "closed"])
            let (status, _, error) = try MountedDrive.run(["cp", local, m.path("copy.bin")])
            #expect(status == 0, "cp: \(error)")
            #expect(m.daemonLog.contains("rapid upload: copy.bin"))
            #expect((try await Self.file(m, "/copy.bin"))?["content_hash"] as? String == WriteMountTests.sha1(bytes))
            // A complete whose answer is lost on the way back.
            let fresh = testBytes(400_000, seed: 62)
            try Data(fresh).write(to: URL(fileURLWithPath: local))
            _ = try await m.drive.hook("faults", ["rules": [["path": "/v2/file/complete", "kind": "drop_response", "count": 1]]])
            let (again, _, againError) = try MountedDrive.run(["cp", local, m.path("lost.bin")])
            #expect(again == 0, "cp: \(againError)")
            #expect((try await Self.file(m, "/lost.bin"))?["content_hash"] as? String == WriteMountTests.sha1(fresh))
            let names = try await m.drive.listAll().0.compactMap { $0["name"] as? String }
            #expect(names.filter { $0 == "copy.bin" }.count == 1 && names.filter { $0 == "lost.bin" }.count == 1)
            #expect(try m.shell("sha1sum", m.path("copy.bin")).hasPrefix(WriteMountTests.sha1(bytes).lowercased()))
        }
    }

    @Test func aSecondSignalEndsTheWaitForUploadsAtUnmount() async throws {
        try await withMount(allow: Self.allow + ["still pending"]) { m in
            _ = try await m.drive.hook("faults", ["rules": [["path": "/adrive/v2/file/createWithFolders", "status": 503, "probability": 1]]])
            _ = try? m.shell("sh", "-c", "printf 'waiting\\n' > '\(m.path("pending.txt"))'")
            // fusermount -u: the daemon waits (upload_wait is 600 s by default).
            _ = try MountedDrive.run(["fusermount3", "-u", m.mountpoint])
            let pid = try #require(m.daemonPID)
            _ = try await eventually(10) { m.daemonLog.contains("waiting up to 600 s for 1 upload(s): pending.txt") ? true : nil }
            kill(pid, SIGTERM)
            _ = try await eventually(10) { m.daemonLog.contains("still waiting for 1 upload(s): pending.txt") ? true : nil }
            #expect(m.daemonLog.contains("still waiting for 1 upload(s): pending.txt"))
            #expect(!(await m.waitForDaemonExit(1)), "the first SIGTERM keeps waiting")
            kill(pid, SIGTERM)
            #expect(await m.waitForDaemonExit(10), "the second SIGTERM ends the wait")
            #expect(m.daemonLog.contains("unmounting with 1 upload(s) still pending (kept for the next mount): pending.txt"))
            #expect(m.journalEntries().count == 1)

            // As systemd stops it: SIGTERM while mounted unmounts; the second ends the wait.
            try await m.mount()
            _ = try? m.shell("sh", "-c", "printf 'again\\n' > '\(m.path("second.txt"))'")
            let second = try #require(m.daemonPID)
            kill(second, SIGTERM)
            _ = try await eventually(10) { !m.isMounted ? true : nil }
            #expect(!m.isMounted)
            #expect(!(await m.waitForDaemonExit(1)))
            kill(second, SIGTERM)
            #expect(await m.waitForDaemonExit(10))
            #expect(m.journalEntries().count == 2)
        }
    }
}

/// Folder listings for assertions about the state layout.
enum StateLayoutProbe {
    static func subfolders(_ path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { name in
            var isDirectory: ObjCBool = false
            return name != "lost+found" && FileManager.default.fileExists(atPath: path + "/" + name, isDirectory: &isDirectory) && isDirectory.boolValue
        }
    }
}
