import AliyunDrive
import FUSE
import Glibc
import Logging

/// Sends one version of a file's local content to the drive and adopts the result:
/// journal entry first, then `service.upload`, then — only once the new content is
/// complete — the previous version to the trash and the new file_id into the inode table,
/// the folder listing, the times and the status. Copy-by-hash adopts its copy the same way.
/// Runs on the file's queue; knows nothing of lifecycles (its caller does).
struct Uploader: Sendable {
    let service: any DriveService
    let journal: UploadJournal
    let inodes: InodeTable
    let directories: DirectoryCache
    let times: FileTimes
    let activity: UploadActivity
    let trash: DeferredTrash
    let configuration: DriveFSConfiguration
    let logger: Logger
    /// The drive's usage changed (the cached `statfs` answer is stale).
    let spaceChanged: @Sendable () -> Void

    func path(_ item: DriveItem) -> String { inodes.path(of: item, under: configuration.rootID) }

    /// Uploads `writer`'s content as it is now, counted as `version`.
    func send(_ writer: FileWriter, version: UInt64) async throws {
        guard let record = inodes.record(writer.inode) else { throw DriveFSError.notFound }
        let staged = writer.content
        let start = staged.snapshot
        let item = record.item
        let replaces = record.id.serverID
        let path = path(item)
        // Journaled before anything is sent, so a mount after a crash of this process
        // finishes the upload. Content the hash follower is on is not synced first (an
        // upload that succeeds then never writes it to disk): the entry records its size,
        // the boot and — as soon as the follower has it — its SHA-1, so that a mount after
        // a system crash can tell torn content from the real thing. The upload does not
        // wait for the follower: a rapid upload and the final check are the only steps
        // that need the hash. Content the follower gave up on (not written in order) is
        // synced first. An upload that fails syncs, and journals durably, below.
        var entry = UploadJournal.Entry(
            id: staged.id, stagingPath: staged.path, parentID: item.parentID, name: item.name, replaces: replaces, displayPath: path,
            binding: configuration.state.binding)
        let source: ContentHashSource
        let latest = JournalEntryBox(entry)
        let boot = UploadJournal.bootID ?? "unknown"
        switch staged.hashStatus {
        case .gaveUp:
            await staged.sync()
            try await journal.recordDurably(entry)
            source = .unknown
        case .done(let hash, let size):
            (entry.size, entry.contentHash, entry.unsyncedBoot) = (size, hash, boot)
            latest.set(entry)
            try journal.record(entry, durable: false)
            source = .known(hash)
        case .following:
            // Content synced already (write-back staged it) needs no check after a system
            // crash — and without a hash yet, none could be made.
            (entry.size, entry.unsyncedBoot) = (start.size, staged.isSynced ? nil : boot)
            latest.set(entry)
            try journal.record(entry, durable: false)
            source = .pending { [journal] in
                guard let hashed = await staged.contentHash() else { return nil }
                // Awaited by the upload before it returns or throws: no later record can race this one.
                try? journal.record(latest.update { ($0.size, $0.contentHash) = (hashed.size, hashed.hash) }, durable: false)
                return hashed.hash
            }
        }
        let result: UploadResult
        do {
            var options = configuration.uploadOptions
            let (activity, id) = (activity, staged.id)
            activity.started(id, path: path, size: start.size)
            options.progress = { activity.sent(id, bytes: $0) }
            result = try await service.upload(path: staged.path, parentID: item.parentID, name: item.name, options: options, contentHash: source)
        } catch {
            await keepPending(staged, latest.value)
            activity.failed(staged.id, path: path, error: DriveFSError(error).description)
            throw error
        }
        await adopt(result.item, into: writer.inode, replacing: record, explicitTime: writer.state.version == version ? staged.snapshot : nil)
        journal.remove(id: staged.id)
        activity.succeeded(staged.id)
        let size = DriveFileSystem.formatSize(start.size)
        if result.rapid {
            logger.info("rapid upload: \(path) (\(size)) — 0 bytes sent")
        } else {
            logger.info("upload: \(path) (\(size)) — \(result.bytesSent) bytes sent")
        }
    }

    /// Write-back: the content synced and its journal entry written durably, so that a crash
    /// from here on loses nothing; the upload comes later.
    func stage(_ writer: FileWriter) async throws {
        guard let record = inodes.record(writer.inode) else { throw DriveFSError.notFound }
        let staged = writer.content
        var entry = UploadJournal.Entry(
            id: staged.id, stagingPath: staged.path, parentID: record.item.parentID, name: record.item.name, replaces: record.id.serverID,
            displayPath: path(record.item), binding: configuration.state.binding)
        if case .done(let hash, let size) = staged.hashStatus { (entry.size, entry.contentHash) = (size, hash) }
        await staged.sync()
        try await journal.recordDurably(entry)
    }

    /// After a failed upload the content stays pending: now it must survive a system crash
    /// too. Synced content whose hash is not known (the upload stopped before it was
    /// needed) is trusted as it is, like content the follower gave up on.
    private func keepPending(_ staged: StagedFile, _ entry: UploadJournal.Entry) async {
        staged.releaseReservation()
        var final = entry
        guard final.unsyncedBoot != nil else { return }
        if final.contentHash == nil {
            if let hashed = await staged.contentHash() {
                (final.size, final.contentHash) = (hashed.size, hashed.hash)
            } else {
                (final.size, final.unsyncedBoot) = (nil, nil)
            }
        }
        await staged.sync()
        try? await journal.recordDurably(final)
    }

    /// The drive holds the inode's new content as `made`: it takes the place of the
    /// record's file (trashed only now), under the record's name and folder. A time set
    /// with utimes stays the file's time (`explicitTime`: the content's state, when it was
    /// not written since).
    func adopt(_ made: DriveItem, into inode: InodeNumber, replacing record: InodeTable.Record, explicitTime: StagedFile.State?) async {
        var adopted = made
        adopted.parentID = record.item.parentID
        adopted.name = record.item.name
        if let replaces = record.id.serverID {
            await trashReplaced(replaces, path: path(record.item))
            times.remove(fileID: replaces)
        }
        if let state = explicitTime, state.explicitModified { times.set(state.modified, for: adopted) }
        inodes.replace(inode, with: adopted, id: .server(adopted.fileID))
        directories.uploaded(adopted, replacing: record.id)
        spaceChanged()
    }

    private func trashReplaced(_ fileID: String, path: String) async {
        do {
            try await trash.trashWhenUnread(fileID, path: path)
        } catch {
            logger.warning("upload: \(path): the previous version (\(fileID)) could not be moved to the trash: \(DriveFSError(error).description)")
        }
    }
}
