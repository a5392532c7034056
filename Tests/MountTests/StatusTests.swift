import DriveEmulator
import EmulatorTestSupport
import Foundation
import Glibc
import Testing

/// `adrivefs status` and `adrivefs refresh` against real mounts: an upload in progress with
/// growing bytes sent, a failing one pending with its error, a socket only its user can
/// use, and listings dropped on request (and on SIGHUP).
@Suite(.serialized, .enabled(if: FUSEAvailability.canMount, "\(FUSEAvailability.problem ?? "")"))
struct StatusTests {
    static func status(_ m: MountedDrive) throws -> [[String: Any]] {
        let (code, out, _) = try MountedDrive.run([MountedDrive.binary, "status", m.mountpoint, "--json"], environment: m.environment)
        guard code == 0 else { return [] }
        return (try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]]) ?? []
    }

    /// The same answer straight from the control socket (no process started: fast enough
    /// to watch an upload on a loaded machine).
    static func quickStatus(_ m: MountedDrive) -> [String: Any]? {
        // This mount's own socket: /run/adrivefs/<FNV-1a 64 of the mount point>.sock.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in m.mountpoint.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        for name in [String(hash, radix: 16) + ".sock"] {
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let path = "/run/adrivefs/" + name
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard connected == 0, write(fd, "status\n", 7) == 7 else { continue }
            var answer: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = read(fd, &buffer, buffer.count)
                if count <= 0 { break }
                answer += buffer.prefix(count)
            }
            if let object = (try? JSONSerialization.jsonObject(with: Data(answer))) as? [String: Any], object["mountpoint"] as? String == m.mountpoint {
                return object
            }
        }
        return nil
    }

    @Test func anUploadShowsItsProgressAndAFailingOneWaitsWithItsError() async throws {
        try await withMount(allow: ["upload", "retry", "failed", "pending", "InternalError"]) { m in
            let local = m.directory.appendingPathComponent("big.bin").path
            // New content each run (head: a Swift loop in a debug build is slow), sent over an
            // emulated 8 MB/s uplink: 5 s or more however fast or loaded the machine is.
            try m.shell("sh", "-c", "head -c \(40 << 20) /dev/urandom > '\(local)'")
            _ = try await m.drive.hook("faults", ["upload_rate": 8_000_000])
            let copy = Process()
            copy.executableURL = URL(fileURLWithPath: "/bin/cp")
            copy.arguments = [local, m.path("big.bin")]
            try copy.run()
            // Watched from a thread of its own: the test's cooperative pool (two threads here)
            // may be held for seconds by other suites' blocking calls on a loaded run.
            let seen = SentLog()
            let watcher = Thread {
                while copy.isRunning {
                    if let upload = (Self.quickStatus(m)?["uploads_in_progress"] as? [[String: Any]])?.first,
                        upload["path"] as? String == "big.bin", let bytes = upload["sent"] as? Int
                    {
                        seen.add(bytes, size: upload["size"] as? Int ?? -1)
                    }
                    usleep(10_000)
                }
                seen.finish()
            }
            watcher.start()
            copy.waitUntilExit()
            seen.waitUntilFinished()
            let sent = seen.values
            #expect(seen.sizes.allSatisfy { $0 == 40 << 20 })
            #expect(copy.terminationStatus == 0)
            #expect(
                sent.count >= 2,
                "bytes sent seen growing: \(sent); sockets: \((try? FileManager.default.contentsOfDirectory(atPath: "/run/adrivefs")) ?? []); answer now: \(Self.quickStatus(m).map { "\($0)" } ?? "none"); log: \(m.daemonLog.suffix(1500))")
            #expect(sent == sent.sorted())
            #expect((try Self.status(m).first?["uploads_in_progress"] as? [Any])?.isEmpty == true)

            // A failing upload: pending, with the error.
            _ = try await m.drive.hook("faults", ["upload_rate": 0, "clear": true, "rules": [["path": "/adrive/v2/file/createWithFolders", "status": 503, "probability": 1]]])
            _ = try? m.shell("sh", "-c", "echo x > '\(m.path("stuck.txt"))'")
            let pending = try #require((try Self.status(m).first?["uploads_pending"] as? [[String: Any]])?.first)
            #expect(pending["path"] as? String == "stuck.txt")
            #expect((pending["error"] as? String)?.isEmpty == false)
            let (_, text, _) = try MountedDrive.run([MountedDrive.binary, "status"], environment: m.environment)
            #expect(text.contains("adrive on \(m.mountpoint)") && text.contains("waiting to retry stuck.txt"))
            #expect(!text.contains(SecretFile(path: m.tokenFile)))
            _ = try await m.drive.hook("faults", ["clear": true])
        }
    }

    @Test func aWrittenBackFileShowsAsQueuedAndSharesShowWithTheirFolders() async throws {
        try await withMount(allow: ShareSaveMountTests.allow) { m in
            await m.unmount()
            let share = try ShareSaveMountTests.openShare(m)
            try await m.mount(options: ["write_back=60", "share=\(share.id)"])
            try m.shell("sh", "-c", "echo later > '\(m.path("later.txt"))'")
            let answer = try #require(try Self.status(m).first)
            let queued = try #require((answer["uploads_queued"] as? [[String: Any]])?.first)
            #expect(queued["path"] as? String == "later.txt")
            #expect((50...60).contains(queued["due_in_seconds"] as? Int ?? -1), "\(queued)")
            #expect((answer["uploads_pending"] as? [Any])?.isEmpty == true, "not a failed upload")
            let shares = try #require(answer["shares"] as? [[String: Any]])
            #expect(shares.count == 1)
            #expect(shares.first?["share_id"] as? String == share.id && shares.first?["available"] as? Bool == true)
            #expect(shares.first?["folder"] as? String == ".shares/\(share.title)")
            let (_, text, _) = try MountedDrive.run([MountedDrive.binary, "status", m.mountpoint], environment: m.environment)
            #expect(text.contains("written back later.txt: uploads in "), "\(text)")
            #expect(text.contains("share .shares/\(share.title) (share:\(share.id))"), "\(text)")
            #expect(!text.contains("no uploads pending"))
        }
    }

    @Test func theControlSocketIsPrivateAndRefreshDropsListings() async throws {
        try await withMount(options: ["dir_cache_ttl=300"]) { m in
            // Only its user: the folder 0700, the socket 0600, and another user is refused.
            let sockets = try FileManager.default.contentsOfDirectory(atPath: "/run/adrivefs").filter { $0.hasSuffix(".sock") }
            #expect(!sockets.isEmpty)
            #expect(try FileManager.default.attributesOfItem(atPath: "/run/adrivefs")[.posixPermissions] as? Int == 0o700)
            for socket in sockets {
                #expect(try FileManager.default.attributesOfItem(atPath: "/run/adrivefs/" + socket)[.posixPermissions] as? Int == 0o600)
            }
            let (refused, _, why) = try MountedDrive.run(
                ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "socat", "-", "UNIX-CONNECT:/run/adrivefs/" + (sockets.first ?? "")])
            #expect(refused != 0 && why.contains("Permission denied"), "another user could connect: \(why)")

            #expect(try m.shell("ls", m.path("Music")) == "")
            _ = try await m.drive.upload("new.txt", Array("made elsewhere\n".utf8), in: try #require(try await m.remoteFile("/Music")?["file_id"] as? String))
            #expect(try m.shell("ls", m.path("Music")) == "", "cached for dir_cache_ttl")
            let (code, _, _) = try MountedDrive.run([MountedDrive.binary, "refresh", m.path("Music")], environment: m.environment)
            #expect(code == 0)
            #expect(try m.shell("ls", m.path("Music")) == "new.txt\n")
            // SIGHUP does the same.
            _ = try await m.drive.upload("second.txt", Array("2\n".utf8), in: try #require(try await m.remoteFile("/Music")?["file_id"] as? String))
            kill(try #require(m.daemonPID), SIGHUP)
            let shown = try await eventually(5) { try m.shell("ls", m.path("Music")).contains("second.txt") ? true : nil }
            #expect(shown == true)
            #expect(m.isMounted, "SIGHUP does not unmount")
        }
    }
}

/// Bytes-sent values seen by the watcher thread.
final class SentLog: @unchecked Sendable {
    private let lock = NSCondition()
    private var seen: [Int] = []
    private var sizesSeen: [Int] = []
    private var done = false

    func add(_ bytes: Int, size: Int) {
        lock.lock()
        if seen.last != bytes { seen.append(bytes) }
        sizesSeen.append(size)
        lock.unlock()
    }

    func finish() {
        lock.lock()
        done = true
        lock.broadcast()
        lock.unlock()
    }

    func waitUntilFinished() {
        lock.lock()
        while !done { lock.wait() }
        lock.unlock()
    }

    var values: [Int] { lock.lock(); defer { lock.unlock() }; return seen }
    var sizes: [Int] { lock.lock(); defer { lock.unlock() }; return sizesSeen }
}
