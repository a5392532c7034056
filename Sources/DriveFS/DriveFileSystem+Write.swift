import AliyunDrive
import Foundation
public import FUSE
import Glibc
import Logging
import Synchronization

/// Writing: files are written into a local staging file and uploaded on `flush`,
/// `fsync` and the last `release` (see README "Semantics"). Folder and name changes go
/// to the server at once.
///
/// Each inode with local content has one `StagedFile` and one chain of server work
/// (`serialized`): an upload, a rename or an unlink of that file never overlap. Until its
/// first upload a new file has a `local:` file_id and lives in `DirectoryCache`'s local
/// entries; the upload swaps in the server's file_id, and the inode stays the same.
extension DriveFileSystem: WritableFileSystem {
    static let localPrefix = "local:"
    /// The longest name the drive takes, in UTF-8 bytes.
    static let maximumNameLength = 1024
    /// The largest file an upload can carry: 10,000 parts of at most 5 GB (the account's own
    /// limit is usually lower; the drive answers that with EFBIG at upload).
    static let maximumFileSize: Int64 = 10_000 * 5_000_000_000

    // MARK: - Creating and opening

    public func create(parent: InodeNumber, name: String, mode: UInt32, flags: Int32) async throws -> (Entry, OpenReply) {
        do {
            let (record, staged) = try await createLocal(parent: parent, name: name)
            // A new file written through a write-only descriptor (cp, shell redirects) skips
            // the kernel's page cache: one copy of the data fewer. Readers opened meanwhile
            // bypass it too, so nothing cached goes stale.
            let direct = flags & O_ACCMODE == O_WRONLY
            let handle = handles.withLock { handles in
                staged.update { $0.writers += 1 }
                return handles.add(OpenFile(staged: staged, writes: true, append: flags & O_APPEND != 0, inode: record.inode, directIO: direct))
            }
            return (entry(record), OpenReply(handle: handle, keepCache: false, directIO: direct))
        } catch {
            throw DriveFSError(error)
        }
    }

    public func mknod(parent: InodeNumber, name: String, mode: UInt32) async throws -> Entry {
        do {
            let (record, staged) = try await createLocal(parent: parent, name: name)
            // No handle, so no flush will come: upload the empty file now.
            try await commit(record.inode)
            dropIfClean(record.inode, staged)
            return entry(inodes.record(record.inode) ?? record)
        } catch {
            throw DriveFSError(error)
        }
    }

    /// A new, empty, dirty file with a `local:` id, visible in its folder at once.
    private func createLocal(parent: InodeNumber, name: String) async throws -> (InodeTable.Record, StagedFile) {
        try checkWritable()
        try checkName(name)
        let (folder, existing) = try await child(parent, name)
        guard existing == nil else { throw DriveFSError.exists }
        let current = now()
        let item = DriveItem(
            fileID: Self.localPrefix + UUID().uuidString, parentID: folder.item.fileID, name: name, isFolder: false, size: 0,
            contentHash: nil, createdAt: current, updatedAt: current)
        let staged = try StagedFile(directory: try own.staging(), item: item, modified: FileTime(current))
        // A new file is uploaded even when it stays empty.
        staged.update { $0.version = 1 }
        // One lookup for the kernel's entry, one held by the staging file until it is dropped.
        let record = inodes.inode(for: item, addingLookups: 2)
        handles.withLock { $0.staged[record.inode] = staged }
        directories.setLocal(item, in: folder.item.fileID)
        return (record, staged)
    }

    /// `open` with write access or `O_TRUNC`: the handle writes into the inode's staging file.
    /// Server content is fetched into it only when the handle first changes the file:
    /// `touch`, or a program that opens read-write and only reads, fetches nothing.
    func openForWriting(_ record: InodeTable.Record, flags: Int32) async throws -> OpenReply {
        try checkWritable()
        do {
            let truncate = flags & O_TRUNC != 0
            let staged: StagedFile?
            if truncate || record.item.size == 0 || handles.withLock({ $0.staged[record.inode] != nil }) {
                staged = try await acquireWriter(record, truncate: truncate)
            } else {
                staged = nil
            }
            // Until it has a staging file, the handle reads like a read-only one.
            let reader = staged == nil ? FileReader(item: record.item, service: service, cache: chunks, disk: disk, configuration: configuration) : nil
            return handles.withLock { handles in
                handles.servedHash[record.inode] = nil
                // Write-only and alone (cp over an existing file): bypass the page cache, as in create.
                let alone = !handles.files.values.contains { $0.inode == record.inode }
                let direct = alone && flags & O_ACCMODE == O_WRONLY
                let file = OpenFile(reader: reader, staged: staged, writes: true, append: flags & O_APPEND != 0, inode: record.inode, directIO: direct)
                return OpenReply(handle: handles.add(file), keepCache: false, directIO: direct)
            }
        } catch {
            throw DriveFSError(error)
        }
    }

    /// Gives a writing handle opened without content its staging file (counted as one of
    /// its writers): filled with the server's content, or empty when `truncating` to zero.
    public func prepareWrite(inode: InodeNumber, handle: UInt64) async throws {
        try await prepareWrite(inode: inode, handle: handle, truncating: false)
    }

    private func prepareWrite(inode: InodeNumber, handle: UInt64, truncating: Bool) async throws {
        guard let file = handles.withLock({ $0.files[handle] }), file.writes else { throw DriveFSError.badHandle }
        if file.staged != nil { return }
        guard let record = inodes.record(inode) else { throw DriveFSError.notFound }
        let staged = try await acquireWriter(record, truncate: truncating)
        let attached = handles.withLock { handles -> Bool in
            guard var file = handles.files[handle], file.staged == nil else { return false }
            file.staged = staged
            handles.files[handle] = file
            return true
        }
        if !attached {
            // Released meanwhile, or a concurrent write of the same handle got there first.
            staged.update { $0.writers -= 1 }
            await finishWriting(inode, staged)
            if handles.withLock({ $0.files[handle] == nil }) { throw DriveFSError.badHandle }
        }
    }

    /// The inode's staging file with one more writer counted. Counting happens under the
    /// handles lock together with a check that the file is still the inode's, so a
    /// concurrent `dropIfClean` (a release finishing) can never drop it under a new writer.
    func acquireWriter(_ record: InodeTable.Record, truncate: Bool) async throws -> StagedFile {
        while true {
            let staged = try await stage(record, empty: truncate)
            let acquired = handles.withLock { handles in
                guard handles.staged[record.inode] === staged else { return false }
                staged.update { $0.writers += 1 }
                return true
            }
            guard acquired else { continue }
            if truncate, staged.snapshot.size > 0 {
                do {
                    try staged.truncate(to: 0, now: now())
                } catch {
                    staged.update { $0.writers -= 1 }
                    throw error
                }
            }
            return staged
        }
    }

    /// The inode's staging file, made if needed: filled with the server's content, or
    /// left empty with `empty` (the caller truncates it anyway). Concurrent callers share
    /// one fill.
    private func stage(_ record: InodeTable.Record, empty: Bool) async throws -> StagedFile {
        let inode = record.inode
        let (existing, filling): (StagedFile?, Task<StagedFile, any Error>?) = handles.withLock { handles in
            if let staged = handles.staged[inode] { return (staged, nil) }
            if let running = handles.staging[inode] { return (nil, running) }
            let task = Task { try await self.fill(record, empty: empty) }
            handles.staging[inode] = task
            return (nil, task)
        }
        let staged: StagedFile
        if let existing {
            staged = existing
        } else if let filling {
            staged = try await cancellableValue(of: filling)
        } else {
            throw DriveFSError.badHandle
        }
        return staged
    }

    private func fill(_ record: InodeTable.Record, empty: Bool) async throws -> StagedFile {
        let item = record.item
        let staged: StagedFile
        do {
            staged = try StagedFile(directory: try own.staging(), item: item, modified: times.modified(for: item) ?? FileTime(item.updatedAt))
        } catch {
            handles.withLock { $0.staging[record.inode] = nil }
            throw error
        }
        do {
            if empty {
                if item.size > 0 { staged.update { $0.version = 1 } }
            } else {
                // Through the chunk caches (content just read is not fetched again; on
                // disk too with a disk cache), four chunks in flight, written in order
                // (the hash follower reads right behind).
                let reader = FileReader(item: item, service: service, cache: chunks, disk: disk, configuration: configuration)
                let chunk = Int64(configuration.chunkSize)
                let count = (item.size + chunk - 1) / chunk
                for index in 0..<count {
                    for ahead in index..<min(count, index + 4) { reader.startChunk(ahead) }
                    let (buffer, available) = try await reader.wholeChunk(index)
                    let expected = Int(min(chunk, item.size - index * chunk))
                    guard available == expected else { throw DriveFSError(errno: EIO, "short read while fetching \(item.name)") }
                    try buffer.withBytes(0..<available) { try staged.fill($0, at: index * chunk) }
                }
            }
        } catch {
            staged.remove()
            handles.withLock { $0.staging[record.inode] = nil }
            throw error
        }
        handles.withLock { handles in
            handles.staged[record.inode] = staged
            handles.staging[record.inode] = nil
        }
        inodes.addLookups([record.inode])
        return staged
    }

    // MARK: - Writing

    public func write(inode: InodeNumber, handle: UInt64, offset: Int64, data: UnsafeRawBufferPointer) throws -> Int {
        guard let file = handles.withLock({ $0.files[handle] }), file.writes else { throw DriveFSError.badHandle }
        guard let staged = file.staged else { throw WriteNeedsPreparation() }
        return try staged.write(data, at: offset, append: file.append, now: now())
    }

    public func setattr(inode: InodeNumber, changes: AttributeChanges) async throws -> AttributeReply {
        do {
            guard let record = inodes.record(inode) else { throw DriveFSError.notFound }
            if let size = changes.size {
                try checkWritable()
                guard !record.item.isFolder else { throw DriveFSError.isDirectory }
                guard size >= 0 else { throw DriveFSError.invalid }
                guard size <= Self.maximumFileSize else { throw DriveFSError(errno: EFBIG, "\(size) bytes is more than a drive file can hold") }
                var open = changes.handle.flatMap { handle in handles.withLock { $0.files[handle] } }
                if let handle = changes.handle, let file = open, file.writes, file.staged == nil {
                    try await prepareWrite(inode: inode, handle: handle, truncating: size == 0)
                    open = handles.withLock { $0.files[handle] }
                }
                if let open, open.writes, let staged = open.staged {
                    try staged.truncate(to: size, now: now())
                } else {
                    // truncate(2) by path: a writer for the moment; upload unless another writer will.
                    let staged = try await acquireWriter(record, truncate: size == 0)
                    let result = Result { if staged.snapshot.size != size { try staged.truncate(to: size, now: now()) } }
                    let last = staged.update { state in
                        state.writers -= 1
                        return state.writers == 0
                    }
                    try result.get()
                    if last {
                        try await commit(inode)
                        dropIfClean(inode, staged)
                    }
                }
            }
            if let modified = changes.modified, !record.item.isFolder {
                // Kept for the content the drive has now, and for the staged content once it
                // is uploaded (a later write makes the time "now" again).
                let staged = handles.withLock { $0.staged[inode] }
                staged?.update { ($0.modified, $0.explicitModified) = (modified, true) }
                if staged?.isDirty != true, let current = inodes.record(inode)?.item, !current.fileID.hasPrefix(Self.localPrefix) {
                    times.set(modified, for: current)
                }
            }
            // Mode, owner and times of server content are not stored by the drive: accepted, unchanged.
            return AttributeReply(attributes: attributes(inodes.record(inode) ?? record), timeout: configuration.directoryCacheTTL)
        } catch {
            throw DriveFSError(error)
        }
    }

    public func flush(inode: InodeNumber, handle: UInt64) async throws {
        guard let file = handles.withLock({ $0.files[handle] }), file.writes, let staged = file.staged, staged.isDirty else { return }
        // The shell's `> file` opens, dup2s and closes the first descriptor before anything
        // is written: a new file still empty is left to its last release (which uploads it)
        // instead of being uploaded empty and replaced a moment later.
        let state = staged.snapshot
        if state.item.fileID.hasPrefix(Self.localPrefix), state.size == 0 { return }
        do {
            try await commit(inode)
        } catch {
            throw DriveFSError(error)
        }
    }

    public func fsync(inode: InodeNumber, handle: UInt64, dataOnly: Bool) async throws {
        guard let staged = handles.withLock({ $0.staged[inode] }), staged.isDirty else { return }
        do {
            try await commit(inode)
        } catch {
            throw DriveFSError(error)
        }
    }

    /// After the last writer closed: upload if a flush did not, then drop the staging
    /// file once the server has its content.
    func finishWriting(_ inode: InodeNumber, _ staged: StagedFile) async {
        guard staged.snapshot.writers == 0 else { return }
        if staged.isDirty { _ = try? await commit(inode) }
        dropIfClean(inode, staged)
    }

    /// Forgets a staging file nobody writes and the server has (or that was unlinked).
    func dropIfClean(_ inode: InodeNumber, _ staged: StagedFile) {
        let dropped = handles.withLock { handles in
            guard handles.staged[inode] === staged, !staged.isDirty, staged.snapshot.writers == 0, handles.commits[inode] == nil else {
                return false
            }
            handles.staged[inode] = nil
            return true
        }
        guard dropped else { return }
        // Readers still holding it keep reading through its open descriptor.
        staged.remove()
        inodes.forget(inode, count: 1)
    }

    // MARK: - Uploading

    /// Runs `work` after every earlier piece of server work on this inode. A caller that
    /// is cancelled (an interrupted `close`) stops waiting; the work itself goes on.
    func serialized(_ inode: InodeNumber, _ work: @escaping @Sendable () async throws -> Void) async throws {
        let task: Task<Void, any Error> = handles.withLock { handles in
            let previous = handles.commits[inode]?.task
            let id = handles.nextCommit
            handles.nextCommit += 1
            let task = Task {
                _ = await previous?.result
                let result: Result<Void, any Error>
                do { result = .success(try await work()) } catch { result = .failure(error) }
                // The chain forgets a link before its waiters hear of it (dropIfClean checks).
                self.handles.withLock { handles in
                    if handles.commits[inode]?.id == id { handles.commits[inode] = nil }
                }
                try result.get()
            }
            handles.commits[inode] = (id, task)
            return task
        }
        try await cancellableValue(of: task)
    }

    /// Uploads the inode's content if it is dirty. A failure leaves the content staged and
    /// schedules background retries (unless `retry` is false: the retry loop itself).
    func commit(_ inode: InodeNumber, retry: Bool = true) async throws {
        do {
            try await serialized(inode) { try await self.upload(inode) }
        } catch {
            if retry { scheduleRetry(inode) }
            throw error
        }
    }

    private func upload(_ inode: InodeNumber) async throws {
        // Content that changes while it is being sent (a writer on another descriptor, a
        // truncate) fails the upload or its final check: start over with the new content,
        // a few times, before calling it a failure.
        for attempt in 1... {
            guard let staged = handles.withLock({ $0.staged[inode] }), staged.isDirty else { return }
            let version = staged.snapshot.version
            if staged.snapshot.refusedVersion == version {
                // Refused for good already: the same answer, without asking the server again.
                throw DriveFSError(errno: EFBIG, "\(displayPath(staged.snapshot.item)) exceeds the drive's per-file size limit")
            }
            do {
                try await upload(inode, staged)
                return
            } catch where staged.snapshot.version != version && attempt < 4 {
                logger.debug("upload: \(displayPath(staged.snapshot.item)) changed while being sent; starting over")
            }
        }
    }

    private func upload(_ inode: InodeNumber, _ staged: StagedFile) async throws {
        let start = staged.snapshot
        let item = start.item
        let replaces = item.fileID.hasPrefix(Self.localPrefix) ? nil : item.fileID
        let path = displayPath(item)
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
        switch staged.hashStatus {
        case .gaveUp:
            staged.sync()
            try journal.record(entry, durable: true)
            source = .unknown
        case .done(let hash, let size):
            (entry.size, entry.contentHash, entry.unsyncedBoot) = (size, hash, UploadJournal.bootID ?? "unknown")
            latest.set(entry)
            try journal.record(entry, durable: false)
            source = .known(hash)
        case .following:
            (entry.size, entry.unsyncedBoot) = (start.size, UploadJournal.bootID ?? "unknown")
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
            let (activity, id) = (uploads, staged.id)
            activity.started(id, path: path, size: start.size)
            options.progress = { activity.sent(id, bytes: $0) }
            result = try await service.upload(path: staged.path, parentID: item.parentID, name: item.name, options: options, contentHash: source)
        } catch {
            staged.releaseReservation()
            // It stays pending: now it must survive a system crash too. Synced content
            // whose hash is not known (the upload stopped before it was needed) is trusted
            // as it is, like content the follower gave up on.
            var final = latest.value
            if final.unsyncedBoot != nil {
                if final.contentHash == nil {
                    if let hashed = await staged.contentHash() {
                        (final.size, final.contentHash) = (hashed.size, hashed.hash)
                    } else {
                        (final.size, final.unsyncedBoot) = (nil, nil)
                    }
                }
                staged.sync()
                try? journal.record(final, durable: true)
            }
            let mapped = DriveFSError(error)
            uploads.failed(staged.id, path: path, error: mapped.description)
            if staged.snapshot.version == start.version {
                if mapped.errno == EFBIG {
                    // Retrying cannot help until the content changes (or the account's limit does: next mount).
                    staged.update { $0.refusedVersion = start.version }
                    logger.error("upload: \(path) failed: \(mapped.description); content kept, not retried until it changes")
                } else {
                    logger.error("upload: \(path) failed: \(mapped.description); content kept, will retry")
                }
            }
            throw error
        }
        var uploaded = result.item
        uploaded.parentID = item.parentID
        uploaded.name = item.name
        // The previous version goes only now that the new content is complete.
        if let replaces { await trashReplaced(replaces, path: path) }
        let now = staged.update { state in
            state.uploadedVersion = start.version
            state.item = uploaded
            return state
        }
        // A time set with utimes stays the file's time (unless it was written since).
        if let replaces { times.remove(fileID: replaces) }
        if now.explicitModified && now.version == start.version { times.set(now.modified, for: uploaded) }
        inodes.replace(inode, with: uploaded)
        directories.uploaded(uploaded, replacing: item.fileID)
        journal.remove(id: staged.id)
        uploads.succeeded(staged.id)
        space.withLock { $0 = nil }
        let size = Self.formatSize(start.size)
        if result.rapid {
            logger.info("rapid upload: \(path) (\(size)) — 0 bytes sent")
        } else {
            logger.info("upload: \(path) (\(size)) — \(result.bytesSent) bytes sent")
        }
    }

    func trashReplaced(_ fileID: String, path: String) async {
        do {
            try await trashWhenUnread(fileID, path: path)
        } catch {
            logger.warning("upload: \(path): the previous version (\(fileID)) could not be moved to the trash: \(DriveFSError(error).description)")
        }
    }

    /// Retries a failed upload in the background, the delay doubling up to 60 s, until it
    /// succeeds or the content no longer needs it (unlinked, or uploaded by a later flush).
    func scheduleRetry(_ inode: InodeNumber) {
        guard handles.withLock({ $0.retrying.insert(inode).inserted }) else { return }
        let first = configuration.uploadRetryDelay
        Task {
            var delay = first
            while true {
                try? await Task.sleep(for: .seconds(delay))
                guard let staged = handles.withLock({ $0.staged[inode] }), staged.isRetryable else { break }
                do {
                    try await commit(inode, retry: false)
                    dropIfClean(inode, staged)
                    break
                } catch {
                    delay = min(60, delay * 2)
                }
            }
            _ = handles.withLock { $0.retrying.remove(inode) }
        }
    }

    /// The paths of files whose content the drive does not have yet, sorted.
    public func pendingUploadPaths() -> [String] {
        handles.withLock { $0.staged.values.filter(\.isDirty) }.map { displayPath($0.snapshot.item) }.sorted()
    }

    /// Waits up to `timeout` seconds for every pending upload (at unmount) and returns the
    /// paths of those still pending; a cancelled caller gets them at once.
    public func drain(timeout: Double) async -> [String] {
        let deadline = ContinuousClock.now + .seconds(timeout)
        // Each file is tried again after a pause that doubles from 1 s to 8 s, not hammered.
        var nextAttempt: [InodeNumber: (at: ContinuousClock.Instant, pause: Duration)] = [:]
        while true {
            let dirty = handles.withLock { handles in
                handles.staged.filter { $0.value.isDirty }.map { (inode: $0.key, staged: $0.value, busy: handles.commits[$0.key] != nil) }
            }
            if dirty.isEmpty { return [] }
            // Content the drive refused for good is not waited for.
            let waiting = dirty.filter { $0.staged.isRetryable }
            if waiting.isEmpty || ContinuousClock.now >= deadline || Task.isCancelled {
                return dirty.map { displayPath($0.staged.snapshot.item) }.sorted()
            }
            let now = ContinuousClock.now
            for file in waiting where !file.busy && nextAttempt[file.inode].map({ now >= $0.at }) ?? true {
                let pause = min((nextAttempt[file.inode]?.pause ?? .milliseconds(500)) * 2, .seconds(8))
                nextAttempt[file.inode] = (now + pause, pause)
                Task { _ = try? await self.commit(file.inode, retry: false) }
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    // MARK: - Names

    public func mkdir(parent: InodeNumber, name: String, mode: UInt32) async throws -> Entry {
        do {
            try checkWritable()
            try checkName(name)
            let (folder, existing) = try await child(parent, name)
            guard existing == nil else { throw DriveFSError.exists }
            let item = try await service.createFolder(parentID: folder.item.fileID, name: name)
            directories.update(folder.item.fileID) { $0.append(item) }
            directories.seedEmpty(item.fileID)
            return entry(inodes.inode(for: item, addingLookups: 1))
        } catch {
            throw DriveFSError(error)
        }
    }

    public func rmdir(parent: InodeNumber, name: String) async throws {
        do {
            try checkName(name)
            try checkWritable()
            let (folder, found) = try await child(parent, name)
            guard let item = found else { throw DriveFSError.notFound }
            guard item.isFolder else { throw DriveFSError.notDirectory }
            try await checkEmpty(item)
            try await service.trash(fileID: item.fileID)
            directories.update(folder.item.fileID) { $0.removeAll { $0.fileID == item.fileID } }
            directories.invalidate(item.fileID)
        } catch {
            throw DriveFSError(error)
        }
    }

    public func unlink(parent: InodeNumber, name: String) async throws {
        do {
            try checkName(name)
            try checkWritable()
            let (_, found) = try await child(parent, name)
            guard let item = found else { throw DriveFSError.notFound }
            guard !item.isFolder else { throw DriveFSError.isDirectory }
            try await remove(item)
        } catch {
            throw DriveFSError(error)
        }
    }

    public func rename(parent: InodeNumber, name: String, newParent: InodeNumber, newName: String, flags: UInt32) async throws {
        do {
            try checkName(name)
            try checkName(newName)
            try checkWritable()
            if flags & RenameFlag.exchange != 0 { throw DriveFSError.invalid }
            let (_, found) = try await child(parent, name)
            guard let source = found else { throw DriveFSError.notFound }
            let (destination, target) = try await child(newParent, newName)
            if let target {
                if target.fileID == source.fileID { return }
                if flags & RenameFlag.noReplace != 0 { throw DriveFSError.exists }
                if target.isFolder, !source.isFolder { throw DriveFSError.isDirectory }
                if !target.isFolder, source.isFolder { throw DriveFSError.notDirectory }
                // The replaced entry goes to the trash (recoverable there) before the name is free.
                if target.isFolder {
                    try await checkEmpty(target)
                    try await service.trash(fileID: target.fileID)
                    directories.update(destination.item.fileID) { $0.removeAll { $0.fileID == target.fileID } }
                } else {
                    try await remove(target)
                }
            }
            try await onFileChain(source) { current, staged, inode in
                try await self.relocate(current, staged: staged, inode: inode, to: destination.item.fileID, name: newName)
            }
        } catch {
            throw DriveFSError(error)
        }
    }

    /// Runs `work` with the current item: on the inode's chain when it has local content
    /// (so it cannot overlap an upload), else directly.
    private func onFileChain(
        _ item: DriveItem, _ work: @escaping @Sendable (DriveItem, StagedFile?, InodeNumber?) async throws -> Void
    ) async throws {
        let inode = inodes.inode(ofFileID: item.fileID)
        guard let inode, let staged = handles.withLock({ $0.staged[inode] }) else {
            // The listing's item may be older than the inode's (a new file uploaded since
            // it was looked up has a server id now): act on the current one.
            try await work(inode.flatMap { inodes.record($0)?.item } ?? item, nil, inode)
            return
        }
        try await serialized(inode) { try await work(staged.snapshot.item, staged, inode) }
        dropIfClean(inode, staged)
    }

    /// Unlinks a file: to the trash if it is on the server; local content is never uploaded.
    private func remove(_ item: DriveItem) async throws {
        try await onFileChain(item) { current, staged, _ in
            if current.fileID.hasPrefix(Self.localPrefix) {
                self.directories.setLocal(current, in: current.parentID, remove: true)
            } else {
                try await self.trashWhenUnread(current.fileID, path: self.displayPath(current))
                self.directories.update(current.parentID) { $0.removeAll { $0.fileID == current.fileID } }
            }
            if let staged {
                staged.update { $0.unlinked = true }
                self.journal.remove(id: staged.id)
                self.uploads.dropped(staged.id)
            }
            if let inode = self.inodes.inode(ofFileID: current.fileID) { self.inodes.markUnlinked(inode) }
        }
        space.withLock { $0 = nil }
    }

    /// The hidden folder at the drive's root where files unlinked while open wait for their
    /// last reader.
    static let unlinkedFolderName = ".adrivefs-unlinked"

    /// Trashes a file that is gone from its folder — at once, or, while descriptors on this
    /// mount still read its content, once the last of them closes (POSIX: an open file
    /// outlives its name). Meanwhile it waits in `/.adrivefs-unlinked` (its name is free at
    /// once, and no listing shows it); one left there by a crash goes to the trash a day
    /// later, swept by a mount.
    func trashWhenUnread(_ fileID: String, path: String) async throws {
        let open = handles.withLock { handles in handles.files.values.contains { $0.reader?.item.fileID == fileID } }
        guard open else {
            try await service.trash(fileID: fileID)
            return
        }
        do {
            let folder = try await unlinkedFolder()
            try await service.move(fileID: fileID, toParentID: folder, newName: String(fileID.prefix(12)) + "-" + URL(fileURLWithPath: path).lastPathComponent)
            handles.withLock { $0.deferredTrash[fileID] = path }
            logger.debug("\(path): still open here; it goes to the trash when the last reader closes")
            // Closed meanwhile?
            trashIfLastReader(fileID)
        } catch {
            logger.warning("\(path): could not keep the unlinked file for its open readers (\(DriveFSError(error).description)); moving it to the trash now")
            try await service.trash(fileID: fileID)
        }
    }

    /// `/.adrivefs-unlinked`, made on first need.
    private func unlinkedFolder() async throws -> String {
        if let existing = try await directories.listing("root").byName[Self.unlinkedFolderName], existing.isFolder { return existing.fileID }
        do {
            let folder = try await service.createFolder(parentID: "root", name: Self.unlinkedFolderName)
            directories.update("root") { $0.append(folder) }
            return folder.fileID
        } catch let error as DriveError where error.code.hasPrefix("AlreadyExist") {
            directories.invalidate("root")
            guard let existing = try await directories.listing("root").byName[Self.unlinkedFolderName] else { throw error }
            return existing.fileID
        }
    }

    /// At mount: what a crashed mount left in `/.adrivefs-unlinked` a day ago or earlier
    /// goes to the trash.
    public func sweepUnlinked() async {
        guard !configuration.readOnly else { return }
        do {
            guard let folder = try await directories.listing("root").byName[Self.unlinkedFolderName], folder.isFolder else { return }
            let stale = try await service.list(folderID: folder.fileID).filter { now() - $0.updatedAt > 86_400 }
            for item in stale { try await service.trash(fileID: item.fileID) }
            if !stale.isEmpty { logger.info("moved \(stale.count) file(s) unlinked while open by an earlier mount to the trash") }
        } catch {
            logger.warning("could not sweep /\(Self.unlinkedFolderName): \(DriveFSError(error).description)")
        }
    }

    /// After a release: trashes a file whose trash waited for its last reader.
    func trashIfLastReader(_ fileID: String) {
        let path = handles.withLock { handles -> String? in
            guard handles.deferredTrash[fileID] != nil, !handles.files.values.contains(where: { $0.reader?.item.fileID == fileID }) else { return nil }
            return handles.deferredTrash.removeValue(forKey: fileID)
        }
        guard let path else { return }
        Task { await trashDeferred(fileID, path: path) }
    }

    private func trashDeferred(_ fileID: String, path: String) async {
        do {
            try await service.trash(fileID: fileID)
        } catch {
            logger.warning("\(path): could not move the unlinked file to the trash: \(DriveFSError(error).description)")
        }
    }

    /// At unmount: the trashes still waiting for readers (their descriptors are gone now).
    public func trashDeferredFiles() async {
        let pending = handles.withLock { handles in
            defer { handles.deferredTrash = [:] }
            return handles.deferredTrash
        }
        for (fileID, path) in pending { await trashDeferred(fileID, path: path) }
    }

    private func relocate(_ item: DriveItem, staged: StagedFile?, inode: InodeNumber?, to folderID: String, name: String) async throws {
        var moved = item
        if item.fileID.hasPrefix(Self.localPrefix) {
            directories.setLocal(item, in: item.parentID, remove: true)
        } else if folderID == item.parentID {
            moved = try await service.rename(fileID: item.fileID, to: name)
        } else {
            try await service.move(fileID: item.fileID, toParentID: folderID, newName: name == item.name ? nil : name)
        }
        moved.fileID = item.fileID
        moved.parentID = folderID
        moved.name = name
        if moved.fileID.hasPrefix(Self.localPrefix) {
            directories.setLocal(moved, in: folderID)
        } else {
            directories.update(item.parentID) { $0.removeAll { $0.fileID == item.fileID } }
            directories.update(folderID) { items in
                items.removeAll { $0.fileID == item.fileID }
                items.append(moved)
            }
        }
        staged?.update { $0.item = moved }
        if let inode { inodes.replace(inode, with: moved) }
    }

    // MARK: - Helpers

    func checkWritable() throws {
        if configuration.readOnly { throw DriveFSError.readOnly }
    }

    func checkName(_ name: String) throws {
        if name.utf8.count > Self.maximumNameLength { throw DriveFSError.nameTooLong }
    }

    /// A folder and the entry named `name` in it, if any.
    private func child(_ parent: InodeNumber, _ name: String) async throws -> (folder: InodeTable.Record, item: DriveItem?) {
        let folder = try folderRecord(parent)
        let listing = try await directories.listing(folder.item.fileID)
        return (folder, listing.byName[name])
    }

    /// ENOTEMPTY unless a fresh listing of the folder is empty.
    private func checkEmpty(_ folder: DriveItem) async throws {
        directories.invalidate(folder.fileID)
        guard try await directories.listing(folder.fileID).entries.isEmpty else { throw DriveFSError.notEmpty }
    }

    /// `a/b/c.txt`, relative to the mount, for logs.
    func displayPath(_ item: DriveItem) -> String {
        var parts = [item.name]
        var parent = item.parentID
        while parent != configuration.rootID, parts.count < 64 {
            guard let inode = inodes.inode(ofFileID: parent), let record = inodes.record(inode) else {
                parts.append("…")
                break
            }
            parts.append(record.item.name)
            parent = record.item.parentID
        }
        return parts.reversed().joined(separator: "/")
    }

    /// `3.1 KiB`, `1.2 GiB`: sizes as logs and `adrivefs status` show them.
    public static func formatSize(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f", value) + " " + units[unit]
    }
}

/// The journal entry of an upload in progress, completed by the hash follower's result.
final class JournalEntryBox: Sendable {
    private let entry: Mutex<UploadJournal.Entry>

    init(_ entry: UploadJournal.Entry) { self.entry = Mutex(entry) }

    var value: UploadJournal.Entry { entry.withLock { $0 } }

    func set(_ value: UploadJournal.Entry) { entry.withLock { $0 = value } }

    /// Changes the entry and returns the result.
    func update(_ change: (inout UploadJournal.Entry) -> Void) -> UploadJournal.Entry {
        entry.withLock { entry in
            change(&entry)
            return entry
        }
    }
}
