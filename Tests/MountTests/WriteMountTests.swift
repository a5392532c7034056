import Crypto
import DriveEmulator
import EmulatorTestSupport
import Foundation
import Glibc
import Testing

/// Writing through a real mount with ordinary tools, checked against what the emulator
/// (the server) ends up holding.
@Suite(.serialized, .enabled(if: FUSEAvailability.canMount, "\(FUSEAvailability.problem ?? "")"))
struct WriteMountTests {
    static func sha1(_ bytes: [UInt8]) -> String { Insecure.SHA1.hash(data: bytes).map { String(format: "%02X", $0) }.joined() }

    @Test func copiedTreeArrivesWithEveryHashAndDfCountsIt() async throws {
        try await withMount { m in
            let files: [(String, [UInt8])] = [
                ("tree/empty.txt", []),
                ("tree/small.txt", Array("hello, drive\n".utf8)),
                ("tree/a/b/medium.bin", testBytes(3 << 20, seed: 7)),
                ("tree/a/big.bin", testBytes(25 << 20, seed: 8)),
                ("tree/文档/说明 with space.txt", Array("中文内容\n".utf8)),
            ]
            let source = m.directory.appendingPathComponent("src").path
            for (path, bytes) in files {
                let url = URL(fileURLWithPath: source + "/" + path)
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try Data(bytes).write(to: url)
            }
            let usedBefore = try used(m)
            try m.shell("cp", "-r", source + "/tree", m.mountpoint + "/")
            for (path, bytes) in files {
                // Empty new files are uploaded at release, just after close() (README "Semantics").
                let remote = try #require(try await eventually { try await m.remoteFile("/" + path) }, "\(path) is not on the server")
                #expect(remote["size"] as? Int == bytes.count, "\(path)")
                #expect((remote["content_hash"] as? String)?.uppercased() == Self.sha1(bytes), "\(path)")
                #expect(try m.shell("sha1sum", m.path(path)).hasPrefix(Self.sha1(bytes).lowercased()))
            }
            #expect(try m.shell("find", m.path("tree"), "-type", "f").split(separator: "\n").count == files.count)
            let written = files.reduce(0) { $0 + $1.1.count }
            let usedAfter = try used(m)
            #expect(usedAfter - usedBefore >= written - 4096 * files.count, "used \(usedBefore) → \(usedAfter)")
            #expect(m.daemonLog.contains("upload: tree/a/big.bin (25.0 MiB) — \(25 << 20) bytes sent"))
        }
    }

    /// `cp` within the mount (copy_file_range) makes the copy by hash: 8 bytes read for the
    /// proof, nothing sent, whatever the size — also over an existing file; what cannot be
    /// done that way (a part of a file, content being written here) is copied through read
    /// and write, with the right bytes.
    @Test func copiesWithinTheMountAreMadeByHash() async throws {
        try await withMount { m in
            let video = try await m.remoteBytes("/Videos/sample.mp4")
            let stats = { () async throws -> (down: Int, up: Int) in
                let all = try await m.drive.stats()
                return (all["bytes_downloaded"] as? Int ?? -1, all["bytes_uploaded"] as? Int ?? -1)
            }
            let before = try await stats()
            try m.shell("cp", m.path("Videos/sample.mp4"), m.path("Music/copy.mp4"))
            try m.shell("cp", m.path("Documents/notes.md"), m.path("README.txt"))  // over an existing file
            let after = try await stats()
            #expect(after.up == before.up)
            #expect(after.down - before.down <= 16, "downloaded \(after.down - before.down) bytes")
            #expect((try await m.remoteFile("/Music/copy.mp4")?["content_hash"] as? String)?.uppercased() == Self.sha1(video))
            let notes = try await m.remoteBytes("/Documents/notes.md")
            #expect(try await m.remoteBytes("/README.txt") == notes)
            #expect(m.daemonLog.contains("rapid copy: Videos/sample.mp4 → Music/copy.mp4 (64.0 MiB) — 0 bytes sent"))
            // The copy reads and takes writes like any file.
            #expect(try m.shell("sha1sum", m.path("Music/copy.mp4")).hasPrefix(Self.sha1(video).lowercased()))
            try m.shell("sh", "-c", "echo more >> " + m.path("Music/copy.mp4"))
            let appended = try #require(try await eventually { try await m.remoteFile("/Music/copy.mp4") })
            #expect((appended["content_hash"] as? String)?.uppercased() == Self.sha1(video + Array("more\n".utf8)))

            // Part of a file, at an offset: copied through read and write.
            let part = "import os,sys; s=os.open(sys.argv[1],os.O_RDONLY); d=os.open(sys.argv[2],os.O_WRONLY|os.O_CREAT|os.O_TRUNC); print(os.copy_file_range(s,d,300000,offset_src=5000)); os.close(d)"
            #expect(try m.shell("python3", "-c", part, m.path("Videos/sample.mp4"), m.path("Music/part.bin")).hasPrefix("300000"))
            let partHash = try #require(try await eventually { try await m.remoteFile("/Music/part.bin") })["content_hash"] as? String
            #expect(partHash?.uppercased() == Self.sha1(Array(video[5000..<305_000])))
            // A file being written here: the copy has the new bytes, not the drive's.
            let writer = "import os,sys,subprocess; fd=os.open(sys.argv[1],os.O_WRONLY|os.O_TRUNC); os.write(fd,b'fresh bytes'); subprocess.run(['cp',sys.argv[1],sys.argv[2]],check=True); os.close(fd)"
            try m.shell("python3", "-c", writer, m.path("Music/part.bin"), m.path("Music/fresh.txt"))
            let fresh = try #require(try await eventually { try await m.remoteFile("/Music/fresh.txt") })
            #expect((fresh["content_hash"] as? String)?.uppercased() == Self.sha1(Array("fresh bytes".utf8)))
        }
    }

    /// Times set with utimes (`touch -d`, `cp -p`, `rsync -a`) stay the files' times on this
    /// machine, across remounts, so a second `rsync -a` finds nothing to copy; a write makes
    /// the time "now" again.
    @Test func modificationTimesSetHereSurviveUploadsAndRemounts() async throws {
        try await withMount { m in
            func mtime(_ path: String) throws -> String { try m.shell("stat", "-c", "%Y", m.path(path)).trimmingCharacters(in: .whitespacesAndNewlines) }
            // An existing file, unchanged.
            try m.shell("touch", "-m", "-d", "2020-01-02 03:04:05 UTC", m.path("README.txt"))
            #expect(try mtime("README.txt") == "1577934245")
            // New files: cp -p sets the time before close(), rsync after it (and renames).
            let source = m.directory.appendingPathComponent("times").path
            try FileManager.default.createDirectory(atPath: source + "/sub", withIntermediateDirectories: true)
            for (index, name) in ["a.txt", "sub/b.bin"].enumerated() {
                try Data(testBytes(1000 + index * 200_000, seed: UInt64(40 + index))).write(to: URL(fileURLWithPath: source + "/" + name))
                try m.shell("touch", "-m", "-d", "2019-05-0\(index + 1) 12:00:00 UTC", source + "/" + name)
            }
            try m.shell("cp", "-p", source + "/a.txt", m.path("Documents/a.txt"))
            try m.shell("rsync", "-a", source + "/", m.path("synced") + "/")
            #expect(try mtime("Documents/a.txt") == "1556712000")
            #expect(try mtime("synced/a.txt") == "1556712000")
            #expect(try mtime("synced/sub/b.bin") == "1556798400")
            #expect(try await m.remoteFile("/synced/sub/b.bin")?["size"] as? Int == 201_000)

            await m.unmount()
            try await m.mount()
            #expect(try mtime("README.txt") == "1577934245")
            #expect(try mtime("synced/sub/b.bin") == "1556798400")
            // Nothing to do for a second rsync (it compares sizes and times).
            let changes = try m.shell("rsync", "-a", "-i", source + "/", m.path("synced") + "/")
            #expect(changes.split(separator: "\n").filter { !$0.hasPrefix(".d") }.isEmpty, "\(changes)")
            // Changed content is new: its time is the write's.
            try m.shell("sh", "-c", "echo more >> " + m.path("synced/a.txt"))
            let now = Int(Date().timeIntervalSince1970)
            #expect(abs((Int(try mtime("synced/a.txt")) ?? 0) - now) < 60)
            await m.unmount()
            try await m.mount()
            #expect(abs((Int(try mtime("synced/a.txt")) ?? 0) - now) < 60)
        }
    }

    @Test func contentTheDriveHasIsRapidUploadedWithoutSendingBytes() async throws {
        try await withMount { m in
            let video = try await m.remoteBytes("/Videos/sample.mp4")
            let local = m.directory.appendingPathComponent("copy.mp4").path
            try Data(video).write(to: URL(fileURLWithPath: local))
            let before = try await m.drive.stats()["bytes_uploaded"] as? Int ?? -1
            try m.shell("cp", local, m.path("Music/copy.mp4"))
            let after = try await m.drive.stats()["bytes_uploaded"] as? Int ?? -2
            #expect(after == before)
            let remote = try #require(try await m.remoteFile("/Music/copy.mp4"))
            #expect((remote["content_hash"] as? String)?.uppercased() == Self.sha1(video))
            #expect(m.daemonLog.contains("rapid upload: Music/copy.mp4 (64.0 MiB) — 0 bytes sent"))
            // Editing a large existing file in place: its content is fetched (16 chunks), changed, uploaded.
            let edit = "import os,sys; fd=os.open(sys.argv[1], os.O_RDWR); os.pwrite(fd, b'EDIT', 10 << 20); os.close(fd)"
            try m.shell("python3", "-c", edit, m.path("Videos/sample.mp4"))
            var edited = video
            edited.replaceSubrange((10 << 20)..<((10 << 20) + 4), with: Array("EDIT".utf8))
            #expect((try await m.remoteFile("/Videos/sample.mp4"))?["content_hash"] as? String == Self.sha1(edited))
            #expect(try m.shell("sha1sum", m.path("Videos/sample.mp4")).hasPrefix(Self.sha1(edited).lowercased()))
            // With rapid upload off, the same copy sends every byte.
            await m.unmount()
            try await m.mount(options: ["no_rapid_upload"])
            let beforePlain = try await m.drive.stats()["bytes_uploaded"] as? Int ?? -1
            try m.shell("cp", local, m.path("Music/copy2.mp4"))
            let sent = try await m.drive.stats()["bytes_uploaded"] as? Int ?? 0
            #expect(sent - beforePlain == video.count)
            // … and so does a copy within the mount: no copy by hash either.
            try m.shell("cp", m.path("Music/copy.mp4"), m.path("Music/copy3.mp4"))
            #expect(try await m.drive.stats()["bytes_uploaded"] as? Int ?? 0 == sent + video.count)
            #expect(!m.daemonLog.contains("rapid copy:"))
        }
    }

    @Test func editingAFileJustReadTakesItsContentFromTheCacheNotTheServer() async throws {
        try await withMount(options: ["cache_size=96M"]) { m in
            let video = try await m.remoteBytes("/Videos/sample.mp4")
            #expect(try m.shell("sha1sum", m.path("Videos/sample.mp4")).hasPrefix(Self.sha1(video).lowercased()))
            _ = try await m.drive.hook("stats/reset")
            let edit = "import os,sys; fd=os.open(sys.argv[1], os.O_RDWR); os.pwrite(fd, b'TAGS', 1000); os.close(fd)"
            try m.shell("python3", "-c", edit, m.path("Videos/sample.mp4"))
            // The 64 MiB staged for the edit came from the chunks the read left in memory.
            #expect(try await m.drive.stats()["bytes_downloaded"] as? Int == 0)
            var edited = video
            edited.replaceSubrange(1000..<1004, with: Array("TAGS".utf8))
            #expect((try await m.remoteFile("/Videos/sample.mp4"))?["content_hash"] as? String == Self.sha1(edited))
        }
    }

    @Test func openingForWritingFetchesNothingUntilTheFirstChange() async throws {
        try await withMount { m in
            let video = try await m.remoteBytes("/Videos/sample.mp4")
            let path = m.path("Videos/sample.mp4")
            _ = try await m.drive.hook("stats/reset")
            // touch opens the file write-only and sets its times: no download, no upload.
            try m.shell("touch", path)
            // A program that opens read-write and only reads fetches what it reads.
            let peek = "import os,sys; fd=os.open(sys.argv[1], os.O_RDWR); sys.stdout.write(os.pread(fd, 8, 5 << 20).hex()); os.close(fd)"
            #expect(try m.shell("python3", "-c", peek, path) == video[(5 << 20)..<((5 << 20) + 8)].map { String(format: "%02x", $0) }.joined())
            var stats = try await m.drive.stats()
            #expect((stats["bytes_downloaded"] as? Int ?? -1) < 1 << 20)
            #expect(try await m.drive.requestCount("/adrive/v2/file/createWithFolders") == 0)
            // The first write fetches the content, then the change is uploaded.
            let edit = "import os,sys; fd=os.open(sys.argv[1], os.O_WRONLY); os.pwrite(fd, b'XYZ', 3 << 20); os.close(fd)"
            try m.shell("python3", "-c", edit, path)
            var edited = video
            edited.replaceSubrange((3 << 20)..<((3 << 20) + 3), with: Array("XYZ".utf8))
            #expect((try await m.remoteFile("/Videos/sample.mp4"))?["content_hash"] as? String == Self.sha1(edited))
            // Appending, and ftruncate on a descriptor that has not written yet.
            try m.shell("sh", "-c", "printf tail >> '\(path)'")
            edited += Array("tail".utf8)
            #expect((try await m.remoteFile("/Videos/sample.mp4"))?["content_hash"] as? String == Self.sha1(edited))
            let shrink = "import os,sys; fd=os.open(sys.argv[1], os.O_RDWR); os.ftruncate(fd, 3000); os.close(fd)"
            try m.shell("python3", "-c", shrink, path)
            #expect((try await m.remoteFile("/Videos/sample.mp4"))?["content_hash"] as? String == Self.sha1(Array(edited[0..<3000])))
            let empty = "import os,sys; fd=os.open(sys.argv[1], os.O_WRONLY); os.ftruncate(fd, 0); os.write(fd, b'new'); os.close(fd)"
            _ = try await m.drive.hook("stats/reset")
            try m.shell("python3", "-c", empty, path)
            #expect((try await m.remoteFile("/Videos/sample.mp4"))?["content_hash"] as? String == Self.sha1(Array("new".utf8)))
            stats = try await m.drive.stats()
            #expect(stats["bytes_downloaded"] as? Int == 0)  // truncated to zero first: nothing to fetch
            #expect(try m.shell("cat", path) == "new")
        }
    }

    /// Thousands of seeded random operations on a file on the mount and on a local
    /// reference file; after each step the two must hold the same bytes.
    @Test func randomizedWritesTruncatesAndAppendsMatchALocalReference() async throws {
        try await withMount { m in
            let mounted = m.path("random.bin")
            let reference = m.directory.appendingPathComponent("reference.bin").path
            var random = SeededRandom(seed: 20_261_125)
            var pair = try FilePair(mounted, reference, flags: O_CREAT | O_RDWR)
            var appender = try FilePair(mounted, reference, flags: O_WRONLY | O_APPEND)
            let limit = 256 << 10
            var history: [String] = []
            for step in 0..<3000 {
                let size = try pair.size()
                let choice = random.next(100)
                history.append("\(step):\(choice) size \(size)")
                switch choice {
                case 0..<50:
                    let bytes = random.bytes(1 + random.next(12 << 10))
                    let offset = random.next(min(limit, size + (8 << 10)) + 1)
                    history[history.count - 1] += " pwrite \(bytes.count)@\(offset)"
                    try pair.pwrite(bytes, at: offset)
                case 50..<65:
                    let bytes = random.bytes(1 + random.next(4 << 10))
                    history[history.count - 1] += " append \(bytes.count)"
                    try appender.write(bytes)
                case 65..<75:
                    let length = random.next(min(limit, size + (16 << 10)) + 1)
                    history[history.count - 1] += " ftruncate \(length)"
                    try pair.truncate(length)
                case 75..<78:
                    // truncate(2) by path while the file is open.
                    let length = random.next(size + 1)
                    history[history.count - 1] += " truncate \(length)"
                    #expect(Glibc.truncate(mounted, off_t(length)) == 0)
                    #expect(Glibc.truncate(reference, off_t(length)) == 0)
                case 78..<80:
                    // fsync returns once the server holds exactly this content.
                    history[history.count - 1] += " fsync"
                    #expect(Glibc.fsync(pair.mounted) == 0)
                    let expected = try pair.referenceContents()
                    let remote = try await m.remoteFile("/random.bin")
                    #expect((remote?["content_hash"] as? String)?.uppercased() == Self.sha1(expected), "step \(step)")
                case 80..<83:
                    // Close everything (uploads) and reopen, sometimes with O_TRUNC.
                    history[history.count - 1] += " reopen"
                    pair.close()
                    appender.close()
                    pair = try FilePair(mounted, reference, flags: O_RDWR | (random.next(4) == 0 ? O_TRUNC : 0))
                    appender = try FilePair(mounted, reference, flags: O_WRONLY | O_APPEND)
                default:
                    let offset = random.next(size + 1)
                    let length = random.next(64 << 10)
                    #expect(try pair.pread(offset, length) == pair.preadReference(offset, length), "step \(step)")
                }
                let mountedBytes = try pair.contents()
                let referenceBytes = try pair.referenceContents()
                if mountedBytes != referenceBytes {
                    let first = zip(mountedBytes, referenceBytes).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1
                    Issue.record("step \(step): mount has \(mountedBytes.count) bytes, reference \(referenceBytes.count), first difference at \(first); \(history.suffix(12))")
                    break
                }
            }
            pair.close()
            appender.close()
            let expected = try [UInt8](Data(contentsOf: URL(fileURLWithPath: reference)))
            let remote = try #require(try await m.remoteFile("/random.bin"))
            #expect(remote["size"] as? Int == expected.count)
            #expect((remote["content_hash"] as? String)?.uppercased() == Self.sha1(expected))
            // One file on the server: every replaced version went to the trash.
            #expect(try await names(m, "root").filter { $0 == "random.bin" }.count == 1)
        }
    }

    @Test func renameMovesAndReplaces() async throws {
        try await withMount { m in
            _ = try await m.drive.hook("stats/reset")
            try m.shell("sh", "-c", "echo A > '\(m.path("a.txt"))' && echo B > '\(m.path("b.txt"))'")
            // A shell redirect uploads each file once (no empty version first).
            let creates = try await m.drive.requestCount("/adrive/v2/file/createWithFolders")
            #expect(creates == 2)
            try m.shell("mv", m.path("a.txt"), m.path("b.txt"))
            #expect(try m.shell("cat", m.path("b.txt")) == "A\n")
            #expect(try m.shell("ls", m.mountpoint).split(separator: "\n").contains("a.txt") == false)
            #expect(try await names(m, "root").filter { $0 == "b.txt" || $0 == "a.txt" } == ["b.txt"])
            #expect((try await m.remoteFile("/b.txt"))?["content_hash"] as? String == Self.sha1(Array("A\n".utf8)))
            // Across folders, with a new name; then the folder itself.
            try m.shell("mkdir", m.path("dir"))
            try m.shell("mv", m.path("b.txt"), m.path("dir/c.txt"))
            #expect(try await m.remoteFile("/b.txt") == nil)
            #expect(try await m.remoteFile("/dir/c.txt") != nil)
            try m.shell("mv", m.path("dir"), m.path("Documents/dir2"))
            #expect(try m.shell("cat", m.path("Documents/dir2/c.txt")) == "A\n")
            #expect(try await m.remoteFile("/Documents/dir2/c.txt") != nil)
            // The editor pattern: write a temporary file, rename it over the original.
            try m.shell("sh", "-c", "printf 'edited' > '\(m.path("Documents/.notes.md.swp"))'")
            try m.shell("mv", m.path("Documents/.notes.md.swp"), m.path("Documents/notes.md"))
            #expect(try m.shell("cat", m.path("Documents/notes.md")) == "edited")
            #expect((try await m.remoteFile("/Documents/notes.md"))?["content_hash"] as? String == Self.sha1(Array("edited".utf8)))
            // renameat2 flags: RENAME_NOREPLACE refuses an existing target, RENAME_EXCHANGE is unsupported.
            try m.shell("sh", "-c", "echo keep > '\(m.path("keep.txt"))' && echo other > '\(m.path("other.txt"))'")
            let renameat2 = "import ctypes,sys; libc=ctypes.CDLL(None,use_errno=True); "
                + "r=libc.renameat2(-100,sys.argv[1].encode(),-100,sys.argv[2].encode(),int(sys.argv[3])); sys.exit(ctypes.get_errno() if r else 0)"
            #expect(try MountedDrive.run(["python3", "-c", renameat2, m.path("other.txt"), m.path("keep.txt"), "1"]).0 == EEXIST)
            #expect(try MountedDrive.run(["python3", "-c", renameat2, m.path("other.txt"), m.path("keep.txt"), "2"]).0 == EINVAL)
            #expect(try m.shell("cat", m.path("keep.txt")) == "keep\n")
            #expect(try MountedDrive.run(["python3", "-c", renameat2, m.path("other.txt"), m.path("fresh.txt"), "1"]).0 == 0)
            #expect(try m.shell("cat", m.path("fresh.txt")) == "other\n")
            // A file renamed while still open for writing lands under its new name.
            let fd = open(m.path("open.txt"), O_CREAT | O_WRONLY, 0o644)
            #expect(fd >= 0)
            _ = "still open".withCString { Glibc.write(fd, $0, 10) }
            #expect(try m.shell("cat", m.path("open.txt")) == "still open")
            try m.shell("mv", m.path("open.txt"), m.path("Music/moved.txt"))
            #expect(Glibc.close(fd) == 0)
            #expect((try await m.remoteFile("/Music/moved.txt"))?["content_hash"] as? String == Self.sha1(Array("still open".utf8)))
            #expect(try await m.remoteFile("/open.txt") == nil)
        }
    }

    @Test func unlinkRmdirAndNameErrors() async throws {
        try await withMount { m in
            try m.shell("mkdir", "-p", m.path("d/e"))
            try m.shell("sh", "-c", "echo x > '\(m.path("d/f.txt"))'")
            #expect(try stderr(["rmdir", m.path("d")]).contains("Directory not empty"))
            #expect(try stderr(["rmdir", m.path("d/f.txt")]).contains("Not a directory"))
            #expect(try stderr(["rm", m.path("d/e")]).contains("Is a directory"))
            #expect(try stderr(["mkdir", m.path("d/e")]).contains("File exists"))
            #expect(try stderr(["touch", m.path(String(repeating: "n", count: 1025))]).contains("File name too long"))
            // Longer than most local filesystems allow, within the drive's 1024 bytes.
            let long = String(repeating: "名", count: 300)
            try m.shell("touch", m.path(long))
            // An empty new file is uploaded at its last release, just after close().
            #expect(try await eventually { try await m.remoteFile("/" + long) } != nil)
            // mknod makes regular files only.
            let mknod = "import os,stat,sys; os.mknod(sys.argv[1], int(sys.argv[2]) | 0o644)"
            #expect(try MountedDrive.run(["python3", "-c", mknod, m.path("d/node"), String(S_IFREG)]).0 == 0)
            #expect(try await m.remoteFile("/d/node")?["size"] as? Int == 0)
            #expect(try MountedDrive.run(["python3", "-c", mknod, m.path("d/fifo"), String(S_IFIFO)]).0 != 0)
            // No links on the drive: EPERM for both kinds.
            #expect(try stderr(["ln", "-s", "node", m.path("d/sym")]).contains("Operation not permitted"))
            #expect(try stderr(["ln", m.path("d/node"), m.path("d/hard")]).contains("Operation not permitted"))
            try m.shell("rm", m.path("d/node"))
            try m.shell("rm", m.path("d/f.txt"))
            #expect(try await m.remoteFile("/d/f.txt") == nil)
            #expect(try stderr(["cat", m.path("d/f.txt")]).contains("No such file"))
            try m.shell("rmdir", m.path("d/e"))
            try m.shell("rmdir", m.path("d"))
            #expect(try await m.remoteFile("/d") == nil)
            // A name can be used again at once, and rm -r takes a whole tree.
            try m.shell("mkdir", "-p", m.path("d/x/y"))
            try m.shell("sh", "-c", "echo 1 > '\(m.path("d/x/y/1"))'; echo 2 > '\(m.path("d/x/2"))'")
            try m.shell("rm", "-r", m.path("d"))
            #expect(try await m.remoteFile("/d") == nil)
            #expect(try m.shell("ls", m.mountpoint).split(separator: "\n").contains("d") == false)
        }
    }

    @Test func uploadsSurviveExpiringPartURLsThrottlingAndDrops() async throws {
        try await withMount(allow: ["retry"]) { m in
            let bytes = testBytes(35 << 20, seed: 11)
            let local = m.directory.appendingPathComponent("big.bin").path
            try Data(bytes).write(to: URL(fileURLWithPath: local))
            _ = try await m.drive.hook("faults", [
                "seed": 5, "upload_url_ttl": 2,
                "rules": [
                    ["path": "/oss/u/*", "kind": "drop_after", "bytes": 2_000_000, "count": 2],
                    ["path": "/oss/u/*", "status": 429, "probability": 0.3, "retry_after_ms": 50],
                    ["path": "/adrive/v2/file/createWithFolders", "status": 503, "count": 1],
                    ["path": "/v2/file/get_upload_url", "status": 429, "count": 1, "retry_after_ms": 50],
                ],
            ])
            try m.shell("cp", local, m.path("big.bin"))
            let remote = try #require(try await m.remoteFile("/big.bin"))
            #expect((remote["content_hash"] as? String)?.uppercased() == Self.sha1(bytes))
            let requests = try await m.drive.stats()["requests"] as? [String: Any] ?? [:]
            #expect(requests["/v2/file/get_upload_url"] as? Int ?? 0 >= 1)
        }
    }

    @Test func internalUploadSendsPartsToTheInternalURLs() async throws {
        try await withMount(options: ["internal_upload"]) { m in
            let bytes = testBytes(3 << 20, seed: 12)
            let local = m.directory.appendingPathComponent("internal.bin").path
            try Data(bytes).write(to: URL(fileURLWithPath: local))
            try m.shell("cp", local, m.path("internal.bin"))
            let stats = try await m.drive.stats()
            #expect(stats["bytes_uploaded_internal"] as? Int == bytes.count)
            #expect((try await m.remoteFile("/internal.bin"))?["content_hash"] as? String == Self.sha1(bytes))
        }
    }

    @Test func closeWhileTheServerIsDownFailsThenTheContentArrivesLater() async throws {
        let allow = ["upload", "unreachable", "connect", "retry", "failed"]
        try await withMount(options: ["dir_cache_ttl=0"], allow: allow) { m in
            let bytes = testBytes(300_000, seed: 13)
            let fd = open(m.path("outage.bin"), O_CREAT | O_WRONLY, 0o644)
            #expect(fd >= 0)
            #expect(bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == bytes.count)
            await m.drive.emulator.goOffline()
            let closed = Glibc.close(fd)
            let closeError = errno
            #expect(closed == -1 && closeError == EIO)
            // Still there on the mount, with its new content.
            #expect(try m.shell("sha1sum", m.path("outage.bin")).hasPrefix(Self.sha1(bytes).lowercased()))
            // Journaled with what it holds, so a mount after even a system crash can check it.
            let entries = m.journalEntries()
            #expect(entries.count == 1)
            let entry = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: entries.first ?? ""))) as? [String: Any]
            #expect(entry?["contentHash"] as? String == Self.sha1(bytes))
            #expect(entry?["size"] as? Int == bytes.count)
            #expect((entry?["unsyncedBoot"] as? String)?.count == 36)
            try await m.drive.emulator.goOnline()
            let remote = try await eventually(60) { try await m.remoteFile("/outage.bin") }
            #expect((remote?["content_hash"] as? String)?.uppercased() == Self.sha1(bytes))
            #expect(try await eventually(10) { m.journalEntries().isEmpty ? true : nil } == true)
        }
    }

    @Test func aKilledDaemonsUploadIsFinishedByTheNextMount() async throws {
        try await withMount(allow: ["upload", "retry"]) { m in
            let bytes = testBytes(30 << 20, seed: 14)
            let local = m.directory.appendingPathComponent("crash.bin").path
            try Data(bytes).write(to: URL(fileURLWithPath: local))
            // It replaces an existing file, whose content must survive the crash untouched.
            try m.shell("sh", "-c", "echo old > '\(m.path("crash.bin"))'")
            let old = try #require(try await m.remoteFile("/crash.bin"))
            // The second part never completes: the upload is in flight when the daemon dies.
            _ = try await m.drive.hook("faults", ["rules": [["path": "/oss/u/*", "kind": "stall_after", "bytes": 1_000_000, "count": 100]]])
            let copy = Process()
            copy.executableURL = URL(fileURLWithPath: "/bin/cp")
            copy.arguments = [local, m.path("crash.bin")]
            try copy.run()
            for _ in 0..<200 where m.journalEntries().isEmpty {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(m.journalEntries().count == 1)
            await m.killDaemon()
            copy.waitUntilExit()
            let survivor = try await m.remoteFile("/crash.bin")
            #expect(survivor?["file_id"] as? String == old["file_id"] as? String)
            #expect(survivor?["content_hash"] as? String == Self.sha1(Array("old\n".utf8)))
            _ = try await m.drive.http.execute(.init(method: "DELETE", url: m.drive.base + "/__emulator/faults"))
            try await m.mount()
            // The old version is there until the recovered upload replaces it; the log line comes last.
            let remote = try await eventually(60) {
                let file = try await m.remoteFile("/crash.bin")
                return (file?["content_hash"] as? String) == Self.sha1(bytes) && m.daemonLog.contains("(recovered): crash.bin") ? file : nil
            }
            #expect((remote?["content_hash"] as? String)?.uppercased() == Self.sha1(bytes))
            if remote == nil { Issue.record("the recovered upload did not finish in 60 s; daemon log of both mounts:\n\(m.daemonLog)") }
            #expect(m.journalEntries().isEmpty)
            #expect(m.daemonLog.contains("(recovered): crash.bin"))
            // The old version went to the trash: one crash.bin.
            #expect(try await names(m, "root").filter { $0 == "crash.bin" }.count == 1)
        }
    }

    @Test func fullDriveIsENOSPCAndOversizedFileIsEFBIG() async throws {
        try await withMount(allow: ["upload", "retry", "space", "exceed"]) { m in
            let local = m.directory.appendingPathComponent("two.bin").path
            try Data(testBytes(2 << 20, seed: 15)).write(to: URL(fileURLWithPath: local))
            _ = try await m.drive.hook("faults", ["file_size_limit": 1 << 20])
            #expect(try stderr(["cp", local, m.path("too-big.bin")]).contains("File too large"))
            // Retrying cannot help until the file changes: no background attempts.
            _ = try await m.drive.hook("stats/reset")
            try await Task.sleep(for: .seconds(4.5))  // the first two retries would have run by now
            #expect(try await m.drive.requestCount("/adrive/v2/file/createWithFolders") == 0)
            _ = try await m.drive.hook("faults", ["file_size_limit": 1 << 40, "quota_total": 1 << 20])
            #expect(try stderr(["cp", local, m.path("no-room.bin")]).contains("No space left on device"))
            // Both stay on the mount with their content (and are retried in the background).
            #expect(try m.shell("stat", "-c", "%s", m.path("no-room.bin")) == "\(2 << 20)\n")
            _ = try await m.drive.hook("faults", ["quota_total": 1 << 40])
            let arrived = try await eventually(30) { try await m.remoteFile("/no-room.bin") }
            #expect(arrived?["size"] as? Int == 2 << 20)
            // Unmount does not wait (upload_wait defaults to 600 s) for content the drive
            // refused for good; it names it, and the next mount tries again.
            await m.unmount()
            #expect(m.daemonLog.contains("unmounting with 1 upload(s) still pending (kept for the next mount): too-big.bin"))
        }
    }

    @Test func unmountWaitsForUploadsThenNamesThoseStillPending() async throws {
        try await withMount(options: ["upload_wait=1"], allow: ["upload", "retry", "pending", "failed"]) { m in
            _ = try await m.drive.hook("faults", ["rules": [["path": "/adrive/v2/file/createWithFolders", "status": 503, "count": 100_000]]])
            let fd = open(m.path("pending.txt"), O_CREAT | O_WRONLY, 0o644)
            #expect(fd >= 0)
            _ = "pending".withCString { Glibc.write(fd, $0, 7) }
            #expect(Glibc.close(fd) == -1)
            await m.unmount()
            #expect(m.daemonLog.contains("unmounting with 1 upload(s) still pending (kept for the next mount): pending.txt"))
            _ = try await m.drive.http.execute(.init(method: "DELETE", url: m.drive.base + "/__emulator/faults"))
            try await m.mount()
            let arrived = try await eventually(30) { try await m.remoteFile("/pending.txt") }
            #expect((arrived?["content_hash"] as? String) == Self.sha1(Array("pending".utf8)))
        }
    }

    @Test func readOnlyMountRefusesEveryWrite() async throws {
        try await withMount(options: ["ro"]) { m in try await checkReadOnly(m) }
    }

    func checkReadOnly(_ m: MountedDrive) async throws {
        let attempts: [[String]] = [
            ["touch", m.path("new.txt")], ["sh", "-c", "echo x >> '\(m.path("README.txt"))'"], ["mkdir", m.path("dir")],
            ["rm", m.path("README.txt")], ["mv", m.path("README.txt"), m.path("R.txt")], ["truncate", "-s", "0", m.path("README.txt")],
            ["rmdir", m.path("Music")], ["ln", "-s", "README.txt", m.path("link")], ["ln", m.path("README.txt"), m.path("hard")],
        ]
        for command in attempts {
            let error = try stderr(command)
            #expect(error.contains("Read-only file system"), "\(command)")
        }
        let readme = try await m.remoteFile("/README.txt")
        #expect(readme?["size"] as? Int == 243)
        let created = try await m.remoteFile("/new.txt")
        #expect(created == nil)
    }

    // MARK: - Helpers


    func names(_ m: MountedDrive, _ folder: String) async throws -> [String] {
        try await m.drive.listAll(folder).0.compactMap { $0["name"] as? String }
    }

    /// Bytes in use according to statfs on the mount.
    func used(_ m: MountedDrive) throws -> Int {
        let fields = try m.shell("stat", "-f", "-c", "%b %f %S", m.mountpoint).split(separator: " ")
            .compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        return (fields[0] - fields[1]) * fields[2]
    }

    /// A command's standard error; it must fail.
    func stderr(_ arguments: [String]) throws -> String {
        let (status, _, error) = try MountedDrive.run(arguments)
        #expect(status != 0, "\(arguments) succeeded")
        return error
    }
}

/// The same operations on a file on the mount and on a local reference.
struct FilePair {
    let mounted: Int32
    let reference: Int32

    init(_ mountedPath: String, _ referencePath: String, flags: Int32) throws {
        mounted = open(mountedPath, flags | O_CLOEXEC, 0o644)
        reference = open(referencePath, flags | O_CLOEXEC, 0o644)
        guard mounted >= 0, reference >= 0 else { throw TestDriveError("open failed: \(String(cString: strerror(errno)))") }
    }

    func size() throws -> Int {
        var info = stat()
        guard fstat(reference, &info) == 0 else { throw TestDriveError("fstat failed") }
        return Int(info.st_size)
    }

    func pwrite(_ bytes: [UInt8], at offset: Int) throws {
        for fd in [mounted, reference] {
            let count = bytes.withUnsafeBytes { Glibc.pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
            guard count == bytes.count else { throw TestDriveError("pwrite returned \(count): \(String(cString: strerror(errno)))") }
        }
    }

    func write(_ bytes: [UInt8]) throws {
        for fd in [mounted, reference] {
            let count = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            guard count == bytes.count else { throw TestDriveError("write returned \(count): \(String(cString: strerror(errno)))") }
        }
    }

    func truncate(_ length: Int) throws {
        for fd in [mounted, reference] where ftruncate(fd, off_t(length)) != 0 {
            throw TestDriveError("ftruncate failed: \(String(cString: strerror(errno)))")
        }
    }

    func pread(_ offset: Int, _ length: Int) throws -> [UInt8] { try Self.read(mounted, offset, length) }
    func preadReference(_ offset: Int, _ length: Int) throws -> [UInt8] { try Self.read(reference, offset, length) }
    func contents() throws -> [UInt8] { try Self.read(mounted, 0, Int.max / 2) }
    func referenceContents() throws -> [UInt8] { try Self.read(reference, 0, Int.max / 2) }

    static func read(_ fd: Int32, _ offset: Int, _ length: Int) throws -> [UInt8] {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while result.count < length {
            let want = min(buffer.count, length - result.count)
            let count = buffer.withUnsafeMutableBytes { Glibc.pread(fd, $0.baseAddress, want, off_t(offset + result.count)) }
            guard count >= 0 else { throw TestDriveError("pread failed: \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            result += buffer[0..<count]
        }
        return result
    }

    func close() {
        _ = Glibc.close(mounted)
        _ = Glibc.close(reference)
    }
}

/// SplitMix64: reproducible runs from a seed.
struct SeededRandom {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func nextWord() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// 0..<bound (0 when bound is 0).
    mutating func next(_ bound: Int) -> Int { bound <= 0 ? 0 : Int(nextWord() % UInt64(bound)) }

    mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8(truncatingIfNeeded: nextWord()) } }
}
