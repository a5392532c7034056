internal import CFuse
import Glibc

/// The `fuse_lowlevel_ops` table: C-convention trampolines that copy their arguments into
/// Swift values, then hand the work to a task (replying later is allowed by libfuse).
/// Defined in a nonisolated type: closures written at top level would be main-actor
/// isolated and trap on libfuse's threads.
enum Operations {
    static func table() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.`init` = { userdata, connection in
            guard let userdata, let connection else { return }
            let context = Unmanaged<SessionContext>.fromOpaque(userdata).takeUnretainedValue()
            connection.pointee.max_readahead = min(connection.pointee.max_readahead, context.maxReadahead) == 0
                ? context.maxReadahead : max(connection.pointee.max_readahead, context.maxReadahead)
            connection.pointee.want |= UInt32(FUSE_CAP_ASYNC_READ)
            // O_TRUNC arrives with open (not as a separate setattr), and writes up to 1 MiB.
            if connection.pointee.capable & UInt32(FUSE_CAP_ATOMIC_O_TRUNC) != 0 {
                connection.pointee.want |= UInt32(FUSE_CAP_ATOMIC_O_TRUNC)
            }
            connection.pointee.max_write = 1 << 20
            if connection.pointee.capable & UInt32(FUSE_CAP_READDIRPLUS) != 0 {
                connection.pointee.want |= UInt32(FUSE_CAP_READDIRPLUS)
            }
        }
        ops.lookup = { req, parent, cName in
            guard let req, let cName else { return }
            let fs = SessionContext.from(req).fileSystem
            let name = String(cString: cName)
            FUSEDispatch.run(req, "lookup", { try await fs.lookup(parent: parent, name: name) }) { $0.reply(entry: $1) }
        }
        ops.forget = { req, inode, count in
            guard let req else { return }
            SessionContext.from(req).fileSystem.forget(inode: inode, count: count)
            Request(req).replyNone()
        }
        ops.forget_multi = { req, count, items in
            guard let req else { return }
            let fs = SessionContext.from(req).fileSystem
            if let items {
                for index in 0..<count { fs.forget(inode: items[index].ino, count: items[index].nlookup) }
            }
            Request(req).replyNone()
        }
        ops.getattr = { req, inode, _ in
            guard let req else { return }
            let fs = SessionContext.from(req).fileSystem
            FUSEDispatch.run(req, "getattr", { try await fs.getattr(inode: inode) }) { $0.reply(attributes: $1) }
        }
        ops.opendir = { req, inode, _ in
            guard let req else { return }
            let fs = SessionContext.from(req).fileSystem
            FUSEDispatch.run(req, "opendir", { try await fs.opendir(inode: inode) }) { $0.reply(open: OpenReply(handle: $1)) }
        }
        ops.readdir = { req, inode, size, offset, info in
            guard let req, let info else { return }
            Operations.readdir(req, inode: inode, size: size, offset: offset, handle: info.pointee.fh, plus: false)
        }
        ops.readdirplus = { req, inode, size, offset, info in
            guard let req, let info else { return }
            Operations.readdir(req, inode: inode, size: size, offset: offset, handle: info.pointee.fh, plus: true)
        }
        ops.releasedir = { req, inode, info in
            guard let req, let info else { return }
            let fs = SessionContext.from(req).fileSystem
            let handle = info.pointee.fh
            FUSEDispatch.run(req, "releasedir", { await fs.releasedir(inode: inode, handle: handle) }) { request, _ in
                request.reply(errno: 0)
            }
        }
        ops.open = { req, inode, info in
            guard let req, let info else { return }
            let fs = SessionContext.from(req).fileSystem
            let flags = info.pointee.flags
            FUSEDispatch.run(req, "open", { try await fs.open(inode: inode, flags: flags) }) { $0.reply(open: $1) }
        }
        ops.read = { req, inode, size, offset, info in
            guard let req, let info else { return }
            let fs = SessionContext.from(req).fileSystem
            let handle = info.pointee.fh
            if let bytes = fs.readFromMemory(inode: inode, handle: handle, offset: Int64(offset), size: size) {
                Request(req).reply(bytes: bytes)
                return
            }
            FUSEDispatch.run(req, "read", {
                try await fs.read(inode: inode, handle: handle, offset: Int64(offset), size: size)
            }) { $0.reply(bytes: $1) }
        }
        ops.release = { req, inode, info in
            guard let req, let info else { return }
            let fs = SessionContext.from(req).fileSystem
            let handle = info.pointee.fh
            FUSEDispatch.run(req, "release", { try await fs.release(inode: inode, handle: handle) }) { request, _ in
                request.reply(errno: 0)
            }
        }
        ops.statfs = { req, inode in
            guard let req else { return }
            let fs = SessionContext.from(req).fileSystem
            FUSEDispatch.run(req, "statfs", { try await fs.statfs(inode: inode) }) { $0.reply(statistics: $1) }
        }
        ops.getxattr = { req, inode, cName, size in
            guard let req, let cName else { return }
            let fs = SessionContext.from(req).fileSystem
            let name = String(cString: cName)
            guard name.hasPrefix(fs.extendedAttributePrefix) else {
                Request(req).reply(errno: ENODATA)
                return
            }
            FUSEDispatch.run(req, "getxattr", { try await fs.getxattr(inode: inode, name: name) }) { request, value in
                Operations.replyXattr(request, value, size: size)
            }
        }
        ops.listxattr = { req, inode, size in
            guard let req else { return }
            let fs = SessionContext.from(req).fileSystem
            FUSEDispatch.run(req, "listxattr", { try await fs.listxattr(inode: inode) }) { request, names in
                Operations.replyXattr(request, names.flatMap { Array($0.utf8) + [0] }, size: size)
            }
        }
        writeOperations(&ops)
        return ops
    }

    /// The writing operations; each answers EROFS when the filesystem cannot write.
    private static func writeOperations(_ ops: inout fuse_lowlevel_ops) {
        ops.create = { req, parent, cName, mode, info in
            guard let req, let cName, let info else { return }
            let name = String(cString: cName)
            let flags = info.pointee.flags
            // libfuse's fuse_file_info lives on its stack: copy it for the later reply.
            let copied = info.pointee
            Operations.writing(req, "create", { try await $0.create(parent: parent, name: name, mode: UInt32(mode), flags: flags) }) { request, value in
                var fileInfo = copied
                fileInfo.fh = value.1.handle
                fileInfo.keep_cache = 0
                fileInfo.direct_io = value.1.directIO ? 1 : 0
                request.reply(created: value.0, info: &fileInfo)
            }
        }
        ops.mknod = { req, parent, cName, mode, _ in
            guard let req, let cName else { return }
            let name = String(cString: cName)
            guard mode & S_IFMT == S_IFREG else {
                Request(req).reply(errno: EPERM)
                return
            }
            Operations.writing(req, "mknod", { try await $0.mknod(parent: parent, name: name, mode: UInt32(mode)) }) { $0.reply(entry: $1) }
        }
        // The drive has no links: EPERM, as filesystems without them answer (not ENOSYS).
        ops.symlink = { req, _, _, _ in
            guard let req else { return }
            Request(req).reply(errno: SessionContext.from(req).fileSystem.writable == nil ? EROFS : EPERM)
        }
        ops.link = { req, _, _, _ in
            guard let req else { return }
            Request(req).reply(errno: SessionContext.from(req).fileSystem.writable == nil ? EROFS : EPERM)
        }
        ops.write = { req, inode, buffer, size, offset, info in
            guard let req, let info else { return }
            guard let fs = SessionContext.from(req).fileSystem.writable else {
                Request(req).reply(errno: EROFS)
                return
            }
            // Inline: a local pwrite into the staging file; the bytes die with the callback.
            let handle = info.pointee.fh
            do {
                let written = try fs.write(inode: inode, handle: handle, offset: Int64(offset), data: UnsafeRawBufferPointer(start: buffer, count: size))
                Request(req).reply(written: written)
            } catch is WriteNeedsPreparation {
                // The first write of a handle that has to fetch content first: keep a copy
                // of the bytes and answer once the handle is ready.
                let bytes = [UInt8](UnsafeRawBufferPointer(start: buffer, count: size))
                Operations.writing(req, "write", { fs in
                    try await fs.prepareWrite(inode: inode, handle: handle)
                    return try bytes.withUnsafeBytes { try fs.write(inode: inode, handle: handle, offset: Int64(offset), data: $0) }
                }) { request, written in request.reply(written: written) }
            } catch {
                Request(req).reply(errno: SessionContext.from(req).fileSystem.errno(for: error, operation: "write"))
            }
        }
        ops.setattr = { req, inode, attr, toSet, info in
            guard let req, let attr else { return }
            let changes = Operations.changes(attr.pointee, toSet: toSet, handle: info?.pointee.fh)
            if changes.size == nil, changes.mode == nil, changes.uid == nil, changes.gid == nil, changes.modified == nil, changes.accessed == nil {
                let fs = SessionContext.from(req).fileSystem
                FUSEDispatch.run(req, "setattr", { try await fs.getattr(inode: inode) }) { $0.reply(attributes: $1) }
                return
            }
            Operations.writing(req, "setattr", { try await $0.setattr(inode: inode, changes: changes) }) { $0.reply(attributes: $1) }
        }
        ops.mkdir = { req, parent, cName, mode in
            guard let req, let cName else { return }
            let name = String(cString: cName)
            Operations.writing(req, "mkdir", { try await $0.mkdir(parent: parent, name: name, mode: UInt32(mode)) }) { $0.reply(entry: $1) }
        }
        ops.rmdir = { req, parent, cName in
            guard let req, let cName else { return }
            let name = String(cString: cName)
            Operations.writing(req, "rmdir", { try await $0.rmdir(parent: parent, name: name) }) { request, _ in request.reply(errno: 0) }
        }
        ops.unlink = { req, parent, cName in
            guard let req, let cName else { return }
            let name = String(cString: cName)
            Operations.writing(req, "unlink", { try await $0.unlink(parent: parent, name: name) }) { request, _ in request.reply(errno: 0) }
        }
        ops.rename = { req, parent, cName, newParent, cNewName, flags in
            guard let req, let cName, let cNewName else { return }
            let name = String(cString: cName)
            let newName = String(cString: cNewName)
            Operations.writing(req, "rename", { try await $0.rename(parent: parent, name: name, newParent: newParent, newName: newName, flags: UInt32(flags)) }) {
                request, _ in request.reply(errno: 0)
            }
        }
        ops.flush = { req, inode, info in
            guard let req, let info else { return }
            let fs = SessionContext.from(req).fileSystem
            let handle = info.pointee.fh
            guard let writable = fs.writable else {
                Request(req).reply(errno: 0)
                return
            }
            FUSEDispatch.run(req, "flush", { try await writable.flush(inode: inode, handle: handle) }) { request, _ in
                request.reply(errno: 0)
            }
        }
        ops.copy_file_range = { req, inodeIn, offsetIn, infoIn, inodeOut, offsetOut, infoOut, length, _ in
            guard let req, let infoIn, let infoOut else { return }
            let source = FileRange(inode: inodeIn, handle: infoIn.pointee.fh, offset: Int64(offsetIn))
            let destination = FileRange(inode: inodeOut, handle: infoOut.pointee.fh, offset: Int64(offsetOut))
            Operations.writing(req, "copy_file_range", { try await $0.copyFileRange(from: source, to: destination, length: length) }) {
                request, copied in request.reply(written: copied)
            }
        }
        ops.fsync = { req, inode, dataOnly, info in
            guard let req, let info else { return }
            let handle = info.pointee.fh
            Operations.writing(req, "fsync", { try await $0.fsync(inode: inode, handle: handle, dataOnly: dataOnly != 0) }) { request, _ in
                request.reply(errno: 0)
            }
        }
    }

    /// Runs a write operation, or answers EROFS when the filesystem cannot write.
    fileprivate static func writing<Value: Sendable>(
        _ req: fuse_req_t, _ operation: String, _ work: @escaping @Sendable (any WritableFileSystem) async throws -> Value,
        reply: @escaping @Sendable (consuming Request, Value) -> Void
    ) {
        guard let fs = SessionContext.from(req).fileSystem.writable else {
            Request(req).reply(errno: EROFS)
            return
        }
        FUSEDispatch.run(req, operation, { try await work(fs) }, reply: reply)
    }

    /// The fields of a `setattr` that `toSet` marks (FUSE_SET_ATTR_*).
    static func changes(_ attr: stat, toSet: Int32, handle: UInt64?) -> AttributeChanges {
        var changes = AttributeChanges(handle: handle)
        if toSet & FUSE_SET_ATTR_SIZE != 0 { changes.size = Int64(attr.st_size) }
        if toSet & FUSE_SET_ATTR_MODE != 0 { changes.mode = attr.st_mode & 0o7777 }
        if toSet & FUSE_SET_ATTR_UID != 0 { changes.uid = attr.st_uid }
        if toSet & FUSE_SET_ATTR_GID != 0 { changes.gid = attr.st_gid }
        let now = FileTime.now
        if toSet & FUSE_SET_ATTR_MTIME_NOW != 0 { changes.modified = now } else if toSet & FUSE_SET_ATTR_MTIME != 0 { changes.modified = FileTime(attr.st_mtim) }
        if toSet & FUSE_SET_ATTR_ATIME_NOW != 0 { changes.accessed = now } else if toSet & FUSE_SET_ATTR_ATIME != 0 { changes.accessed = FileTime(attr.st_atim) }
        return changes
    }

    fileprivate static func readdir(_ req: fuse_req_t, inode: InodeNumber, size: Int, offset: off_t, handle: UInt64, plus: Bool) {
        let fs = SessionContext.from(req).fileSystem
        FUSEDispatch.run(req, plus ? "readdirplus" : "readdir", {
            try await fs.readdir(inode: inode, handle: handle, offset: UInt64(max(0, offset)), plus: plus)
        }) { request, entries in
            request.reply(entries: entries, size: size, plus: plus) { fs.remember(inodes: $0) }
        }
    }

    enum XattrAnswer: Equatable {
        case size(Int)
        case tooSmall
        case bytes([UInt8])
    }

    /// `size == 0` asks for the length; a too-small buffer is ERANGE.
    static func xattrAnswer(_ value: [UInt8], size: Int) -> XattrAnswer {
        if size == 0 { return .size(value.count) }
        return size < value.count ? .tooSmall : .bytes(value)
    }

    fileprivate static func replyXattr(_ request: consuming Request, _ value: [UInt8], size: Int) {
        switch xattrAnswer(value, size: size) {
        case .size(let count): request.reply(xattrSize: count)
        case .tooSmall: request.reply(errno: ERANGE)
        case .bytes(let bytes): request.reply(bytes: bytes[...])
        }
    }
}
