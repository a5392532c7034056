import FUSE
import Synchronization

/// An open regular file: served by a reader of the drive's content, or by the inode's
/// local content once it has some. A handle that may write holds a lease on the inode's
/// `FileWriter` from its first change on (or from `open` with `O_TRUNC`, or `create`).
struct OpenFile: Sendable {
    var reader: FileReader?
    /// The local content this handle reads when the inode has no writer any more (a reader
    /// opened while a writer was there keeps what it saw).
    var staged: StagedFile?
    var lease: WriteLease?
    var writes = false
    var append = false
    var inode: InodeNumber = 0
    /// Bypasses the kernel's page cache.
    var directIO = false
}

/// The open file and folder handles of the mount, and the content hash last served per
/// inode (for keeping the kernel's page cache across opens). Short critical sections only;
/// nothing is called out under the lock.
///
/// INVARIANT: a handle number is used once (`next` only grows), by a file or a folder.
final class OpenFiles: Sendable {
    private struct State {
        var next: UInt64 = 1
        var files: [UInt64: OpenFile] = [:]
        var directories: [UInt64: [DirectoryEntry]] = [:]
        var servedHash: [InodeNumber: String] = [:]
    }

    private let state = Mutex(State())

    func add(_ file: OpenFile) -> UInt64 {
        state.withLock { state in
            defer { state.next += 1 }
            state.files[state.next] = file
            return state.next
        }
    }

    /// Adds `file` with what `decide` makes of the handles already open on its inode.
    func add(_ file: OpenFile, deciding decide: (_ others: [OpenFile], _ file: inout OpenFile) -> Void) -> (UInt64, OpenFile) {
        state.withLock { state in
            var file = file
            decide(state.files.values.filter { $0.inode == file.inode }, &file)
            defer { state.next += 1 }
            state.files[state.next] = file
            return (state.next, file)
        }
    }

    func file(_ handle: UInt64) -> OpenFile? { state.withLock { $0.files[handle] } }

    func remove(_ handle: UInt64) -> OpenFile? { state.withLock { $0.files.removeValue(forKey: handle) } }

    /// Changes an open file in place; false if the handle is gone or `change` declined.
    @discardableResult
    func update(_ handle: UInt64, _ change: (inout OpenFile) -> Bool) -> Bool {
        state.withLock { state in
            guard var file = state.files[handle], change(&file) else { return false }
            state.files[handle] = file
            return true
        }
    }

    /// The handles open on `inode` other than `handle`.
    func others(on inode: InodeNumber, than handle: UInt64?) -> [OpenFile] {
        state.withLock { state in state.files.filter { $0.key != handle && $0.value.inode == inode }.map(\.value) }
    }

    /// A descriptor reads the drive's file `fileID` through a reader.
    func isReading(fileID: String) -> Bool { state.withLock { $0.files.values.contains { $0.reader?.item.fileID == fileID } } }

    /// Records the hash served for `inode` now and says whether the kernel may keep what it cached.
    func serve(_ inode: InodeNumber, hash: String?) -> Bool {
        state.withLock { state in
            let keep = hash.map { !$0.isEmpty && state.servedHash[inode] == $0 } ?? false
            state.servedHash[inode] = hash
            return keep
        }
    }

    func addDirectory(_ entries: [DirectoryEntry]) -> UInt64 {
        state.withLock { state in
            defer { state.next += 1 }
            state.directories[state.next] = entries
            return state.next
        }
    }

    func directory(_ handle: UInt64) -> [DirectoryEntry]? { state.withLock { $0.directories[handle] } }

    func removeDirectory(_ handle: UInt64) -> [DirectoryEntry]? { state.withLock { $0.directories.removeValue(forKey: handle) } }
}
