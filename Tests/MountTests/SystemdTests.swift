import DriveEmulator
import EmulatorTestSupport
import Foundation
import Glibc
import Testing

/// The systemd side: `READY=1` only once the mount is live, `STATUS=`, `STOPPING=1`
/// (through libsystemd's sd_notify to a socket of the test's), and a unit file that
/// `systemd-analyze verify` accepts.
@Suite(.serialized) struct SystemdTests {
    /// A datagram socket standing in for systemd's notify socket.
    final class NotifySocket: @unchecked Sendable {
        let path: String
        let fd: Int32

        init() throws {
            path = NSTemporaryDirectory() + "notify-\(UUID().uuidString.prefix(8))"
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                let bytes = Array(path.utf8.prefix(raw.count - 1))
                raw.copyBytes(from: bytes + [0])
            }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard fd >= 0, bound == 0 else { throw TestDriveError("cannot bind \(path)") }
            var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        /// The next message, or nil after 200 ms.
        func receive() -> String? {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = recv(fd, &buffer, buffer.count, 0)
            return count > 0 ? String(decoding: buffer.prefix(count), as: UTF8.self) : nil
        }

        deinit {
            close(fd)
            unlink(path)
        }
    }

    @Test(.enabled(if: FUSEAvailability.canMount, "\(FUSEAvailability.problem ?? "")"))
    func readyOnlyOnceTheMountIsLiveThenStatusAndStopping() async throws {
        let m = try await MountedDrive()
        let notify = try NotifySocket()
        do {
            let mountTask = Task { try await m.mount(environment: ["NOTIFY_SOCKET": notify.path]) }
            var ready: String?
            var mountedWhenReady = false
            for _ in 0..<300 {
                if let message = notify.receive(), message.contains("READY=1") {
                    ready = message
                    mountedWhenReady = m.isMounted
                    break
                }
            }
            try await mountTask.value
            #expect(ready?.contains("STATUS=mounted") == true)
            #expect(mountedWhenReady, "READY=1 came before the mount was in /proc/self/mountinfo")
            // A pending upload shows in STATUS=.
            _ = try await m.drive.hook("faults", ["rules": [["path": "/adrive/v2/file/createWithFolders", "status": 503, "probability": 1]]])
            _ = try? m.shell("sh", "-c", "echo x > '\(m.path("pending.txt"))'")
            var pendingStatus = false
            for _ in 0..<60 where !pendingStatus { pendingStatus = notify.receive()?.contains("STATUS=mounted; 1 upload(s) pending") == true }
            #expect(pendingStatus)
            m.allowedLogPatterns = ["upload", "retry", "failed", "pending"]
            let pid = try #require(m.daemonPID)
            kill(pid, SIGTERM)
            var stopping: String?
            for _ in 0..<50 where stopping == nil {
                if let message = notify.receive(), message.contains("STOPPING=1") { stopping = message }
            }
            #expect(stopping?.contains("STATUS=unmounting; waiting for 1 upload(s)") == true)
            kill(pid, SIGTERM)
            #expect(await m.waitForDaemonExit(10))
        } catch {
            Issue.record(error)
        }
        await m.finish()
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/usr/bin/systemd-analyze"), "systemd-analyze is not installed"))
    func theUnitFileVerifies() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
        let template = try String(contentsOf: root.appendingPathComponent("systemd/adrivefs@.service.in"), encoding: .utf8)
        let bin = URL(fileURLWithPath: MountedDrive.binary).deletingLastPathComponent().path
        let unit = template.replacingOccurrences(of: "@BINDIR@", with: bin).replacingOccurrences(of: "@FUSERMOUNT@", with: "/usr/bin/fusermount3")
        #expect(unit.range(of: "@[A-Z]+@", options: .regularExpression) == nil, "every placeholder is filled by make install")
        let directory = NSTemporaryDirectory() + "unit-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/adrivefs@mnt-adrive.service"
        try Data(unit.utf8).write(to: URL(fileURLWithPath: path))
        let (status, out, error) = try MountedDrive.run(["systemd-analyze", "verify", "--man=no", path])
        #expect(status == 0)
        // It prints (and still exits 0) for values it ignores: nothing may be said of the unit.
        #expect(!(out + error).contains("adrivefs@"), "\(out)\(error)")
    }
}
