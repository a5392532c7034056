import Glibc

/// An inode number. 1 is the root (`FUSE_ROOT_ID`).
public typealias InodeNumber = UInt64

/// What a filesystem implements. Every method may be called concurrently from many
/// tasks; each returns a value or throws, and the binding turns that into exactly one
/// reply. Errors that conform to `ErrnoConvertible` become their errno; anything else is
/// EIO and is logged once with its cause.
public protocol FileSystem: Sendable {
    /// `lookup`: find `name` in `parent`. A returned entry counts one lookup of its inode.
    func lookup(parent: InodeNumber, name: String) async throws -> Entry
    /// `forget`: the kernel dropped `count` lookups of `inode`. Must not block.
    func forget(inode: InodeNumber, count: UInt64)
    func getattr(inode: InodeNumber) async throws -> AttributeReply
    func opendir(inode: InodeNumber) async throws -> UInt64
    /// Entries after `offset` (0: from the start). Each entry's `offset` is the cookie of
    /// the entry *after* it. With `plus`, entries carry attributes, and the binding calls
    /// `remember(inodes:)` for those it hands to the kernel.
    func readdir(inode: InodeNumber, handle: UInt64, offset: UInt64, plus: Bool) async throws -> [DirectoryEntry]
    /// Counts one lookup for each inode returned through readdirplus.
    func remember(inodes: [InodeNumber])
    func releasedir(inode: InodeNumber, handle: UInt64) async
    func open(inode: InodeNumber, flags: Int32) async throws -> OpenReply
    /// The bytes at `offset` (fewer at the end of the file). Any `ReadBytes` (an array
    /// slice, or a view of the filesystem's own buffer), so it can answer from a cached
    /// buffer without copying it first.
    func read(inode: InodeNumber, handle: UInt64, offset: Int64, size: Int) async throws -> any ReadBytes
    /// The same bytes when they are already in memory, answered on libfuse's thread
    /// without starting a task; nil sends the request on to `read`. Called first for every
    /// read, so it may also note the access (one call per read either way).
    func readFromMemory(inode: InodeNumber, handle: UInt64, offset: Int64, size: Int) -> (any ReadBytes)?
    func release(inode: InodeNumber, handle: UInt64) async throws
    func statfs(inode: InodeNumber) async throws -> FileSystemStatistics
    func getxattr(inode: InodeNumber, name: String) async throws -> [UInt8]
    /// The extended-attribute names the filesystem serves all start with this prefix;
    /// the binding answers any other name with ENODATA at once (`ls -l` asks for ACL and
    /// SELinux attributes of every entry).
    var extendedAttributePrefix: String { get }
    func listxattr(inode: InodeNumber) async throws -> [String]
    /// The errno a failed operation answers with: the filesystem's one error mapping,
    /// applied by the binding to every operation (default: `ErrnoConvertible`'s errno,
    /// EINTR for cancellation, else EIO logged once with its cause).
    func errno(for error: any Error, operation: String) -> Int32
}

/// An error that knows its errno.
public protocol ErrnoConvertible: Error {
    var errno: Int32 { get }
}

/// File attributes as the kernel sees them (`struct stat`).
public struct FileAttributes: Sendable, Equatable {
    public enum Kind: Sendable { case file, directory }
    public var inode: InodeNumber
    public var kind: Kind
    /// Permission bits (e.g. 0o644), without the file type.
    public var permissions: UInt32
    public var size: Int64
    public var linkCount: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var modified: FileTime
    public var changed: FileTime
    public var accessed: FileTime

    public init(
        inode: InodeNumber, kind: Kind, permissions: UInt32, size: Int64, linkCount: UInt32 = 1, uid: UInt32, gid: UInt32,
        modified: FileTime, changed: FileTime? = nil, accessed: FileTime? = nil
    ) {
        self.inode = inode
        self.kind = kind
        self.permissions = permissions
        self.size = size
        self.linkCount = linkCount
        self.uid = uid
        self.gid = gid
        self.modified = modified
        self.changed = changed ?? modified
        self.accessed = accessed ?? modified
    }
}

/// A `lookup` answer (`struct fuse_entry_param`).
public struct Entry: Sendable {
    public var attributes: FileAttributes
    public var generation: UInt64
    /// Seconds the kernel may cache the attributes / the name.
    public var attributeTimeout: Double
    public var entryTimeout: Double

    public init(attributes: FileAttributes, generation: UInt64 = 0, attributeTimeout: Double, entryTimeout: Double) {
        self.attributes = attributes
        self.generation = generation
        self.attributeTimeout = attributeTimeout
        self.entryTimeout = entryTimeout
    }
}

public struct AttributeReply: Sendable {
    public var attributes: FileAttributes
    public var timeout: Double
    public init(attributes: FileAttributes, timeout: Double) {
        self.attributes = attributes
        self.timeout = timeout
    }
}

public struct DirectoryEntry: Sendable {
    public var name: String
    public var inode: InodeNumber
    public var kind: FileAttributes.Kind
    /// The cookie of the next entry.
    public var offset: UInt64
    /// For readdirplus.
    public var entry: Entry?

    public init(name: String, inode: InodeNumber, kind: FileAttributes.Kind, offset: UInt64, entry: Entry? = nil) {
        self.name = name
        self.inode = inode
        self.kind = kind
        self.offset = offset
        self.entry = entry
    }
}

public struct OpenReply: Sendable {
    public var handle: UInt64
    /// Keep the kernel's page cache from earlier opens (content unchanged).
    public var keepCache: Bool
    public var directIO: Bool
    public init(handle: UInt64, keepCache: Bool = false, directIO: Bool = false) {
        self.handle = handle
        self.keepCache = keepCache
        self.directIO = directIO
    }
}

/// `struct statvfs` for `statfs`.
public struct FileSystemStatistics: Sendable {
    public var blockSize: UInt64
    public var blocks: UInt64
    public var freeBlocks: UInt64
    public var availableBlocks: UInt64
    public var files: UInt64
    public var freeFiles: UInt64
    public var maximumNameLength: UInt64

    public init(blockSize: UInt64, blocks: UInt64, freeBlocks: UInt64, availableBlocks: UInt64, files: UInt64, freeFiles: UInt64, maximumNameLength: UInt64) {
        self.blockSize = blockSize
        self.blocks = blocks
        self.freeBlocks = freeBlocks
        self.availableBlocks = availableBlocks
        self.files = files
        self.freeFiles = freeFiles
        self.maximumNameLength = maximumNameLength
    }
}

extension FileSystem {
    public func readFromMemory(inode: InodeNumber, handle: UInt64, offset: Int64, size: Int) -> (any ReadBytes)? { nil }

    public func errno(for error: any Error, operation: String) -> Int32 { FUSEDispatch.errno(for: error, operation: operation) }
}

/// Bytes a read replies with, handed to the kernel without another copy. An array slice
/// is one; a filesystem can conform a view of its own buffers (keeping them alive until
/// the reply is sent).
public protocol ReadBytes: Sendable {
    var count: Int { get }
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension ArraySlice: ReadBytes where Element == UInt8 {}

/// What a `setattr` asks to change (nil: leave as is).
public struct AttributeChanges: Sendable {
    public var size: Int64?
    public var mode: UInt32?
    public var uid: UInt32?
    public var gid: UInt32?
    /// As given (`UTIME_NOW`: the clock when the request came).
    public var modified: FileTime?
    public var accessed: FileTime?
    /// The open file the change came through (`ftruncate`), if any.
    public var handle: UInt64?

    public init(
        size: Int64? = nil, mode: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil, modified: FileTime? = nil, accessed: FileTime? = nil,
        handle: UInt64? = nil
    ) {
        self.size = size
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.modified = modified
        self.accessed = accessed
        self.handle = handle
    }
}

/// The writing half of a filesystem. A filesystem that does not adopt it gets EROFS for
/// every write operation from the binding.
public protocol WritableFileSystem: FileSystem {
    /// Creates and opens a regular file (`O_CREAT`); `flags` are the open flags.
    func create(parent: InodeNumber, name: String, mode: UInt32, flags: Int32) async throws -> (Entry, OpenReply)
    /// Creates a regular file without opening it (`mknod`).
    func mknod(parent: InodeNumber, name: String, mode: UInt32) async throws -> Entry
    /// Writes `data` at `offset` and returns the count. Called on libfuse's thread: the
    /// bytes are only valid during the call. Throwing `WriteNeedsPreparation` asks for
    /// `prepareWrite` first: the bytes are copied, and `write` is called again after it.
    func write(inode: InodeNumber, handle: UInt64, offset: Int64, data: UnsafeRawBufferPointer) throws -> Int
    /// Makes the handle ready to take writes inline (e.g. fetches the content it changes).
    func prepareWrite(inode: InodeNumber, handle: UInt64) async throws
    func setattr(inode: InodeNumber, changes: AttributeChanges) async throws -> AttributeReply
    func mkdir(parent: InodeNumber, name: String, mode: UInt32) async throws -> Entry
    func rmdir(parent: InodeNumber, name: String) async throws
    func unlink(parent: InodeNumber, name: String) async throws
    /// `flags`: `RENAME_NOREPLACE` / `RENAME_EXCHANGE` from renameat2.
    func rename(parent: InodeNumber, name: String, newParent: InodeNumber, newName: String, flags: UInt32) async throws
    /// A `close()` of a descriptor of this open file.
    func flush(inode: InodeNumber, handle: UInt64) async throws
    func fsync(inode: InodeNumber, handle: UInt64, dataOnly: Bool) async throws
    /// copy_file_range(2) between two open files of this filesystem: copies up to `length`
    /// bytes and returns the count. Throwing `CopyNotSupported` hands this one call back to
    /// the kernel, which then copies through `read` and `write` (ENOSYS would turn the
    /// operation off for the whole mount).
    func copyFileRange(from source: FileRange, to destination: FileRange, length: Int) async throws -> Int
}

/// One side of a `copyFileRange`.
public struct FileRange: Sendable {
    public var inode: InodeNumber
    public var handle: UInt64
    public var offset: Int64

    public init(inode: InodeNumber, handle: UInt64, offset: Int64) {
        self.inode = inode
        self.handle = handle
        self.offset = offset
    }
}

/// EOPNOTSUPP from `copyFileRange`: the kernel copies this range the ordinary way.
public struct CopyNotSupported: ErrnoConvertible {
    public init() {}
    public var errno: Int32 { EOPNOTSUPP }
}

extension WritableFileSystem {
    public func copyFileRange(from source: FileRange, to destination: FileRange, length: Int) async throws -> Int {
        throw CopyNotSupported()
    }
}

/// Thrown by `WritableFileSystem.write` for a handle that cannot take a write inline yet.
public struct WriteNeedsPreparation: Error {
    public init() {}
}

/// The `flags` of `rename` (renameat2(2); Glibc does not export the constants).
public enum RenameFlag {
    public static let noReplace: UInt32 = 1
    public static let exchange: UInt32 = 2
}

/// The errno a refused write operation answers with.
struct ReadOnlyError: ErrnoConvertible {
    var errno: Int32 { EROFS }
}

extension FileSystem {
    /// The writing half, when the filesystem has one.
    var writable: (any WritableFileSystem)? { self as? any WritableFileSystem }
}
