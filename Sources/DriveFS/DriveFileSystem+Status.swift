import AliyunDrive
import Foundation

/// What `adrivefs status` shows of a mount, and `adrivefs refresh`.
extension DriveFileSystem {
    public struct Status: Sendable {
        public var uptime: Double
        public var uploading: [UploadActivity.Running]
        public var waiting: [UploadActivity.Waiting]
        public var readsInFlight: Int
        public var memoryCache: (used: Int, capacity: Int, hits: Int, misses: Int)
        public var diskCache: (used: Int, capacity: Int)?
        /// Calls failed fast because the service could not be reached (for a few seconds).
        public var serviceUnreachable: Bool
    }

    public var status: Status {
        let counts = chunks.counts
        return Status(
            uptime: now() - started, uploading: uploads.running, waiting: uploads.waiting, readsInFlight: readsInFlight.withLock { $0 },
            memoryCache: (chunks.usedBytes, chunks.capacity, counts.hits, counts.misses), diskCache: disk.map { ($0.usedBytes, $0.capacity) },
            serviceUnreachable: (service as? GuardedService)?.isDown ?? false)
    }

    /// Drops every cached listing (changes made elsewhere show at the next access).
    public func refresh() {
        directories.invalidateAll()
        logger.info("refresh: cached listings dropped")
    }
}
