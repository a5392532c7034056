internal import CFuse
import Glibc
import Logging

/// A kernel request (`fuse_req_t`) on its way to the task that answers it. It cannot
/// reply: the task makes a `Request` of it, and that answers.
struct RequestHandle: @unchecked Sendable {
    // Unchecked: the handle stays valid until a reply function is called, from any thread.
    let raw: fuse_req_t
}

/// One kernel request, answered exactly once — the type makes sure of it: each `reply…`
/// consumes the request, and one dropped without a reply answers EIO (and says so in the
/// log) from its `deinit`, so the kernel's caller is never left waiting.
struct Request: ~Copyable {
    let raw: fuse_req_t

    init(_ raw: fuse_req_t) { self.raw = raw }

    init(_ handle: RequestHandle) { raw = handle.raw }

    deinit {
        FUSEDispatch.logger.error("a request was dropped without a reply; answering EIO")
        fuse_reply_err(raw, EIO)
    }

    /// The corresponding libfuse call is `fuse_reply_err`.
    consuming func reply(errno: Int32) {
        fuse_reply_err(raw, errno)
        discard self
    }

    /// The corresponding libfuse call is `fuse_reply_none` (forget).
    consuming func replyNone() {
        fuse_reply_none(raw)
        discard self
    }

    /// The corresponding libfuse call is `fuse_reply_entry`.
    consuming func reply(entry: Entry) {
        var parameters = Self.parameters(entry)
        fuse_reply_entry(raw, &parameters)
        discard self
    }

    static func parameters(_ entry: Entry) -> fuse_entry_param {
        var parameters = fuse_entry_param()
        parameters.ino = entry.attributes.inode
        parameters.generation = entry.generation
        parameters.attr = entry.attributes.stat
        parameters.attr_timeout = entry.attributeTimeout
        parameters.entry_timeout = entry.entryTimeout
        return parameters
    }

    /// The corresponding libfuse call is `fuse_reply_attr`.
    consuming func reply(attributes: AttributeReply) {
        var stat = attributes.attributes.stat
        fuse_reply_attr(raw, &stat, attributes.timeout)
        discard self
    }

    /// The corresponding libfuse call is `fuse_reply_open`.
    consuming func reply(open: OpenReply) {
        var info = fuse_file_info()
        info.fh = open.handle
        info.keep_cache = open.keepCache ? 1 : 0
        info.direct_io = open.directIO ? 1 : 0
        fuse_reply_open(raw, &info)
        discard self
    }

    /// The corresponding libfuse call is `fuse_reply_create`.
    consuming func reply(created entry: Entry, info: inout fuse_file_info) {
        var parameters = Self.parameters(entry)
        fuse_reply_create(raw, &parameters, &info)
        discard self
    }

    /// The corresponding libfuse call is `fuse_reply_buf`.
    consuming func reply(bytes: any ReadBytes) {
        let request = raw
        bytes.withUnsafeBytes { raw in
            _ = fuse_reply_buf(request, raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count)
        }
        discard self
    }

    /// The corresponding libfuse call is `fuse_reply_xattr` (size probe).
    consuming func reply(xattrSize: Int) {
        fuse_reply_xattr(raw, xattrSize)
        discard self
    }

    /// The corresponding libfuse call is `fuse_reply_write`.
    consuming func reply(written: Int) {
        fuse_reply_write(raw, written)
        discard self
    }

    /// The corresponding libfuse call is `fuse_reply_statfs`.
    consuming func reply(statistics: FileSystemStatistics) {
        var buffer = statvfs()
        buffer.f_bsize = UInt(statistics.blockSize)
        buffer.f_frsize = UInt(statistics.blockSize)
        buffer.f_blocks = UInt(statistics.blocks)
        buffer.f_bfree = UInt(statistics.freeBlocks)
        buffer.f_bavail = UInt(statistics.availableBlocks)
        buffer.f_files = UInt(statistics.files)
        buffer.f_ffree = UInt(statistics.freeFiles)
        buffer.f_favail = UInt(statistics.freeFiles)
        buffer.f_namemax = UInt(statistics.maximumNameLength)
        fuse_reply_statfs(raw, &buffer)
        discard self
    }

    /// Packs directory entries into at most `size` bytes, lets `beforeSending` count the
    /// lookups of the inodes handed out with `plus` (before the kernel can forget them),
    /// then replies.
    consuming func reply(entries: [DirectoryEntry], size: Int, plus: Bool, beforeSending: ([InodeNumber]) -> Void) {
        let packed = Self.pack(entries, size: size, plus: plus, for: raw)
        if !packed.remembered.isEmpty { beforeSending(packed.remembered) }
        fuse_reply_buf(raw, packed.buffer, packed.used)
        discard self
    }

    /// The bytes of a readdir reply (`fuse_add_direntry`, or `fuse_add_direntry_plus` with
    /// `plus`) holding as many entries as fit in `size`, and the inodes whose lookups the
    /// reply hands out. (libfuse does not use the request to pack.)
    static func pack(_ entries: [DirectoryEntry], size: Int, plus: Bool, for raw: fuse_req_t) -> (buffer: [CChar], used: Int, remembered: [InodeNumber]) {
        var buffer = [CChar](repeating: 0, count: size)
        var used = 0
        var remembered: [InodeNumber] = []
        buffer.withUnsafeMutableBufferPointer { storage in
            guard let base = storage.baseAddress else { return }
            for entry in entries {
                let needed: Int
                if plus {
                    // Every entry of a readdirplus reply uses the plus format; entries
                    // without attributes ("." and "..") carry ino 0, so no lookup counts.
                    var parameters = entry.entry.map(Self.parameters) ?? fuse_entry_param()
                    if entry.entry == nil {
                        parameters.attr.st_ino = UInt(entry.inode)
                        parameters.attr.st_mode = entry.kind == .directory ? S_IFDIR : S_IFREG
                    }
                    needed = fuse_add_direntry_plus(raw, base + used, size - used, entry.name, &parameters, off_t(entry.offset))
                } else {
                    var stat = Glibc.stat()
                    stat.st_ino = UInt(entry.inode)
                    stat.st_mode = entry.kind == .directory ? S_IFDIR : S_IFREG
                    needed = fuse_add_direntry(raw, base + used, size - used, entry.name, &stat, off_t(entry.offset))
                }
                if needed > size - used { break }
                used += needed
                if plus, entry.entry != nil, entry.name != ".", entry.name != ".." { remembered.append(entry.inode) }
            }
        }
        return (buffer, used, remembered)
    }
}

extension FileAttributes {
    /// The one place a `struct stat` is built (`st_ino` is `UInt`, `fuse_ino_t` `UInt64`).
    var stat: Glibc.stat {
        var value = Glibc.stat()
        value.st_ino = UInt(inode)
        value.st_mode = (kind == .directory ? S_IFDIR : S_IFREG) | (permissions & 0o7777)
        value.st_nlink = UInt(linkCount)
        value.st_uid = uid
        value.st_gid = gid
        value.st_size = Int(size)
        value.st_blksize = 4096
        value.st_blocks = Int((size + 511) / 512)
        value.st_mtim = modified.timespec
        value.st_ctim = changed.timespec
        value.st_atim = accessed.timespec
        return value
    }
}
