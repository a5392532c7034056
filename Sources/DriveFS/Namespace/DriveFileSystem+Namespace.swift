import AliyunDrive
public import FUSE
import Glibc

/// Names: mkdir, rmdir, unlink, rename. They go to the drive at once; a file with local
/// content is renamed or unlinked on its writer's queue, so never under its own upload.
extension DriveFileSystem {
    public func mkdir(parent: InodeNumber, name: String, mode: UInt32) async throws -> Entry {
        try checkWritable()
        try checkName(name)
        let (folder, existing) = try await child(parent, name)
        try checkWritable(folder.item.fileID)
        guard existing == nil else { throw DriveFSError.exists }
        let item = try await service.createFolder(parentID: folder.item.fileID, name: name)
        directories.update(folder.item.fileID) { $0.append(item) }
        directories.seedEmpty(item.fileID)
        return entry(inodes.inode(for: item, addingLookups: 1))
    }

    public func rmdir(parent: InodeNumber, name: String) async throws {
        try checkName(name)
        try checkWritable()
        let (folder, found) = try await child(parent, name)
        guard let item = found?.item else { throw DriveFSError.notFound }
        try checkWritable(folder.item.fileID, item.fileID)
        guard item.isFolder else { throw DriveFSError.notDirectory }
        try await checkEmpty(item)
        try await service.trash(fileID: item.fileID)
        directories.update(folder.item.fileID) { $0.removeAll { $0.fileID == item.fileID } }
        directories.invalidate(item.fileID)
    }

    public func unlink(parent: InodeNumber, name: String) async throws {
        try checkName(name)
        try checkWritable()
        let (folder, found) = try await child(parent, name)
        guard let found else { throw DriveFSError.notFound }
        try checkWritable(folder.item.fileID, found.item.fileID)
        guard !found.item.isFolder else { throw DriveFSError.isDirectory }
        try await remove(found)
    }

    public func rename(parent: InodeNumber, name: String, newParent: InodeNumber, newName: String, flags: UInt32) async throws {
        try checkName(name)
        try checkName(newName)
        try checkWritable()
        if flags & RenameFlag.exchange != 0 { throw DriveFSError.invalid }
        let (origin, found) = try await child(parent, name)
        guard let source = found else { throw DriveFSError.notFound }
        let (destination, target) = try await child(newParent, newName)
        try checkWritable(origin.item.fileID, source.item.fileID, destination.item.fileID)
        if let target {
            if target.id == source.id { return }
            if flags & RenameFlag.noReplace != 0 { throw DriveFSError.exists }
            if target.item.isFolder, !source.item.isFolder { throw DriveFSError.isDirectory }
            if !target.item.isFolder, source.item.isFolder { throw DriveFSError.notDirectory }
            // The replaced entry goes to the trash (recoverable there) before the name is free.
            if target.item.isFolder {
                try await checkEmpty(target.item)
                try await service.trash(fileID: target.item.fileID)
                directories.update(destination.item.fileID) { $0.removeAll { $0.fileID == target.item.fileID } }
            } else {
                try await remove(target)
            }
        }
        try await onFileQueue(source) { target in
            try await self.relocate(target, to: destination.item.fileID, name: newName)
        }
    }

    /// What a name operation acts on: the file, its current item, and its inode if it has one.
    struct Target: Sendable {
        var id: FileID
        var item: DriveItem
        var inode: InodeNumber?
    }

    /// Runs `work` on the file's current state: on its writer's queue when it has local
    /// content (so it cannot overlap an upload), else directly. The listing's item may be
    /// older than the inode's (a new file uploaded since it was looked up has a drive id
    /// now): the inode's is the one acted on.
    private func onFileQueue(_ child: Child, _ work: @escaping @Sendable (Target) async throws -> Void) async throws {
        guard let inode = inodes.inode(of: child.id) else {
            // No inode: a drive file nobody looked up.
            try await work(Target(id: child.id, item: child.item))
            return
        }
        let current = { @Sendable in self.inodes.record(inode).map { Target(id: $0.id, item: $0.item, inode: inode) } ?? Target(id: child.id, item: child.item) }
        guard let writer = writers.writer(inode) else { return try await work(current()) }
        try await writer.queue.run { try await work(current()) }
    }

    /// Unlinks a file: to the trash if the drive has it; local content is never uploaded.
    private func remove(_ child: Child) async throws {
        try await onFileQueue(child) { target in
            if case .local(let id) = target.id {
                self.directories.setLocal(id, target.item, in: target.item.parentID, remove: true)
            } else {
                try await self.deferredTrash.trashWhenUnread(target.item.fileID, path: self.uploader.path(target.item))
                self.directories.update(target.item.parentID) { $0.removeAll { $0.fileID == target.item.fileID } }
            }
            guard let inode = target.inode else { return }
            self.inodes.markUnlinked(inode)
            if let writer = self.writers.writer(inode) { try await self.perform(writer.handle(.unlinked), writer) }
        }
        space.invalidate()
    }

    private func relocate(_ target: Target, to folderID: String, name: String) async throws {
        let item = target.item
        var moved = item
        if case .local(let id) = target.id {
            directories.setLocal(id, item, in: item.parentID, remove: true)
        } else if folderID == item.parentID {
            moved = try await service.rename(fileID: item.fileID, to: name)
        } else {
            try await service.move(fileID: item.fileID, toParentID: folderID, newName: name == item.name ? nil : name)
        }
        moved.fileID = item.fileID
        moved.parentID = folderID
        moved.name = name
        if case .local(let id) = target.id {
            directories.setLocal(id, moved, in: folderID)
        } else {
            directories.update(item.parentID) { $0.removeAll { $0.fileID == item.fileID } }
            directories.update(folderID) { items in
                items.removeAll { $0.fileID == item.fileID }
                items.append(moved)
            }
        }
        if let inode = target.inode {
            inodes.replace(inode, with: moved)
            // Write-back: the queued upload's journal entry names the new place.
            if let writer = writers.writer(inode), writeBack.isPending(writer.id), configuration.writeBackDelay > 0 {
                try? await uploader.stage(writer)
            }
        }
    }

    /// A folder and the entry named `name` in it, if any.
    func child(_ parent: InodeNumber, _ name: String) async throws -> (folder: InodeTable.Record, child: Child?) {
        let folder = try folderRecord(parent)
        let listing = try await directories.listing(folder.item.fileID)
        return (folder, listing.byName[name])
    }

    /// ENOTEMPTY unless a fresh listing of the folder is empty.
    private func checkEmpty(_ folder: DriveItem) async throws {
        directories.invalidate(folder.fileID)
        guard try await directories.listing(folder.fileID).entries.isEmpty else { throw DriveFSError.notEmpty }
    }

    /// At mount: what a crashed mount left in `/.adrivefs-unlinked` a day ago or earlier
    /// goes to the trash.
    public func sweepUnlinked() async {
        guard !configuration.readOnly else { return }
        await deferredTrash.sweep()
    }

    /// At unmount: the trashes still waiting for readers (their descriptors are gone now).
    public func trashDeferredFiles() async { await deferredTrash.flush() }
}
