import Foundation
import Glibc

/// Whether this process was started by mount(8) through `mount.fuse3` (a `mount -t
/// fuse.adrivefs` or an fstab line). mount(8) then puts `rw` into the options itself
/// whenever `ro` is not there, so an `rw` means "not ro", not a request.
enum MountHelper {
    static let variable = "ADRIVEFS_VIA_MOUNT_HELPER"

    static var isParent: Bool {
        if ProcessInfo.processInfo.environment[variable] == "1" { return true }
        // mount(8) forks mount.fuse3, which execs /bin/sh -c with our command line: our
        // parent is that shell (or mount.fuse3), our grandparent mount(8).
        var pid = getppid()
        for _ in 0..<3 {
            guard pid > 1, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")")
            else { return false }
            let command = stat[stat.index(after: open)..<close]
            if command == "mount" || command.hasPrefix("mount.fuse") { return true }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 1, let parent = Int32(fields[1]) else { return false }
            pid = parent
        }
        return false
    }

    /// Marks the environment, so the daemon child (started by this process) knows too.
    static func markEnvironment() { setenv(variable, "1", 1) }
}
