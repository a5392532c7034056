internal import CLinux

/// The calling thread, as the kernel sees it.
public enum CurrentThread {
    /// Names the thread for `top -H`, `perf` and /proc (at most 15 bytes are kept);
    /// Foundation's `Thread.name` does not reach the kernel on Linux.
    public static func setName(_ name: String) {
        _ = clinux_name_thread(name)
    }
}
