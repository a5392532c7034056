public import AliyunDrive
import Foundation
import Glibc
import Logging
import Synchronization

/// A public share as the filesystem's drive, read-only: listings from the share; content
/// through the legacy direct link while the service still hands it out (probed once per
/// mount), else — as maintained clients do since 2024 — through a temporary copy in the
/// user's own drive (`ShareCopies`). Without a login the share lists, and reads are EACCES.
public final class ShareDrive: DriveService {
    /// Which way content is read: decided by the first read, for the whole mount.
    enum ContentMode: Sendable, Equatable {
        case unknown, legacyLink, copies
    }

    public let share: ShareClient
    let copies: ShareCopies?
    private let mode = Mutex(ContentMode.unknown)
    private let probe = SingleFlight<Int, ContentMode>()
    private let links = Mutex<[String: DownloadLink]>([:])
    private let names = Mutex<[String: String]>([:])
    private let loggedNoLogin = Mutex(false)
    private let loggedGone = Mutex(false)
    /// The service said the share is gone (cancelled, expired, blocked) since it was started.
    public var isGone: Bool { loggedGone.withLock { $0 } }
    private let logger = Logger(label: "adrivefs.share")
    private let now: @Sendable () -> Double

    /// `copyTTL`: seconds a copy outlives its last reader; `lockDirectory`: where this
    /// account's mounts keep their locks (the state directory).
    public init(share: ShareClient, copyTTL: Double, lockDirectory: String, now: (@Sendable () -> Double)? = nil) {
        self.share = share
        let now = now ?? { Date().timeIntervalSince1970 }
        self.now = now
        copies = share.owner.map { ShareCopies(owner: $0, share: share, ttl: copyTTL, lockDirectory: lockDirectory, now: now) }
    }

    /// At mount: sweeps what crashed mounts of this account left in its drive.
    public func start() async { await copies?.sweep() }

    /// At unmount: deletes this mount's copies.
    public func shutdown() async { await copies?.shutdown() }

    // MARK: - Metadata

    public func list(folderID: String) async throws -> [DriveItem] {
        let items = try await reportingGone { try await self.share.list(folderID: folderID) }
        names.withLock { names in for item in items where !item.isFolder { names[item.fileID] = item.name } }
        return items
    }

    public func item(fileID: String) async throws -> DriveItem {
        let item = try await reportingGone { try await self.share.item(fileID: fileID) }
        names.withLock { $0[item.fileID] = item.name }
        return item
    }

    /// Says once that the share is no longer there (cancelled, expired, forbidden).
    private func reportingGone<T: Sendable>(_ call: @Sendable () async throws -> T) async throws -> T {
        do {
            return try await call()
        } catch let error as DriveError where error.isShareUnavailable {
            if !loggedGone.withLock({ logged in defer { logged = true }; return logged }) {
                logger.error("share \(share.shareID) is no longer available: \(error.description)")
            }
            throw error
        }
    }

    /// The account's quota when logged in (what copies draw from); nothing without a login.
    public func space() async throws -> SpaceInfo {
        guard let owner = share.owner else { return SpaceInfo(used: 0, total: 0) }
        return try await owner.space()
    }

    // MARK: - Content

    public func read(fileID: String, offset: Int64, length: Int) async throws -> [UInt8] {
        let collected = Mutex<[UInt8]>([])
        try await read(fileID: fileID, offset: offset, length: length) { bytes in collected.withLock { $0.append(contentsOf: bytes.bindMemory(to: UInt8.self)) } }
        return collected.withLock { $0 }
    }

    public func read(fileID: String, offset: Int64, length: Int, into sink: @escaping @Sendable (UnsafeRawBufferPointer) -> Void) async throws {
        let name = names.withLock { $0[fileID] } ?? fileID
        guard let copies else { throw noLogin(name) }
        switch try await contentMode(probing: fileID) {
        case .legacyLink:
            try await share.read(
                offset: offset, length: length, into: sink, fileID: fileID, link: { try await self.legacyLink(fileID) },
                forget: { _ = self.links.withLock { $0.removeValue(forKey: fileID) } })
        case .copies, .unknown:
            try await copies.read(fileID: fileID, name: name, offset: offset, length: length, into: sink)
        }
    }

    public func servedContentHash(fileID: String) async throws -> String? {
        guard let copies, try await contentMode(probing: fileID) == .copies else { return nil }
        return try await copies.servedContentHash(fileID: fileID, name: names.withLock { $0[fileID] } ?? fileID)
    }

    public func opened(fileID: String) { copies?.opened(fileID) }
    public func closed(fileID: String) { copies?.closed(fileID) }

    /// Probes the legacy link once per mount (single-flight) with the first file read.
    private func contentMode(probing fileID: String) async throws -> ContentMode {
        let current = mode.withLock { $0 }
        guard current == .unknown else { return current }
        return try await probe.run(0) {
            let current = self.mode.withLock { $0 }
            guard current == .unknown else { return current }
            let decided: ContentMode
            do {
                let link = try await self.share.legacyLink(fileID: fileID, attempts: 3)
                self.links.withLock { $0[fileID] = link }
                decided = .legacyLink
                self.logger.info("share \(self.share.shareID): the service hands out direct links; reading shared files through them")
            } catch let error as DriveError where error.refusesLegacyLink {
                decided = .copies
                self.logger.info(
                    "share \(self.share.shareID): the service refuses direct links (\(error.code.isEmpty ? "HTTP \(error.status)" : error.code)); reading shared files through temporary copies in your drive")
            }
            self.mode.withLock { $0 = decided }
            return decided
        }
    }

    private func legacyLink(_ fileID: String) async throws -> DownloadLink {
        if let link = links.withLock({ $0[fileID] }), link.expiresAt - now() > 30 { return link }
        let link = try await share.legacyLink(fileID: fileID)
        links.withLock { $0[fileID] = link }
        return link
    }

    private func noLogin(_ name: String) -> DriveFSError {
        if !loggedNoLogin.withLock({ logged in defer { logged = true }; return logged }) {
            logger.warning("cannot read \(name): reading a share needs a logged-in account (adrivefs auth import, or ADRIVEFS_REFRESH_TOKEN); the share only lists")
        }
        return DriveFSError(errno: EACCES, "reading a share needs a logged-in account")
    }

    // MARK: - Saving into the user's drive

    /// Saves shared file or folder `fileID` into the user's drive (`ShareClient.save`: no
    /// byte moves). A full drive first gives up this mount's idle reading copies, then the
    /// save is tried once more.
    public func save(fileID: String, toParentID parentID: String, name: String) async throws -> DriveItem {
        guard let copies else { throw noLogin(name) }
        return try await reportingGone {
            do {
                return try await self.share.save(fileID: fileID, toParentID: parentID, name: name)
            } catch let error as DriveError where error.condition == .noSpace {
                guard await copies.expire(idleFor: 0) > 0 else { throw error }
                return try await self.share.save(fileID: fileID, toParentID: parentID, name: name)
            }
        }
    }

    // MARK: - Writing: a share is read-only

    public func createFolder(parentID: String, name: String) async throws -> DriveItem { throw DriveFSError.readOnly }
    public func rename(fileID: String, to name: String) async throws -> DriveItem { throw DriveFSError.readOnly }
    public func move(fileID: String, toParentID: String, newName: String?) async throws { throw DriveFSError.readOnly }
    public func trash(fileID: String) async throws { throw DriveFSError.readOnly }
    public func upload(path: String, parentID: String, name: String, options: UploadOptions, contentHash: ContentHashSource) async throws -> UploadResult {
        throw DriveFSError.readOnly
    }
    public func copyByHash(of source: DriveItem, parentID: String, name: String) async throws -> UploadResult? { nil }
}
