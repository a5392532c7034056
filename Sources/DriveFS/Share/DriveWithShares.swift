public import AliyunDrive
import Foundation
import Glibc

/// The user's own drive with public shares shown read-only inside it, each as a folder of
/// the virtual folder `.shares` at the mount's root (`-o share=ID`), so that `cp` from a
/// share into the drive reaches the filesystem as `copy_file_range` within one mount and
/// becomes a server-side save (no byte moves).
///
/// Shared entries carry ids of their own (`SharedID`) and every call is routed by its ids:
/// shared ones to their `ShareDrive` (listings with the share token, content through
/// temporary copies), the rest to the own drive. Any change of a shared entry, or into a
/// shared folder, is `EROFS`.
///
/// A real entry named `.shares` at the mount's root is shown as duplicate names are — the
/// virtual folder counts as the older one and keeps the name, the real one is listed as
/// `.shares (FIRST8HEX)` — so both stay reachable.
public final class DriveWithShares: DriveService {
    public struct Share: Sendable {
        /// Its folder's name under `.shares` (unique among them).
        public var name: String
        public var drive: ShareDrive
        /// The share's folder shown: `root` (its top level), or the folder its link names.
        public var rootID: String

        public init(name: String, drive: ShareDrive, rootID: String) {
            (self.name, self.drive, self.rootID) = (name, drive, rootID)
        }

        public var id: String { drive.share.shareID }
    }

    public static let folderName = ".shares"

    let own: any DriveService
    let mountRootID: String
    public let shares: [Share]
    private let byID: [String: Share]
    private let shownSince: Double

    public init(own: any DriveService, mountRootID: String, shares: [Share], now: Double = SystemTime.now()) {
        self.own = own
        self.mountRootID = mountRootID
        self.shares = shares
        byID = Dictionary(shares.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        shownSince = now
    }

    /// Names for shares' folders: the title where it is unique and usable, else the id.
    public static func folderNames(_ shares: [(id: String, title: String)]) -> [String] {
        let usable = shares.map { share -> String in
            let title = share.title.trimmingCharacters(in: .whitespacesAndNewlines)
            return title.isEmpty || title == "." || title == ".." || title.utf8.count > 200 ? share.id : title
        }
        var seen: [String: Int] = [:]
        for name in usable { seen[name, default: 0] += 1 }
        return zip(usable, shares).map { name, share in seen[name] == 1 || name == share.id ? name : "\(name) (\(share.id))" }
    }

    // MARK: - Routing

    private enum Route {
        case own
        case folder
        case entry(Share, String)
    }

    private func route(_ id: String) throws -> Route {
        switch SharedID(id) {
        case nil: return .own
        case .folder: return .folder
        case .entry(let shareID, let fileID)?:
            guard let share = byID[shareID] else { throw DriveFSError.notFound }
            return .entry(share, fileID)
        }
    }

    private func refuseShared(_ ids: String...) throws {
        if ids.contains(where: SharedID.isShared) { throw DriveFSError.readOnly }
    }

    private var virtualFolder: DriveItem {
        // createdAt 0: against a real `.shares` it is the older one and keeps the name.
        DriveItem(fileID: SharedID.folder.id, parentID: mountRootID, name: Self.folderName, isFolder: true, size: 0, contentHash: nil, createdAt: 0, updatedAt: shownSince)
    }

    private func rootItem(_ share: Share) -> DriveItem {
        DriveItem(
            fileID: SharedID.entry(share: share.id, fileID: share.rootID).id, parentID: SharedID.folder.id, name: share.name, isFolder: true,
            size: 0, contentHash: nil, createdAt: shownSince, updatedAt: shownSince)
    }

    /// A share's item as this drive shows it: its id, and its folder's.
    private func shown(_ item: DriveItem, of share: Share, in parentID: String) -> DriveItem {
        var shown = item
        shown.fileID = SharedID.entry(share: share.id, fileID: item.fileID).id
        shown.parentID = parentID
        return shown
    }

    // MARK: - Metadata

    public func list(folderID: String) async throws -> [DriveItem] {
        switch try route(folderID) {
        case .folder: return shares.map(rootItem)
        case .entry(let share, let fileID):
            return try await share.drive.list(folderID: fileID).map { shown($0, of: share, in: folderID) }
        case .own:
            let items = try await own.list(folderID: folderID)
            return folderID == mountRootID ? items + [virtualFolder] : items
        }
    }

    public func item(fileID: String) async throws -> DriveItem {
        switch try route(fileID) {
        case .folder: return virtualFolder
        case .entry(let share, let id) where id == share.rootID: return rootItem(share)
        case .entry(let share, let id):
            let item = try await share.drive.item(fileID: id)
            let parent = item.parentID.isEmpty || item.parentID == "root" ? share.rootID : item.parentID
            return shown(item, of: share, in: SharedID.entry(share: share.id, fileID: parent).id)
        case .own: return try await own.item(fileID: fileID)
        }
    }

    public func space() async throws -> SpaceInfo { try await own.space() }

    // MARK: - Content

    public func read(fileID: String, offset: Int64, length: Int) async throws -> [UInt8] {
        switch try route(fileID) {
        case .folder: throw DriveFSError.isDirectory
        case .entry(let share, let id): return try await share.drive.read(fileID: id, offset: offset, length: length)
        case .own: return try await own.read(fileID: fileID, offset: offset, length: length)
        }
    }

    public func read(fileID: String, offset: Int64, length: Int, into sink: @escaping @Sendable (UnsafeRawBufferPointer) -> Void) async throws {
        switch try route(fileID) {
        case .folder: throw DriveFSError.isDirectory
        case .entry(let share, let id): try await share.drive.read(fileID: id, offset: offset, length: length, into: sink)
        case .own: try await own.read(fileID: fileID, offset: offset, length: length, into: sink)
        }
    }

    public func servedContentHash(fileID: String) async throws -> String? {
        switch try route(fileID) {
        case .folder: return nil
        case .entry(let share, let id): return try await share.drive.servedContentHash(fileID: id)
        case .own: return try await own.servedContentHash(fileID: fileID)
        }
    }

    public func opened(fileID: String) {
        switch try? route(fileID) {
        case .entry(let share, let id)?: share.drive.opened(fileID: id)
        case .own?: own.opened(fileID: fileID)
        case .folder?, nil: break
        }
    }

    public func closed(fileID: String) {
        switch try? route(fileID) {
        case .entry(let share, let id)?: share.drive.closed(fileID: id)
        case .own?: own.closed(fileID: fileID)
        case .folder?, nil: break
        }
    }

    public func prefetchDownloadLinks(fileIDs: [String]) async {
        await own.prefetchDownloadLinks(fileIDs: fileIDs.filter { !SharedID.isShared($0) })
    }

    // MARK: - Writing: the own drive only

    public func createFolder(parentID: String, name: String) async throws -> DriveItem {
        try refuseShared(parentID)
        return try await own.createFolder(parentID: parentID, name: name)
    }

    public func rename(fileID: String, to name: String) async throws -> DriveItem {
        try refuseShared(fileID)
        return try await own.rename(fileID: fileID, to: name)
    }

    public func move(fileID: String, toParentID: String, newName: String?) async throws {
        try refuseShared(fileID, toParentID)
        try await own.move(fileID: fileID, toParentID: toParentID, newName: newName)
    }

    public func trash(fileID: String) async throws {
        try refuseShared(fileID)
        try await own.trash(fileID: fileID)
    }

    public func upload(path: String, parentID: String, name: String, options: UploadOptions, contentHash: ContentHashSource) async throws -> UploadResult {
        try refuseShared(parentID)
        return try await own.upload(path: path, parentID: parentID, name: name, options: options, contentHash: contentHash)
    }

    public func copyByHash(of source: DriveItem, parentID: String, name: String) async throws -> UploadResult? {
        guard !SharedID.isShared(source.fileID) else { return nil }
        try refuseShared(parentID)
        return try await own.copyByHash(of: source, parentID: parentID, name: name)
    }

    public func saveFromShare(fileID: String, parentID: String, name: String) async throws -> DriveItem? {
        guard case .entry(let share, let id) = try route(fileID) else { return nil }
        try refuseShared(parentID)
        return try await share.drive.save(fileID: id, toParentID: parentID, name: name)
    }
}
