import AliyunDrive
import Foundation
public import FUSE
import Glibc
import Logging
import Synchronization

/// The filesystem: inode table, folder listings, open files and their readers over a
/// `DriveService`. Knows neither curl nor libfuse (it implements `FUSE.FileSystem`).
public final class DriveFileSystem: FileSystem {
    /// An open regular file: served by a reader of the server's content, or by the
    /// inode's staging file once it has one.
    struct OpenFile: Sendable {
        var reader: FileReader?
        var staged: StagedFile?
        var writes = false
        var append = false
        var inode: InodeNumber = 0
        /// Bypasses the kernel's page cache.
        var directIO = false
    }

    struct Handles {
        var next: UInt64 = 1
        var files: [UInt64: OpenFile] = [:]
        var directories: [UInt64: [DirectoryEntry]] = [:]
        /// Content hash last served per inode, for keeping the kernel's page cache.
        var servedHash: [InodeNumber: String] = [:]
        /// Inodes with local content (being written or waiting for upload).
        var staged: [InodeNumber: StagedFile] = [:]
        /// Staging files being filled with the server's content, by inode.
        var staging: [InodeNumber: Task<StagedFile, any Error>] = [:]
        /// The last link of each inode's chain of server work (one upload at a time per file).
        var commits: [InodeNumber: (id: UInt64, task: Task<Void, any Error>)] = [:]
        var nextCommit: UInt64 = 1
        /// Inodes with a background retry scheduled.
        var retrying: Set<InodeNumber> = []
        /// Files unlinked or replaced while descriptors still read them: trashed when the
        /// last of those closes (or at unmount), so readers keep their content (file_id →
        /// path, for the log).
        var deferredTrash: [String: String] = [:]

        mutating func add(_ file: OpenFile) -> UInt64 {
            let handle = next
            next += 1
            files[handle] = file
            return handle
        }
    }

    let configuration: DriveFSConfiguration
    let service: any DriveService
    let inodes: InodeTable
    let directories: DirectoryCache
    let chunks: ChunkCache
    let disk: DiskChunkCache?
    let handles = Mutex(Handles())
    let space = Mutex<(info: SpaceInfo, at: Double)?>(nil)
    let now: @Sendable () -> Double
    let logger = Logger(label: "adrivefs.vfs")
    let journal: UploadJournal
    /// What uploads are doing (for `adrivefs status`).
    public let uploads: UploadActivity
    /// Reads waiting for the drive right now.
    let readsInFlight = Mutex(0)
    let started: Double
    /// This mount's journal and staging folders, locked while it lives.
    let own: MountDirectories
    let times: FileTimes

    /// Throws when the disk cache is on and its folder cannot be created.
    public init(service: any DriveService, configuration: DriveFSConfiguration, now: (@Sendable () -> Double)? = nil) throws {
        let now = now ?? { Date().timeIntervalSince1970 }
        let service = GuardedService(service, now: now)
        self.service = service
        self.configuration = configuration
        self.now = now
        let root = DriveItem(
            fileID: configuration.rootID, parentID: "", name: "", isFolder: true, size: 0, contentHash: nil, createdAt: now(),
            updatedAt: now())
        inodes = InodeTable(root: root)
        directories = DirectoryCache(service: service, ttl: configuration.directoryCacheTTL, now: now)
        chunks = ChunkCache(capacity: configuration.cacheSize)
        do {
            disk = configuration.diskCacheSize > 0
                ? try DiskChunkCache(directory: configuration.diskCacheDirectory, capacity: configuration.diskCacheSize) : nil
        } catch {
            throw DriveFSError(errno: EIO, "cannot use the disk cache \(configuration.diskCacheDirectory): \(error.localizedDescription)")
        }
        uploads = UploadActivity(now: now)
        started = now()
        let own = MountDirectories(layout: configuration.state)
        self.own = own
        journal = UploadJournal(directory: configuration.journalDirectory) { _ = try own.journal() }
        times = FileTimes(directory: configuration.timesDirectory)
    }

    /// Checks that the root exists and is a folder (for `root_id`), so a bad id fails the mount.
    public func validateRoot() async throws {
        guard configuration.rootID != "root" else {
            _ = try await directories.listing("root")
            return
        }
        let item = try await service.item(fileID: configuration.rootID)
        guard item.isFolder else { throw DriveFSError.notDirectory }
        _ = inodes.inode(for: item, addingLookups: 0)
    }

    // MARK: - Attributes

    func attributes(_ record: InodeTable.Record) -> FileAttributes {
        let item = record.item
        let mode: UInt32 = item.isFolder ? 0o777 : 0o666
        let permissions = mode & ~configuration.umask & (configuration.readOnly ? ~0o222 : 0o7777)
        // Local content wins: its size and time are what readers on this mount see.
        let local = item.isFolder ? nil : handles.withLock { $0.staged[record.inode] }?.snapshot
        let size = item.isFolder ? 4096 : local?.size ?? item.size
        let modified = local?.modified ?? times.modified(for: item) ?? FileTime(item.updatedAt)
        return FileAttributes(
            inode: record.inode, kind: item.isFolder ? .directory : .file, permissions: permissions,
            size: size, linkCount: record.unlinked ? 0 : 1, uid: configuration.uid,
            gid: configuration.gid, modified: modified, changed: modified, accessed: modified)
    }

    func entry(_ record: InodeTable.Record) -> Entry {
        Entry(
            attributes: attributes(record), generation: record.generation, attributeTimeout: configuration.directoryCacheTTL,
            entryTimeout: configuration.directoryCacheTTL)
    }

    func folderRecord(_ inode: InodeNumber) throws -> InodeTable.Record {
        guard let record = inodes.record(inode) else { throw DriveFSError.notFound }
        guard record.item.isFolder else { throw DriveFSError.notDirectory }
        return record
    }

    // MARK: - FileSystem

    public func lookup(parent: InodeNumber, name: String) async throws -> Entry {
        do {
            // No entry can have a longer name (and pathconf says so).
            if name.utf8.count > Self.maximumNameLength { throw DriveFSError.nameTooLong }
            let folder = try folderRecord(parent)
            let listing = try await directories.listing(folder.item.fileID)
            guard let item = listing.byName[name] else { throw DriveFSError.notFound }
            return entry(inodes.inode(for: item, addingLookups: 1))
        } catch {
            throw DriveFSError(error)
        }
    }

    public func forget(inode: InodeNumber, count: UInt64) { inodes.forget(inode, count: count) }

    public func remember(inodes numbers: [InodeNumber]) { inodes.addLookups(numbers) }

    public func getattr(inode: InodeNumber) async throws -> AttributeReply {
        guard let record = inodes.record(inode) else { throw DriveFSError.notFound }
        return AttributeReply(attributes: attributes(record), timeout: configuration.directoryCacheTTL)
    }

    public func opendir(inode: InodeNumber) async throws -> UInt64 {
        do {
            let folder = try folderRecord(inode)
            let listing = try await directories.listing(folder.item.fileID)
            // A snapshot per handle keeps readdir offsets stable while the folder changes.
            var entries: [DirectoryEntry] = [
                DirectoryEntry(name: ".", inode: inode, kind: .directory, offset: 1),
                DirectoryEntry(name: "..", inode: inode, kind: .directory, offset: 2),
            ]
            for (index, child) in listing.entries.enumerated() {
                let record = inodes.inode(for: child.item, addingLookups: 0)
                entries.append(
                    DirectoryEntry(
                        name: child.name, inode: record.inode, kind: child.item.isFolder ? .directory : .file,
                        offset: UInt64(index + 3), entry: entry(record)))
            }
            return handles.withLock { handles in
                let handle = handles.next
                handles.next += 1
                handles.directories[handle] = entries
                return handle
            }
        } catch {
            throw DriveFSError(error)
        }
    }

    public func readdir(inode: InodeNumber, handle: UInt64, offset: UInt64, plus: Bool) async throws -> [DirectoryEntry] {
        guard let entries = handles.withLock({ $0.directories[handle] }) else { throw DriveFSError.badHandle }
        guard offset < UInt64(entries.count) else { return [] }
        return Array(entries[Int(offset)...])
    }

    public func releasedir(inode: InodeNumber, handle: UInt64) async {
        let entries = handles.withLock { $0.directories.removeValue(forKey: handle) } ?? []
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
        if let staged = handles.withLock({ $0.staged[inode] }) {
            return handles.withLock { handles in
                handles.servedHash[inode] = nil
                // While a writer bypasses the page cache, so must readers (it would go stale).
                let direct = handles.files.values.contains { $0.inode == inode && $0.directIO }
                return OpenReply(handle: handles.add(OpenFile(staged: staged, inode: inode, directIO: direct)), keepCache: false, directIO: direct)
            }
        }
        await prefetchLinks(from: record.item)
        let reader = FileReader(item: record.item, service: service, cache: chunks, disk: disk, configuration: configuration)
        let hash = record.item.contentHash ?? ""
        service.opened(fileID: record.item.fileID)
        return handles.withLock { handles in
            let keep = !hash.isEmpty && handles.servedHash[inode] == hash
            handles.servedHash[inode] = hash
            return OpenReply(handle: handles.add(OpenFile(reader: reader, inode: inode)), keepCache: keep)
        }
    }

    /// Files of a folder are often read in its order (`grep -r`, `cp -r`, a photo viewer):
    /// opening one asks — in one batch call — for the download links of it and the next
    /// ones that have none yet, instead of one call per file.
    private func prefetchLinks(from item: DriveItem, count: Int = 32) async {
        guard item.size > 0, !item.fileID.hasPrefix(Self.localPrefix), let listing = try? await directories.listing(item.parentID),
            let index = listing.entries.firstIndex(where: { $0.item.fileID == item.fileID })
        else { return }
        let next = listing.entries[index...].lazy.map(\.item).filter { !$0.isFolder && $0.size > 0 && !$0.fileID.hasPrefix(Self.localPrefix) }
        await service.prefetchDownloadLinks(fileIDs: Array(next.prefix(count).map(\.fileID)))
    }

    /// The staging file that serves this handle's reads, if any: the inode's (a reader
    /// opened before a writer sees the writes at once).
    private func source(_ inode: InodeNumber, _ handle: UInt64) throws -> OpenFile {
        try handles.withLock { handles in
            guard var file = handles.files[handle] else { throw DriveFSError.badHandle }
            if let staged = handles.staged[inode] { file.staged = staged }
            return file
        }
    }

    public func read(inode: InodeNumber, handle: UInt64, offset: Int64, size: Int) async throws -> any ReadBytes {
        let file = try source(inode, handle)
        if let staged = file.staged { return try staged.read(at: offset, size: size)[...] }
        guard let reader = file.reader else { throw DriveFSError.badHandle }
        readsInFlight.withLock { $0 += 1 }
        defer { readsInFlight.withLock { $0 -= 1 } }
        do {
            return try await reader.read(offset: offset, size: size)
        } catch {
            let mapped = DriveFSError(error)
            if mapped.errno == EIO { logger.error("read of \(reader.item.name) at \(offset) failed: \(mapped)") }
            throw mapped
        }
    }

    public func readFromMemory(inode: InodeNumber, handle: UInt64, offset: Int64, size: Int) -> (any ReadBytes)? {
        guard let file = try? source(inode, handle) else { return nil }
        if let staged = file.staged { return (try? staged.read(at: offset, size: size))?[...] }
        return file.reader?.readFromMemory(offset: offset, size: size)
    }

    public func release(inode: InodeNumber, handle: UInt64) async throws {
        guard let file = handles.withLock({ $0.files.removeValue(forKey: handle) }) else { return }
        if let reader = file.reader {
            reader.close()
            if !file.writes { service.closed(fileID: reader.item.fileID) }
            trashIfLastReader(reader.item.fileID)
        }
        if file.writes, let staged = file.staged {
            staged.update { $0.writers -= 1 }
            await finishWriting(inode, staged)
        }
    }

    public func statfs(inode: InodeNumber) async throws -> FileSystemStatistics {
        let current = now()
        var info = space.withLock { cached in cached.flatMap { current - $0.at < 30 ? $0.info : nil } }
        if info == nil {
            do {
                let fresh = try await service.space()
                space.withLock { $0 = (fresh, current) }
                info = fresh
            } catch {
                throw DriveFSError(error)
            }
        }
        let total = UInt64(max(0, info?.total ?? 0))
        let free = UInt64(max(0, (info?.total ?? 0) - (info?.used ?? 0)))
        let block: UInt64 = 4096
        return FileSystemStatistics(
            blockSize: block, blocks: total / block, freeBlocks: free / block, availableBlocks: free / block,
            files: 1 << 32, freeFiles: 1 << 31, maximumNameLength: 1024)
    }

    public var extendedAttributePrefix: String { "user.adrive." }

    static let fileIDAttribute = "user.adrive.file_id"
    static let hashAttribute = "user.adrive.sha1"
    static let shareAttribute = "user.adrive.share_id"

    public func getxattr(inode: InodeNumber, name: String) async throws -> [UInt8] {
        guard let record = inodes.record(inode) else { throw DriveFSError.notFound }
        switch name {
        case Self.fileIDAttribute: return Array(record.item.fileID.utf8)
        case Self.hashAttribute where !record.item.isFolder && record.item.contentHash != nil:
            return Array((record.item.contentHash ?? "").utf8)
        case Self.shareAttribute where configuration.shareID != nil:
            return Array((configuration.shareID ?? "").utf8)
        default: throw DriveFSError.noAttribute
        }
    }

    public func listxattr(inode: InodeNumber) async throws -> [String] {
        guard let record = inodes.record(inode) else { throw DriveFSError.notFound }
        let share = configuration.shareID == nil ? [] : [Self.shareAttribute]
        return (record.item.isFolder || record.item.contentHash == nil ? [Self.fileIDAttribute] : [Self.fileIDAttribute, Self.hashAttribute]) + share
    }
}
