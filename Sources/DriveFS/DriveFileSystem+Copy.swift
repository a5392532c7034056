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
        guard configuration.uploadOptions.rapid, let from = inodes.record(source.inode), !from.item.isFolder,
            handles.withLock({ $0.staged[source.inode] == nil })
        else { throw CopyNotSupported() }
        // The call after a whole copy, at the end of unchanged server content: nothing left.
        if source.offset >= from.item.size && from.item.size > 0 { return 0 }
        guard source.offset == 0, destination.offset == 0, from.item.size > 0, Int64(length) >= from.item.size,
            let target = emptyDestination(destination)
        else { throw CopyNotSupported() }
        let (staged, start) = target
        let item = start.item
        let path = displayPath(item)
        try await serialized(destination.inode) {
            // (The kernel holds the destination's inode lock: no write can come meanwhile.)
            let copied: UploadResult?
            do {
                copied = try await self.service.copyByHash(of: from.item, parentID: item.parentID, name: item.name)
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                // (The kernel's own copy then meets the same service, and says so if it must.)
                self.logger.info("rapid copy: \(path): \(DriveFSError(error).description); copying the bytes instead")
                throw CopyNotSupported()
            }
            guard let copy = copied else { throw CopyNotSupported() }
            var made = copy.item
            made.parentID = item.parentID
            made.name = item.name
            if !item.fileID.hasPrefix(Self.localPrefix) {
                await self.trashReplaced(item.fileID, path: path)
                self.times.remove(fileID: item.fileID)
            }
            staged.update { state in
                state.uploadedVersion = start.version
                state.item = made
                state.writers -= 1
            }
            self.inodes.replace(destination.inode, with: made)
            self.directories.uploaded(made, replacing: item.fileID)
            self.space.withLock { $0 = nil }
            // The handle now reads the new file from the drive, and a later write fetches it
            // first, like any handle that opened existing content for writing.
            let reader = FileReader(item: made, service: self.service, cache: self.chunks, disk: self.disk, configuration: self.configuration)
            self.handles.withLock { handles in
                handles.files[destination.handle]?.staged = nil
                handles.files[destination.handle]?.reader = reader
                handles.servedHash[destination.inode] = nil
            }
            self.logger.info("rapid copy: \(self.displayPath(from.item)) → \(path) (\(Self.formatSize(made.size))) — 0 bytes sent")
        }
        // The empty staging file is nobody's now.
        dropIfClean(destination.inode, staged)
        return Int(from.item.size)
    }

    /// The staging file of a destination this handle alone is writing and that is still
    /// empty, with its state.
    private func emptyDestination(_ destination: FileRange) -> (StagedFile, StagedFile.State)? {
        handles.withLock { handles in
            guard let file = handles.files[destination.handle], file.writes, file.inode == destination.inode, let staged = file.staged,
                !handles.files.contains(where: { $0.key != destination.handle && $0.value.inode == destination.inode })
            else { return nil }
            let state = staged.snapshot
            return state.size == 0 && state.writers == 1 ? (staged, state) : nil
        }
    }
}
