import Crypto
import DriveEmulator
import EmulatorTestSupport
import Foundation
import Glibc
import Testing

/// What real workloads trip over: one name after `mv`, readers of replaced and unlinked
/// files, unmount right after a change, and pjdfstest's details (long names, huge
/// truncates, folder link counts, exact times).
@Suite(.serialized, .enabled(if: FUSEAvailability.canMount, "\(FUSEAvailability.problem ?? "")"))
struct PosixMountTests {
    static func names(_ m: MountedDrive) async throws -> [String] {
        try await m.drive.listAll().0.compactMap { $0["name"] as? String }
    }

    @Test func aJustCreatedEmptyFileRenamedOverAnotherLeavesOneName() async throws {
        try await withMount(options: ["dir_cache_ttl=0"]) { m in
            try m.shell("sh", "-c", "echo old > '\(m.path("dst"))'")
            for round in 0..<20 {
                try m.shell("sh", "-c", ": > '\(m.path("src"))'; mv '\(m.path("src"))' '\(m.path("dst"))'")
                let listed = try m.shell("ls", m.mountpoint).split(separator: "\n")
                #expect(!listed.contains("src"), "round \(round): src is still listed")
                #expect(listed.filter { $0 == "dst" }.count == 1, "round \(round)")
            }
            await m.unmount()
            let remote = try await Self.names(m)
            #expect(!remote.contains("src"))
            #expect(remote.filter { $0 == "dst" }.count == 1)
            try await m.mount()
            #expect(try m.shell("stat", "-c", "%s", m.path("dst")) == "0\n")
            #expect(!(try m.shell("ls", m.mountpoint).split(separator: "\n").contains("src")))
        }
    }

    @Test func readersKeepTheContentOfFilesReplacedByRenameOrUnlinked() async throws {
        try await withMount(options: ["cache_size=4M"]) { m in
            let old = testBytes(12 << 20, seed: 71)
            let local = m.directory.appendingPathComponent("old.bin").path
            try Data(old).write(to: URL(fileURLWithPath: local))
            try m.shell("cp", local, m.path("data.bin"))
            try m.shell("cp", local, m.path("gone.bin"))
            await m.unmount()
            try await m.mount(options: ["cache_size=4M"])  // nothing of them cached
            // An atomic save replaces data.bin while a reader has it open; then unlink gone.bin
            // under another reader. Both go on reading what they opened, far past any cache.
            let script = """
                import os, sys, hashlib
                a = os.open(sys.argv[1], os.O_RDONLY); b = os.open(sys.argv[2], os.O_RDONLY)
                head = os.pread(a, 4096, 0) + os.pread(b, 4096, 0)
                open(sys.argv[3], 'w').write('new'); os.rename(sys.argv[3], sys.argv[1])
                os.unlink(sys.argv[2])
                print(os.fstat(b).st_nlink, os.fstat(a).st_nlink)
                print(hashlib.sha1(os.pread(a, 1 << 20, 10 << 20)).hexdigest())
                print(hashlib.sha1(os.pread(b, 1 << 20, 11 << 20)).hexdigest())
                """
            let out = try m.shell("python3", "-c", script, m.path("data.bin"), m.path("gone.bin"), m.path(".data.bin.tmp"))
            let lines = out.split(separator: "\n").map(String.init)
            #expect(lines.first == "0 0", "st_nlink of an unlinked and of a replaced file")
            let sha1 = { (bytes: ArraySlice<UInt8>) in Insecure.SHA1.hash(data: Array(bytes)).map { String(format: "%02x", $0) }.joined() }
            #expect(lines.dropFirst().first == sha1(old[(10 << 20)..<(11 << 20)]))
            #expect(lines.dropFirst(2).first == sha1(old[(11 << 20)..<(12 << 20)]))
            // Once the readers closed, the old versions went to the trash.
            #expect(try m.shell("cat", m.path("data.bin")) == "new")
            _ = try await eventually(10) { try await Self.names(m).contains("gone.bin") ? nil : true }
            let remote = try await Self.names(m)
            #expect(!remote.contains("gone.bin") && remote.filter { $0 == "data.bin" }.count == 1)
        }
    }

    @Test(arguments: ["create", "empty", "renameOver", "unlinkWhileOpen"])
    func unmountRightAfterAChangeFinishes(change: String) async throws {
        try await withMount(options: ["upload_wait=30"]) { m in
            try m.shell("sh", "-c", "echo target > '\(m.path("target.txt"))'")
            switch change {
            case "create": try m.shell("sh", "-c", "echo new > '\(m.path("new.txt"))'")
            case "empty": try m.shell("sh", "-c", ": > '\(m.path("empty.txt"))'")
            case "renameOver": try m.shell("sh", "-c", "echo x > '\(m.path("a.txt"))'; mv '\(m.path("a.txt"))' '\(m.path("target.txt"))'")
            default:
                _ = try m.shell(
                    "python3", "-c", "import os,sys; f=os.open(sys.argv[1], os.O_RDONLY); os.unlink(sys.argv[1]); os.read(f, 3); os.close(f)",
                    m.path("target.txt"))
            }
            _ = try MountedDrive.run(["fusermount3", "-u", m.mountpoint])
            #expect(await m.waitForDaemonExit(40), "the daemon was still running 40 s after unmount (\(change)): \(m.daemonLog)")
            #expect(m.daemonLog.contains("unmounted \(m.mountpoint)"))
        }
    }

    @Test func readingAFolderOfSmallFilesAsksForTheirLinksInBatches() async throws {
        try await withMount(setup: { m in _ = try await m.drive.hook("populate", ["folder": "small", "count": 100]) }) { m in
            _ = try m.shell("ls", m.path("small"))
            _ = try await m.drive.hook("stats/reset")
            let all = try m.shell("sh", "-c", "cat '\(m.path("small"))'/*")
            #expect(all.split(separator: "\n").count == 100)
            #expect(all.hasPrefix("file 0\n") && all.hasSuffix("file 99\n"))
            let single = try await m.drive.requestCount("/v2/file/get_download_url")
            let batches = try await m.drive.requestCount("/adrive/v4/batch")
            // One call per 32 files instead of one per file (the download-URL bucket allows 10/s).
            #expect(single + batches <= 6, "\(single) single and \(batches) batch calls for 100 files: \(m.daemonLog.suffix(3000))")
            #expect(try await m.drive.stats()["download_urls"] as? Int ?? 0 >= 100)
        }
    }

    @Test func longNamesHugeTruncatesFolderLinksAndExactTimes() async throws {
        try await withMount { m in
            try m.shell("mkdir", "-p", m.path("tree/sub1"), m.path("tree/sub2"))
            let long = String(repeating: "n", count: 1025)
            let script = """
                import os, sys, errno
                d, long = sys.argv[1], sys.argv[2]
                p = os.path.join(d, long)
                for name, call in [("stat", lambda: os.stat(p)), ("truncate", lambda: os.truncate(p, 0)), ("unlink", lambda: os.unlink(p)),
                                   ("rmdir", lambda: os.rmdir(p)), ("rename", lambda: os.rename(p, os.path.join(d, "x"))),
                                   ("rename-to", lambda: os.rename(os.path.join(d, "tree"), p))]:
                    try:
                        call(); print(name, "ok")
                    except OSError as e:
                        print(name, errno.errorcode[e.errno])
                f = os.path.join(d, "big")
                open(f, "w").close()
                try:
                    os.truncate(f, 999999999999999); print("truncate-huge ok")
                except OSError as e:
                    print("truncate-huge", errno.errorcode[e.errno])
                print("nlink", os.stat(os.path.join(d, "tree")).st_nlink)
                t = os.path.join(d, "times")
                open(t, "w").write("t")
                for ns in [200000000200000000, 1700000000999999999]:
                    os.utime(t, ns=(ns, ns)); print("mtime", os.stat(t).st_mtime_ns)
                os.utime(t, ns=(1, 1700000000123456789)); print("mtime", os.stat(t).st_mtime_ns)
                """
            let out = try m.shell("python3", "-c", script, m.mountpoint, long)
            let lines = out.split(separator: "\n").map(String.init)
            for name in ["stat", "truncate", "unlink", "rmdir", "rename", "rename-to"] {
                #expect(lines.contains("\(name) ENAMETOOLONG"), "\(name): \(out)")
            }
            #expect(lines.contains("truncate-huge EFBIG"), "\(out)")
            // A folder's link count is 1 ("unknown", as btrfs): find must not skip subfolders.
            #expect(lines.contains("nlink 1"))
            #expect(try m.shell("find", m.path("tree"), "-type", "d").split(separator: "\n").count == 3)
            #expect(lines.filter { $0.hasPrefix("mtime") } == ["mtime 200000000200000000", "mtime 1700000000999999999", "mtime 1700000000123456789"])
            // Kept exactly across a remount.
            await m.unmount()
            try await m.mount()
            #expect(try m.shell("stat", "-c", "%.9Y", m.path("times")) == "1700000000.123456789\n")
        }
    }
}
