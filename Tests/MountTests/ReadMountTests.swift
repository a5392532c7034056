import Crypto
import DriveEmulator
import EmulatorTestSupport
import Foundation
import Glibc
import Testing

/// The built binary, really mounted, read with ordinary tools.
@Suite(.serialized, .enabled(if: FUSEAvailability.canMount, "\(FUSEAvailability.problem ?? "")"))
struct ReadMountTests {
    static func sha1(_ bytes: [UInt8]) -> String { Insecure.SHA1.hash(data: bytes).map { String(format: "%02x", $0) }.joined() }

    @Test func ordinaryToolsSeeTheDrive() async throws {
        try await withMount { m in
            let listing = try m.shell("ls", "-1", m.mountpoint)
            #expect(listing.split(separator: "\n").map(String.init) == ["Documents", "Music", "Pictures", "Projects", "README.txt", "Videos"])
            let found = try m.shell("find", m.mountpoint, "-type", "f").split(separator: "\n").count
            #expect(found == 11)
            #expect(try m.shell("cat", m.path("README.txt")) == String(decoding: try await m.remoteBytes("/README.txt"), as: UTF8.self))
            #expect(try m.shell("stat", "-c", "%s %F", m.path("Videos/sample.mp4")) == "67108864 regular file\n")
            #expect(try m.shell("stat", "-c", "%F", m.path("Projects/adrivefs/docs/a/b/c")) == "directory\n")
            let video = try await m.remoteBytes("/Videos/sample.mp4")
            let sum = try m.shell("sha1sum", m.path("Videos/sample.mp4"))
            #expect(sum.hasPrefix(Self.sha1(video)))
            // dd skip= reads from the middle.
            let dd = try m.shell("sh", "-c", "dd if='\(m.path("Videos/sample.mp4"))' bs=4096 skip=5000 count=3 status=none | sha1sum")
            #expect(dd.hasPrefix(Self.sha1(Array(video[(5000 * 4096)..<(5003 * 4096)]))))
            // Duplicate names are both visible, deterministically.
            let documents = try m.shell("ls", "-1", m.path("Documents")).split(separator: "\n").map(String.init)
            #expect(documents.contains("report.txt"))
            #expect(documents.filter { $0.hasPrefix("report (") && $0.hasSuffix(").txt") }.count == 1)
            #expect(try m.shell("cat", m.path("Documents/中文文件.txt")) == "你好，阿里云盘。\n")
            #expect(try m.shell("cat", m.path("Documents/empty.txt")).isEmpty)
            // Missing names are ENOENT.
            #expect(try MountedDrive.run(["cat", m.path("nope.txt")]).0 != 0)
            // /proc/mounts shows the source and type.
            let mounts = try String(contentsOfFile: "/proc/mounts", encoding: .utf8)
            #expect(mounts.contains("adrive \(m.mountpoint) fuse.adrivefs"))
            // statfs reports the quota.
            let df = try m.shell("stat", "-f", "-c", "%b %S", m.mountpoint).split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            #expect(df.count == 2 && df[0] * df[1] == 1 << 40)
            // Extended attributes expose the file id and the content hash.
            let hash = try m.shell("getfattr", "--only-values", "-n", "user.adrive.sha1", m.path("Videos/sample.mp4"))
            #expect(hash == Self.sha1(video).uppercased())
            let names = try m.shell("getfattr", "-d", "-m", "user.", m.path("Videos/sample.mp4"))
            #expect(names.contains("user.adrive.file_id="))
        }
    }

    @Test func largeFolderListsWithFiftyCallsThenFromCache() async throws {
        try await withMount(seed: .none, setup: { m in
            _ = try await m.drive.hook("populate", ["folder": "many", "count": 10_000])
        }) { m in
            _ = try await m.drive.hook("stats/reset")
            let cold = try m.shell("ls", "-l", m.path("many")).split(separator: "\n").count
            #expect(cold == 10_001)  // "total" line + 10,000 entries
            #expect(try await m.drive.requestCount("/adrive/v3/file/list") == 50)
            _ = try await m.drive.hook("stats/reset")
            let warm = try m.shell("ls", "-l", m.path("many")).split(separator: "\n").count
            #expect(warm == 10_001)
            #expect(try await m.drive.requestCount("/adrive/v3/file/list") == 0)
            #expect(try m.shell("cat", m.path("many/file-09999.txt")) == "file 9999\n")
        }
    }

    @Test func rotatedRefreshTokenIsPersistedAndReused() async throws {
        let mounted = try await MountedDrive(seed: .none)
        do {
            let before = SecretFile(path: mounted.tokenFile)
            try await mounted.mount()
            let after = SecretFile(path: mounted.tokenFile)
            #expect(after != before)
            #expect(after.count == 32)
            let mode = try FileManager.default.attributesOfItem(atPath: mounted.tokenFile)[.posixPermissions] as? Int
            #expect(mode == 0o600)
            await mounted.unmount()
            // The old token is dead; the mount restarts from the one on disk.
            let (status, _) = try await mounted.drive.post("/v2/account/token", ["refresh_token": before], auth: false)
            #expect(status == 400)
            try await mounted.mount()
            #expect(try mounted.shell("ls", mounted.mountpoint).isEmpty)
            #expect(SecretFile(path: mounted.tokenFile) != after)
        } catch {
            await mounted.finish()
            throw error
        }
        await mounted.finish()
    }

    @Test func readsSurviveThrottlingExpiringURLsAndDroppedConnections() async throws {
        try await withMount(options: ["cache_size=8M"]) { m in
            let video = try await m.remoteBytes("/Videos/sample.mp4")
            _ = try await m.drive.hook("faults", [
                "seed": 3, "download_url_ttl": 2,
                "rules": [
                    ["path": "/v2/file/get_download_url", "status": 429, "probability": 0.3, "retry_after_ms": 50],
                    ["path": "/adrive/v3/file/list", "status": 429, "probability": 0.3, "retry_after_ms": 50],
                    ["path": "/oss/d/*", "kind": "drop_after", "bytes": 300_000, "count": 3],
                ],
            ])
            let sum = try m.shell("sha1sum", m.path("Videos/sample.mp4"))
            #expect(sum.hasPrefix(Self.sha1(video)))
            let stats = try await m.drive.stats()
            #expect(((stats["requests"] as? [String: Any])?["/v2/file/get_download_url"] as? Int ?? 0) >= 2)
        }
    }

    @Test func revokedAccessTokenIsRefreshedTransparently() async throws {
        try await withMount(allow: ["access token rejected"]) { m in
            #expect(try m.shell("cat", m.path("Documents/notes.md")).hasPrefix("# Notes"))
            // Strict signatures from here on: the client's real ECDSA signatures must verify.
            _ = try await m.drive.hook("faults", ["revoke_access_tokens": true, "expire_device_sessions": true, "strict_signatures": true])
            #expect(try m.shell("ls", m.path("Pictures")) == "cat.png\nsunset.jpg\n")
            #expect(try m.shell("cat", m.path("Projects/adrivefs/src/main.swift")).contains("hello"))
        }
    }

    @Test func unreachableServerFailsReadsInBoundedTimeAndRecovers() async throws {
        try await withMount(options: ["dir_cache_ttl=0"], allow: ["read of", "unreachable", "failed"]) { m in
            #expect(try m.shell("cat", m.path("README.txt")).hasPrefix("Welcome"))
            _ = try await m.drive.hook("faults", ["rules": [
                ["path": "/oss/d/*", "status": 503, "count": 1000],
                ["path": "/v2/file/get_download_url", "status": 503, "count": 1000],
            ]])
            let started = ContinuousClock.now
            let (status, _, error) = try MountedDrive.run(["dd", "if=\(m.path("Pictures/sunset.jpg"))", "of=/dev/null", "bs=64k"])
            #expect(status != 0)
            #expect(error.contains("Input/output error"))
            #expect(ContinuousClock.now - started < .seconds(30))
            _ = try await m.drive.http.execute(.init(method: "DELETE", url: m.drive.base + "/__emulator/faults"))
            #expect(try m.shell("sha1sum", m.path("Pictures/sunset.jpg")).hasPrefix(Self.sha1(try await m.remoteBytes("/Pictures/sunset.jpg"))))
        }
    }
}

extension ReadMountTests {
    /// The server really goes away (connections refused and dropped), then comes back on
    /// the same port.
    @Test func serverOutageFailsReadsInBoundedTimeKeepsListingsAndRecovers() async throws {
        try await withMount(options: ["dir_cache_ttl=0"], allow: ["read of", "unreachable", "failed", "connect"]) { m in
            let expected = Self.sha1(try await m.remoteBytes("/Videos/sample.mp4"))
            #expect(try m.shell("ls", m.path("Videos")) == "sample.mp4\n")
            await m.drive.emulator.goOffline()
            let started = ContinuousClock.now
            let (status, _, error) = try MountedDrive.run(["dd", "if=\(m.path("Videos/sample.mp4"))", "of=/dev/null", "bs=1M"])
            #expect(status != 0)
            #expect(error.contains("Input/output error"))
            let elapsed = ContinuousClock.now - started
            #expect(elapsed < .seconds(30), "\(elapsed)")
            // Folders already listed stay listable while the service is away.
            let listed = ContinuousClock.now
            #expect(try m.shell("ls", m.path("Videos")) == "sample.mp4\n")
            let listing = ContinuousClock.now - listed
            // From the cache: far below the retries a call to the service would wait out.
            #expect(listing < .seconds(10), "\(listing)")
            try await m.drive.emulator.goOnline()
            // Calls fail fast for 5 s after an outage is noticed; then reads work again.
            let back = ContinuousClock.now
            var sum = ""
            while sum.isEmpty, ContinuousClock.now - back < .seconds(15) {
                let (status, output, _) = try MountedDrive.run(["sha1sum", m.path("Videos/sample.mp4")])
                if status == 0 { sum = output } else { try await Task.sleep(for: .milliseconds(500)) }
            }
            #expect(sum.hasPrefix(expected))
        }
    }
}

extension ReadMountTests {
    /// A request waiting on the network returns EINTR as soon as the caller gets a signal
    /// (the kernel's FUSE_INTERRUPT cancels it): a listing behind 503s, and a close()
    /// waiting for a stalled upload (whose content still arrives afterwards). Reads served
    /// through the page cache are not interruptible by the kernel's design (the reader
    /// waits on the page, not on the request).
    @Test func aSignalInterruptsRequestsWaitingOnTheNetwork() async throws {
        try await withMount(options: ["dir_cache_ttl=0"], allow: ["upload", "retry", "failed", "stalled"]) { m in
            _ = try await m.drive.hook("faults", ["rules": [
                ["path": "/adrive/v3/file/list", "status": 503, "count": 1000],
                ["path": "/oss/u/*", "kind": "stall_after", "bytes": 0, "count": 1000],
            ]])
            let script = """
                import os, signal, sys, time
                def fire(*_): raise TimeoutError()
                signal.signal(signal.SIGALRM, fire)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGALRM])  # the test runner may block it
                def attempt(name, action):
                    signal.alarm(1)
                    start = time.time()
                    try:
                        action()
                        print(name, "done")
                    except TimeoutError:
                        print(name, "interrupted %.1f" % (time.time() - start))
                    signal.alarm(0)
                attempt("listdir", lambda: os.listdir(sys.argv[1]))
                fd = os.open(sys.argv[2], os.O_CREAT | os.O_WRONLY, 0o644)
                os.write(fd, b"x" * 300000)
                attempt("close", lambda: os.close(fd))
                """
            let (status, output, error) = try MountedDrive.run(["python3", "-c", script, m.path("Music"), m.path("stuck.bin")])
            #expect(status == 0, "\(error)")
            let lines = output.split(separator: "\n").map(String.init)
            #expect(lines.count == 2, "\(output)")
            for line in lines {
                let seconds = Double(line.split(separator: " ").last ?? "") ?? 99
                #expect(line.contains("interrupted") && seconds < 3, "\(line)")
            }
            _ = try await m.drive.http.execute(.init(method: "DELETE", url: m.drive.base + "/__emulator/faults"))
            let arrived = try await eventually(60) { try await m.remoteFile("/stuck.bin") }
            #expect(arrived != nil)
        }
    }
}

/// The command's failures: one clear line, non-zero exit, nothing left mounted.
@Suite(.serialized, .enabled(if: FUSEAvailability.canMount, "\(FUSEAvailability.problem ?? "")"))
struct MountFailureTests {
    func attempt(_ m: MountedDrive, arguments: [String], environment: [String: String] = [:]) throws -> (Int32, String) {
        var env = ProcessInfo.processInfo.environment
        env["XDG_CONFIG_HOME"] = m.stateDirectory
        for (key, value) in environment { env[key] = value }
        let (status, _, error) = try MountedDrive.run([MountedDrive.binary] + arguments, environment: env)
        return (status, error)
    }

    @Test func theDiskCacheServesContentAgainAfterARemount() async throws {
        let options = ["disk_cache_size=256M"]
        try await withMount(options: options) { m in
            let cacheDirectory = m.directory.appendingPathComponent("cache/adrivefs").path  // $XDG_CACHE_HOME/adrivefs
            let video = try await m.remoteBytes("/Videos/sample.mp4")
            #expect(try m.shell("sha1sum", m.path("Videos/sample.mp4")).hasPrefix(ReadMountTests.sha1(video)))
            let chunks = try FileManager.default.contentsOfDirectory(atPath: cacheDirectory + "/chunks")
            #expect(chunks.count == 16)  // 64 MiB in 4 MiB chunks, named by the content's SHA-1
            #expect(chunks.allSatisfy { $0.hasPrefix(ReadMountTests.sha1(video) + "-") })

            // A new mount (cold page cache) reads it all — in order and at random — from disk.
            await m.unmount()
            try await m.mount(options: options)
            _ = try await m.drive.hook("stats/reset")
            #expect(try m.shell("sha1sum", m.path("Videos/sample.mp4")).hasPrefix(ReadMountTests.sha1(video)))
            let dd = try m.shell("sh", "-c", "dd if='\(m.path("Videos/sample.mp4"))' bs=4096 skip=7001 count=2 status=none | sha1sum")
            #expect(dd.hasPrefix(ReadMountTests.sha1(Array(video[(7001 * 4096)..<(7003 * 4096)]))))
            #expect(try await m.drive.stats()["bytes_downloaded"] as? Int == 0)

            // A cache folder that cannot be created fails the mount with one clear line.
            await m.unmount()
            let (status, message) = try attempt(m, arguments: ["adrive", m.mountpoint, "-o", "endpoint=\(m.endpoint),token_file=\(m.tokenFile),disk_cache_size=1G,cache_dir=/proc/version"])
            #expect(status != 0)
            #expect(message.contains("cannot use the disk cache /proc/version/chunks"))
            #expect(!m.isMounted)
        }
    }

    @Test func badInputFailsFastWithOneClearLine() async throws {
        let m = try await MountedDrive(seed: .none)
        defer { Task { await m.finish() } }
        let base = "endpoint=\(m.endpoint),token_file=\(m.tokenFile)"

        let (badToken, badTokenMessage) = try attempt(m, arguments: ["adrive", m.mountpoint, "-o", base], environment: ["ADRIVEFS_REFRESH_TOKEN": "0123456789abcdef0123456789abcdef"])
        #expect(badToken != 0)
        #expect(badTokenMessage.contains("authentication failed"))
        #expect(!badTokenMessage.contains("0123456789abcdef0123456789abcdef"))

        let (missing, missingMessage) = try attempt(m, arguments: ["adrive", m.mountpoint + "/nope", "-o", base])
        #expect(missing != 0)
        #expect(missingMessage.contains("does not exist"))

        let (unknown, unknownMessage) = try attempt(m, arguments: ["adrive", m.mountpoint, "-o", base + ",frobnicate=1"])
        #expect(unknown == 2)
        #expect(unknownMessage.contains("unknown mount option 'frobnicate'"))

        let started = ContinuousClock.now
        let (unreachable, unreachableMessage) = try attempt(m, arguments: ["adrive", m.mountpoint, "-o", "endpoint=http://127.0.0.1:1,token_file=\(m.tokenFile)"])
        #expect(unreachable != 0)
        #expect(unreachableMessage.contains("cannot reach"))
        #expect(ContinuousClock.now - started < .seconds(20))

        // Daemon mode: the parent exits 0 only once the mount is live.
        let (ok, _) = try attempt(m, arguments: ["adrive", m.mountpoint, "-o", base + ",_netdev,nofail,x-systemd.automount,comment=x"])
        #expect(ok == 0)
        #expect(m.isMounted)
        let (busy, busyMessage) = try attempt(m, arguments: ["adrive", m.mountpoint, "-o", base])
        #expect(busy != 0)
        #expect(busyMessage.contains("already in use"))
        #expect(try MountedDrive.run(["fusermount3", "-u", m.mountpoint]).0 == 0)
        #expect(!m.isMounted)
    }
}
