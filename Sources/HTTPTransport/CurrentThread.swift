import Foundation

/// The calling thread, as the kernel sees it.
public enum CurrentThread {
    /// Names the thread for `top -H`, `perf` and /proc (at most 15 bytes are kept).
    /// Foundation's `Thread.name` does not reach the kernel on Linux, and Glibc's
    /// `pthread_setname_np` is not visible to Swift; /proc/thread-self/comm is the same call.
    public static func setName(_ name: String) {
        try? Data(name.utf8.prefix(15)).write(to: URL(fileURLWithPath: "/proc/thread-self/comm"))
    }
}
