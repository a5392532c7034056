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
        /// Closed files whose upload waits for the `write_back` delay.
        public var queued: [Queued]
        /// The shares this mount shows (a share mount's own, or those under `.shares`).
        public var shares: [ShareState]
    }

    public struct Queued: Sendable, Equatable {
        public var path: String
        /// Seconds until its upload starts (0: due).
        public var dueIn: Double
    }

    public struct ShareState: Sendable, Equatable {
        public var shareID: String
        /// Its folder under `.shares` (nil: the mount is the share).
        public var folder: String?
        public var gone: Bool
    }

    public var status: Status {
        let counts = chunks.counts
        let now = writeBack.now
        // A failed upload shows as waiting to retry (UploadActivity); these are the ones
        // only waiting for their delay.
        let queued = writeBack.pending.filter { $0.kind == .file && $0.attempts == 0 }.map { Queued(path: $0.path, dueIn: max(0, $0.due - now)) }
        return Status(
            uptime: self.now() - started, uploading: uploads.running, waiting: uploads.waiting, readsInFlight: readsInFlight.withLock { $0 },
            memoryCache: (chunks.usedBytes, chunks.capacity, counts.hits, counts.misses), diskCache: disk.map { ($0.usedBytes, $0.capacity) },
            serviceUnreachable: (service as? GuardedService)?.isDown ?? false, queued: queued, shares: shareStates)
    }

    private var shareStates: [ShareState] {
        let shown = (service as? GuardedService)?.guarded ?? service
        if let share = shown as? ShareDrive { return [ShareState(shareID: share.share.shareID, folder: nil, gone: share.isGone)] }
        guard let drive = shown as? DriveWithShares else { return [] }
        return drive.shares.map { ShareState(shareID: $0.id, folder: DriveWithShares.folderName + "/" + $0.name, gone: $0.drive.isGone) }
    }

    /// Drops every cached listing (changes made elsewhere show at the next access).
    public func refresh() {
        directories.invalidateAll()
        logger.info("refresh: cached listings dropped")
    }
}
