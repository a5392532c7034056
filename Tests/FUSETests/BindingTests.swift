internal import CFuse
@testable import FUSE
import Glibc
import Testing

/// The binding's own logic, without a kernel: how readdir replies are packed, the xattr
/// size rules, and how a setattr's fields are decoded.
@Suite struct BindingTests {
    /// libfuse packs without looking at the request; any non-null handle will do.
    static var request: OpaquePointer { OpaquePointer(bitPattern: 0x1000)! }

    /// The entries of a packed plain readdir reply (struct fuse_dirent: ino, off, namelen,
    /// type, name, padded to 8 bytes).
    static func parse(_ buffer: [CChar], used: Int, plus: Bool) -> [(name: String, inode: UInt64, offset: UInt64, type: UInt32)] {
        var entries: [(String, UInt64, UInt64, UInt32)] = []
        let bytes = buffer.prefix(used).map { UInt8(bitPattern: $0) }
        var position = 0
        // readdirplus entries start with a struct fuse_entry_out (40 bytes + 88 of attributes).
        let header = plus ? 128 : 0
        func u64(_ at: Int) -> UInt64 { (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) } }
        func u32(_ at: Int) -> UInt32 { (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[at + $1]) << (8 * UInt32($1)) } }
        while position + header + 24 <= bytes.count {
            let dirent = position + header
            let length = Int(u32(dirent + 16))
            let name = String(decoding: bytes[(dirent + 24)..<(dirent + 24 + length)], as: UTF8.self)
            entries.append((name, u64(dirent), u64(dirent + 8), u32(dirent + 20)))
            position = dirent + ((24 + length + 7) & ~7)
        }
        return entries
    }

    static func entry(_ name: String, _ inode: UInt64, offset: UInt64, folder: Bool = false, attributes: Bool = true) -> DirectoryEntry {
        let kind: FileAttributes.Kind = folder ? .directory : .file
        let attributes = attributes
            ? Entry(attributes: FileAttributes(inode: inode, kind: kind, permissions: 0o644, size: 10, uid: 0, gid: 0, modified: FileTime(0)), attributeTimeout: 1, entryTimeout: 1)
            : nil
        return DirectoryEntry(name: name, inode: inode, kind: kind, offset: offset, entry: attributes)
    }

    @Test func plainEntriesArePackedInOrderUntilTheBufferIsFull() {
        let entries = [Self.entry(".", 1, offset: 1, folder: true), Self.entry("..", 1, offset: 2, folder: true)]
            + (0..<20).map { Self.entry("file-\($0).txt", UInt64(10 + $0), offset: UInt64(3 + $0)) }
        let all = Request.pack(entries, size: 4096, plus: false, for: Self.request)
        let parsed = Self.parse(all.buffer, used: all.used, plus: false)
        #expect(parsed.map(\.name) == entries.map(\.name))
        #expect(parsed.map(\.inode) == entries.map(\.inode))
        #expect(parsed.map(\.offset) == entries.map(\.offset))
        #expect(parsed.first?.type == UInt32(DT_DIR) && parsed.last?.type == UInt32(DT_REG))
        // A plain readdir hands out no lookups.
        #expect(all.remembered.isEmpty)
        // Entries are 8-byte aligned: "." takes 24 + 1 → 32 bytes, "file-0.txt" 24 + 10 → 40.
        // What does not fit whole is left for the next call.
        let small = Request.pack(entries, size: 104, plus: false, for: Self.request)
        #expect(Self.parse(small.buffer, used: small.used, plus: false).map(\.name) == [".", "..", "file-0.txt"])
        #expect(small.used == 32 + 32 + 40)
        #expect(Request.pack(entries, size: 103, plus: false, for: Self.request).used == 64)
        #expect(Request.pack(entries, size: 10, plus: false, for: Self.request).used == 0)
    }

    @Test func plusEntriesCountLookupsOnlyForRealEntries() {
        let entries = [Self.entry(".", 1, offset: 1, folder: true, attributes: false), Self.entry("..", 1, offset: 2, folder: true, attributes: false),
            Self.entry("a", 7, offset: 3), Self.entry("b", 8, offset: 4), Self.entry("c", 9, offset: 5)]
        let packed = Request.pack(entries, size: 4096, plus: true, for: Self.request)
        #expect(Self.parse(packed.buffer, used: packed.used, plus: true).map(\.name) == [".", "..", "a", "b", "c"])
        #expect(packed.remembered == [7, 8, 9])
        // Cut short (each entry here takes 128 + 32 bytes): only the entries sent are counted.
        #expect(Request.pack(entries, size: 3 * 160, plus: true, for: Self.request).remembered == [7])
        #expect(Request.pack(entries, size: 3 * 160 - 1, plus: true, for: Self.request).remembered == [])
    }

    @Test func xattrSizeProbesTooSmallBuffersAndValues() {
        let value = Array("0123456789".utf8)
        #expect(Operations.xattrAnswer(value, size: 0) == .size(10))
        #expect(Operations.xattrAnswer(value, size: 9) == .tooSmall)
        #expect(Operations.xattrAnswer(value, size: 10) == .bytes(value))
        #expect(Operations.xattrAnswer(value, size: 4096) == .bytes(value))
        #expect(Operations.xattrAnswer([], size: 0) == .size(0))
    }

    @Test func setattrDecodesOnlyTheFieldsItMarks() {
        var attr = stat()
        attr.st_size = 12345
        attr.st_mode = S_IFREG | 0o4755
        attr.st_uid = 7
        attr.st_gid = 8
        attr.st_mtim = timespec(tv_sec: 1_700_000_000, tv_nsec: 123)
        attr.st_atim = timespec(tv_sec: 1_600_000_000, tv_nsec: 456)
        let truncate = Operations.changes(attr, toSet: FUSE_SET_ATTR_SIZE, handle: 42)
        #expect(truncate.size == 12345 && truncate.mode == nil && truncate.modified == nil && truncate.handle == 42)
        let chmod = Operations.changes(attr, toSet: FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID, handle: nil)
        #expect(chmod.mode == 0o4755 && chmod.uid == 7 && chmod.gid == 8 && chmod.size == nil && chmod.handle == nil)
        let times = Operations.changes(attr, toSet: FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME, handle: nil)
        #expect(times.modified == FileTime(attr.st_mtim) && times.accessed == FileTime(attr.st_atim))
        let before = FileTime.now
        let now = Operations.changes(attr, toSet: FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW, handle: nil)
        #expect(now.modified.map { $0 >= before && $0 != FileTime(attr.st_mtim) } == true)
        #expect(now.accessed == nil)
    }
}
