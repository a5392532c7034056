import AliyunDrive
import Foundation
import Glibc
import Synchronization

/// Modification times set on this machine (`touch -d`, `cp -p`, `rsync -a`, `tar x`,
/// `unzip`), which the drive does not store: it keeps its own `updated_at`. Each is kept
/// in the state directory — one small file per file_id — and reported for the file while
/// it still has the size and SHA-1 it had when the time was set; content changed anywhere
/// (a new upload is a new file_id) brings the drive's time back. Other machines see the
/// drive's times.
final class FileTimes: Sendable {
    struct Entry: Codable, Sendable, Equatable {
        var modified: Double
        var size: Int64
        var contentHash: String?
    }

    /// nil: kept in memory only (tests, or a state directory that cannot be written).
    let directory: String?
    private let entries: Mutex<[String: Entry]>

    init(directory: String?) {
        self.directory = directory
        var loaded: [String: Entry] = [:]
        if let directory, let names = try? FileManager.default.contentsOfDirectory(atPath: directory) {
            let decoder = JSONDecoder()
            for name in names where name.hasSuffix(".json") {
                guard let data = FileManager.default.contents(atPath: directory + "/" + name),
                    let entry = try? decoder.decode(Entry.self, from: data)
                else { continue }
                loaded[String(name.dropLast(5))] = entry
            }
        }
        entries = Mutex(loaded)
    }

    /// The time set for `item` on this machine, if its content is still the same.
    func modified(for item: DriveItem) -> Double? {
        guard !item.isFolder, let entry = entries.withLock({ $0[item.fileID] }), entry.size == item.size else { return nil }
        if let kept = entry.contentHash, let current = item.contentHash, kept.uppercased() != current.uppercased() { return nil }
        return entry.modified
    }

    /// Remembers `modified` for the server file `item` (not for folders or local files).
    func set(_ modified: Double, for item: DriveItem) {
        guard !item.isFolder, let name = Self.fileName(item.fileID) else { return }
        let entry = Entry(modified: modified, size: item.size, contentHash: item.contentHash)
        let changed = entries.withLock { entries in
            defer { entries[item.fileID] = entry }
            return entries[item.fileID] != entry
        }
        guard changed, let directory, let data = try? JSONEncoder().encode(entry) else { return }
        // Not synced: a time lost with a system crash is only a time.
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/" + name
        if FileManager.default.createFile(atPath: path + ".tmp", contents: data) { rename(path + ".tmp", path) }
    }

    func remove(fileID: String) {
        guard entries.withLock({ $0.removeValue(forKey: fileID) }) != nil, let directory, let name = Self.fileName(fileID) else { return }
        unlink(directory + "/" + name)
    }

    /// The entry's file name; nil for ids that are no plain file name (and `local:` ids).
    static func fileName(_ fileID: String) -> String? {
        let allowed = fileID.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2D || byte == 0x5F
        }
        return allowed && !fileID.isEmpty && fileID.utf8.count <= 200 ? fileID + ".json" : nil
    }
}
