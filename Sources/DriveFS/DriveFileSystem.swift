import AliyunDrive
import Foundation
public import FUSE
import Glibc
import Logging
import Synchronization

/// The filesystem: inode table, folder listings, open files and their readers over a
/// `DriveService`. Knows neither curl nor libfuse (it implements `FUSE.FileSystem`).
public final class DriveFileSystem: FileSystem {
    private struct Handles {
        var next: UInt64 = 1
        var files: [UInt64: FileReader] = [:]
        var directories: [UInt64: [DirectoryEntry]] = [:]
        /// Content hash last served per inode, for keeping the kernel's page cache.
        var servedHash: [InodeNumber: String] = [:]
    }

    let configuration: DriveFSConfiguration
    let service: any DriveService
    let inodes: InodeTable
    let directories: DirectoryCache
    let chunks: ChunkCache
    private let handles = Mutex(Handles())
    private let space = Mutex<(info: SpaceInfo, at: Double)?>(nil)
    private let now: @Sendable () -> Double
    private let logger = Logger(label: "adrivefs.vfs")

    public init(service: any DriveService, configuration: DriveFSConfiguration, now: (@Sendable () -> Double)? = nil) {
        let now = now ?? { Date().timeIntervalSince1970 }
        self.service = service
        self.configuration = configuration
        self.now = now
        let root = DriveItem(
            fileID: configuration.rootID, parentID: "", name: "", isFolder: true, size: 0, contentHash: nil, createdAt: now(),
            updatedAt: now())
        inodes = InodeTable(root: root)
        directories = DirectoryCache(service: service, ttl: configuration.directoryCacheTTL, now: now)
        chunks = ChunkCache(capacity: configuration.cacheSize)
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
        return FileAttributes(
            inode: record.inode, kind: item.isFolder ? .directory : .file, permissions: permissions,
            size: item.isFolder ? 4096 : item.size, linkCount: item.isFolder ? 2 : 1, uid: configuration.uid,
            gid: configuration.gid, modified: item.updatedAt, changed: item.updatedAt, accessed: item.updatedAt)
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
        _ = handles.withLock { $0.directories.removeValue(forKey: handle) }
    }

    public func open(inode: InodeNumber, flags: Int32) async throws -> OpenReply {
        guard let record = inodes.record(inode) else { throw DriveFSError.notFound }
        guard !record.item.isFolder else { throw DriveFSError.isDirectory }
        if flags & O_ACCMODE != O_RDONLY || flags & O_TRUNC != 0 {
            // Writing arrives with the upload work; until then the mount serves reads only.
            throw DriveFSError.readOnly
        }
        let reader = FileReader(item: record.item, service: service, cache: chunks, configuration: configuration)
        let hash = record.item.contentHash ?? ""
        return handles.withLock { handles in
            let handle = handles.next
            handles.next += 1
            handles.files[handle] = reader
            let keep = !hash.isEmpty && handles.servedHash[inode] == hash
            handles.servedHash[inode] = hash
            return OpenReply(handle: handle, keepCache: keep)
        }
    }

    public func read(inode: InodeNumber, handle: UInt64, offset: Int64, size: Int) async throws -> ArraySlice<UInt8> {
        guard let reader = handles.withLock({ $0.files[handle] }) else { throw DriveFSError.badHandle }
        do {
            return try await reader.read(offset: offset, size: size)
        } catch {
            let mapped = DriveFSError(error)
            if mapped.errno == EIO { logger.error("read of \(reader.item.name) at \(offset) failed: \(mapped)") }
            throw mapped
        }
    }

    public func readFromMemory(inode: InodeNumber, handle: UInt64, offset: Int64, size: Int) -> ArraySlice<UInt8>? {
        handles.withLock({ $0.files[handle] })?.readFromMemory(offset: offset, size: size)
    }

    public func release(inode: InodeNumber, handle: UInt64) async throws {
        let reader = handles.withLock { $0.files.removeValue(forKey: handle) }
        reader?.close()
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

    public func getxattr(inode: InodeNumber, name: String) async throws -> [UInt8] {
        guard let record = inodes.record(inode) else { throw DriveFSError.notFound }
        switch name {
        case Self.fileIDAttribute: return Array(record.item.fileID.utf8)
        case Self.hashAttribute where !record.item.isFolder && record.item.contentHash != nil:
            return Array((record.item.contentHash ?? "").utf8)
        default: throw DriveFSError.noAttribute
        }
    }

    public func listxattr(inode: InodeNumber) async throws -> [String] {
        guard let record = inodes.record(inode) else { throw DriveFSError.notFound }
        return record.item.isFolder || record.item.contentHash == nil ? [Self.fileIDAttribute] : [Self.fileIDAttribute, Self.hashAttribute]
    }
}
