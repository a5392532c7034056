import DriveEmulator
import EmulatorTestSupport
import Foundation
import Glibc
import Testing

/// Saving from a share into the own drive with zero bytes moved: shares under `.shares/` of
/// an own-drive mount (`-o share=`), `cp` and `cp -r` from them through /dev/fuse, the
/// service's refusals, and `adrivefs share save` without a mount.
@Suite(.serialized, .enabled(if: FUSEAvailability.canMount, "\(FUSEAvailability.problem ?? "")"))
struct ShareSaveMountTests {
    static let allow = ["no longer available", "cannot read", "temporary cop", "QuotaExhausted", "ForbiddenNoPermission", "ShareLink.Cancelled"]

    static func openShare(_ m: MountedDrive) throws -> (id: String, title: String) {
        let share = try #require(m.drive.emulator.shares.first { $0.password.isEmpty })
        return (share.id, "Videos and documents")
    }

    static func stat(_ m: MountedDrive, _ key: String) async throws -> Int { try await m.drive.stats()[key] as? Int ?? -1 }

    /// Bytes through the data plane so far (downloads + uploads).
    static func bytesMoved(_ m: MountedDrive) async throws -> Int {
        try await stat(m, "bytes_downloaded") + stat(m, "bytes_uploaded") + stat(m, "bytes_uploaded_internal")
    }

    static func used(_ m: MountedDrive) async throws -> Int {
        let info = try await m.drive.post("/v2/databox/get_personal_info", [:]).1["personal_space_info"] as? JSON
        return info?["used_size"] as? Int ?? -1
    }

    static func names(_ m: MountedDrive, _ folderPath: String) async throws -> [String] {
        let id = try #require(try await m.remoteFile(folderPath)?["file_id"] as? String, "\(folderPath) on the server")
        return try await m.drive.listAll(id).0.compactMap { $0["name"] as? String }
    }

    static func mountWithShare(_ m: MountedDrive, _ extra: [String] = []) async throws -> String {
        await m.unmount()
        let share = try openShare(m)
        try await m.mount(options: ["share=\(share.id)", "dir_cache_ttl=0"] + extra)
        return m.path(".shares/\(share.title)")
    }

    @Test func cpAndCpRFromTheSharesFolderMoveNoBytes() async throws {
        try await withMount(allow: Self.allow) { m in
            // Without share= there is no virtual folder.
            #expect(!(try m.shell("ls", "-a", m.mountpoint).contains(".shares")))
            let protected = try #require(m.drive.emulator.shares.first { !$0.password.isEmpty })
            let passwords = m.directory.appendingPathComponent("shares.pwd").path
            try Data("# one line per share\n\(protected.id) \(protected.password)\n".utf8).write(to: URL(fileURLWithPath: passwords))
            let shared = try await Self.mountWithShare(m, ["share=https://www.alipan.com/s/\(protected.id)", "share_pwd_file=\(passwords)"])
            #expect(try m.shell("ls", m.path(".shares")) == "Pictures\nVideos and documents\n")
            #expect(try m.shell("stat", "-c", "%A", m.path(".shares")).hasPrefix("dr-x"))
            #expect(try m.shell("ls", m.path(".shares/Pictures/Pictures")).contains("cat.png"))
            let before = try await Self.bytesMoved(m)
            let used = try await Self.used(m)
            try m.shell("mkdir", m.path("Saved"))
            try m.shell("cp", shared + "/Videos/sample.mp4", m.path("Saved/"))
            try m.shell("cp", "-r", shared + "/Documents", m.path("Saved/"))
            #expect(try await Self.bytesMoved(m) == before, "0 bytes through the data plane for cp and cp -r")
            #expect(try await Self.stat(m, "share_copies") == 5, "one server-side save per file (an empty one is just created)")
            let video = try #require(try await m.remoteFile("/Saved/sample.mp4"))
            let original = try #require(try await m.remoteFile("/Videos/sample.mp4"))
            #expect(video["content_hash"] as? String == original["content_hash"] as? String && video["size"] as? Int == 64 << 20)
            for name in ["notes.md", "中文文件.txt", "empty.txt"] {
                let saved = try await m.remoteFile("/Saved/Documents/\(name)")
                #expect(saved?["content_hash"] as? String == (try await m.remoteFile("/Documents/\(name)"))?["content_hash"] as? String, "\(name)")
            }
            #expect(try await Self.used(m) == used + 64 << 20 + 78 + 32 + 52 + 25)
            #expect(m.daemonLog.contains("saved from share: Videos and documents/Videos/sample.mp4 → Saved/sample.mp4 (64.0 MiB) — 0 bytes moved"))
            #expect(!(try await Self.names(m, "/Saved")).contains { $0.hasPrefix(".adrivefs-saving-") })
            // What the mount shows is what the drive holds, after a remount too.
            let sum = try m.shell("sha1sum", m.path("Saved/sample.mp4"))
            #expect(sum.hasPrefix((original["content_hash"] as? String ?? "").lowercased()))
            await m.unmount()
            try await m.mount()
            #expect(try m.shell("ls", m.path("Saved/Documents")).contains("notes.md"))
            #expect(try m.shell("cat", m.path("Saved/Documents/notes.md")).hasPrefix("# Notes"))
        }
    }

    @Test func anExistingDestinationIsReplacedAndADuplicateNameKept() async throws {
        try await withMount(allow: Self.allow) { m in
            let shared = try await Self.mountWithShare(m)
            let old = try #require(try await m.remoteFile("/Documents/中文文件.txt")?["file_id"] as? String)
            try m.shell("cp", shared + "/Documents/notes.md", m.path("Documents/中文文件.txt"))
            #expect(try m.shell("cat", m.path("Documents/中文文件.txt")).hasPrefix("# Notes"))
            let trash = try await m.drive.post("/v2/recyclebin/list", ["drive_id": m.drive.driveID]).1["items"] as? [JSON] ?? []
            #expect(trash.contains { $0["file_id"] as? String == old }, "the replaced version is in the trash")
            // report.txt is in the folder twice: cp onto the name shown plain replaces that one.
            let listed = try m.shell("ls", m.path("Documents"))
            let duplicate = try #require(listed.split(separator: "\n").first { $0.hasPrefix("report (") }.map(String.init))
            let other = try m.shell("cat", m.path("Documents/" + duplicate))
            let before = try await Self.bytesMoved(m)
            try m.shell("cp", shared + "/Videos/sample.mp4", m.path("Documents/report.txt"))
            #expect(try await Self.bytesMoved(m) == before)
            let reports = try await Self.names(m, "/Documents").filter { $0 == "report.txt" }
            #expect(reports.count == 2, "the saved file and the other duplicate, which is untouched")
            let after = try m.shell("ls", m.path("Documents")).split(separator: "\n").filter { $0.hasPrefix("report") }
            let sizes = try after.map { try m.shell("stat", "-c", "%s", m.path("Documents/\($0)")) }
            #expect(Set(sizes) == ["\(64 << 20)\n", "\(other.utf8.count)\n"], "\(after)")
        }
    }

    @Test func refusalsGiveTheirErrnoAndLeaveNothingBehind() async throws {
        try await withMount(allow: Self.allow) { m in
            let shared = try await Self.mountWithShare(m)
            let used = try await Self.used(m)
            _ = try await m.drive.hook("faults", ["quota_total": used + 100])
            let full = try MountedDrive.run(["cp", shared + "/Videos/sample.mp4", m.path("Documents/full.mp4")])
            #expect(full.0 != 0 && full.2.contains("No space left on device"), "\(full.2)")
            _ = try await m.drive.hook("faults", ["quota_total": 1 << 40])
            let notes = try #require(try await m.remoteFile("/Documents/notes.md")?["file_id"] as? String)
            _ = try await m.drive.hook("faults", ["punish_file": notes])
            let blocked = try MountedDrive.run(["cp", shared + "/Documents/notes.md", m.path("Documents/blocked.md")])
            #expect(blocked.0 != 0 && blocked.2.contains("Permission denied"), "\(blocked.2)")
            _ = try await m.drive.hook("faults", ["cancel_share": try Self.openShare(m).id])
            let gone = try MountedDrive.run(["cp", shared + "/Documents/report.txt", m.path("Documents/gone.txt")])
            #expect(gone.0 != 0 && gone.2.contains("No such file or directory"), "\(gone.2)")
            #expect(try await Self.used(m) == used, "no copy stayed in the drive")
            let names = try await Self.names(m, "/Documents")
            #expect(!names.contains { $0.hasPrefix(".adrivefs-saving-") }, "\(names)")
            // What cp itself created stays, empty, as on any filesystem where a copy fails.
            #expect(try m.shell("stat", "-c", "%s", m.path("Documents/full.mp4")) == "0\n")
            // With fresh listings (dir_cache_ttl=0) a blocked file, or one of a cancelled share,
            // is refused when cp opens it, before it creates anything (the save's own refusals
            // of the same are in SharesInDriveTests).
            #expect(!FileManager.default.fileExists(atPath: m.path("Documents/blocked.md")))
            #expect(!FileManager.default.fileExists(atPath: m.path("Documents/gone.txt")))
            #expect(try await Self.stat(m, "bytes_downloaded") == 0)
        }
    }

    @Test func aRealSharesFolderStaysReachableBesideTheVirtualOne() async throws {
        try await withMount(allow: Self.allow) { m in
            let real = try await m.drive.mkdir(".shares")
            _ = try await m.drive.upload("mine.txt", Array("mine\n".utf8), in: real)
            _ = try await Self.mountWithShare(m)
            let root = try m.shell("ls", "-a", m.mountpoint)
            #expect(root.contains(".shares\n") && root.contains(".shares (\(real.prefix(8)))\n"), "\(root)")
            #expect(try m.shell("cat", m.path(".shares (\(real.prefix(8)))/mine.txt")) == "mine\n")
            #expect(try m.shell("ls", m.path(".shares")) == "Videos and documents\n")
            // Writes under .shares are refused; the real folder takes them.
            let refused = try MountedDrive.run(["touch", m.path(".shares/Videos and documents/x")])
            #expect(refused.0 != 0 && refused.2.contains("Read-only file system"))
            let moved = try MountedDrive.run(["mv", m.path("README.txt"), m.path(".shares/")])
            #expect(moved.0 != 0 && moved.2.contains("Read-only file system"))
            try m.shell("touch", m.path(".shares (\(real.prefix(8)))/new.txt"))
            // Without share= the real folder has its own name again.
            await m.unmount()
            try await m.mount()
            #expect(try m.shell("ls", m.path(".shares")) == "mine.txt\nnew.txt\n")
        }
    }

    @Test func shareOptionErrors() async throws {
        try await withMount(allow: Self.allow) { m in
            await m.unmount()
            var environment = m.environment
            environment["ADRIVEFS_REFRESH_TOKEN"] = nil
            func mount(_ options: String) throws -> (Int32, String) {
                let (status, _, error) = try MountedDrive.run(
                    [MountedDrive.binary, "adrive", m.mountpoint, "-o", "endpoint=\(m.endpoint),token_file=\(m.tokenFile),\(options)"], environment: environment)
                return (status, error)
            }
            let protected = try #require(m.drive.emulator.shares.first { !$0.password.isEmpty })
            let missing = try mount("share=\(protected.id)")
            #expect(missing.0 != 0 && missing.1.contains("share=\(protected.id): share \(protected.id) needs a password"))
            environment["ADRIVEFS_SHARE_PWD"] = "nope"
            let wrong = try mount("share=\(protected.id)")
            #expect(wrong.0 != 0 && wrong.1.contains("wrong password for share \(protected.id)") && !wrong.1.contains("nope"))
            environment["ADRIVEFS_SHARE_PWD"] = nil
            let unknown = try mount("share=NoSuchShare1")
            #expect(unknown.0 != 0 && unknown.1.contains("no share with id NoSuchShare1"))
            let bad = try mount("share=not/an/id")
            #expect(bad.0 == 2 && bad.1.contains("mount option 'share'"))
            #expect(!m.isMounted)
        }
    }

    // MARK: - adrivefs share save

    static func save(_ m: MountedDrive, _ arguments: [String], environment extra: [String: String] = [:]) throws -> (Int32, String, String) {
        var environment = m.environment
        for (key, value) in extra { environment[key] = value }
        return try MountedDrive.run(
            [MountedDrive.binary, "share", "save"] + arguments + ["--endpoint", m.endpoint, "--token-file", m.tokenFile], environment: environment)
    }

    @Test func shareSaveSavesAFileAndADeepFolderWithoutAMount() async throws {
        try await withMount(allow: Self.allow) { m in
            await m.unmount()
            // A share of a 3-level folder of 14 items: its copy is a task polled several times.
            let tree = try await m.drive.mkdir("Tree")
            let level1 = try await m.drive.mkdir("level1", in: tree)
            let level2 = try await m.drive.mkdir("level2", in: level1)
            for index in 0..<4 {
                _ = try await m.drive.upload("top\(index).txt", Array("top \(index)\n".utf8), in: tree)
                _ = try await m.drive.upload("one\(index).txt", Array("one \(index)\n".utf8), in: level1)
                _ = try await m.drive.upload("two\(index).bin", testBytes(1000 + index, seed: UInt64(index)), in: level2)
            }
            let (_, created) = try await m.drive.post("/adrive/v2/share_link/create", ["drive_id": m.drive.driveID, "file_id_list": [tree], "share_pwd": "k3y9"])
            let shareID = try #require(created["share_id"] as? String)
            let password = m.directory.appendingPathComponent("pwd").path
            try Data("k3y9\n".utf8).write(to: URL(fileURLWithPath: password))
            let before = try await Self.bytesMoved(m)
            let polls = try await m.drive.requestCount("/v2/async_task/get")
            let folder = try Self.save(m, ["share:\(shareID)/Tree", "/Copied", "--password-file", password])
            #expect(folder.0 == 0, "\(folder.2)")
            #expect(folder.1.contains("saved /Copied (folder)") && folder.1.contains("0 bytes moved"), "\(folder.1)")
            #expect(try await m.drive.requestCount("/v2/async_task/get") - polls >= 3, "the folder's task was polled to its end")
            // A file of it, by path, under a new name, from the share's link.
            let open = try Self.openShare(m)
            let file = try Self.save(m, ["https://www.alipan.com/s/\(open.id)", "/FromShare"])
            #expect(file.0 == 0, "\(file.2)")
            let one = try Self.save(m, ["\(open.id)/Videos/sample.mp4", "/FromShare/movie.mp4"])
            #expect(one.0 == 0 && one.1.contains("saved /FromShare/movie.mp4 (64.0 MiB)"), "\(one.1) \(one.2)")
            #expect(try await Self.bytesMoved(m) == before)
            try await m.mount()
            #expect(try m.shell("find", m.path("Copied"), "-type", "f").split(separator: "\n").count == 12)
            #expect(try m.shell("stat", "-c", "%s", m.path("Copied/level1/level2/two3.bin")) == "1003\n")
            #expect(try m.shell("cat", m.path("Copied/level1/one2.txt")) == "one 2\n")
            #expect(try m.shell("ls", m.path("FromShare")) == "Documents\nVideos\nmovie.mp4\n")
            #expect(try m.shell("stat", "-c", "%s", m.path("FromShare/movie.mp4")) == "\(64 << 20)\n")
        }
    }

    @Test func shareSaveFailuresAreOneLineAndNonZero() async throws {
        try await withMount(allow: Self.allow) { m in
            await m.unmount()
            let open = try Self.openShare(m)
            let protected = try #require(m.drive.emulator.shares.first { !$0.password.isEmpty })
            let missing = try Self.save(m, ["\(open.id)/Videos/nothing.mp4", "/"])
            #expect(missing.0 == 1 && missing.2 == "adrivefs: share save: the share has no Videos/nothing.mp4\n", "\(missing.2)")
            let noFolder = try Self.save(m, ["\(open.id)/Videos/sample.mp4", "/No/Such/movie.mp4"])
            #expect(noFolder.0 == 1 && noFolder.2.contains("/No/Such is not a folder in your drive"), "\(noFolder.2)")
            let needs = try Self.save(m, [protected.id, "/"])
            #expect(needs.0 == 1 && needs.2.contains("needs a password: set ADRIVEFS_SHARE_PWD or --password-file F"), "\(needs.2)")
            let wrong = try Self.save(m, [protected.id, "/"], environment: ["ADRIVEFS_SHARE_PWD": "zzzz"])
            #expect(wrong.0 == 1 && wrong.2.contains("wrong password") && !wrong.2.contains("zzzz"), "\(wrong.2)")
            _ = try await m.drive.hook("faults", ["quota_total": try await Self.used(m)])
            let full = try Self.save(m, ["\(open.id)/Videos/sample.mp4", "/"])
            #expect(full.0 == 1 && full.2.contains("your drive is full"), "\(full.2)")
            #expect(!(try await m.drive.listAll().0.contains { ($0["name"] as? String ?? "").hasPrefix(".adrivefs-saving-") }))
            let usage = try MountedDrive.run([MountedDrive.binary, "share", "save", open.id], environment: m.environment)
            #expect(usage.0 == 2 && usage.2.contains("usage: adrivefs share save"))
            let relative = try Self.save(m, [open.id, "Movies"])
            #expect(relative.0 == 2 && relative.2.contains("DEST_PATH is a path in your drive, from its root"))
            let noLogin = try MountedDrive.run(
                [MountedDrive.binary, "share", "save", open.id, "/", "--endpoint", m.endpoint, "--token-file", m.directory.path + "/none"],
                environment: m.environment)
            #expect(noLogin.0 == 1 && noLogin.2.contains("needs your login"))
        }
    }
}
