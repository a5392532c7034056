import AliyunDrive
internal import CLinux
import Foundation
import FUSE
import Glibc
import HTTPTransport
import Synchronization

/// The local copy of a file being written: a file under the staging directory that holds
/// the whole content, plus what is known about it. Reads of the inode on this mount come
/// from here while it exists; uploads read the file itself.
///
/// `version` counts changes; `uploadedVersion` is the version the server has, so the
/// file is dirty while they differ. Writes are `pwrite`s on the caller's thread.
final class StagedFile: Sendable {
    struct State: Sendable {
        /// Where the content belongs: parent, name, and the file_id the inode stands for
        /// (a `local:` id until a new file is first uploaded).
        var item: DriveItem
        var size: Int64
        var version: UInt64 = 0
        var uploadedVersion: UInt64 = 0
        /// Open handles that may write.
        var writers = 0
        var modified: FileTime
        /// `modified` was set with utimes (not by a write): kept once uploaded (`FileTimes`).
        var explicitModified = false
        /// The name was unlinked: the content is never uploaded again.
        var unlinked = false
        /// A version the drive refused for good (over its per-file size limit): not retried
        /// in the background, nor waited for at unmount, until the content changes.
        var refusedVersion: UInt64?
        var hash = HashProgress()
        /// Blocks are reserved (fallocate, size unchanged) up to here, ahead of a writer
        /// that extends the file: a page-cache write into reserved blocks costs ~40 % less
        /// than one that must reserve its block itself. False once the filesystem refused.
        var reserved: Int64 = 0
        var reserves = true
    }

    /// The SHA-1 of the content, computed by a follower task that reads what was written
    /// (from the page cache) right behind the writer, so an upload at close need not read
    /// the file again. A write or truncate below what the follower has claimed makes it
    /// give up; the upload then hashes the file itself.
    struct HashProgress: Sendable {
        var hasher = ContentHasher()
        /// Bytes hashed so far.
        var done: Int64 = 0
        /// End of the range the follower is reading (writes below it invalidate).
        var claim: Int64 = 0
        var valid = true
    }

    /// The staging file's name; also names its journal entry.
    let id: String
    let path: String
    private let descriptor: Int32
    private let state: Mutex<State>

    /// Creates an empty staging file in `directory` for `item`.
    init(directory: String, item: DriveItem, modified: FileTime) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        id = UUID().uuidString
        path = directory + "/" + id
        descriptor = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            let code = errno
            throw DriveFSError(errno: code == ENOSPC ? ENOSPC : EIO, "cannot create a staging file in \(directory): \(String(cString: strerror(code)))")
        }
        state = Mutex(State(item: item, size: 0, modified: modified))
    }

    deinit {
        close(descriptor)
    }

    /// Asks the hash worker to catch up with what was written.
    private func wake() { HashWorker.shared.follow(self) }

    var snapshot: State { state.withLock { $0 } }
    var isDirty: Bool { state.withLock { $0.version != $0.uploadedVersion && !$0.unlinked } }
    /// Dirty, and worth trying again without a change (not refused for good).
    var isRetryable: Bool { state.withLock { $0.version != $0.uploadedVersion && !$0.unlinked && $0.refusedVersion != $0.version } }

    func update<T>(_ change: (inout State) -> T) -> T { state.withLock { change(&$0) } }

    /// Writes at `offset` (`append`: at the end) and returns the count.
    func write(_ data: UnsafeRawBufferPointer, at offset: Int64, append: Bool, now: Double) throws -> Int {
        defer { wake() }
        return try state.withLock { state in
            let position = append ? state.size : offset
            if position < state.hash.claim { state.hash.valid = false }
            reserve(&state, writingAt: position, count: data.count)
            var done = 0
            while done < data.count {
                let count = pwrite(descriptor, data.baseAddress.map { $0 + done }, data.count - done, off_t(position + Int64(done)))
                if count < 0 {
                    if errno == EINTR { continue }
                    throw DriveFSError(errno: errno == ENOSPC ? ENOSPC : EIO, "staging write failed: \(String(cString: strerror(errno)))")
                }
                done += count
            }
            state.size = max(state.size, position + Int64(done))
            state.version += 1
            state.modified = FileTime(now)
            state.explicitModified = false
            return done
        }
    }

    /// Reserves blocks ahead of a write that extends the file from where the reservation
    /// ends: twice the written size, 1 MiB at least and 64 MiB at most ahead (a small file
    /// reserves little; a write far past the end — a sparse file — reserves nothing).
    private func reserve(_ state: inout State, writingAt position: Int64, count: Int) {
        let end = position + Int64(count)
        guard state.reserves, end > state.reserved, position <= state.reserved else { return }
        let mib: Int64 = 1 << 20
        let target = (end + min(64 * mib, max(mib, end)) + mib - 1) / mib * mib
        if clinux_preallocate(descriptor, state.reserved, target - state.reserved) == 0 {
            state.reserved = target
        } else {
            // Not supported here, or no room to reserve: plain writes (which report a full disk themselves).
            state.reserves = false
        }
    }

    /// Sets the size (zero-filling growth), as `truncate` does.
    func truncate(to size: Int64, now: Double) throws {
        defer { wake() }
        try state.withLock { state in
            if size < state.hash.claim { state.hash.valid = false }
            guard ftruncate(descriptor, off_t(size)) == 0 else {
                let code = errno
                // Past what the staging filesystem can hold: too large, not an I/O error.
                let mapped = code == EFBIG || code == EINVAL ? EFBIG : code == ENOSPC ? ENOSPC : EIO
                throw DriveFSError(errno: mapped, "staging truncate failed: \(String(cString: strerror(code)))")
            }
            // Shrinking frees the blocks past the new end, reserved ones included.
            state.reserved = min(state.reserved, size)
            state.size = size
            state.version += 1
            state.modified = FileTime(now)
            state.explicitModified = false
        }
    }

    /// Up to `size` bytes at `offset`.
    func read(at offset: Int64, size: Int) throws -> [UInt8] {
        let available = Int(max(0, min(Int64(size), snapshot.size - offset)))
        guard available > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: available)
        var done = 0
        while done < available {
            let count = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress.map { $0 + done }, available - done, off_t(offset + Int64(done))) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            done += count
        }
        return Array(bytes[0..<done])
    }

    /// Appends bytes fetched from the server while the file is being filled (no version change).
    func fill(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws {
        state.withLock { reserve(&$0, writingAt: offset, count: bytes.count) }
        var done = 0
        while done < bytes.count {
            let written = pwrite(descriptor, bytes.baseAddress.map { $0 + done }, bytes.count - done, off_t(offset + Int64(done)))
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else {
                throw DriveFSError(errno: errno == ENOSPC ? ENOSPC : EIO, "staging write failed: \(String(cString: strerror(errno)))")
            }
            done += written
        }
        state.withLock { $0.size = max($0.size, offset + Int64(bytes.count)) }
        wake()
    }

    /// Hashes the next stretch (up to the buffer's size) of what was written and the
    /// follower has not hashed; false when there is nothing to do (caught up, or given up
    /// because a write landed below its claim).
    func followWrites(_ buffer: inout [UInt8]) -> Bool {
        do {
            let capacity = Int64(buffer.count)
            let claimed: (start: Int64, end: Int64, hasher: ContentHasher)? = state.withLock { state in
                guard state.hash.valid, state.hash.done < state.size else { return nil }
                state.hash.claim = min(state.hash.done + capacity, state.size)
                return (state.hash.done, state.hash.claim, state.hash.hasher)
            }
            guard let claimed else { return false }
            let length = Int(claimed.end - claimed.start)
            var done = 0
            while done < length {
                let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress.map { $0 + done }, length - done, off_t(claimed.start + Int64(done))) }
                if count < 0, errno == EINTR { continue }
                guard count > 0 else { break }
                done += count
            }
            var hasher = claimed.hasher
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<done])) }
            return state.withLock { state in
                guard state.hash.valid, done == length else {
                    state.hash.valid = false
                    return false
                }
                state.hash.hasher = hasher
                state.hash.done = claimed.end
                return true
            }
        }
    }

    /// Where the follower is: done (the SHA-1 of the whole content and the size it
    /// covers), still reading, or given up.
    enum HashStatus: Sendable, Equatable {
        case done(hash: String, size: Int64)
        case following
        case gaveUp
    }

    var hashStatus: HashStatus {
        state.withLock { state in
            guard state.hash.valid else { return .gaveUp }
            return state.hash.done == state.size ? .done(hash: state.hash.hasher.hexDigest, size: state.size) : .following
        }
    }

    /// The SHA-1 of the whole content (and the size it covers) once the follower has
    /// caught up; nil if it gave up (or the caller was cancelled).
    func contentHash() async -> (hash: String, size: Int64)? {
        while !Task.isCancelled {
            switch hashStatus {
            case .done(let hash, let size): return (hash, size)
            case .gaveUp: return nil
            case .following:
                wake()
                try? await Task.sleep(for: .milliseconds(2))
            }
        }
        return nil
    }

    /// Gives back the blocks reserved past the end: for content that stays staged (an
    /// upload failed and waits for its retry).
    func releaseReservation() {
        state.withLock { state in
            guard state.reserved > state.size, ftruncate(descriptor, off_t(state.size)) == 0 else { return }
            state.reserved = state.size
        }
    }

    /// Makes the content durable (before it is journaled without a hash, or once an upload failed).
    func sync() { fsync(descriptor) }

    func remove() { unlink(path) }
}

/// The thread that hashes staged files right behind their writers, one stretch of one
/// file at a time, round-robin. It is a thread of its own at a lower priority (nice 10):
/// hashing is long CPU work that would hold one of the cooperative pool's few threads
/// (one per core) away from every other filesystem request, and on a busy machine it
/// should yield to the writers it follows — an upload does not wait for it, only its
/// final check does.
final class HashWorker: Sendable {
    static let shared = HashWorker()
    static let threadName = "adrivefs.hash"

    private let pending = Mutex<[StagedFile]>([])
    private let signal = DispatchSemaphore(value: 0)

    private init() {
        Thread { [self] in run() }.start()
    }

    /// Queues `file` for hashing (once, however often it is asked).
    func follow(_ file: StagedFile) {
        let added = pending.withLock { pending in
            guard !pending.contains(where: { $0 === file }) else { return false }
            pending.append(file)
            return true
        }
        if added { signal.signal() }
    }

    private func run() {
        CurrentThread.setName(Self.threadName)
        // On Linux the nice value belongs to a thread, and `who` 0 is the calling one.
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
        var buffer = [UInt8](repeating: 0, count: 4 << 20)
        while true {
            signal.wait()
            guard let file = pending.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) else { continue }
            // More to do: back in the queue behind the others.
            if file.followWrites(&buffer) { follow(file) }
        }
    }
}
