import Dispatch
import Synchronization

/// Work that blocks in the kernel (fsync, reading a whole file to hash it) runs on a
/// dispatch thread, not on Swift's cooperative pool: the pool has one thread per core, and
/// one of them stuck in an fsync would stall every filesystem request behind it.
public enum Blocking {
    private static let queue = DispatchQueue(label: "adrivefs.blocking", qos: .utility, attributes: .concurrent)

    public static func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work() }) }
        }
    }

    public static func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: work()) }
        }
    }

    /// A stop request for work running under `run`, where task cancellation does not reach.
    public final class Stop: Sendable {
        private let flag = Mutex(false)

        public init() {}

        public func set() { flag.withLock { $0 = true } }

        public var isSet: Bool { flag.withLock { $0 } }
    }
}
