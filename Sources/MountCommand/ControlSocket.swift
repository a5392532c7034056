import Foundation
import Glibc

/// Each mount's private control channel: a unix socket under the user's runtime directory
/// (`$XDG_RUNTIME_DIR/adrivefs/`, `/run/adrivefs/` for root), the folder mode 0700 and the
/// socket 0600, so only its user can ask — no network port. One request line per
/// connection (`status`, `refresh`), one JSON answer.
enum ControlSocket {
    static var directory: String {
        if getuid() == 0 { return "/run/adrivefs" }
        if let runtime = ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"], !runtime.isEmpty { return runtime + "/adrivefs" }
        return Mounter.stateDirectory + "/run"
    }

    /// The socket of the mount at `mountpoint`.
    static func path(for mountpoint: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in mountpoint.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return directory + "/" + String(hash, radix: 16) + ".sock"
    }

    /// The sockets of every mount of this user.
    static func all() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".sock") }.sorted().map { directory + "/" + $0 }
    }

    static func address(_ path: String) -> sockaddr_un? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes + [0]) }
        return address
    }

    /// Sends `request` to the socket at `path` and returns the answer (nil: no mount there).
    static func ask(_ path: String, _ request: String) -> [String: Any]? {
        guard var address = address(path) else { return nil }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            // Left by a mount that died: nobody listens any more.
            if errno == ECONNREFUSED { unlink(path) }
            return nil
        }
        let line = Array((request + "\n").utf8)
        guard line.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == line.count else { return nil }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count <= 0 { break }
            answer += buffer.prefix(count)
        }
        return (try? JSONSerialization.jsonObject(with: Data(answer))) as? [String: Any]
    }
}

/// The serving side: a thread of its own that accepts one connection at a time (answers
/// are built from memory, at once), until `stop()`.
final class ControlServer: @unchecked Sendable {
    let path: String
    private let fd: Int32
    private let handler: @Sendable (String) -> [String: Any]
    private var thread: Thread?

    /// Listens at `path`; throws when the folder or the socket cannot be made private.
    init(path: String, handler: @escaping @Sendable (String) -> [String: Any]) throws {
        self.path = path
        self.handler = handler
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        chmod(folder, 0o700)
        unlink(path)
        guard var address = ControlSocket.address(path) else { throw UsageError("control socket path too long: \(path)") }
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw UsageError("cannot create the control socket: \(String(cString: strerror(errno)))") }
        // Created without group or other bits, so there is no moment at which others could connect.
        let previous = umask(0o177)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(previous)
        guard bound == 0, listen(fd, 8) == 0 else {
            close(fd)
            throw UsageError("cannot listen on \(path): \(String(cString: strerror(errno)))")
        }
        chmod(path, 0o600)
        let thread = Thread { [self] in serve() }
        thread.name = "adrivefs.control"
        self.thread = thread
        thread.start()
    }

    private func serve() {
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var buffer = [UInt8](repeating: 0, count: 256)
            let count = read(client, &buffer, buffer.count)
            let request = count > 0 ? String(decoding: buffer.prefix(count), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : ""
            let answer = (try? JSONSerialization.data(withJSONObject: handler(request), options: [.sortedKeys])) ?? Data("{}".utf8)
            _ = answer.withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
            close(client)
        }
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        unlink(path)
    }
}
