internal import CLinux
import Foundation
import Glibc
import Synchronization

/// The thread that hashes staged files right behind their writers, one stretch of one
/// file at a time, round-robin. It is a thread of its own at a lower priority (nice 10):
/// hashing is long CPU work that would hold one of the cooperative pool's few threads
/// (one per core) away from every other filesystem request, and on a busy machine it
/// should yield to the writers it follows — an upload does not wait for it, only its
/// final check does.
///
/// One per filesystem; `stop()` ends its thread (at unmount).
final class HashWorker: Sendable {
    static let threadName = "adrivefs.hash"

    private let pending = Mutex<(files: [StagedFile], stopped: Bool)>(([], false))
    private let signal = DispatchSemaphore(value: 0)

    init() {
        Thread { [self] in run() }.start()
    }

    /// Ends the thread once it is idle; files queued later are not hashed (their uploads
    /// hash them themselves).
    func stop() {
        pending.withLock { $0.stopped = true }
        signal.signal()
    }

    /// Queues `file` for hashing (once, however often it is asked).
    func follow(_ file: StagedFile) {
        let added = pending.withLock { pending in
            guard !pending.stopped, !pending.files.contains(where: { $0 === file }) else { return false }
            pending.files.append(file)
            return true
        }
        if added { signal.signal() }
    }

    private func run() {
        _ = clinux_name_thread(Self.threadName)
        // On Linux the nice value belongs to a thread, and `who` 0 is the calling one.
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
        var buffer = [UInt8](repeating: 0, count: 4 << 20)
        while true {
            signal.wait()
            let (next, stopped) = pending.withLock { pending in (pending.files.isEmpty ? nil : pending.files.removeFirst(), pending.stopped) }
            if stopped { return }
            guard let file = next else { continue }
            // More to do: back in the queue behind the others.
            if file.followWrites(&buffer) { follow(file) }
        }
    }
}
