import AliyunDrive
import Foundation
public import FUSE
import Glibc

/// `cp` within the mount (coreutils calls copy_file_range): content the drive has, copied
/// whole into an empty file, becomes the new file by hash — a rapid upload for which only
/// the 8 bytes of the proof code are read and nothing is sent, whatever the size. Anything
/// else (part of a file, an offset, content being written on this mount, a destination
/// that is not empty or is open elsewhere) goes back to the kernel, which copies through
/// `read` and `write` as before.
extension DriveFileSystem {
    public func copyFileRange(from source: FileRange, to destination: FileRange, length: Int) async throws -> Int {
        try checkWritable()
        guard configuration.uploadOptions.rapid, let from = inodes.record(source.inode), !from.item.isFolder, from.id.serverID != nil,
            writers.writer(source.inode) == nil
        else { throw CopyNotSupported() }
        // The call after a whole copy, at the end of unchanged drive content: nothing left.
        if source.offset >= from.item.size && from.item.size > 0 { return 0 }
        guard source.offset == 0, destination.offset == 0, from.item.size > 0, Int64(length) >= from.item.size,
            let lease = emptyDestination(destination)
        else { throw CopyNotSupported() }
        let writer = lease.writer
        try await writer.queue.run {
            // (The kernel holds the destination's inode lock: no write can come meanwhile.)
            guard let record = self.inodes.record(destination.inode) else { throw DriveFSError.notFound }
            let path = self.uploader.path(record.item)
            // The content becomes the copy's: a change, sent by the drive's copy.
            writer.handle(.changed)
            guard case .send(let version)? = writer.handle(.uploadStarted).first else { throw CopyNotSupported() }
            let copied: UploadResult?
            do {
                copied = try await self.service.copyByHash(of: from.item, parentID: record.item.parentID, name: record.item.name)
            } catch {
                writer.handle(.uploadFailed(version: version, refused: false))
                if error is CancellationError { throw error }
                // (The kernel's own copy then meets the same service, and says so if it must.)
                self.logger.info("rapid copy: \(path): \(DriveFSError(error).description); copying the bytes instead")
                throw CopyNotSupported()
            }
            guard let copy = copied else {
                writer.handle(.uploadFailed(version: version, refused: false))
                throw CopyNotSupported()
            }
            await self.uploader.adopt(copy.item, into: destination.inode, replacing: record, explicitTime: nil)
            writer.handle(.uploadSucceeded(version: version))
            // The handle now reads the new file from the drive, and a later write fetches it
            // first, like any handle that opened existing content for writing.
            let made = self.inodes.record(destination.inode)?.item ?? copy.item
            let reader = FileReader(item: made, service: self.service, cache: self.chunks, disk: self.disk, configuration: self.configuration)
            self.open.update(destination.handle) { file in
                (file.lease, file.staged, file.reader) = (nil, nil, reader)
                return true
            }
            _ = self.open.serve(destination.inode, hash: nil)
            self.logger.info("rapid copy: \(self.uploader.path(from.item)) → \(path) (\(Self.formatSize(made.size))) — 0 bytes sent")
        }
        // The empty local content is nobody's now.
        await endLease(lease)
        return Int(from.item.size)
    }

    /// The lease of a destination this handle alone is writing and that is still empty.
    private func emptyDestination(_ destination: FileRange) -> WriteLease? {
        guard let file = open.file(destination.handle), file.writes, file.inode == destination.inode, let lease = file.lease,
            open.others(on: destination.inode, than: destination.handle).isEmpty
        else { return nil }
        return lease.writer.content.size == 0 && lease.writer.state.leases == 1 ? lease : nil
    }
}
