import AliyunDrive
import Foundation
import Logging
import Synchronization

/// POSIX lets an open file outlive its name: a file unlinked or replaced while descriptors
/// on this mount still read it waits in the hidden folder `/.adrivefs-unlinked` (its name
/// is free at once, and no listing shows it) and goes to the trash when the last of them
/// closes, or at unmount. One left there by a crash goes to the trash a day later, swept
/// by a mount.
final class DeferredTrash: Sendable {
    static let folderName = ".adrivefs-unlinked"

    private let service: any DriveService
    private let directories: DirectoryCache
    private let open: OpenFiles
    private let now: @Sendable () -> Double
    private let logger: Logger
    /// file_id → path (for the log) of the files waiting for their last reader.
    private let waiting = Mutex<[String: String]>([:])

    init(service: any DriveService, directories: DirectoryCache, open: OpenFiles, now: @escaping @Sendable () -> Double, logger: Logger) {
        self.service = service
        self.directories = directories
        self.open = open
        self.now = now
        self.logger = logger
    }

    /// Trashes a file that is gone from its folder: at once, or once its last reader closes.
    func trashWhenUnread(_ fileID: String, path: String) async throws {
        guard open.isReading(fileID: fileID) else {
            try await service.trash(fileID: fileID)
            return
        }
        do {
            let folder = try await unlinkedFolder()
            try await service.move(fileID: fileID, toParentID: folder, newName: String(fileID.prefix(12)) + "-" + URL(fileURLWithPath: path).lastPathComponent)
            waiting.withLock { $0[fileID] = path }
            logger.debug("\(path): still open here; it goes to the trash when the last reader closes")
            // Closed meanwhile?
            closed(fileID)
        } catch {
            logger.warning("\(path): could not keep the unlinked file for its open readers (\(DriveFSError(error).description)); moving it to the trash now")
            try await service.trash(fileID: fileID)
        }
    }

    /// After a reader of `fileID` closed: trashes it if it waited for its last reader.
    func closed(_ fileID: String) {
        let path = waiting.withLock { waiting -> String? in
            guard waiting[fileID] != nil, !open.isReading(fileID: fileID) else { return nil }
            return waiting.removeValue(forKey: fileID)
        }
        guard let path else { return }
        Task { await trash(fileID, path: path) }
    }

    /// At unmount: the trashes still waiting for readers (their descriptors are gone now).
    func flush() async {
        let pending = waiting.withLock { waiting in
            defer { waiting = [:] }
            return waiting
        }
        for (fileID, path) in pending { await trash(fileID, path: path) }
    }

    private func trash(_ fileID: String, path: String) async {
        do {
            try await service.trash(fileID: fileID)
        } catch {
            logger.warning("\(path): could not move the unlinked file to the trash: \(DriveFSError(error).description)")
        }
    }

    /// `/.adrivefs-unlinked`, made on first need.
    private func unlinkedFolder() async throws -> String {
        if let existing = try await directories.listing("root").byName[Self.folderName], existing.item.isFolder { return existing.item.fileID }
        do {
            let folder = try await service.createFolder(parentID: "root", name: Self.folderName)
            directories.update("root") { $0.append(folder) }
            return folder.fileID
        } catch let error as DriveError where error.condition == .exists {
            directories.invalidate("root")
            guard let existing = try await directories.listing("root").byName[Self.folderName] else { throw error }
            return existing.item.fileID
        }
    }

    /// At mount: what a crashed mount left a day ago or earlier goes to the trash.
    func sweep() async {
        do {
            guard let folder = try await directories.listing("root").byName[Self.folderName], folder.item.isFolder else { return }
            let stale = try await service.list(folderID: folder.item.fileID).filter { now() - $0.updatedAt > 86_400 }
            for item in stale { try await service.trash(fileID: item.fileID) }
            if !stale.isEmpty { logger.info("moved \(stale.count) file(s) unlinked while open by an earlier mount to the trash") }
        } catch {
            logger.warning("could not sweep /\(Self.folderName): \(DriveFSError(error).description)")
        }
    }
}
