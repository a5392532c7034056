import Foundation
import Glibc
import Logging

/// Pending uploads written before state was bound to an account (`STATE/pending/*.json`,
/// staging in `CACHE/staging/<pid>/`). Nothing in them says which account, drive or
/// endpoint they were meant for, and no mount can prove they are its own (file ids of
/// different drives can look alike), so none is ever uploaded: once the process that wrote
/// one is gone, its content is kept in `CACHE/staging/lost+found` with the entry beside it,
/// and the log says where.
struct LegacyJournal {
    let layout: StateLayout

    var journal: UploadJournal { UploadJournal(directory: layout.journalRoot) }

    func entries() -> [UploadJournal.Entry] { journal.entries().filter { $0.binding == nil } }

    /// Keeps every legacy entry of a process that is gone aside, and clears the legacy
    /// staging folders of such processes of what no entry names.
    func keepAside(logger: Logger) {
        let folder = layout.stagingRoot + "/" + StateLayout.lostAndFound
        for entry in entries() {
            if let owner = entry.owner, Self.isRunningAdrivefs(owner) { continue }
            if !FileManager.default.fileExists(atPath: entry.stagingPath) {
                logger.warning("pending upload of \(entry.displayPath) from an older adrivefs: its staging file is gone; entry removed")
                journal.remove(id: entry.id)
            } else if let kept = DriveFileSystem.keepAside(entry, in: folder) {
                logger.warning("pending upload of \(entry.displayPath) from an older adrivefs records no account or drive; not uploaded, kept in \(kept)")
                journal.remove(id: entry.id)
            } else {
                logger.error("pending upload of \(entry.displayPath) from an older adrivefs records no account or drive; not uploaded, left in \(entry.stagingPath)")
            }
        }
        let referenced = Set(entries().map(\.stagingPath))
        for name in StateLayout.subfolders(of: layout.stagingRoot) {
            guard let pid = Int32(name), !Self.isRunningAdrivefs(pid) else { continue }
            let directory = layout.stagingRoot + "/" + name
            for file in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where !referenced.contains(directory + "/" + file) {
                Glibc.unlink(directory + "/" + file)
            }
            Glibc.rmdir(directory)
        }
    }

    /// Whether `pid` is a running (not zombie) adrivefs process. Only for legacy entries,
    /// which recorded nothing better: a pid alone can be reused, or be a zombie.
    static func isRunningAdrivefs(_ pid: Int32) -> Bool {
        guard pid > 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        guard state != "Z", state != "X" else { return false }
        let command = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? ""
        return command.trimmingCharacters(in: .whitespacesAndNewlines) == "adrivefs"
    }
}
