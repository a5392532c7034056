internal import CLinux
import FUSE
import Foundation
import Glibc

/// The fastest filesystem our FUSE binding can be on this machine: one 1 GiB file whose
/// reads are answered from a 1 MiB buffer already in memory (no network, no cache, no
/// copy of our own). What it reaches with 1 MiB reads is the ceiling of any FUSE read
/// path here (kernel request/reply copies, page cache, the reader's own copy); the
/// mount's figure is put beside it so the two costs can be told apart.
///
/// Mounted read-write it is the write-side ceiling: 1 MiB writes through a write-only
/// descriptor (direct I/O, as adrivefs opens them) answered at once, or — with a `stage`
/// descriptor — after a `pwrite` into a local file with its blocks reserved, which is what adrivefs's staging costs
/// before any upload can start.
final class CeilingFS: WritableFileSystem {
    static let fileInode: InodeNumber = 2
    let size: Int64
    /// Where writes are copied (nil: they are dropped).
    let stage: Int32?
    /// Reads are answered with a copy of the bytes (a filesystem that only copies), not
    /// with the buffer itself.
    let copying: Bool
    private let block = [UInt8](repeating: 0x5a, count: 1 << 20)

    init(size: Int64, stage: Int32? = nil, copying: Bool = false) {
        self.size = size
        self.stage = stage
        self.copying = copying
    }

    private func attributes(_ inode: InodeNumber) -> FileAttributes {
        inode == Self.fileInode
            ? FileAttributes(inode: inode, kind: .file, permissions: 0o644, size: size, uid: 0, gid: 0, modified: FileTime(seconds: 0, nanoseconds: 0))
            : FileAttributes(inode: 1, kind: .directory, permissions: 0o555, size: 0, linkCount: 2, uid: 0, gid: 0, modified: FileTime(seconds: 0, nanoseconds: 0))
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
    func open(inode: InodeNumber, flags: Int32) async throws -> OpenReply {
        OpenReply(handle: 0, directIO: flags & O_ACCMODE == O_WRONLY)
    }
    func read(inode: InodeNumber, handle: UInt64, offset: Int64, size: Int) async throws -> any ReadBytes {
        let count = Int(max(0, min(Int64(min(size, block.count)), self.size - offset)))
        return copying ? Array(block[0..<count])[...] : block[0..<count]
    }
    func release(inode: InodeNumber, handle: UInt64) async throws {}
    func statfs(inode: InodeNumber) async throws -> FileSystemStatistics {
        FileSystemStatistics(blockSize: 4096, blocks: 0, freeBlocks: 0, availableBlocks: 0, files: 1, freeFiles: 0, maximumNameLength: 255)
    }
    func getxattr(inode: InodeNumber, name: String) async throws -> [UInt8] { throw CeilingError(errno: ENODATA) }
    var extendedAttributePrefix: String { "user.ceiling." }
    func listxattr(inode: InodeNumber) async throws -> [String] { [] }

    func write(inode: InodeNumber, handle: UInt64, offset: Int64, data: UnsafeRawBufferPointer) throws -> Int {
        guard let stage else { return data.count }
        let written = pwrite(stage, data.baseAddress, data.count, off_t(offset))
        guard written >= 0 else { throw CeilingError(errno: Glibc.errno) }
        return written
    }
    func setattr(inode: InodeNumber, changes: AttributeChanges) async throws -> AttributeReply { try await getattr(inode: inode) }
    func prepareWrite(inode: InodeNumber, handle: UInt64) async throws {}
    func flush(inode: InodeNumber, handle: UInt64) async throws {}
    func fsync(inode: InodeNumber, handle: UInt64, dataOnly: Bool) async throws {}
    // One fixed file: nothing else can be made, removed or renamed.
    func create(parent: InodeNumber, name: String, mode: UInt32, flags: Int32) async throws -> (Entry, OpenReply) { throw CeilingError(errno: EPERM) }
    func mknod(parent: InodeNumber, name: String, mode: UInt32) async throws -> Entry { throw CeilingError(errno: EPERM) }
    func mkdir(parent: InodeNumber, name: String, mode: UInt32) async throws -> Entry { throw CeilingError(errno: EPERM) }
    func rmdir(parent: InodeNumber, name: String) async throws { throw CeilingError(errno: EPERM) }
    func unlink(parent: InodeNumber, name: String) async throws { throw CeilingError(errno: EPERM) }
    func rename(parent: InodeNumber, name: String, newParent: InodeNumber, newName: String, flags: UInt32) async throws {
        throw CeilingError(errno: EPERM)
    }

    /// Mounts a fresh session on a temporary directory, reads the file once with 1 MiB
    /// reads, unmounts; returns bytes per second.
    static func sequentialRate(size: Int64, copying: Bool = false) throws -> Double {
        let result = try withMount(CeilingFS(size: size, copying: copying), options: ["ro"]) { mountpoint in
            FUSESession.raiseKernelReadahead(mountpoint: mountpoint, kilobytes: 2048)
            return try FileBench.sequentialRead(mountpoint + "/blob")
        }
        guard result.bytes == size else { throw BenchError("ceiling read \(result.bytes) bytes, expected \(size)") }
        return result.rate
    }

    /// CPU seconds the filesystem's own loop spends answering one sequential read of the
    /// file with copies of its bytes: the reader is a child `dd`, so this process's CPU
    /// time is the filesystem's alone.
    static func copyingLoopCPU(size: Int64) throws -> Double {
        try withMount(CeilingFS(size: size, copying: true), options: ["ro"]) { mountpoint in
            FUSESession.raiseKernelReadahead(mountpoint: mountpoint, kilobytes: 2048)
            let before = CPUTime.own()
            _ = try FileBench.timeCommand(["dd", "if=\(mountpoint)/blob", "of=/dev/null", "bs=1M", "status=none"])
            return CPUTime.own() - before
        }
    }

    /// Seconds to write `source` (its whole size) over the file with 1 MiB writes, with the
    /// writes dropped or staged into a file under `stagingDirectory`.
    static func writeSeconds(source: String, stagingDirectory: String?) throws -> Double {
        var stage: Int32?
        var stagePath: String?
        if let stagingDirectory {
            let path = stagingDirectory + "/ceiling-stage-\(getpid())"
            let fd = Glibc.open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw BenchError("cannot create \(path)") }
            // Blocks reserved ahead, as adrivefs's staging files do (all at once here).
            _ = clinux_preallocate(fd, 0, 1 << 30)
            (stage, stagePath) = (fd, path)
        }
        defer {
            if let stage { Glibc.close(stage) }
            if let stagePath { Glibc.unlink(stagePath) }
        }
        var info = stat()
        guard stat(source, &info) == 0 else { throw BenchError("cannot stat \(source)") }
        return try withMount(CeilingFS(size: Int64(info.st_size), stage: stage), options: []) { mountpoint in
            let times = try UploadBench.copyTimed(source, mountpoint + "/blob", create: false)
            return times.write
        }
    }

    /// Runs `body` on a fresh mount of `fileSystem`, then unmounts the way users do (so the
    /// loop drains and ends on its own).
    private static func withMount<T>(_ fileSystem: CeilingFS, options: [String], _ body: (String) throws -> T) throws -> T {
        let mountpoint = NSTemporaryDirectory() + "adrivefs-ceiling-\(getpid())"
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: mountpoint) }
        let session = try FUSESession(fileSystem: fileSystem, options: ["fsname=ceiling", "subtype=adrivefs-bench"] + options)
        try session.mount(at: mountpoint)
        let finished = DispatchSemaphore(value: 0)
        let loop = Thread {
            _ = session.run()
            finished.signal()
        }
        loop.start()
        let result = Result { try body(mountpoint) }
        _ = try? FileBench.timeCommand(["fusermount3", "-u", mountpoint])
        finished.wait()
        return try result.get()
    }
}

struct CeilingError: ErrnoConvertible { let errno: Int32 }
