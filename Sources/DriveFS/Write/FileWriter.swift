import FUSE
import Synchronization

/// One inode's local content and what is to become of it: the staging file, the lifecycle
/// (`FileLifecycle`), the queue its server work runs on, and the leases of its writers.
/// It holds one kernel lookup on its inode while it lives (`Writers`), so the inode — and
/// the item in the inode table — outlive every descriptor until the content is uploaded.
///
/// INVARIANT: the lifecycle's `leases` is the number of this writer's `WriteLease`s not
/// ended (leases are only made by `lease()` and end through `WriteLease.end()`, once).
/// LOCK ORDERING: writers registry → lifecycle → staged file state.
final class FileWriter: Sendable {
    let inode: InodeNumber
    let content: StagedFile
    let queue = SerialQueue()
    private let lifecycle: Mutex<FileLifecycle>

    init(inode: InodeNumber, content: StagedFile, new: Bool, deferred: Bool) {
        self.inode = inode
        self.content = content
        lifecycle = Mutex(FileLifecycle(new: new, deferred: deferred))
    }

    /// Names the journal entry, the status line and the retry of this content.
    var id: String { content.id }

    var state: FileLifecycle { lifecycle.withLock { $0 } }

    @discardableResult
    func handle(_ event: FileLifecycle.Event) -> [FileLifecycle.Action] { lifecycle.withLock { $0.handle(event) } }

    /// A writer's right to change the content; ended exactly once.
    func lease() -> WriteLease {
        handle(.leased)
        return WriteLease(self)
    }

    func write(_ data: UnsafeRawBufferPointer, at offset: Int64, append: Bool, now: Double) throws -> Int {
        let count = try content.write(data, at: offset, append: append, now: now)
        handle(.changed)
        return count
    }

    func truncate(to size: Int64, now: Double) throws {
        try content.truncate(to: size, now: now)
        handle(.changed)
    }
}

/// A writer's lease on a `FileWriter`: taken when a handle may write (or an operation
/// writes for a moment), ended once — a second `end()` does nothing — so the writer count
/// cannot drift.
final class WriteLease: Sendable {
    let writer: FileWriter
    private let ended = Mutex(false)

    fileprivate init(_ writer: FileWriter) { self.writer = writer }

    /// Ends the lease: the lifecycle's actions for the release, or nil if it had ended.
    func end() -> [FileLifecycle.Action]? {
        guard ended.withLock({ ended in defer { ended = true }; return !ended }) else { return nil }
        return writer.handle(.released)
    }
}
