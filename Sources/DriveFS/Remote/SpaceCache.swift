import AliyunDrive
import Synchronization

/// The drive's usage as `statfs` last saw it, trusted for 30 s or until this mount changes
/// it (an upload, an unlink).
final class SpaceCache: Sendable {
    private let cached = Mutex<(info: SpaceInfo, at: Double)?>(nil)
    private let now: @Sendable () -> Double

    init(now: @escaping @Sendable () -> Double) { self.now = now }

    func info(_ fetch: () async throws -> SpaceInfo) async throws -> SpaceInfo {
        let current = now()
        if let cached = cached.withLock({ $0 }), current - cached.at < 30 { return cached.info }
        let fresh = try await fetch()
        cached.withLock { $0 = (fresh, current) }
        return fresh
    }

    func invalidate() { cached.withLock { $0 = nil } }
}
