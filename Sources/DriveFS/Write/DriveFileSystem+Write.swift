import AliyunDrive
import Foundation
public import FUSE
import Glibc

/// Writing: files are written into local content (a staging file) and uploaded on
/// `flush`, `fsync` and the last `release` (see README "Semantics"). Each inode with local
/// content has one `FileWriter`; what happens to it is its `FileLifecycle`'s decision, and
/// this extension carries the decisions out (`perform`).
extension DriveFileSystem: WritableFileSystem {
    /// The longest name the drive takes, in UTF-8 bytes.
    static let maximumNameLength = 1024
    /// The largest file an upload can carry: 10,000 parts of at most 5 GB (the account's own
    /// limit is usually lower; the drive answers that with EFBIG at upload).
    static let maximumFileSize: Int64 = 10_000 * 5_000_000_000

    // MARK: - Creating and opening

    public func create(parent: InodeNumber, name: String, mode: UInt32, flags: Int32) async throws -> (Entry, OpenReply) {
        let (record, lease) = try await createLocal(parent: parent, name: name)
        // A new file written through a write-only descriptor (cp, shell redirects) skips
        // the kernel's page cache: one copy of the data fewer. Readers opened meanwhile
        // bypass it too, so nothing cached goes stale.
        let direct = flags & O_ACCMODE == O_WRONLY
        let file = OpenFile(staged: lease.writer.content, lease: lease, writes: true, append: flags & O_APPEND != 0, inode: record.inode, directIO: direct)
        return (entry(record), OpenReply(handle: open.add(file), keepCache: false, directIO: direct))
    }

    public func mknod(parent: InodeNumber, name: String, mode: UInt32) async throws -> Entry {
        let (record, lease) = try await createLocal(parent: parent, name: name)
        // No handle, so no flush will come: the release uploads the empty file now.
        try await endLease(lease, throwing: true)
        return entry(inodes.record(record.inode) ?? record)
    }

    /// A new, empty, dirty file with a local id, visible in its folder at once; leased.
    private func createLocal(parent: InodeNumber, name: String) async throws -> (InodeTable.Record, WriteLease) {
        try checkWritable()
        try checkName(name)
        let (folder, existing) = try await child(parent, name)
        try checkWritable(folder.item.fileID)
        guard existing == nil else { throw DriveFSError.exists }
        let current = now()
        let item = DriveItem(
            fileID: "", parentID: folder.item.fileID, name: name, isFolder: false, size: 0, contentHash: nil, createdAt: current,
            updatedAt: current)
        let content = try StagedFile(directory: try own.staging(), modified: FileTime(current), hasher: hasher)
        let id = UUID()
        // The kernel's lookup; the writer adds its own.
        let record = inodes.inode(for: Child(local: id, item: item), addingLookups: 1)
        let lease = writers.install(FileWriter(inode: record.inode, content: content, new: true, deferred: configuration.writeBackDelay > 0))
        directories.setLocal(id, item, in: folder.item.fileID)
        return (record, lease)
    }

    /// `open` with write access or `O_TRUNC`: the handle writes into the inode's local
    /// content. The drive's content is fetched into it only when the handle first changes
    /// the file: `touch`, or a program that opens read-write and only reads, fetches nothing.
    func openForWriting(_ record: InodeTable.Record, flags: Int32) async throws -> OpenReply {
        try checkWritable(record.item.fileID)
        let truncate = flags & O_TRUNC != 0
        var lease: WriteLease?
        if truncate || record.item.size == 0 || writers.writer(record.inode) != nil {
            lease = try await self.lease(record, truncate: truncate)
        }
        // Until it has local content, the handle reads like a read-only one.
        let reader = lease == nil ? FileReader(item: record.item, service: service, cache: chunks, disk: disk, configuration: configuration) : nil
        _ = open.serve(record.inode, hash: nil)
        let file = OpenFile(reader: reader, staged: lease?.writer.content, lease: lease, writes: true, append: flags & O_APPEND != 0, inode: record.inode)
        let (handle, added) = open.add(file) { others, file in
            // Write-only and alone (cp over an existing file): bypass the page cache, as in create.
            file.directIO = others.isEmpty && flags & O_ACCMODE == O_WRONLY
        }
        return OpenReply(handle: handle, keepCache: false, directIO: added.directIO)
    }

    /// Gives a writing handle opened without content its lease: local content filled with
    /// the drive's, or empty when `truncating` to zero.
    public func prepareWrite(inode: InodeNumber, handle: UInt64) async throws {
        try await prepareWrite(inode: inode, handle: handle, truncating: false)
    }

    private func prepareWrite(inode: InodeNumber, handle: UInt64, truncating: Bool) async throws {
        guard let file = open.file(handle), file.writes else { throw DriveFSError.badHandle }
        if file.lease != nil { return }
        guard let record = inodes.record(inode) else { throw DriveFSError.notFound }
        let lease = try await self.lease(record, truncate: truncating)
        let attached = open.update(handle) { file in
            guard file.lease == nil else { return false }
            (file.lease, file.staged) = (lease, lease.writer.content)
            return true
        }
        if !attached {
            // Released meanwhile, or a concurrent write of the same handle got there first.
            await endLease(lease)
            if open.file(handle) == nil { throw DriveFSError.badHandle }
        }
    }

    // MARK: - Changing

    public func write(inode: InodeNumber, handle: UInt64, offset: Int64, data: UnsafeRawBufferPointer) throws -> Int {
        guard let file = open.file(handle), file.writes else { throw DriveFSError.badHandle }
        guard let lease = file.lease else { throw WriteNeedsPreparation() }
        return try lease.writer.write(data, at: offset, append: file.append, now: now())
    }

    public func setattr(inode: InodeNumber, changes: AttributeChanges) async throws -> AttributeReply {
        guard let record = inodes.record(inode) else { throw DriveFSError.notFound }
        if let size = changes.size { try await truncate(record, to: size, handle: changes.handle) }
        if changes.modified != nil { try checkWritable(record.item.fileID) }
        if let modified = changes.modified, !record.item.isFolder {
            // Kept for the content the drive has now, and for the local content once it is
            // uploaded (a later write makes the time "now" again).
            let writer = writers.writer(inode)
            writer?.content.update { ($0.modified, $0.explicitModified) = (modified, true) }
            if writer?.state.isDirty != true, let current = inodes.record(inode), current.id.serverID != nil {
                times.set(modified, for: current.item)
            }
        }
        // Mode, owner and times of drive content are not stored by the drive: accepted, unchanged.
        return AttributeReply(attributes: attributes(inodes.record(inode) ?? record), timeout: configuration.directoryCacheTTL)
    }

    private func truncate(_ record: InodeTable.Record, to size: Int64, handle: UInt64?) async throws {
        try checkWritable(record.item.fileID)
        guard !record.item.isFolder else { throw DriveFSError.isDirectory }
        guard size >= 0 else { throw DriveFSError.invalid }
        guard size <= Self.maximumFileSize else { throw DriveFSError(errno: EFBIG, "\(size) bytes is more than a drive file can hold") }
        if let handle, let file = open.file(handle), file.writes {
            if file.lease == nil { try await prepareWrite(inode: record.inode, handle: handle, truncating: size == 0) }
            if let lease = open.file(handle)?.lease {
                try lease.writer.truncate(to: size, now: now())
                return
            }
        }
        // truncate(2) by path: a writer for the moment; its release uploads unless another writer will.
        let lease = try await self.lease(record, truncate: size == 0)
        let result = Result { if lease.writer.content.size != size { try lease.writer.truncate(to: size, now: now()) } }
        try await endLease(lease, throwing: true)
        try result.get()
    }

    // MARK: - Committing

    public func flush(inode: InodeNumber, handle: UInt64) async throws {
        guard let file = open.file(handle), file.writes, let writer = file.lease?.writer else { return }
        // The shell's `> file` opens, dup2s and closes the first descriptor before anything
        // is written: a new file still empty is left to its last release (which uploads it)
        // instead of being uploaded empty and replaced a moment later.
        if inodes.record(inode)?.id.isLocal == true, writer.content.size == 0 { return }
        try await perform(writer.handle(.flushed), writer)
    }

    public func fsync(inode: InodeNumber, handle: UInt64, dataOnly: Bool) async throws {
        guard let writer = writers.writer(inode) else { return }
        try await perform(writer.handle(.fsynced), writer)
    }

    /// Ends a writer's lease and does what its release calls for (an upload by the last
    /// writer: its failure is thrown only if `throwing`; a retry is queued either way).
    func endLease(_ lease: WriteLease) async { try? await endLease(lease, throwing: false) }

    func endLease(_ lease: WriteLease, throwing: Bool) async throws {
        guard let actions = lease.end() else { return }
        do {
            try await perform(actions, lease.writer)
        } catch {
            if throwing { throw error }
        }
    }

    /// EROFS on a read-only mount, and for changes of shared entries (`ids`: the entries
    /// and folders a change touches).
    func checkWritable(_ ids: String...) throws {
        if configuration.readOnly || ids.contains(where: SharedID.isShared) { throw DriveFSError.readOnly }
    }

    func checkName(_ name: String) throws {
        if name.utf8.count > Self.maximumNameLength { throw DriveFSError.nameTooLong }
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
