import AliyunDrive
internal import CLinux
import Foundation
import FUSE
import Glibc
import Synchronization

/// The local content of a file being written: a file under the staging directory that
/// holds the whole content, its size and time, and its SHA-1 as far as the hash follower
/// got. Reads of the inode on this mount come from here while it exists; uploads read the
/// file itself. What the content is for (which file, whether the drive has it) is its
/// `FileWriter`'s; where it belongs is the inode table's.
///
/// Writes are `pwrite`s on the caller's thread (a FUSE thread, never the cooperative pool).
///
/// INVARIANT: `hash.done <= hash.claim <= size` while `hash.valid`; hash waiters are parked
/// only while the follower is following (valid and behind), and are resumed as soon as it
/// is not.
final class StagedFile: Sendable {
    struct State: Sendable {
        var size: Int64
        var modified: FileTime
        /// `modified` was set with utimes (not by a write): kept once uploaded (`FileTimes`).
        var explicitModified = false
        var hash = HashProgress()
        /// Changes so far, and how many of them the last `sync()` made durable.
        var changes: UInt64 = 0
        var synced: UInt64 = 0
        /// Callers of `contentHash()` waiting for the follower to finish or give up.
        var hashWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
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

    private let hasher: HashWorker

    /// Creates an empty staging file in `directory`, hashed behind its writers by `hasher`.
    init(directory: String, modified: FileTime, hasher: HashWorker) throws {
        self.hasher = hasher
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        id = UUID().uuidString
        path = directory + "/" + id
        descriptor = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            let code = errno
            throw DriveFSError(errno: code == ENOSPC ? ENOSPC : EIO, "cannot create a staging file in \(directory): \(String(cString: strerror(code)))")
        }
        state = Mutex(State(size: 0, modified: modified))
    }

    deinit {
        close(descriptor)
    }

    /// Asks the hash worker to catch up with what was written.
    private func wake() { hasher.follow(self) }

    var snapshot: State { state.withLock { $0 } }
    var size: Int64 { state.withLock { $0.size } }

    func update<T>(_ change: (inout State) -> T) -> T { state.withLock { change(&$0) } }

    /// Writes at `offset` (`append`: at the end) and returns the count.
    func write(_ data: UnsafeRawBufferPointer, at offset: Int64, append: Bool, now: Double) throws -> Int {
        defer { wake() }
        return try changing { state in
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
            state.modified = FileTime(now)
            state.explicitModified = false
            return done
        }
    }

    /// Runs a change under the lock; waiters for the hash hear if it made the follower give up.
    private func changing<T>(_ change: (inout State) throws -> T) throws -> T {
        let (result, waiters) = try state.withLock { state in
            state.changes += 1
            let result = try change(&state)
            return (result, Self.settledWaiters(&state))
        }
        for waiter in waiters { waiter.resume() }
        return result
    }

    /// Takes the hash waiters once the follower is no longer following (done or gave up).
    private static func settledWaiters(_ state: inout State) -> [CheckedContinuation<Void, Never>] {
        guard !state.hashWaiters.isEmpty, !state.hash.valid || state.hash.done == state.size else { return [] }
        defer { state.hashWaiters = [:] }
        return Array(state.hashWaiters.values)
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
        try changing { state in
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

    /// Appends bytes fetched from the server while the file is being filled (not a change).
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
            let (more, waiters) = state.withLock { state in
                if state.hash.valid, done == length {
                    state.hash.hasher = hasher
                    state.hash.done = claimed.end
                } else {
                    state.hash.valid = false
                }
                return (state.hash.valid, Self.settledWaiters(&state))
            }
            for waiter in waiters { waiter.resume() }
            return more
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
            case .following: await followerSettles()
            }
        }
        return nil
    }

    /// Returns once the follower is done or gave up (or the caller is cancelled).
    private func followerSettles() async {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                // Parked only while still following and not cancelled: a cancellation that
                // came first found nothing to resume, so it must not park now.
                let parked = state.withLock { state -> Bool in
                    guard !Task.isCancelled, state.hash.valid, state.hash.done < state.size else { return false }
                    state.hashWaiters[id] = continuation
                    return true
                }
                if parked { wake() } else { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.hashWaiters.removeValue(forKey: id) }?.resume()
        }
    }

    /// Gives back the blocks reserved past the end: for content that stays staged (an
    /// upload failed and waits for its retry).
    func releaseReservation() {
        state.withLock { state in
            guard state.reserved > state.size, ftruncate(descriptor, off_t(state.size)) == 0 else { return }
            state.reserved = state.size
        }
    }

    /// Makes the content durable (before it is journaled without a hash, or once an upload
    /// failed), on a thread of its own: an fsync can take seconds.
    func sync() async {
        let changes = state.withLock { $0.changes }
        let done = await Blocking.run { [descriptor] in fsync(descriptor) == 0 }
        if done { state.withLock { $0.synced = max($0.synced, changes) } }
    }

    /// Every change so far is on the disk (`sync()` ran after the last one).
    var isSynced: Bool { state.withLock { $0.synced == $0.changes } }

    func remove() { unlink(path) }
}
