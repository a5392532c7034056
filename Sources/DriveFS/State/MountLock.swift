import Glibc

/// An exclusive `flock` on a file, held for as long as this object lives: the sign that a
/// mount (or a mount recovering another's uploads) still owns the folder the file is in.
///
/// The kernel drops the lock when the holder's last descriptor of it closes — when the
/// process exits, before it is a zombie — and a lock means the same in every PID namespace
/// and after a reboot. A recorded process id has none of that: a zombie still answers
/// `kill(pid, 0)`, and after a reboot or in a container the id may be another process's.
final class MountLock: Sendable {
    enum Outcome {
        case acquired(MountLock)
        /// Another open file description holds it: its owner is alive.
        case held
        /// The file cannot be opened or locked (the errno).
        case failed(Int32)
    }

    let path: String
    private let descriptor: Int32

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = descriptor
    }

    /// Takes the lock at `path` without waiting, creating the file (mode 0600) if needed.
    static func acquire(_ path: String) -> Outcome {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { return .failed(errno) }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let error = errno
            if error == EINTR { continue }
            close(fd)
            return error == EWOULDBLOCK ? .held : .failed(error)
        }
        // A cleaner may have unlinked the file between our open and flock: a lock on an
        // unlinked file guards nothing.
        var opened = stat()
        var named = stat()
        guard fstat(fd, &opened) == 0, lstat(path, &named) == 0, opened.st_ino == named.st_ino, opened.st_dev == named.st_dev else {
            close(fd)
            return .failed(ESTALE)
        }
        return .acquired(MountLock(path: path, descriptor: fd))
    }

    /// True when something holds the lock at `path` (a missing file is not held).
    static func isHeld(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        while flock(fd, LOCK_SH | LOCK_NB) != 0 {
            if errno == EINTR { continue }
            return errno == EWOULDBLOCK
        }
        flock(fd, LOCK_UN)
        return false
    }

    /// Removes the lock file while still holding the lock (the folder is being retired).
    func unlinkFile() { unlink(path) }

    deinit { close(descriptor) }
}
