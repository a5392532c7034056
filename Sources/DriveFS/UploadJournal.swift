import Foundation
import Glibc

/// Pending uploads, one small JSON file each in the journal directory (under the state
/// directory), written durably before an upload starts and removed once the server has
/// the content. A mount that finds entries (after a crash) finishes them.
struct UploadJournal: Sendable {
    struct Entry: Codable, Sendable, Equatable {
        /// Stable per staged file: the staging file's name.
        var id: String
        var stagingPath: String
        var parentID: String
        var name: String
        /// The file this content replaces (trashed once the new one is complete).
        var replaces: String?
        /// The path on the mount, for logs.
        var displayPath: String
        /// The process that wrote it: a live owner is another mount still at work.
        var owner: Int32
    }

    let directory: String

    func record(_ entry: Entry) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let data = try JSONEncoder().encode(entry)
        let final = directory + "/" + entry.id + ".json"
        let temporary = final + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw DriveFSError(errno: EIO, "cannot write the upload journal in \(directory)") }
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        fsync(fd)
        close(fd)
        guard written == data.count, rename(temporary, final) == 0 else {
            throw DriveFSError(errno: EIO, "cannot write the upload journal in \(directory)")
        }
        let dir = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 {
            fsync(dir)
            close(dir)
        }
    }

    func remove(id: String) { unlink(directory + "/" + id + ".json") }

    /// Every readable entry, oldest first.
    func entries() -> [Entry] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var found: [(Double, Entry)] = []
        for name in names where name.hasSuffix(".json") {
            let path = directory + "/" + name
            guard let data = FileManager.default.contents(atPath: path), let entry = try? JSONDecoder().decode(Entry.self, from: data) else {
                continue
            }
            let modified = ((try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            found.append((modified, entry))
        }
        return found.sorted { $0.0 < $1.0 }.map(\.1)
    }
}
