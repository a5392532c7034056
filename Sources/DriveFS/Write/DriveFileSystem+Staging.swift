import AliyunDrive
import FUSE
import Glibc

/// Local content for files the drive has: a lease on the inode's writer, made — and filled
/// with the drive's content, through the chunk caches — when the inode has none.
extension DriveFileSystem {
    /// The inode's writer, leased; emptied when `truncate` is set.
    func lease(_ record: InodeTable.Record, truncate: Bool) async throws -> WriteLease {
        let lease = try await writers.lease(record.inode) { try await self.fill(record, empty: truncate) }
        if truncate, lease.writer.content.size > 0 {
            do {
                try lease.writer.truncate(to: 0, now: now())
            } catch {
                await endLease(lease)
                throw error
            }
        }
        return lease
    }

    /// A writer for `record` with the drive's content, or with none (`empty`: the caller
    /// truncates anyway; a change when the drive's file was not empty).
    private func fill(_ record: InodeTable.Record, empty: Bool) async throws -> FileWriter {
        let item = record.item
        let content = try StagedFile(directory: try own.staging(), modified: times.modified(for: item) ?? FileTime(item.updatedAt), hasher: hasher)
        let writer = FileWriter(inode: record.inode, content: content, new: false, deferred: configuration.writeBackDelay > 0)
        do {
            if empty {
                if item.size > 0 { writer.handle(.changed) }
            } else {
                // Through the chunk caches (content just read is not fetched again; on
                // disk too with a disk cache), four chunks in flight, written in order
                // (the hash follower reads right behind).
                let reader = FileReader(item: item, service: service, cache: chunks, disk: disk, configuration: configuration)
                let chunk = Int64(configuration.chunkSize)
                let count = (item.size + chunk - 1) / chunk
                for index in 0..<count {
                    for ahead in index..<min(count, index + 4) { reader.startChunk(ahead) }
                    let (buffer, available) = try await reader.wholeChunk(index)
                    let expected = Int(min(chunk, item.size - index * chunk))
                    guard available == expected else { throw DriveFSError(errno: EIO, "short read while fetching \(item.name)") }
                    try buffer.withBytes(0..<available) { try content.fill($0, at: index * chunk) }
                }
            }
        } catch {
            writer.handle(.fetchFailed)
            content.remove()
            throw error
        }
        return writer
    }
}
