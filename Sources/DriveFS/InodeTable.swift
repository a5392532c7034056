import AliyunDrive
import FUSE
import Synchronization

/// inode ⇄ file_id. An inode lives while the kernel holds lookups on it (`forget` frees
/// it); the root never goes away. The same file_id always maps to the same inode while it
/// lives; a new inode for a file_id gets a new generation.
final class InodeTable: Sendable {
    struct Record: Sendable {
        var inode: InodeNumber
        var item: DriveItem
        var lookups: UInt64
        var generation: UInt64
        /// Earlier file_ids that still lead here: a new file's `local:` id after its first
        /// upload, so that an operation that looked the file up just before the upload
        /// still finds its inode (and its current item) afterwards.
        var aliases: [String] = []
        /// Unlinked (or replaced by a rename) while descriptors keep it open: `st_nlink` 0.
        var unlinked = false
    }

    private struct State {
        var records: [InodeNumber: Record] = [:]
        var byFileID: [String: InodeNumber] = [:]
        var nextInode: InodeNumber = 2
        var generation: UInt64 = 1
    }

    static let rootInode: InodeNumber = 1
    private let state = Mutex(State())

    init(root: DriveItem) {
        state.withLock {
            $0.records[Self.rootInode] = Record(inode: Self.rootInode, item: root, lookups: 1, generation: 0)
            $0.byFileID[root.fileID] = Self.rootInode
        }
    }

    func record(_ inode: InodeNumber) -> Record? { state.withLock { $0.records[inode] } }

    /// The inode of `item` (created if needed) with its metadata refreshed; adds `lookups`.
    func inode(for item: DriveItem, addingLookups lookups: UInt64) -> Record {
        state.withLock { state in
            if let existing = state.byFileID[item.fileID], var record = state.records[existing] {
                if existing != Self.rootInode { record.item = item }
                record.lookups += lookups
                state.records[existing] = record
                return record
            }
            let inode = state.nextInode
            state.nextInode += 1
            state.generation += 1
            let record = Record(inode: inode, item: item, lookups: lookups, generation: state.generation)
            state.records[inode] = record
            state.byFileID[item.fileID] = inode
            return record
        }
    }

    /// Replaces the item of a live inode (rename, new content): the inode now stands for
    /// `item.fileID` (an upload mints a new one), and the old file_id no longer maps to it.
    func replace(_ inode: InodeNumber, with item: DriveItem) {
        state.withLock { state in
            guard var record = state.records[inode] else { return }
            let old = record.item.fileID
            if old.hasPrefix(DriveFileSystem.localPrefix), old != item.fileID {
                record.aliases.append(old)
            } else if state.byFileID[old] == inode {
                state.byFileID[old] = nil
            }
            record.item = item
            state.records[inode] = record
            state.byFileID[item.fileID] = inode
        }
    }

    /// The live inode of a file_id, if any.
    func inode(ofFileID fileID: String) -> InodeNumber? { state.withLock { $0.byFileID[fileID] } }

    func addLookups(_ inodes: [InodeNumber]) {
        state.withLock { state in
            for inode in inodes { state.records[inode]?.lookups += 1 }
        }
    }

    /// Drops `count` lookups; an inode with none left is freed (never the root).
    func forget(_ inode: InodeNumber, count: UInt64) {
        state.withLock { state in
            guard inode != Self.rootInode, var record = state.records[inode] else { return }
            record.lookups = record.lookups > count ? record.lookups - count : 0
            if record.lookups == 0 {
                Self.free(record, in: &state)
            } else {
                state.records[inode] = record
            }
        }
    }

    /// Frees those of `inodes` the kernel holds no lookup on: entries a plain `readdir`
    /// numbered but nobody looked up (`readdirplus` entries were counted when sent).
    func prune(_ inodes: [InodeNumber]) {
        state.withLock { state in
            for inode in inodes where inode != Self.rootInode {
                guard let record = state.records[inode], record.lookups == 0 else { continue }
                Self.free(record, in: &state)
            }
        }
    }

    private static func free(_ record: Record, in state: inout State) {
        state.records[record.inode] = nil
        for fileID in [record.item.fileID] + record.aliases where state.byFileID[fileID] == record.inode {
            state.byFileID[fileID] = nil
        }
    }

    /// Marks an inode unlinked (its name is gone; open descriptors keep it).
    func markUnlinked(_ inode: InodeNumber) { state.withLock { $0.records[inode]?.unlinked = true } }

    var count: Int { state.withLock { $0.records.count } }
}
