import AliyunDrive
import Foundation
import Glibc

/// Pending uploads of one mount, one small JSON file each in the mount's journal folder
/// (`StateLayout`), written before an upload starts and removed once the server has the
/// content. A later mount of the same account, drive and endpoint that finds the folder
/// unlocked (its mount is gone) finishes them; every entry records that binding too.
///
/// The staging file an entry names is not necessarily on the disk yet: when the content's
/// SHA-1 is known the upload starts without an `fsync` (the common case, an upload that
/// succeeds, then never writes the file to disk at all), and the entry records the size,
/// the hash and the boot it was written in. Only a crash of the whole system can lose
/// unsynced bytes, and that means a new boot: a mount in another boot checks the content
/// against the entry before it uploads anything.
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
        /// The account, drive and endpoint the upload goes to. nil only in entries written
        /// before bindings existed (legacy): those are never uploaded.
        var binding: AccountBinding?
        /// Legacy entries only: the process that wrote it.
        var owner: Int32? = nil
        /// What the staging file held when the upload started, and — when it was not
        /// synced first — the boot (`/proc/sys/kernel/random/boot_id`) it was staged in.
        var size: Int64? = nil
        var contentHash: String? = nil
        var unsyncedBoot: String? = nil

        /// True when a system crash since may have torn the staging file: it must match
        /// `size` and `contentHash` before it is uploaded.
        var needsVerification: Bool { unsyncedBoot != nil && unsyncedBoot != UploadJournal.bootID }
    }

    /// This boot's id; nil where the kernel does not say (then every unsynced entry is verified).
    static let bootID: String? = {
        guard let text = try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8) else { return nil }
        let id = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return id.isEmpty ? nil : id
    }()

    let directory: String
    /// Makes the folder ready (created and locked by its mount) before the first entry.
    private let claim: (@Sendable () throws -> Void)?

    init(directory: String, claim: (@Sendable () throws -> Void)? = nil) {
        self.directory = directory
        self.claim = claim
    }

    /// Writes `entry` (replacing an earlier one of the same id). `durable`: synced to disk
    /// before this returns; an entry for unsynced content need not be, since a system crash
    /// would take that content with it and only a process crash has to be survived.
    func record(_ entry: Entry, durable: Bool) throws {
        if let claim { try claim() } else { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        let data = try JSONEncoder().encode(entry)
        let final = directory + "/" + entry.id + ".json"
        let temporary = final + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw DriveFSError(errno: EIO, "cannot write the upload journal in \(directory)") }
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if durable { fsync(fd) }
        close(fd)
        guard written == data.count, rename(temporary, final) == 0 else {
            throw DriveFSError(errno: EIO, "cannot write the upload journal in \(directory)")
        }
        guard durable else { return }
        let dir = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 {
            fsync(dir)
            close(dir)
        }
    }

    /// `record(entry, durable: true)` off the cooperative pool (it fsyncs twice).
    func recordDurably(_ entry: Entry) async throws {
        try await Blocking.run { [self] in try record(entry, durable: true) }
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
