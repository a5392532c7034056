import FUSE
import Foundation
import Glibc

/// The fastest filesystem our FUSE binding can be on this machine: one 1 GiB file whose
/// reads are answered from a 1 MiB buffer already in memory (no network, no cache, no
/// copy of our own). What it reaches with 1 MiB reads is the ceiling of any FUSE read
/// path here (kernel request/reply copies, page cache, the reader's own copy); the
/// mount's figure is put beside it so the two costs can be told apart.
final class CeilingFS: FileSystem {
    static let fileInode: InodeNumber = 2
    let size: Int64
    private let block = [UInt8](repeating: 0x5a, count: 1 << 20)

    init(size: Int64) { self.size = size }

    private func attributes(_ inode: InodeNumber) -> FileAttributes {
        inode == Self.fileInode
            ? FileAttributes(inode: inode, kind: .file, permissions: 0o444, size: size, uid: 0, gid: 0, modified: 0)
            : FileAttributes(inode: 1, kind: .directory, permissions: 0o555, size: 0, linkCount: 2, uid: 0, gid: 0, modified: 0)
    }

    func lookup(parent: InodeNumber, name: String) async throws -> Entry {
        guard parent == 1, name == "blob" else { throw CeilingError(errno: ENOENT) }
        return Entry(attributes: attributes(Self.fileInode), attributeTimeout: 60, entryTimeout: 60)
    }
    func forget(inode: InodeNumber, count: UInt64) {}
    func getattr(inode: InodeNumber) async throws -> AttributeReply { AttributeReply(attributes: attributes(inode), timeout: 60) }
    func opendir(inode: InodeNumber) async throws -> UInt64 { 0 }
    func readdir(inode: InodeNumber, handle: UInt64, offset: UInt64, plus: Bool) async throws -> [DirectoryEntry] {
        offset == 0 ? [DirectoryEntry(name: "blob", inode: Self.fileInode, kind: .file, offset: 1)] : []
    }
    func remember(inodes: [InodeNumber]) {}
    func releasedir(inode: InodeNumber, handle: UInt64) async {}
    func open(inode: InodeNumber, flags: Int32) async throws -> OpenReply { OpenReply(handle: 0) }
    func read(inode: InodeNumber, handle: UInt64, offset: Int64, size: Int) async throws -> any ReadBytes {
        let count = Int(max(0, min(Int64(min(size, block.count)), self.size - offset)))
        return block[0..<count]
    }
    func release(inode: InodeNumber, handle: UInt64) async throws {}
    func statfs(inode: InodeNumber) async throws -> FileSystemStatistics {
        FileSystemStatistics(blockSize: 4096, blocks: 0, freeBlocks: 0, availableBlocks: 0, files: 1, freeFiles: 0, maximumNameLength: 255)
    }
    func getxattr(inode: InodeNumber, name: String) async throws -> [UInt8] { throw CeilingError(errno: ENODATA) }
    var extendedAttributePrefix: String { "user.ceiling." }
    func listxattr(inode: InodeNumber) async throws -> [String] { [] }

    /// Mounts a fresh session on a temporary directory, reads the file once with 1 MiB
    /// reads, unmounts; returns bytes per second.
    static func sequentialRate(size: Int64) throws -> Double {
        let mountpoint = NSTemporaryDirectory() + "adrivefs-ceiling-\(getpid())"
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: mountpoint) }
        let session = try FUSESession(fileSystem: CeilingFS(size: size), options: ["fsname=ceiling", "subtype=adrivefs-bench", "ro"])
        try session.mount(at: mountpoint)
        let finished = DispatchSemaphore(value: 0)
        let loop = Thread {
            _ = session.run()
            finished.signal()
        }
        loop.start()
        FUSESession.raiseKernelReadahead(mountpoint: mountpoint, kilobytes: 2048)
        let result = try FileBench.sequentialRead(mountpoint + "/blob")
        // Unmounted the way users do, so the loop drains and ends on its own.
        _ = try? FileBench.timeCommand(["fusermount3", "-u", mountpoint])
        finished.wait()
        guard result.bytes == size else { throw BenchError("ceiling read \(result.bytes) bytes, expected \(size)") }
        return result.rate
    }
}

struct CeilingError: ErrnoConvertible { let errno: Int32 }
