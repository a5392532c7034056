import AliyunDrive
@testable import DriveFS
import EmulatorTestSupport
import Foundation
import FUSE
import Glibc
import Synchronization

/// Runs the scenarios on `DriveFileSystem` itself, with the calls the kernel would make
/// (lookup, create/open, write — with `prepareWrite` when asked —, flush + release at
/// close, copy_file_range then read/write for a copy), against the in-process emulator
/// through the real client. No mount: this runs where `/dev/fuse` does not exist.
final class DirectDriver: FileSystemDriver, Sendable {
    let drive: TestDrive
    let client: AliyunDriveClient
    let root: String
    private let current: Mutex<DriveFileSystem>
    private let descriptors = Mutex<(next: Int, open: [Int: (inode: InodeNumber, handle: UInt64)])>((3, [:]))

    var fs: DriveFileSystem { current.withLock { $0 } }

    init() async throws {
        drive = try await TestDrive()
        let login = try await drive.hook("tokens")
        let token = login["refresh_token"] as? String ?? ""
        root = NSTemporaryDirectory() + "adrivefs-direct-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root + "/client", withIntermediateDirectories: true)
        client = AliyunDriveClient(
            configuration: .init(endpoint: drive.base, tokenFile: nil, stateDirectory: root + "/client", baseBackoff: .milliseconds(20)),
            http: drive.http, refreshToken: token)
        try await client.start()
        current = Mutex(try Self.filesystem(client: client, root: root))
    }

    static func filesystem(client: AliyunDriveClient, root: String) throws -> DriveFileSystem {
        let binding = AccountBinding(userID: client.userID, driveID: client.driveID, endpoint: "direct")
        let layout = StateLayout(journalRoot: root + "/pending", stagingRoot: root + "/staging", binding: binding, mountID: UUID().uuidString)
        let configuration = DriveFSConfiguration(
            uid: getuid(), gid: getgid(), directoryCacheTTL: 1, state: layout, timesDirectory: root + "/times", uploadRetryDelay: 0.2)
        let fs = try DriveFileSystem(service: client, configuration: configuration)
        fs.recoverPendingUploads()
        return fs
    }

    func finish() async {
        let fs = fs
        _ = await fs.drain(timeout: 5)
        fs.close()
        await drive.stop()
        try? FileManager.default.removeItem(atPath: root)
    }

    /// Runs a filesystem call; its failure becomes the errno the kernel would answer.
    private func call<T>(_ name: String, _ body: (DriveFileSystem) async throws -> T) async throws -> T {
        let fs = fs
        do {
            return try await body(fs)
        } catch {
            throw DriverError(errno: fs.errno(for: error, operation: name), name)
        }
    }

    private func split(_ path: String) -> (folder: [String], name: String) {
        let parts = path.split(separator: "/").map(String.init)
        return (Array(parts.dropLast()), parts.last ?? "")
    }

    private func folder(_ parts: [String]) async throws -> InodeNumber {
        var inode = InodeTable.rootInode
        for part in parts { inode = try await call("lookup") { try await $0.lookup(parent: inode, name: part) }.attributes.inode }
        return inode
    }

    private func descriptor(_ fd: Int) throws -> (inode: InodeNumber, handle: UInt64) {
        guard let open = descriptors.withLock({ $0.open[fd] }) else { throw DriverError(errno: EBADF, "descriptor") }
        return open
    }

    func open(_ path: String, flags: Int32) async throws -> Int {
        let (parts, name) = split(path)
        let parent = try await folder(parts)
        let opened: (InodeNumber, UInt64)
        do {
            let entry = try await call("lookup") { try await $0.lookup(parent: parent, name: name) }
            let reply = try await call("open") { try await $0.open(inode: entry.attributes.inode, flags: flags & ~O_CREAT) }
            opened = (entry.attributes.inode, reply.handle)
        } catch let error as DriverError where error.errno == ENOENT && flags & O_CREAT != 0 {
            let (entry, reply) = try await call("create") { try await $0.create(parent: parent, name: name, mode: 0o644, flags: flags) }
            opened = (entry.attributes.inode, reply.handle)
        }
        return descriptors.withLock { state in
            defer { state.next += 1 }
            state.open[state.next] = opened
            return state.next
        }
    }

    func write(_ fd: Int, _ bytes: [UInt8], at offset: Int) async throws {
        let (inode, handle) = try descriptor(fd)
        let written = try await call("write") { fs in
            do {
                return try bytes.withUnsafeBytes { try fs.write(inode: inode, handle: handle, offset: Int64(offset), data: $0) }
            } catch is WriteNeedsPreparation {
                try await fs.prepareWrite(inode: inode, handle: handle)
                return try bytes.withUnsafeBytes { try fs.write(inode: inode, handle: handle, offset: Int64(offset), data: $0) }
            }
        }
        if written != bytes.count { throw DriverError(errno: EIO, "short write") }
    }

    func read(_ fd: Int, at offset: Int, count: Int) async throws -> [UInt8] {
        let (inode, handle) = try descriptor(fd)
        let bytes = try await call("read") { try await $0.read(inode: inode, handle: handle, offset: Int64(offset), size: count) }
        return bytes.withUnsafeBytes { Array($0) }
    }

    func truncate(_ fd: Int, to size: Int) async throws {
        let (inode, handle) = try descriptor(fd)
        _ = try await call("setattr") { try await $0.setattr(inode: inode, changes: AttributeChanges(size: Int64(size), handle: handle)) }
    }

    func fsync(_ fd: Int) async throws {
        let (inode, handle) = try descriptor(fd)
        try await call("fsync") { try await $0.fsync(inode: inode, handle: handle, dataOnly: false) }
    }

    /// close(2): flush (its error is close's), then the release.
    func close(_ fd: Int) async throws {
        let (inode, handle) = try descriptor(fd)
        descriptors.withLock { _ = $0.open.removeValue(forKey: fd) }
        let flushed = await Result { try await self.call("flush") { try await $0.flush(inode: inode, handle: handle) } }
        try await call("release") { try await $0.release(inode: inode, handle: handle) }
        try flushed.get()
    }

    func rename(_ from: String, _ to: String) async throws {
        let (source, target) = (split(from), split(to))
        let (parent, newParent) = (try await folder(source.folder), try await folder(target.folder))
        try await call("rename") { try await $0.rename(parent: parent, name: source.name, newParent: newParent, newName: target.name, flags: 0) }
    }

    func unlink(_ path: String) async throws {
        let (parts, name) = split(path)
        let parent = try await folder(parts)
        try await call("unlink") { try await $0.unlink(parent: parent, name: name) }
    }

    /// As coreutils' cp: copy_file_range of the whole file, else read and write.
    func copy(_ from: String, _ to: String) async throws {
        let source = try await open(from, flags: O_RDONLY)
        let target = try await open(to, flags: O_CREAT | O_WRONLY | O_TRUNC)
        let (sourceInode, sourceHandle) = try descriptor(source)
        let (targetInode, targetHandle) = try descriptor(target)
        let size = try await call("getattr") { try await $0.getattr(inode: sourceInode) }.attributes.size
        do {
            _ = try await fs.copyFileRange(
                from: FileRange(inode: sourceInode, handle: sourceHandle, offset: 0), to: FileRange(inode: targetInode, handle: targetHandle, offset: 0),
                length: Int(size))
        } catch is CopyNotSupported {
            var offset = 0
            while true {
                let piece = try await read(source, at: offset, count: 1 << 20)
                if piece.isEmpty { break }
                try await write(target, piece, at: offset)
                offset += piece.count
            }
        }
        try await close(target)
        try await close(source)
    }

    func names(in folder: String) async throws -> [String] {
        let inode = try await self.folder(folder.split(separator: "/").map(String.init))
        let handle = try await call("opendir") { try await $0.opendir(inode: inode) }
        let entries = try await call("readdir") { try await $0.readdir(inode: inode, handle: handle, offset: 0, plus: false) }
        await fs.releasedir(inode: inode, handle: handle)
        return entries.map(\.name).filter { $0 != "." && $0 != ".." }
    }

    /// The filesystem stops as a crashed process would: no drain, its folders left with
    /// their locks let go; a new one starts on the same state folders and recovers.
    func crashAndRestart() async throws {
        let old = fs
        old.close()
        old.own.abandon()
        descriptors.withLock { $0.open = [:] }
        let fresh = try Self.filesystem(client: client, root: root)
        current.withLock { $0 = fresh }
    }
}
