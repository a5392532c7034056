import Foundation
import Glibc
import Synchronization

/// File content kept on disk (`disk_cache_size`, under `cache_dir/chunks`), behind the
/// memory `ChunkCache`: a chunk read once is read from disk afterwards, across mounts.
///
/// Chunks are content-addressed: a file is named by the content's SHA-1, the chunk size
/// and the chunk index, so two files with the same content share chunks and a file whose
/// content changed can never be served old bytes (its hash changed). Files without a
/// known content hash are not cached here.
///
/// A chunk is written to a temporary name and renamed into place, so a reader sees a
/// whole chunk or none; a chunk whose length is not the expected one (a crash, a full
/// disk) is ignored and removed. Bounded by bytes with least-recently-used eviction;
/// recency survives restarts through the files' mtimes (touched on use). The bound is per
/// mount: two mounts sharing one cache_dir may use up to twice it.
final class DiskChunkCache: Sendable {
    struct Key: Hashable, Sendable {
        var contentHash: String
        var chunkSize: Int
        var index: Int64

        var fileName: String { "\(contentHash.lowercased())-\(chunkSize)-\(index)" }

        /// Parses a file name written by `fileName`; nil for anything else in the folder.
        init?(fileName: String) {
            let fields = fileName.split(separator: "-")
            guard fields.count == 3, fields[0].count == 40, fields[0].allSatisfy(\.isHexDigit),
                let chunkSize = Int(fields[1]), let index = Int64(fields[2])
            else { return nil }
            self.init(contentHash: String(fields[0]), chunkSize: chunkSize, index: index)
        }

        init(contentHash: String, chunkSize: Int, index: Int64) {
            self.contentHash = contentHash.lowercased()
            self.chunkSize = chunkSize
            self.index = index
        }

        /// Only SHA-1 hex digests address content; anything else is not cacheable.
        static func isCacheable(_ contentHash: String?) -> Bool {
            guard let contentHash else { return false }
            return contentHash.count == 40 && contentHash.allSatisfy(\.isHexDigit)
        }
    }

    private struct State {
        var entries: [Key: (bytes: Int, lastUse: UInt64)] = [:]
        var bytes = 0
        var clock: UInt64 = 0
    }

    let directory: String
    let capacity: Int
    private let state = Mutex(State())
    private let temporaryCounter = Atomic<UInt64>(0)

    /// Opens (creating, mode 0700) the cache folder and accounts for the chunks already
    /// in it, oldest first, evicting down to `capacity`.
    init(directory: String, capacity: Int) throws {
        self.directory = directory
        self.capacity = max(capacity, 0)
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var found: [(key: Key, bytes: Int, modified: Double)] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            var info = stat()
            guard stat(directory + "/" + name, &info) == 0 else { continue }
            guard let key = Key(fileName: name) else {
                // A temporary file left by a crash: never renamed into place, never complete.
                if name.hasPrefix(".tmp-") { unlink(directory + "/" + name) }
                continue
            }
            found.append((key, Int(info.st_size), Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9))
        }
        let victims = state.withLock { state in
            for chunk in found.sorted(by: { $0.modified < $1.modified }) {
                state.clock += 1
                state.entries[chunk.key] = (chunk.bytes, state.clock)
                state.bytes += chunk.bytes
            }
            return Self.evict(&state, capacity: self.capacity)
        }
        remove(victims)
    }

    var usedBytes: Int { state.withLock { $0.bytes } }

    func contains(_ key: Key) -> Bool { state.withLock { $0.entries[key] != nil } }

    /// The whole chunk if it is on disk with exactly `length` bytes.
    func read(_ key: Key, length: Int) -> [UInt8]? {
        read(key, chunkLength: length, from: 0, count: length)
    }

    /// `count` bytes at `from` inside the chunk, if the chunk is on disk with exactly
    /// `chunkLength` bytes.
    func read(_ key: Key, chunkLength: Int, from: Int, count: Int) -> [UInt8]? {
        guard contains(key), from >= 0, count >= 0, from + count <= chunkLength else { return nil }
        let path = directory + "/" + key.fileName
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            forget([key])
            return nil
        }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0, Int(info.st_size) == chunkLength else {
            forget([key])
            unlink(path)
            return nil
        }
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let got = bytes.withUnsafeMutableBytes { buffer in
                pread(descriptor, buffer.baseAddress.map { $0 + done }, count - done, off_t(from + done))
            }
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else { return nil }
            done += got
        }
        // Recency for this process and, through the mtime, for the next one.
        futimens(descriptor, nil)
        state.withLock { state in
            guard let entry = state.entries[key] else { return }
            state.clock += 1
            state.entries[key] = (entry.bytes, state.clock)
        }
        return bytes
    }

    /// Stores a downloaded chunk (best effort: a full disk or any error just skips it).
    func store(_ key: Key, bytes: UnsafeRawBufferPointer) {
        guard capacity > 0, bytes.count <= capacity, !contains(key) else { return }
        let temporary = directory + "/.tmp-\(getpid())-\(temporaryCounter.wrappingAdd(1, ordering: .relaxed).newValue)"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { return }
        var done = 0
        while done < bytes.count {
            let wrote = write(descriptor, bytes.baseAddress.map { $0 + done }, bytes.count - done)
            if wrote < 0 && errno == EINTR { continue }
            guard wrote > 0 else { break }
            done += wrote
        }
        close(descriptor)
        guard done == bytes.count, rename(temporary, directory + "/" + key.fileName) == 0 else {
            unlink(temporary)
            return
        }
        let victims = state.withLock { state in
            if let old = state.entries[key] { state.bytes -= old.bytes }
            state.clock += 1
            state.entries[key] = (bytes.count, state.clock)
            state.bytes += bytes.count
            return Self.evict(&state, capacity: capacity)
        }
        remove(victims)
    }

    /// Takes least-recently-used entries out of the accounting until under `capacity`;
    /// returns them for unlinking outside the lock.
    private static func evict(_ state: inout State, capacity: Int) -> [Key] {
        guard state.bytes > capacity else { return [] }
        var victims: [Key] = []
        for (key, entry) in state.entries.sorted(by: { $0.value.lastUse < $1.value.lastUse }) {
            guard state.bytes > capacity else { break }
            state.entries[key] = nil
            state.bytes -= entry.bytes
            victims.append(key)
        }
        return victims
    }

    private func forget(_ keys: [Key]) {
        state.withLock { state in
            for key in keys {
                if let entry = state.entries.removeValue(forKey: key) { state.bytes -= entry.bytes }
            }
        }
    }

    private func remove(_ keys: [Key]) {
        for key in keys { unlink(directory + "/" + key.fileName) }
    }
}
