import AliyunDrive
import Foundation
import Glibc
import Logging

/// Finishing the uploads a crashed mount of the same account, drive and endpoint left in
/// its journal (see `StateLayout` for the folders and `MountLock` for how a dead mount is
/// told from a live one).
extension DriveFileSystem {
    /// A dead mount's journal folder, claimed: its lock is held until its entries are done.
    struct Orphan: Sendable {
        let journal: UploadJournal
        let lock: MountLock
        let entries: [UploadJournal.Entry]
    }

    /// Looks at the pending uploads beside this mount's own: starts finishing, in the
    /// background, those of dead mounts bound to this account, drive and endpoint; leaves
    /// every other account's and drive's alone (and says so once); keeps entries from
    /// before bindings aside without uploading them; and clears dead mounts' staging
    /// folders of what no entry names. A read-only mount only reports. Returns at once.
    public func recoverPendingUploads() {
        let layout = configuration.state
        // Unbound state (a filesystem used without a mount) is never recovered by anyone.
        guard let binding = layout.binding else { return }
        reportOtherBindings(layout)
        if configuration.readOnly {
            let waiting = Self.journalFolders(layout).filter { !MountLock.isHeld($0 + "/" + StateLayout.journalLock) }
                .reduce(0) { $0 + UploadJournal(directory: $1).entries().count }
            let legacy = LegacyJournal(layout: layout).entries().count
            if waiting + legacy > 0 {
                logger.info("keeping \(waiting + legacy) pending upload(s) for a read-write mount (this mount is read-only and uploads nothing)")
            }
            return
        }
        LegacyJournal(layout: layout).keepAside(logger: logger)
        var orphans: [Orphan] = []
        for folder in Self.journalFolders(layout) {
            guard case .acquired(let lock) = MountLock.acquire(folder + "/" + StateLayout.journalLock) else { continue }
            let journal = UploadJournal(directory: folder)
            var entries: [UploadJournal.Entry] = []
            for entry in journal.entries() {
                if entry.binding == binding {
                    entries.append(entry)
                } else {
                    logger.warning("pending upload \(entry.displayPath) in \(folder) is bound to \(entry.binding?.description ?? "no account"), not to this mount's \(binding); left alone")
                }
            }
            orphans.append(Orphan(journal: journal, lock: lock, entries: entries))
        }
        sweepStaleStaging(layout)
        let count = orphans.reduce(0) { $0 + $1.entries.count }
        if count > 0 { logger.info("finishing \(count) upload(s) left by an earlier mount of this drive") }
        for orphan in orphans where orphan.entries.isEmpty { retire(orphan) }
        for orphan in orphans where !orphan.entries.isEmpty {
            for entry in orphan.entries {
                // Each entry is a job of the write-back queue: tried now, then on its schedule.
                writeBack.schedule(entry.id, kind: .recovered, path: entry.displayPath, error: "left by an earlier mount", attempts: 0, immediately: true) {
                    [weak self] attempt in
                    guard let self else { return .done }
                    let outcome: WriteBack.Outcome
                    if let source = await self.verified(entry, journal: orphan.journal) {
                        outcome = await self.recover(entry, knownHash: source, attempt: attempt, journal: orphan.journal)
                    } else {
                        outcome = .done
                    }
                    if outcome == .done {
                        self.retire(orphan)
                        self.sweepStaleStaging(layout)
                    }
                    return outcome
                }
            }
            retire(orphan)
        }
    }

    /// The journal folders of this binding's other mounts.
    static func journalFolders(_ layout: StateLayout) -> [String] {
        StateLayout.subfolders(of: layout.journalScope, excluding: [layout.mountID]).map { layout.journalScope + "/" + $0 }
    }

    /// One line about pending uploads that belong to other accounts, drives or endpoints.
    private func reportOtherBindings(_ layout: StateLayout) {
        var count = 0
        var owners: [String] = []
        for scope in StateLayout.subfolders(of: layout.journalRoot, excluding: [layout.scopeName, StateLayout.unbound]) {
            let path = layout.journalRoot + "/" + scope
            let entries = StateLayout.subfolders(of: path).flatMap { UploadJournal(directory: path + "/" + $0).entries() }
            guard let first = entries.first else { continue }
            count += entries.count
            owners.append(first.binding?.description ?? scope)
        }
        guard count > 0 else { return }
        logger.info("\(count) pending upload(s) belong to another account or drive (\(owners.joined(separator: "; "))); kept for its own next mount")
    }

    /// Removes a claimed journal folder once every entry in it is done.
    private func retire(_ orphan: Orphan) {
        guard orphan.journal.entries().isEmpty else { return }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: orphan.journal.directory)) ?? [] where name.hasSuffix(".tmp") {
            Glibc.unlink(orphan.journal.directory + "/" + name)
        }
        orphan.lock.unlinkFile()
        Glibc.rmdir(orphan.journal.directory)
    }

    /// Staging folders of this binding's dead mounts hold unflushed writes (never journaled,
    /// so not the user's to keep, as with a page cache) and the content of pending uploads:
    /// the first go, the second stay until their upload is done. A folder is swept only
    /// with its lock held, so a live mount's is never touched.
    func sweepStaleStaging(_ layout: StateLayout) {
        var referenced = Set<String>()
        for folder in StateLayout.subfolders(of: layout.journalScope) {
            for entry in UploadJournal(directory: layout.journalScope + "/" + folder).entries() { referenced.insert(entry.stagingPath) }
        }
        for name in StateLayout.subfolders(of: layout.stagingScope, excluding: [layout.mountID, StateLayout.lostAndFound]) {
            let folder = layout.stagingScope + "/" + name
            guard case .acquired(let lock) = MountLock.acquire(folder + "/" + StateLayout.stagingLock) else { continue }
            var left = 0
            for file in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where file != StateLayout.stagingLock {
                if referenced.contains(folder + "/" + file) { left += 1 } else { Glibc.unlink(folder + "/" + file) }
            }
            if left == 0 {
                lock.unlinkFile()
                Glibc.rmdir(folder)
            }
        }
    }

    /// Checks a dead mount's entry before its upload: the hash to claim (`.known` when the
    /// content was verified, `.unknown` to hash it), or nil when it is not to be uploaded
    /// (gone, or torn by a system crash: then kept aside).
    private func verified(_ entry: UploadJournal.Entry, journal: UploadJournal) async -> ContentHashSource? {
        guard FileManager.default.fileExists(atPath: entry.stagingPath) else {
            logger.warning("upload: \(entry.displayPath): staging file \(entry.stagingPath) is gone; nothing to finish")
            journal.remove(id: entry.id)
            return nil
        }
        guard entry.needsVerification else { return .unknown }
        // Staged without an fsync, in a boot that has ended since: the system went down
        // and the bytes may never have reached the disk. Upload them only if they are
        // exactly what was being uploaded; otherwise keep them, but not as the user's file.
        // An entry without a SHA-1 (the system went down before the upload had hashed
        // the content) cannot vouch for anything.
        let path = entry.stagingPath
        let local = entry.contentHash == nil ? nil : try? await Blocking.run { try RapidUpload.sha1Hex(ofFile: path) }
        guard let local, local.size == entry.size, local.hash == entry.contentHash else {
            let problem = entry.contentHash == nil
                ? "\(entry.displayPath): the system went down before the staged content was hashed, so it cannot be checked"
                : "\(entry.displayPath): the staged content is not what was being uploaded when the system went down (part of it never reached the disk)"
            if let kept = Self.keepAside(entry, in: configuration.state.lostAndFound) {
                logger.error("upload (recovered): \(problem); not uploaded, kept in \(kept)")
                journal.remove(id: entry.id)
            } else {
                logger.error("upload (recovered): \(problem); not uploaded, left in \(entry.stagingPath) (journaled)")
            }
            return nil
        }
        return .known(local.hash)
    }

    /// One try at a dead mount's upload.
    private func recover(_ entry: UploadJournal.Entry, knownHash: ContentHashSource, attempt: Int, journal: UploadJournal) async -> WriteBack.Outcome {
        do {
            let result = try await service.upload(
                path: entry.stagingPath, parentID: entry.parentID, name: entry.name, options: configuration.uploadOptions, contentHash: knownHash)
            if let replaces = entry.replaces { try? await service.trash(fileID: replaces) }
            journal.remove(id: entry.id)
            Glibc.unlink(entry.stagingPath)
            directories.invalidate(entry.parentID)
            logger.info(
                "\(result.rapid ? "rapid upload" : "upload") (recovered): \(entry.displayPath) (\(Self.formatSize(result.item.size))) — \(result.bytesSent) bytes sent")
            return .done
        } catch let error as DriveError where error.isNotFound && attempt >= 3 {
            // The folder is gone: keep the content where the user can find it.
            logger.error("upload (recovered): \(entry.displayPath): \(error); content kept in \(entry.stagingPath)")
            journal.remove(id: entry.id)
            return .done
        } catch {
            if Task.isCancelled { return .done }
            let problem = DriveFSError(error).description
            logger.warning("upload (recovered): \(entry.displayPath) failed: \(problem); retrying in \(Int(writeBack.policy.delay(afterFailure: attempt, draining: false))) s")
            return .retry(error: problem)
        }
    }

    /// Moves a journaled staging file that must not be uploaded into `folder` (same
    /// filesystem; never cleaned up by a mount), with its journal entry beside it as
    /// `NAME.ID.json` (where it was meant to go); returns where it went, nil if it could not.
    static func keepAside(_ entry: UploadJournal.Entry, in folder: String) -> String? {
        let target = folder + "/" + entry.name + "." + URL(fileURLWithPath: entry.stagingPath).lastPathComponent.prefix(8)
        guard (try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])) != nil,
            Glibc.rename(entry.stagingPath, target) == 0
        else { return nil }
        if let data = try? JSONEncoder().encode(entry) {
            _ = FileManager.default.createFile(atPath: target + ".json", contents: data, attributes: [.posixPermissions: 0o600])
        }
        return target
    }

    /// Removes this mount's journal and staging folders if nothing is left in them (clean unmount).
    public func removeStagingDirectory() { own.retire() }
}
