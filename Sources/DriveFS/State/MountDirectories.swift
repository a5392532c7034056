import Foundation
import Glibc
import Synchronization

/// This mount's own journal and staging folders, created on first need and locked for as
/// long as the mount lives, so that no other mount takes them for a dead one's.
final class MountDirectories: Sendable {
    let layout: StateLayout
    private let locks = Mutex<(journal: MountLock?, staging: MountLock?, abandoned: Bool)>((nil, nil, false))

    init(layout: StateLayout) { self.layout = layout }

    /// The journal folder, locked; throws when it cannot be made or locked.
    func journal() throws -> String {
        try locks.withLock { locks in
            if locks.abandoned { throw Self.abandonedError }
            if locks.journal == nil {
                locks.journal = try Self.claim(layout.journalDirectory, lock: StateLayout.journalLock)
                if let binding = layout.binding { Self.describe(layout.journalScope, binding) }
            }
        }
        return layout.journalDirectory
    }

    /// The staging folder, locked; throws when it cannot be made or locked.
    func staging() throws -> String {
        try locks.withLock { locks in
            if locks.abandoned { throw Self.abandonedError }
            if locks.staging == nil { locks.staging = try Self.claim(layout.stagingDirectory, lock: StateLayout.stagingLock) }
        }
        return layout.stagingDirectory
    }

    /// Lets go of both locks and leaves the folders as they are, as a crash of the mount
    /// would (tests of recovery) — and, as after a crash, nothing of this mount writes
    /// there again (its work still winding down would otherwise take the locks back, and
    /// the next mount would take the folders for a live mount's).
    func abandon() { locks.withLock { $0 = (nil, nil, true) } }

    private static let abandonedError = DriveFSError(errno: EIO, "this mount's state folders were abandoned")

    /// At a clean unmount: removes both folders if nothing is left in them but their locks.
    func retire() {
        locks.withLock { locks in
            for (lock, folder) in [(locks.journal, layout.journalDirectory), (locks.staging, layout.stagingDirectory)] {
                guard let lock else { continue }
                let others = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { folder + "/" + $0 != lock.path }
                if others.isEmpty {
                    lock.unlinkFile()
                    rmdir(folder)
                }
            }
            locks = (nil, nil, locks.abandoned)
        }
    }

    /// Makes `folder` and holds its lock file. A cleaner of dead mounts' folders may remove
    /// a folder between its creation and the lock: then it is made again.
    private static func claim(_ folder: String, lock name: String) throws -> MountLock {
        var problem: Int32 = 0
        for _ in 0..<20 {
            do {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw DriveFSError(errno: EIO, "cannot create \(folder): \(error.localizedDescription)")
            }
            switch MountLock.acquire(folder + "/" + name) {
            case .acquired(let lock): return lock
            case .held: problem = EWOULDBLOCK
            case .failed(let error): problem = error
            }
            usleep(5_000)
        }
        throw DriveFSError(errno: EIO, "cannot lock \(folder)/\(name): \(String(cString: strerror(problem)))")
    }

    /// Writes which account, drive and endpoint a binding folder belongs to (for people, and
    /// for the log line about other accounts' pending uploads).
    private static func describe(_ scope: String, _ binding: AccountBinding) {
        let path = scope + "/" + StateLayout.bindingFile
        guard !FileManager.default.fileExists(atPath: path), let data = try? JSONEncoder().encode(binding) else { return }
        _ = FileManager.default.createFile(atPath: path, contents: data, attributes: [.posixPermissions: 0o600])
    }
}
