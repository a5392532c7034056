internal import CSystemd

/// Tells systemd (a `Type=notify` unit) how the mount is doing, through libsystemd's
/// `sd_notify`: `READY=1` once the mount is live, `STATUS=` lines, `STOPPING=1` at
/// unmount. Does nothing when not started by a service manager.
enum ServiceManager {
    static func ready() { send("READY=1\nSTATUS=mounted") }

    static func status(_ line: String) { send("STATUS=" + line.replacingOccurrences(of: "\n", with: " ")) }

    static func stopping(_ line: String) { send("STOPPING=1\nSTATUS=" + line.replacingOccurrences(of: "\n", with: " ")) }

    private static func send(_ state: String) { _ = csystemd_notify(state) }
}
