import AliyunDrive
import Foundation
import Glibc
import Logging

/// Finishing the uploads a crashed mount left in the journal.
extension DriveFileSystem {
    /// Starts uploading, in the background, every journaled upload whose mount is gone,
    /// and clears staging directories of dead mounts. Returns at once.
    public func recoverPendingUploads() {
        let entries = journal.entries().filter { $0.owner != getpid() && !Self.isAlive($0.owner) }
        removeStaleStaging(keeping: Set(journal.entries().map(\.stagingPath)))
        guard !entries.isEmpty else { return }
        logger.info("finishing \(entries.count) upload(s) left by an earlier mount")
        Task {
            for entry in entries { await recover(entry) }
        }
    }

    private func recover(_ entry: UploadJournal.Entry) async {
        guard FileManager.default.fileExists(atPath: entry.stagingPath) else {
            logger.warning("upload: \(entry.displayPath): staging file \(entry.stagingPath) is gone; nothing to finish")
            journal.remove(id: entry.id)
            return
        }
        var knownHash: String?
        if entry.needsVerification {
            // Staged without an fsync, in a boot that has ended since: the system went down
            // and the bytes may never have reached the disk. Upload them only if they are
            // exactly what was being uploaded; otherwise keep them, but not as the user's file.
            // An entry without a SHA-1 (the system went down before the upload had hashed
            // the content) cannot vouch for anything.
            let local = entry.contentHash == nil ? nil : try? RapidUpload.sha1Hex(ofFile: entry.stagingPath)
            guard let local, local.size == entry.size, local.hash == entry.contentHash else {
                let problem = entry.contentHash == nil
                    ? "\(entry.displayPath): the system went down before the staged content was hashed, so it cannot be checked"
                    : "\(entry.displayPath): the staged content is not what was being uploaded when the system went down (part of it never reached the disk)"
                if let kept = keepAside(entry) {
                    logger.error("upload (recovered): \(problem); not uploaded, kept in \(kept)")
                    journal.remove(id: entry.id)
                } else {
                    logger.error("upload (recovered): \(problem); not uploaded, left in \(entry.stagingPath) (journaled)")
                }
                return
            }
            knownHash = local.hash
        }
        var delay = configuration.uploadRetryDelay
        for attempt in 1... {
            do {
                let result = try await service.upload(
                    path: entry.stagingPath, parentID: entry.parentID, name: entry.name, options: configuration.uploadOptions,
                    contentHash: knownHash.map { .known($0) } ?? .unknown)
                if let replaces = entry.replaces { try? await service.trash(fileID: replaces) }
                journal.remove(id: entry.id)
                Glibc.unlink(entry.stagingPath)
                // The dead mount's staging directory goes with its last file.
                Glibc.rmdir(URL(fileURLWithPath: entry.stagingPath).deletingLastPathComponent().path)
                directories.invalidate(entry.parentID)
                logger.info(
                    "\(result.rapid ? "rapid upload" : "upload") (recovered): \(entry.displayPath) (\(Self.formatSize(result.item.size))) — \(result.bytesSent) bytes sent")
                return
            } catch let error as DriveError where error.isNotFound && attempt >= 3 {
                // The folder is gone: keep the content where the user can find it.
                logger.error("upload (recovered): \(entry.displayPath): \(error); content kept in \(entry.stagingPath)")
                journal.remove(id: entry.id)
                return
            } catch {
                logger.warning("upload (recovered): \(entry.displayPath) failed: \(DriveFSError(error).description); retrying in \(Int(delay)) s")
                try? await Task.sleep(for: .seconds(delay))
                delay = min(60, delay * 2)
            }
        }
    }

    /// Moves a journaled staging file that must not be uploaded to `lost+found` beside the
    /// staging directories (same filesystem; never cleaned up by a mount); returns where it
    /// went, nil if it could not be moved.
    private func keepAside(_ entry: UploadJournal.Entry) -> String? {
        let staging = URL(fileURLWithPath: entry.stagingPath)
        let folder = staging.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("lost+found").path
        let target = folder + "/" + entry.name + "." + staging.lastPathComponent.prefix(8)
        guard (try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)) != nil,
            Glibc.rename(entry.stagingPath, target) == 0
        else { return nil }
        Glibc.rmdir(staging.deletingLastPathComponent().path)
        return target
    }

    /// Staging directories are named by the owning process id: those of dead processes
    /// hold only unflushed writes (never journaled), except files a journal entry names.
    private func removeStaleStaging(keeping referenced: Set<String>) {
        let own = URL(fileURLWithPath: configuration.stagingDirectory)
        guard Int32(own.lastPathComponent) != nil else { return }
        let root = own.deletingLastPathComponent().path
        for name in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] {
            guard let pid = Int32(name), pid != getpid(), !Self.isAlive(pid) else { continue }
            let directory = root + "/" + name
            for file in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where !referenced.contains(directory + "/" + file) {
                Glibc.unlink(directory + "/" + file)
            }
            Glibc.rmdir(directory)
        }
    }

    /// Removes this mount's staging directory if nothing is left in it (clean unmount).
    public func removeStagingDirectory() {
        Glibc.rmdir(configuration.stagingDirectory)
    }

    static func isAlive(_ pid: Int32) -> Bool { kill(pid, 0) == 0 || errno == EPERM }
}
