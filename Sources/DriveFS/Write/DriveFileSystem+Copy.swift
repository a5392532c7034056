import AliyunDrive
import Foundation
public import FUSE
import Glibc

/// `cp` within the mount (coreutils calls copy_file_range): content the drive has, copied
/// whole into an empty file, becomes the new file without its bytes moving — by hash (a
/// rapid upload for which only the 8 bytes of the proof code are read and nothing is sent)
/// for the drive's own files, by a server-side save for a share's files under `.shares`.
/// Anything else (part of a file, an offset, content being written on this mount, a
/// destination that is not empty or is open elsewhere) goes back to the kernel, which
/// copies through `read` and `write` as before.
extension DriveFileSystem {
    public func copyFileRange(from source: FileRange, to destination: FileRange, length: Int) async throws -> Int {
        try checkWritable()
        guard let from = inodes.record(source.inode), !from.item.isFolder, from.id.serverID != nil, writers.writer(source.inode) == nil
        else { throw CopyNotSupported() }
        let shared = SharedID.isShared(from.item.fileID)
        guard shared || configuration.uploadOptions.rapid else { throw CopyNotSupported() }
        // The call after a whole copy, at the end of unchanged drive content: nothing left.
        if source.offset >= from.item.size && from.item.size > 0 { return 0 }
        guard source.offset == 0, destination.offset == 0, from.item.size > 0, Int64(length) >= from.item.size,
            let lease = emptyDestination(destination)
        else { throw CopyNotSupported() }
        if shared {
            try await take(from, into: destination, lease: lease) { record in
                // The service's refusals (quota, a share gone, a blocked file) are the copy's
                // errors: the kernel's own copy would only meet them again, a byte at a time.
                guard let saved = try await self.service.saveFromShare(fileID: from.item.fileID, parentID: record.item.parentID, name: record.item.name)
                else { throw CopyNotSupported() }
                return saved
            }
            let name = uploader.path(from.item).split(separator: "/").dropFirst().joined(separator: "/")
            logger.info(
                "saved from share: \(name) → \(pathOf(destination.inode)) (\(Self.formatSize(from.item.size))) — 0 bytes moved")
        } else {
            try await take(from, into: destination, lease: lease) { record in
                let copied: UploadResult?
                do {
                    copied = try await self.service.copyByHash(of: from.item, parentID: record.item.parentID, name: record.item.name)
                } catch {
                    if error is CancellationError { throw error }
                    // (The kernel's own copy then meets the same service, and says so if it must.)
                    self.logger.info("rapid copy: \(self.uploader.path(record.item)): \(DriveFSError(error).description); copying the bytes instead")
                    throw CopyNotSupported()
                }
                guard let copy = copied else { throw CopyNotSupported() }
                return copy.item
            }
            logger.info("rapid copy: \(uploader.path(from.item)) → \(pathOf(destination.inode)) (\(Self.formatSize(from.item.size))) — 0 bytes sent")
        }
        // The empty local content is nobody's now.
        await endLease(lease)
        return Int(from.item.size)
    }

    /// The destination's content becomes the drive's file that `make` creates beside it
    /// (under its name, in its folder), adopted as an upload is. On failure the destination
    /// stays the handle's, empty, for the kernel's own copy (or for cp to report).
    private func take(
        _ from: InodeTable.Record, into destination: FileRange, lease: WriteLease,
        make: @escaping @Sendable (InodeTable.Record) async throws -> DriveItem
    ) async throws {
        let writer = lease.writer
        try await writer.queue.run {
            // (The kernel holds the destination's inode lock: no write can come meanwhile.)
            guard let record = self.inodes.record(destination.inode) else { throw DriveFSError.notFound }
            // The content becomes the copy's: a change, sent by the drive's copy.
            writer.handle(.changed)
            guard case .send(let version)? = writer.handle(.uploadStarted).first else { throw CopyNotSupported() }
            let made: DriveItem
            do {
                made = try await make(record)
            } catch {
                writer.handle(.uploadFailed(version: version, refused: false))
                throw error
            }
            await self.uploader.adopt(made, into: destination.inode, replacing: record, explicitTime: nil)
            writer.handle(.uploadSucceeded(version: version))
            // The handle now reads the new file from the drive, and a later write fetches it
            // first, like any handle that opened existing content for writing.
            let adopted = self.inodes.record(destination.inode)?.item ?? made
            let reader = FileReader(item: adopted, service: self.service, cache: self.chunks, disk: self.disk, configuration: self.configuration)
            self.open.update(destination.handle) { file in
                (file.lease, file.staged, file.reader) = (nil, nil, reader)
                return true
            }
            _ = self.open.serve(destination.inode, hash: nil)
        }
    }

    private func pathOf(_ inode: InodeNumber) -> String {
        inodes.record(inode).map { uploader.path($0.item) } ?? "?"
    }

    /// The lease of a destination this handle alone is writing and that is still empty.
    private func emptyDestination(_ destination: FileRange) -> WriteLease? {
        guard let file = open.file(destination.handle), file.writes, file.inode == destination.inode, let lease = file.lease,
            open.others(on: destination.inode, than: destination.handle).isEmpty
        else { return nil }
        return lease.writer.content.size == 0 && lease.writer.state.leases == 1 ? lease : nil
    }
}
