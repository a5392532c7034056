import AliyunDrive
import FUSE
import Synchronization

/// The `FileWriter` of each inode that has local content, and the fills in progress
/// (drive content being copied into a new staging file). Concurrent callers share one fill.
///
/// INVARIANT: a writer is in `slots` exactly while it holds its lookup on the inode.
/// LOCK ORDERING: writers → a writer's lifecycle (leases are taken under this lock, so a
/// drop can never remove a writer under a new lease).
final class Writers: Sendable {
    private enum Slot {
        case ready(FileWriter)
        case filling(Task<FileWriter, any Error>)
    }

    private let slots = Mutex<[InodeNumber: Slot]>([:])
    private let inodes: InodeTable

    init(inodes: InodeTable) { self.inodes = inodes }

    func writer(_ inode: InodeNumber) -> FileWriter? {
        slots.withLock { slots in
            if case .ready(let writer) = slots[inode] { return writer }
            return nil
        }
    }

    var all: [FileWriter] {
        slots.withLock { slots in
            slots.values.compactMap { slot in
                if case .ready(let writer) = slot { return writer }
                return nil
            }
        }
    }

    /// A new file's writer, with a lease.
    func install(_ writer: FileWriter) -> WriteLease {
        inodes.addLookups([writer.inode])
        return slots.withLock { slots in
            slots[writer.inode] = .ready(writer)
            return writer.lease()
        }
    }

    /// The inode's writer with a lease taken; made by `fill` (whose result is installed
    /// here) when it has none.
    func lease(_ inode: InodeNumber, fill: @escaping @Sendable () async throws -> FileWriter) async throws -> WriteLease {
        enum Step {
            case leased(WriteLease)
            case wait(Task<FileWriter, any Error>)
        }
        while true {
            let step: Step = slots.withLock { slots in
                switch slots[inode] {
                case .ready(let writer): return .leased(writer.lease())
                case .filling(let task): return .wait(task)
                case nil:
                    let task = Task { try await self.filled(inode, fill) }
                    slots[inode] = .filling(task)
                    return .wait(task)
                }
            }
            switch step {
            case .leased(let lease): return lease
            case .wait(let task): _ = try await cancellableValue(of: task)
            }
        }
    }

    private func filled(_ inode: InodeNumber, _ fill: @Sendable () async throws -> FileWriter) async throws -> FileWriter {
        do {
            let writer = try await fill()
            writer.handle(.fetched)
            inodes.addLookups([inode])
            slots.withLock { $0[inode] = .ready(writer) }
            return writer
        } catch {
            slots.withLock { $0[inode] = nil }
            throw error
        }
    }

    /// Forgets `writer` if it is still the inode's and its lifecycle allows it; true if it did.
    @discardableResult
    func drop(_ writer: FileWriter) -> Bool {
        let dropped = slots.withLock { slots in
            guard case .ready(let current) = slots[writer.inode], current === writer, writer.state.canDrop else { return false }
            slots[writer.inode] = nil
            return true
        }
        guard dropped else { return false }
        // Readers still holding the content keep reading through its open descriptor.
        writer.content.remove()
        inodes.forget(writer.inode, count: 1)
        return true
    }
}
