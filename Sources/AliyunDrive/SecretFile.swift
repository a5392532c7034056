import Foundation
import Glibc

/// Files holding secrets (refresh tokens, device keys): written atomically with mode 0600
/// (temp file in the same directory, fsync, rename, fsync of the directory).
public enum SecretFile {
    public static func write(_ data: [UInt8], to path: String) throws(DriveError) {
        try write(Data(data), to: URL(fileURLWithPath: path))
    }

    static func write(_ data: Data, to path: String) throws(DriveError) {
        try write(data, to: URL(fileURLWithPath: path))
    }

    static func write(_ data: Data, to url: URL) throws(DriveError) {
        let directory = url.deletingLastPathComponent().path
        if !FileManager.default.fileExists(atPath: directory) {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw DriveError(.stateDirectory, "cannot create \(directory): \(error.localizedDescription)")
            }
        }
        let temporary = url.path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw DriveError(.stateDirectory, "cannot write \(temporary): \(String(cString: strerror(errno)))") }
        let ok = data.withUnsafeBytes { raw -> Bool in
            var done = 0
            while done < raw.count {
                let n = Glibc.write(fd, raw.baseAddress.map { $0 + done }, raw.count - done)
                if n <= 0 { return false }
                done += n
            }
            return fsync(fd) == 0
        }
        close(fd)
        guard ok, rename(temporary, url.path) == 0 else {
            unlink(temporary)
            throw DriveError(.stateDirectory, "cannot replace \(url.path): \(String(cString: strerror(errno)))")
        }
        let directoryFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 {
            fsync(directoryFD)
            close(directoryFD)
        }
    }

    /// The file's contents without surrounding white space, or nil when unreadable.
    public static func read(_ path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }
}
