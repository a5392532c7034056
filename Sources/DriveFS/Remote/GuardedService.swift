import AliyunDrive
import Synchronization

/// A `DriveService` that remembers an outage: once a call has failed because the service
/// could not be reached (after the client's own retries), calls fail at once for `window`
/// seconds instead of each waiting out a full retry sequence — cached listings are then
/// served immediately and reads fail fast. Any success ends the outage; after the window
/// the next call tries the service again.
final class GuardedService: DriveService {
    private let base: any DriveService
    private let window: Double
    private let now: @Sendable () -> Double
    private let downUntil = Mutex<Double>(0)

    init(_ base: any DriveService, window: Double = 5, now: @escaping @Sendable () -> Double) {
        self.base = base
        self.window = window
        self.now = now
    }

    /// The service it guards.
    var guarded: any DriveService { base }

    var isDown: Bool { downUntil.withLock { $0 } > now() }

    private func guarded<T: Sendable>(_ call: () async throws -> T) async throws -> T {
        let until = downUntil.withLock { $0 }
        if until > now() {
            throw DriveError(.unreachable, "the service is unreachable (retrying in \(Int(until - now()) + 1) s)")
        }
        do {
            let value = try await call()
            downUntil.withLock { $0 = 0 }
            return value
        } catch {
            if Self.isUnreachable(error) { downUntil.withLock { $0 = now() + window } }
            throw error
        }
    }

    /// (The client turns every transport failure into a `DriveError` after its own retries.)
    static func isUnreachable(_ error: any Error) -> Bool { (error as? DriveError)?.kind == .unreachable }

    func list(folderID: String) async throws -> [DriveItem] { try await guarded { try await base.list(folderID: folderID) } }
    func item(fileID: String) async throws -> DriveItem { try await guarded { try await base.item(fileID: fileID) } }
    func read(fileID: String, offset: Int64, length: Int) async throws -> [UInt8] {
        try await guarded { try await base.read(fileID: fileID, offset: offset, length: length) }
    }
    func read(fileID: String, offset: Int64, length: Int, into sink: @escaping @Sendable (UnsafeRawBufferPointer) -> Void) async throws {
        try await guarded { try await base.read(fileID: fileID, offset: offset, length: length, into: sink) }
    }
    func servedContentHash(fileID: String) async throws -> String? {
        try await guarded { try await base.servedContentHash(fileID: fileID) }
    }
    func space() async throws -> SpaceInfo { try await guarded { try await base.space() } }
    func createFolder(parentID: String, name: String) async throws -> DriveItem {
        try await guarded { try await base.createFolder(parentID: parentID, name: name) }
    }
    func rename(fileID: String, to name: String) async throws -> DriveItem { try await guarded { try await base.rename(fileID: fileID, to: name) } }
    func move(fileID: String, toParentID: String, newName: String?) async throws {
        try await guarded { try await base.move(fileID: fileID, toParentID: toParentID, newName: newName) }
    }
    func trash(fileID: String) async throws { try await guarded { try await base.trash(fileID: fileID) } }
    func upload(path: String, parentID: String, name: String, options: UploadOptions, contentHash: ContentHashSource) async throws -> UploadResult {
        try await guarded { try await base.upload(path: path, parentID: parentID, name: name, options: options, contentHash: contentHash) }
    }
    func copyByHash(of source: DriveItem, parentID: String, name: String) async throws -> UploadResult? {
        try await guarded { try await base.copyByHash(of: source, parentID: parentID, name: name) }
    }
    func saveFromShare(fileID: String, parentID: String, name: String) async throws -> DriveItem? {
        try await guarded { try await base.saveFromShare(fileID: fileID, parentID: parentID, name: name) }
    }
    func opened(fileID: String) { base.opened(fileID: fileID) }
    func prefetchDownloadLinks(fileIDs: [String]) async {
        guard !isDown else { return }
        await base.prefetchDownloadLinks(fileIDs: fileIDs)
    }
    func closed(fileID: String) { base.closed(fileID: fileID) }
}
