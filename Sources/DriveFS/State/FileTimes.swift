import AliyunDrive
import Foundation
import FUSE
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
        var modified: FileTime
        var size: Int64
        var contentHash: String?

        init(modified: FileTime, size: Int64, contentHash: String?) {
            self.modified = modified
            self.size = size
            self.contentHash = contentHash
        }

        enum CodingKeys: String, CodingKey { case seconds, nanoseconds, modified, size, contentHash }

        // Seconds and nanoseconds as integers; entries from before kept a Double `modified`.
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            if let seconds = try container.decodeIfPresent(Int64.self, forKey: .seconds) {
                modified = FileTime(seconds: seconds, nanoseconds: try container.decodeIfPresent(Int32.self, forKey: .nanoseconds) ?? 0)
            } else {
                modified = FileTime(try container.decode(Double.self, forKey: .modified))
            }
            size = try container.decode(Int64.self, forKey: .size)
            contentHash = try container.decodeIfPresent(String.self, forKey: .contentHash)
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(modified.seconds, forKey: .seconds)
            try container.encode(modified.nanoseconds, forKey: .nanoseconds)
            try container.encode(size, forKey: .size)
            try container.encodeIfPresent(contentHash, forKey: .contentHash)
        }
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
    func modified(for item: DriveItem) -> FileTime? {
        guard !item.isFolder, let entry = entries.withLock({ $0[item.fileID] }), entry.size == item.size else { return nil }
        if let kept = entry.contentHash, let current = item.contentHash, kept.uppercased() != current.uppercased() { return nil }
        return entry.modified
    }

    /// Remembers `modified` for the server file `item` (not for folders or local files).
    func set(_ modified: FileTime, for item: DriveItem) {
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

    /// The entry's file name; nil for ids that are no plain file name.
    static func fileName(_ fileID: String) -> String? {
        let allowed = fileID.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2D || byte == 0x5F
        }
        return allowed && !fileID.isEmpty && fileID.utf8.count <= 200 ? fileID + ".json" : nil
    }
}
