import Crypto
import DriveEmulator
import EmulatorTestSupport
import Foundation
import Glibc
import Testing

/// Share links mounted through /dev/fuse with ordinary tools: listings, bytes in copy mode
/// and through the legacy link, passwords, cancelled shares, copies' lifetimes, no login,
/// a full drive, and refused writes.
@Suite(.serialized, .enabled(if: FUSEAvailability.canMount, "\(FUSEAvailability.problem ?? "")"))
struct ShareMountTests {
    static let allow = ["no longer available", "cannot read", "temporary cop", "reading a share needs"]

    static func share(_ m: MountedDrive, protected: Bool = false) throws -> (id: String, password: String) {
        let share = try #require(m.drive.emulator.shares.first { $0.password.isEmpty != protected })
        return (share.id, share.password)
    }

    static func stat(_ m: MountedDrive, _ key: String) async throws -> Int { try await m.drive.stats()[key] as? Int ?? -1 }

    static func used(_ m: MountedDrive) async throws -> Int {
        let info = try await m.drive.post("/v2/databox/get_personal_info", [:]).1["personal_space_info"] as? JSON
        return info?["used_size"] as? Int ?? -1
    }

    /// The emulator's own bytes of a file of the demo drive, by path.
    static func original(_ m: MountedDrive, _ path: String) async throws -> [UInt8] { try await m.remoteBytes(path) }

    static func sha1(_ bytes: [UInt8]) -> String { Insecure.SHA1.hash(data: bytes).map { String(format: "%02x", $0) }.joined() }

    /// Runs the binary as a person would (daemonizing), returns (status, stderr).
    static func mountByHand(_ m: MountedDrive, _ source: String, options: [String] = [], environment extra: [String: String] = [:]) throws -> (Int32, String) {
        var environment = m.environment
        for (key, value) in extra { environment[key] = value }
        let (status, _, error) = try MountedDrive.run(
            [MountedDrive.binary, source, m.mountpoint, "-o", (["endpoint=\(m.endpoint)", "token_file=\(m.tokenFile)"] + options).joined(separator: ",")],
            environment: environment)
        return (status, error)
    }

    @Test func aShareListsAndReadsWithOrdinaryToolsInCopyMode() async throws {
        try await withMount(allow: Self.allow, setup: { _ in }) { m in
            await m.unmount()
            let share = try Self.share(m)
            try await m.mount(source: "share:\(share.id)")
            let mounts = try String(contentsOfFile: "/proc/mounts", encoding: .utf8)
            #expect(mounts.contains("share:\(share.id) \(m.mountpoint) fuse.adrivefs ro,"))
            let tree = try m.shell("ls", "-R", m.mountpoint)
            #expect(tree.contains("Documents") && tree.contains("sample.mp4") && tree.contains("中文文件.txt"))
            #expect(try m.shell("find", m.mountpoint, "-type", "f").split(separator: "\n").count == 6)
            #expect(try m.shell("stat", "-c", "%s", m.path("Videos/sample.mp4")) == "\(64 << 20)\n")
            #expect(try m.shell("cat", m.path("Documents/notes.md")) == String(decoding: try await Self.original(m, "/Documents/notes.md"), as: UTF8.self))
            let video = try await Self.original(m, "/Videos/sample.mp4")
            #expect(try m.shell("sha1sum", m.path("Videos/sample.mp4")).hasPrefix(Self.sha1(video)))
            let slice = try m.shell("sh", "-c", "dd if='\(m.path("Videos/sample.mp4"))' bs=1M skip=50 count=3 2>/dev/null | sha1sum")
            #expect(slice.hasPrefix(Self.sha1(Array(video[(50 << 20)..<(53 << 20)]))))
            #expect(try await Self.stat(m, "share_copies") == 2, "one copy per file read")
            #expect(m.daemonLog.contains("reading shared files through temporary copies in your drive"))
            let xattr = try m.shell("getfattr", "-n", "user.adrive.sha1", "--only-values", m.path("Videos/sample.mp4"))
            #expect(xattr.lowercased() == Self.sha1(video))
            #expect(try m.shell("getfattr", "-n", "user.adrive.share_id", "--only-values", m.path("Videos")) == share.id)
            // Writes are refused.
            let touched = try MountedDrive.run(["touch", m.path("new.txt")])
            #expect(touched.0 != 0 && touched.2.contains("Read-only file system"))
            let removed = try MountedDrive.run(["rm", m.path("Documents/notes.md")])
            #expect(removed.0 != 0 && removed.2.contains("Read-only file system"))
            #expect(try MountedDrive.run(["mkdir", m.path("x")]).2.contains("Read-only file system"))
            // Unmount deletes the copies for good.
            let usedWhileMounted = try await Self.used(m)
            await m.unmount()
            #expect(try await Self.stat(m, "deletions") == 1, "the mount's folder of copies")
            #expect(try await Self.used(m) == usedWhileMounted - (64 << 20) - 78)
        }
    }

    @Test func withTheLegacyLinkNoCopyIsMade() async throws {
        try await withMount(allow: Self.allow) { m in
            await m.unmount()
            _ = try await m.drive.hook("faults", ["share_download_url": "ok"])
            try await m.mount(source: "share:\(try Self.share(m).id)")
            let video = try await Self.original(m, "/Videos/sample.mp4")
            let slice = try m.shell("sh", "-c", "dd if='\(m.path("Videos/sample.mp4"))' bs=1M skip=20 count=2 2>/dev/null | sha1sum")
            #expect(slice.hasPrefix(Self.sha1(Array(video[(20 << 20)..<(22 << 20)]))))
            #expect(try await Self.stat(m, "share_copies") == 0)
            #expect(m.daemonLog.contains("the service hands out direct links"))
        }
    }

    @Test func passwordsCancelledSharesAndTheShareURL() async throws {
        try await withMount(allow: Self.allow) { m in
            await m.unmount()
            let protected = try Self.share(m, protected: true)
            let missing = try Self.mountByHand(m, "share:\(protected.id)")
            #expect(missing.0 != 0 && missing.1.contains("needs a password: set ADRIVEFS_SHARE_PWD or share_pwd_file=PATH"))
            let wrong = try Self.mountByHand(m, "share:\(protected.id)", environment: ["ADRIVEFS_SHARE_PWD": "nope"])
            #expect(wrong.0 != 0 && wrong.1.contains("wrong password for share \(protected.id)"))
            #expect(!wrong.1.contains("nope"), "the password never appears")
            #expect(!m.isMounted)
            let unknown = try Self.mountByHand(m, "share:NoSuchShare1")
            #expect(unknown.0 != 0 && unknown.1.contains("no share with id NoSuchShare1"))
            let rw = try Self.mountByHand(m, "share:\(protected.id)", options: ["rw"])
            #expect(rw.0 == 2 && rw.1.contains("shares are read-only"))
            // The password from a file, the share as its URL (daemonized, as a person mounts).
            let file = m.directory.appendingPathComponent("share.pwd").path
            try Data("\(protected.id) \(protected.password)\n".utf8).write(to: URL(fileURLWithPath: file))
            let mounted = try Self.mountByHand(m, "https://www.alipan.com/s/\(protected.id)", options: ["share_pwd_file=\(file)"])
            #expect(mounted.0 == 0, "\(mounted.1)")
            #expect(try m.shell("ls", m.mountpoint) == "Pictures\n")
            #expect(try m.shell("stat", "-c", "%s", m.path("Pictures/cat.png")) == "\(120 * 1024)\n")
            // Cancelled while mounted: entries are gone (once the cached listing is stale).
            _ = try await m.drive.hook("faults", ["cancel_share": protected.id])
            _ = try MountedDrive.run(["fusermount3", "-u", m.mountpoint])
            for _ in 0..<100 where m.isMounted { try await Task.sleep(for: .milliseconds(50)) }
            let cancelled = try Self.mountByHand(m, "share:\(protected.id)", environment: ["ADRIVEFS_SHARE_PWD": protected.password])
            #expect(cancelled.0 != 0 && cancelled.1.contains("was cancelled by its creator"))
            // And a folder of a share named in the link is the root.
            let open = try Self.share(m)
            let (_, folder) = try await m.drive.post("/v2/file/get_by_path", ["drive_id": m.drive.driveID, "file_path": "/Documents"])
            let folderID = try #require(folder["file_id"] as? String)
            try await m.mount(source: "https://www.aliyundrive.com/s/\(open.id)/folder/\(folderID)", options: ["dir_cache_ttl=0"])
            #expect(try m.shell("ls", m.mountpoint).contains("notes.md"))
            _ = try await m.drive.hook("faults", ["cancel_share": open.id])
            let listed = try MountedDrive.run(["ls", m.mountpoint])
            #expect(listed.0 != 0 && listed.2.contains("No such file or directory"))
        }
    }

    @Test func copiesExpireAfterTheirTTLAndACrashedMountsAreSwept() async throws {
        try await withMount(allow: Self.allow) { m in
            await m.unmount()
            let share = try Self.share(m).id
            let before = try await Self.used(m)
            try await m.mount(source: "share:\(share)", options: ["share_copy_ttl=1"])
            // Two readers at once: one copy.
            try m.shell("sh", "-c", "cat '\(m.path("Videos/sample.mp4"))' > /dev/null & cat '\(m.path("Videos/sample.mp4"))' > /dev/null; wait")
            #expect(try await Self.stat(m, "share_copies") == 1)
            let gone = try await eventually(10) { try await Self.stat(m, "deletions") >= 1 ? true : nil }
            #expect(gone == true, "the copy went share_copy_ttl after its last reader")
            #expect(try await Self.used(m) == before)
            // A crash leaves a copy behind; the next mount of a share by this account sweeps it.
            try m.shell("cat", m.path("Documents/notes.md"))
            #expect(try await Self.used(m) == before + 78)
            await m.killDaemon()
            try await m.mount(source: "share:\(share)")
            let swept = try await eventually(10) { try await Self.used(m) == before && m.daemonLog.contains("left by earlier mounts") ? true : nil }
            #expect(swept == true, "the crashed mount's copy was swept: \(m.daemonLog)")
        }
    }

    @Test func withoutALoginItListsAndReadsAreEACCESAndAFullDriveIsENOSPC() async throws {
        try await withMount(allow: Self.allow) { m in
            await m.unmount()
            let share = try Self.share(m).id
            try await m.mount(source: "share:\(share)", options: ["token_file=\(m.directory.path)/no-token"])
            #expect(try m.shell("ls", m.path("Videos")) == "sample.mp4\n")
            let denied = try MountedDrive.run(["cat", m.path("Documents/notes.md")])
            #expect(denied.0 != 0 && denied.2.contains("Permission denied"))
            #expect(m.daemonLog.contains("reading a share needs a logged-in account"))
            await m.unmount()
            // Logged in, but the drive has no room for the temporary copy.
            try await m.mount(source: "share:\(share)")
            _ = try await m.drive.hook("faults", ["quota_total": try await Self.used(m)])
            let full = try MountedDrive.run(["cat", m.path("Documents/report.txt")])
            #expect(full.0 != 0 && full.2.contains("No space left on device"))
            #expect(m.daemonLog.contains("cannot read report.txt: reading a shared file needs a temporary copy in your drive, and your drive is full"))
        }
    }

    @Test func theShareTokenExpiringMidReadIsRenewed() async throws {
        try await withMount(allow: Self.allow) { m in
            await m.unmount()
            _ = try await m.drive.hook("faults", ["share_token_ttl": 2])
            try await m.mount(source: "share:\(try Self.share(m).id)", options: ["dir_cache_ttl=0"])
            let video = try await Self.original(m, "/Videos/sample.mp4")
            #expect(try m.shell("sha1sum", m.path("Videos/sample.mp4")).hasPrefix(Self.sha1(video)))
            try await Task.sleep(for: .seconds(2.5))
            #expect(try m.shell("cat", m.path("Documents/notes.md")).hasPrefix("# Notes"))
            #expect(try await m.drive.requestCount("/v2/share_link/get_share_token") >= 2)
        }
    }

    @Test func mountDashTAndAnFstabStyleLineMountAShare() async throws {
        try await withMount(allow: Self.allow) { m in
            await m.unmount()
            var environment = m.environment
            environment["PATH"] = URL(fileURLWithPath: MountedDrive.binary).deletingLastPathComponent().path + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
            let share = try Self.share(m).id
            // mount(8) resets PATH, so it cannot find the binary under test: a shell named
            // `mount` stands in for it and runs mount.fuse3 as mount(8) does, with the `rw`
            // mount(8) adds whenever `ro` is absent.
            let fakeMount = m.directory.appendingPathComponent("mount").path
            try FileManager.default.createSymbolicLink(atPath: fakeMount, withDestinationPath: "/bin/sh")
            let command = "mount.fuse3 share:\(share) '\(m.mountpoint)' -t fuse.adrivefs -o rw,endpoint=\(m.endpoint),token_file='\(m.tokenFile)',_netdev,nosuid,nodev; exit $?"
            let (status, _, error) = try MountedDrive.run([fakeMount, "-c", command], environment: environment)
            #expect(status == 0, "\(error)")
            let mounts = try String(contentsOfFile: "/proc/mounts", encoding: .utf8)
            #expect(mounts.contains("share:\(share) \(m.mountpoint) fuse.adrivefs ro,"))
            #expect(try m.shell("cat", m.path("Documents/notes.md")).hasPrefix("# Notes"))
            #expect(try MountedDrive.run(["umount", m.mountpoint]).0 == 0)
        }
    }
}
