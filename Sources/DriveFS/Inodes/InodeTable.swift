import AliyunDrive
import FUSE
import Synchronization

/// inode ⇄ file. An inode lives while the kernel holds lookups on it (`forget` frees it);
/// the root never goes away. The same file always maps to the same inode while it lives;
/// a new inode for a file gets a new generation. The inode's item (name, parent, size,
/// hash) is kept here and nowhere else: whoever changes a file (an upload, a rename)
/// updates it here.
///
/// INVARIANT: every id in `byID` leads to a live record of that file (its `id` or one of
/// its `aliases`). (A record's own id may lead elsewhere, or nowhere: when a listing made a
/// second inode for a file an upload was adopting, the adopting inode wins the id.)
final class InodeTable: Sendable {
    struct Record: Sendable {
        var inode: InodeNumber
        var id: FileID
        /// For a local file: its name, parent and times; `fileID` is empty.
        var item: DriveItem
        var lookups: UInt64
        var generation: UInt64
        /// Earlier ids that still lead here: a new file's local id after its first upload,
        /// so that an operation that looked the file up just before the upload still finds
        /// its inode (and its current item) afterwards.
        var aliases: [FileID] = []
        /// Unlinked (or replaced by a rename) while descriptors keep it open: `st_nlink` 0.
        var unlinked = false
    }

    private struct State {
        var records: [InodeNumber: Record] = [:]
        var byID: [FileID: InodeNumber] = [:]
        var nextInode: InodeNumber = 2
        var generation: UInt64 = 1
    }

    static let rootInode: InodeNumber = 1
    private let state = Mutex(State())

    init(root: DriveItem) {
        state.withLock {
            $0.records[Self.rootInode] = Record(inode: Self.rootInode, id: .server(root.fileID), item: root, lookups: 1, generation: 0)
            $0.byID[.server(root.fileID)] = Self.rootInode
        }
    }

    func record(_ inode: InodeNumber) -> Record? { state.withLock { $0.records[inode] } }

    /// The inode of a drive item (created if needed) with its metadata refreshed; adds `lookups`.
    func inode(for item: DriveItem, addingLookups lookups: UInt64) -> Record { inode(for: Child(item), addingLookups: lookups) }

    /// The inode of a folder entry (created if needed) with its metadata refreshed; adds `lookups`.
    func inode(for child: Child, addingLookups lookups: UInt64) -> Record {
        mutate { state in
            if let existing = state.byID[child.id], var record = state.records[existing] {
                // A local file's item is this table's own (the listing's is a copy).
                if existing != Self.rootInode, !record.id.isLocal { record.item = child.item }
                record.lookups += lookups
                state.records[existing] = record
                return record
            }
            let inode = state.nextInode
            state.nextInode += 1
            state.generation += 1
            let record = Record(inode: inode, id: child.id, item: child.item, lookups: lookups, generation: state.generation)
            state.records[inode] = record
            state.byID[child.id] = inode
            return record
        }
    }

    /// Replaces the item of a live inode (rename, new content). With `id`, the inode now
    /// stands for that file (an upload mints a new file_id): a local id stays an alias, a
    /// drive id no longer maps here.
    func replace(_ inode: InodeNumber, with item: DriveItem, id: FileID? = nil) {
        mutate { state in
            guard var record = state.records[inode] else { return }
            if let id, id != record.id {
                if record.id.isLocal {
                    record.aliases.append(record.id)
                } else if state.byID[record.id] == inode {
                    state.byID[record.id] = nil
                }
                record.id = id
                state.byID[id] = inode
            }
            record.item = item
            state.records[inode] = record
        }
    }

    /// The live inode of a drive file_id, if any.
    func inode(ofFileID fileID: String) -> InodeNumber? { state.withLock { $0.byID[.server(fileID)] } }

    /// The live inode of a file, if any.
    func inode(of id: FileID) -> InodeNumber? { state.withLock { $0.byID[id] } }

    func addLookups(_ inodes: [InodeNumber]) {
        state.withLock { state in
            for inode in inodes { state.records[inode]?.lookups += 1 }
        }
    }

    /// Drops `count` lookups; an inode with none left is freed (never the root).
    func forget(_ inode: InodeNumber, count: UInt64) {
        mutate { state in
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
        mutate { state in
            for inode in inodes where inode != Self.rootInode {
                guard let record = state.records[inode], record.lookups == 0 else { continue }
                Self.free(record, in: &state)
            }
        }
    }

    /// Changes the table; debug builds check the invariant after each change (on tables
    /// small enough for that to be cheap).
    private func mutate<T>(_ change: (inout State) -> T) -> T {
        state.withLock { state in
            let result = change(&state)
            #if DEBUG
                if state.records.count <= 4096 { Self.checkInvariant(state) }
            #endif
            return result
        }
    }

    #if DEBUG
        private static func checkInvariant(_ state: State) {
            for (inode, record) in state.records {
                assert(record.inode == inode, "record \(record.inode) filed under \(inode)")
            }
            for (id, inode) in state.byID {
                let record = state.records[inode]
                assert(record.map { $0.id == id || $0.aliases.contains(id) } == true, "\(id) leads to inode \(inode), which is not that file")
            }
        }
    #endif

    private static func free(_ record: Record, in state: inout State) {
        state.records[record.inode] = nil
        for id in [record.id] + record.aliases where state.byID[id] == record.inode {
            state.byID[id] = nil
        }
    }

    /// Marks an inode unlinked (its name is gone; open descriptors keep it).
    func markUnlinked(_ inode: InodeNumber) { state.withLock { $0.records[inode]?.unlinked = true } }

    var count: Int { state.withLock { $0.records.count } }

    /// `a/b/c.txt`, relative to the folder `rootID`, for logs (`…` where a parent is not known).
    func path(of item: DriveItem, under rootID: String) -> String {
        var parts = [item.name]
        var parent = item.parentID
        while parent != rootID, parts.count < 64 {
            guard let inode = inode(ofFileID: parent), let record = record(inode) else {
                parts.append("…")
                break
            }
            parts.append(record.item.name)
            parent = record.item.parentID
        }
        return parts.reversed().joined(separator: "/")
    }
}
