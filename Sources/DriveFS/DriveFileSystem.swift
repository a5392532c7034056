import AliyunDrive
import Foundation
public import FUSE
import Glibc
import Logging
import Synchronization

/// The filesystem: inodes, folder listings, open files, their readers and writers over a
/// `DriveService`. Knows neither curl nor libfuse (it implements `FUSE.FileSystem`).
///
/// The parts, each the one owner of its state: `InodeTable` (which file each inode is,
/// and its item), `DirectoryCache` (listings, and the local entries of files not uploaded
/// yet), `OpenFiles` (handles), `Writers` (each inode's `FileWriter`: local content and
/// its lifecycle), `Uploader` (one version to the drive), `WriteBack` (uploads waiting for
/// another try), `DeferredTrash` (files unlinked while open).
///
/// LOCK ORDERING: writers → a writer's lifecycle → its staged file's state; chunk cache →
/// chunk buffer → storage pool. Every other lock is a leaf: nothing else is taken, and
/// nothing is called out, while it is held.
public final class DriveFileSystem: FileSystem {
    let configuration: DriveFSConfiguration
    let service: any DriveService
    let inodes: InodeTable
    let directories: DirectoryCache
    let chunks: ChunkCache
    let disk: DiskChunkCache?
    let open = OpenFiles()
    let writers: Writers
    let hasher = HashWorker()
    let uploader: Uploader
    let writeBack: WriteBack
    let deferredTrash: DeferredTrash
    let space: SpaceCache
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

    /// Throws when the disk cache is on and its folder cannot be created. `clock` times
    /// upload retries (tests pass their own).
    init(service: any DriveService, configuration: DriveFSConfiguration, now: (@Sendable () -> Double)?, clock: any WriteBackClock) throws {
        let now = now ?? { Date().timeIntervalSince1970 }
        let service = GuardedService(service, now: now)
        self.service = service
        self.configuration = configuration
        self.now = now
        let root = DriveItem(
            fileID: configuration.rootID, parentID: "", name: "", isFolder: true, size: 0, contentHash: nil, createdAt: now(),
            updatedAt: now())
        let inodes = InodeTable(root: root)
        self.inodes = inodes
        writers = Writers(inodes: inodes)
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
        deferredTrash = DeferredTrash(service: service, directories: directories, open: open, now: now, logger: logger)
        writeBack = WriteBack(policy: .init(first: configuration.uploadRetryDelay), clock: clock)
        let space = SpaceCache(now: now)
        self.space = space
        uploader = Uploader(
            service: service, journal: journal, inodes: inodes, directories: directories, times: times, activity: uploads,
            trash: deferredTrash, configuration: configuration, logger: logger, spaceChanged: { space.invalidate() })
    }

    public convenience init(service: any DriveService, configuration: DriveFSConfiguration, now: (@Sendable () -> Double)? = nil) throws {
        try self.init(service: service, configuration: configuration, now: now, clock: WallClock())
    }

    /// At unmount, after `drain`: stops the retries, the uploads still running (their
    /// journal entries stay for the next mount) and the hash thread.
    public func close() {
        writeBack.stop()
        for writer in writers.all { writer.queue.cancel() }
        hasher.stop()
    }

    deinit { close() }

    /// The one errno mapping of every operation (FUSE calls it for each failure): domain
    /// errors by their kind, and every EIO logged once with the operation and its cause.
    public func errno(for error: any Error, operation: String) -> Int32 {
        let mapped = DriveFSError(error)
        if mapped.errno == EIO { logger.error("\(operation) failed: \(mapped.description)") }
        return mapped.errno
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
        let readOnly = configuration.readOnly || SharedID.isShared(item.fileID)
        let permissions = mode & ~configuration.umask & (readOnly ? ~0o222 : 0o7777)
        // Local content wins: its size and time are what readers on this mount see.
        let local = item.isFolder ? nil : writers.writer(record.inode)?.content.snapshot
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
        // No entry can have a longer name (and pathconf says so).
        if name.utf8.count > Self.maximumNameLength { throw DriveFSError.nameTooLong }
        let folder = try folderRecord(parent)
        let listing = try await directories.listing(folder.item.fileID)
        guard let child = listing.byName[name] else { throw DriveFSError.notFound }
        return entry(inodes.inode(for: child, addingLookups: 1))
    }

    public func forget(inode: InodeNumber, count: UInt64) { inodes.forget(inode, count: count) }

    public func remember(inodes numbers: [InodeNumber]) { inodes.addLookups(numbers) }

    public func getattr(inode: InodeNumber) async throws -> AttributeReply {
        guard let record = inodes.record(inode) else { throw DriveFSError.notFound }
        return AttributeReply(attributes: attributes(record), timeout: configuration.directoryCacheTTL)
    }

    public func statfs(inode: InodeNumber) async throws -> FileSystemStatistics {
        let info = try await space.info { try await service.space() }
        let total = UInt64(max(0, info.total))
        let free = UInt64(max(0, (info.total) - (info.used)))
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
        let shared = SharedID(record.item.fileID)
        switch name {
        case Self.fileIDAttribute where shared != .folder:
            if case .entry(_, let fileID)? = shared { return Array(fileID.utf8) }
            return Array(record.id.description.utf8)
        case Self.hashAttribute where !record.item.isFolder && record.item.contentHash != nil:
            return Array((record.item.contentHash ?? "").utf8)
        case Self.shareAttribute:
            if case .entry(let share, _)? = shared { return Array(share.utf8) }
            guard let share = configuration.shareID else { throw DriveFSError.noAttribute }
            return Array(share.utf8)
        default: throw DriveFSError.noAttribute
        }
    }

    public func listxattr(inode: InodeNumber) async throws -> [String] {
        guard let record = inodes.record(inode) else { throw DriveFSError.notFound }
        let shared = SharedID(record.item.fileID)
        if shared == .folder { return [] }
        var names = [Self.fileIDAttribute]
        if !record.item.isFolder && record.item.contentHash != nil { names.append(Self.hashAttribute) }
        if configuration.shareID != nil || shared != nil { names.append(Self.shareAttribute) }
        return names
    }
}
