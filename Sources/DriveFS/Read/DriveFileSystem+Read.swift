import AliyunDrive
public import FUSE
import Glibc

/// Folders and reading: handles over readers of the drive's content (`FileReader`), or
/// over the inode's local content while it has some.
extension DriveFileSystem {
    public func opendir(inode: InodeNumber) async throws -> UInt64 {
        let folder = try folderRecord(inode)
        let listing = try await directories.listing(folder.item.fileID)
        // A snapshot per handle keeps readdir offsets stable while the folder changes.
        var entries: [DirectoryEntry] = [
            DirectoryEntry(name: ".", inode: inode, kind: .directory, offset: 1),
            DirectoryEntry(name: "..", inode: inode, kind: .directory, offset: 2),
        ]
        for (index, child) in listing.entries.enumerated() {
            let record = inodes.inode(for: child.child, addingLookups: 0)
            entries.append(
                DirectoryEntry(
                    name: child.name, inode: record.inode, kind: child.child.item.isFolder ? .directory : .file,
                    offset: UInt64(index + 3), entry: entry(record)))
        }
        return open.addDirectory(entries)
    }

    public func readdir(inode: InodeNumber, handle: UInt64, offset: UInt64, plus: Bool) async throws -> [DirectoryEntry] {
        guard let entries = open.directory(handle) else { throw DriveFSError.badHandle }
        guard offset < UInt64(entries.count) else { return [] }
        return Array(entries[Int(offset)...])
    }

    public func releasedir(inode: InodeNumber, handle: UInt64) async {
        let entries = open.removeDirectory(handle) ?? []
        inodes.prune(entries.dropFirst(2).map(\.inode))
    }

    public func open(inode: InodeNumber, flags: Int32) async throws -> OpenReply {
        guard let record = inodes.record(inode) else { throw DriveFSError.notFound }
        guard !record.item.isFolder else { throw DriveFSError.isDirectory }
        if record.item.blocked { throw DriveFSError(errno: EACCES, "\(record.item.name) is blocked by the service") }
        let writes = flags & O_ACCMODE != O_RDONLY
        if writes || flags & O_TRUNC != 0 {
            return try await openForWriting(record, flags: flags)
        }
        if let writer = writers.writer(inode) {
            _ = open.serve(inode, hash: nil)
            // While a writer bypasses the page cache, so must readers (it would go stale).
            let (handle, file) = open.add(OpenFile(staged: writer.content, inode: inode)) { others, file in
                file.directIO = others.contains { $0.directIO }
            }
            return OpenReply(handle: handle, keepCache: false, directIO: file.directIO)
        }
        await prefetchLinks(from: record)
        let reader = FileReader(item: record.item, service: service, cache: chunks, disk: disk, configuration: configuration)
        service.opened(fileID: record.item.fileID)
        let keep = open.serve(inode, hash: record.item.contentHash ?? "")
        return OpenReply(handle: open.add(OpenFile(reader: reader, inode: inode)), keepCache: keep)
    }

    /// Files of a folder are often read in its order (`grep -r`, `cp -r`, a photo viewer):
    /// opening one asks — in one batch call — for the download links of it and the next
    /// ones that have none yet, instead of one call per file.
    private func prefetchLinks(from record: InodeTable.Record, count: Int = 32) async {
        let item = record.item
        guard item.size > 0, let fileID = record.id.serverID, let listing = try? await directories.listing(item.parentID),
            let index = Self.position(of: record, in: listing)
        else { return }
        let next = listing.entries[index...].lazy.map(\.child).filter { !$0.item.isFolder && $0.item.size > 0 && !$0.id.isLocal }
        let ids = Array(next.prefix(count).compactMap(\.id.serverID))
        await service.prefetchDownloadLinks(fileIDs: ids.first == fileID ? ids : [fileID] + ids)
    }

    /// Where the file stands in its folder's listing: found by name in the sorted entries
    /// (a folder read in order opens thousands of files), else — a duplicate name shown
    /// with a suffix — by a scan.
    private static func position(of record: InodeTable.Record, in listing: DirectoryCache.Listing) -> Int? {
        let entries = listing.entries
        var (low, high) = (0, entries.count)
        while low < high {
            let middle = (low + high) / 2
            if entries[middle].name < record.item.name { low = middle + 1 } else { high = middle }
        }
        if low < entries.count, entries[low].child.id == record.id { return low }
        return entries.firstIndex { $0.child.id == record.id }
    }

    /// What serves this handle's reads: the inode's local content when it has some (a
    /// reader opened before a writer sees the writes at once).
    private func source(_ inode: InodeNumber, _ handle: UInt64) throws -> OpenFile {
        guard var file = open.file(handle) else { throw DriveFSError.badHandle }
        if let writer = writers.writer(inode) { file.staged = writer.content }
        return file
    }

    public func read(inode: InodeNumber, handle: UInt64, offset: Int64, size: Int) async throws -> any ReadBytes {
        let file = try source(inode, handle)
        if let staged = file.staged { return try staged.read(at: offset, size: size)[...] }
        guard let reader = file.reader else { throw DriveFSError.badHandle }
        readsInFlight.withLock { $0 += 1 }
        defer { readsInFlight.withLock { $0 -= 1 } }
        return try await reader.read(offset: offset, size: size)
    }

    public func readFromMemory(inode: InodeNumber, handle: UInt64, offset: Int64, size: Int) -> (any ReadBytes)? {
        guard let file = try? source(inode, handle) else { return nil }
        if let staged = file.staged { return (try? staged.read(at: offset, size: size))?[...] }
        return file.reader?.readFromMemory(offset: offset, size: size)
    }

    public func release(inode: InodeNumber, handle: UInt64) async throws {
        guard let file = open.remove(handle) else { return }
        if let reader = file.reader {
            reader.close()
            if !file.writes { service.closed(fileID: reader.item.fileID) }
            deferredTrash.closed(reader.item.fileID)
        }
        if let lease = file.lease { await endLease(lease) }
    }
}
