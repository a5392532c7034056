import AliyunDrive
import Foundation
import Glibc
import Logging
import Synchronization

/// The temporary server-side copies through which a share's files are read (aliyun-api.md
/// §10.7): one per shared file on its first read, in this mount's own folder under
/// `/.adrivefs-share-cache` of the user's drive, shared by every reader of that file
/// (single-flight), deleted for good (not to the trash, where it would still count against
/// the quota) `ttl` seconds after its last reader closed, and all of them at unmount.
///
/// A mount's folder is named `MACHINE-MOUNT`; a lock file under the state directory is held
/// while the mount lives, so a later mount on this machine can tell a crashed mount's
/// leftovers from a live mount's copies and sweep them. Folders of other machines are swept
/// once they are a day old; a copy deleted under a reader is made again.
///
/// INVARIANT: `copies[id].readers` counts the open descriptors of shared file `id`; a copy
/// with readers is never deleted by the expiry.
final class ShareCopies: Sendable {
    struct Copy: Sendable {
        var copyID: String?
        var readers = 0
        var lastUsed: Double
    }

    static let folderName = ".adrivefs-share-cache"

    let owner: AliyunDriveClient
    let share: ShareClient
    let ttl: Double
    /// This mount's folder name under the cache folder.
    let mountFolder: String
    private let machine: String
    private let lockDirectory: String
    private let now: @Sendable () -> Double
    private let logger = Logger(label: "adrivefs.share")
    private let copies = Mutex<[String: Copy]>([:])
    private let flights = SingleFlight<String, String>()
    private let folderFlight = SingleFlight<Int, String>()
    private let folder = Mutex<String?>(nil)
    private let lock = Mutex<MountLock?>(nil)
    private let janitor = Mutex<Task<Void, Never>?>(nil)

    /// `lockDirectory`: where this account's mounts keep their lock files (state directory).
    init(owner: AliyunDriveClient, share: ShareClient, ttl: Double, lockDirectory: String, now: @escaping @Sendable () -> Double) {
        self.owner = owner
        self.share = share
        self.ttl = ttl
        self.lockDirectory = lockDirectory
        self.now = now
        machine = Self.machineID()
        mountFolder = machine + "-" + UUID().uuidString.lowercased().prefix(13).replacingOccurrences(of: "-", with: "")
    }

    // MARK: - Reading

    /// Streams a range of shared file `fileID` from its copy, made on first need.
    func read(fileID: String, name: String, offset: Int64, length: Int, into sink: @escaping @Sendable (UnsafeRawBufferPointer) -> Void) async throws {
        let progress = Mutex(0)
        for attempt in 1...2 {
            let copyID = try await copy(of: fileID, name: name)
            let done = progress.withLock { $0 }
            do {
                try await owner.read(fileID: copyID, offset: offset + Int64(done), length: length - done) { bytes in
                    progress.withLock { $0 += bytes.count }
                    sink(bytes)
                }
                return
            } catch let error as DriveError where error.isNotFound && attempt == 1 {
                // Deleted under us (another machine's sweep, or by hand): copy again.
                logger.info("the temporary copy of \(name) is gone; copying it again")
                forget(fileID, copyID: copyID)
            }
        }
    }

    /// The SHA-1 the copy's download link vouches for (the disk cache checks it).
    func servedContentHash(fileID: String, name: String) async throws -> String? {
        try await owner.servedContentHash(fileID: try await copy(of: fileID, name: name))
    }

    func opened(_ fileID: String) {
        copies.withLock { $0[fileID, default: Copy(lastUsed: now())].readers += 1 }
    }

    func closed(_ fileID: String) {
        copies.withLock { copies in
            guard var copy = copies[fileID] else { return }
            copy.readers = max(0, copy.readers - 1)
            copy.lastUsed = now()
            copies[fileID] = copy
        }
        startJanitor()
    }

    /// The copy's file id in the user's drive, made by one server-side copy however many
    /// readers ask at once.
    private func copy(of fileID: String, name: String) async throws -> String {
        if let existing = copies.withLock({ $0[fileID]?.copyID }) { return existing }
        return try await flights.run(fileID) {
            if let existing = self.copies.withLock({ $0[fileID]?.copyID }) { return existing }
            let folderID = try await self.mountFolderID()
            let copyID: String
            do {
                copyID = try await self.share.copy(fileID: fileID, toParentID: folderID)
            } catch let error as DriveError where error.condition == .noSpace {
                // Make room from idle copies, then once more.
                guard await self.expire(idleFor: 0) > 0 else { throw await self.noSpace(name, error) }
                do {
                    copyID = try await self.share.copy(fileID: fileID, toParentID: folderID)
                } catch let error as DriveError where error.condition == .noSpace {
                    throw await self.noSpace(name, error)
                }
            }
            self.copies.withLock { copies in
                copies[fileID, default: Copy(lastUsed: self.now())].copyID = copyID
                copies[fileID]?.lastUsed = self.now()
            }
            self.logger.info("share copy: \(name) copied into your drive for reading (deleted \(Int(self.ttl)) s after its last reader closes)")
            return copyID
        }
    }

    private func noSpace(_ name: String, _ error: DriveError) async -> DriveError {
        let quota = (try? await owner.space()).map { ": \(DriveFileSystem.formatSize($0.used)) of \(DriveFileSystem.formatSize($0.total)) used" } ?? ""
        logger.error("cannot read \(name): reading a shared file needs a temporary copy in your drive, and your drive is full (\(error.code))\(quota)")
        return error
    }

    private func forget(_ fileID: String, copyID: String) {
        copies.withLock { copies in
            if copies[fileID]?.copyID == copyID { copies[fileID]?.copyID = nil }
        }
    }

    // MARK: - The folder

    /// This mount's folder in the cache folder, made (and its lock taken) on first need.
    private func mountFolderID() async throws -> String {
        if let id = folder.withLock({ $0 }) { return id }
        return try await folderFlight.run(0) {
            if let id = self.folder.withLock({ $0 }) { return id }
            try self.holdLock()
            let cache = try await self.owner.ensureFolder(parentID: "root", name: Self.folderName)
            let id = try await self.owner.ensureFolder(parentID: cache, name: self.mountFolder)
            self.folder.withLock { $0 = id }
            return id
        }
    }

    private func holdLock() throws {
        try lock.withLock { lock in
            guard lock == nil else { return }
            try FileManager.default.createDirectory(atPath: lockDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            guard case .acquired(let held) = MountLock.acquire(lockDirectory + "/" + mountFolder + ".lock") else {
                throw DriveFSError(errno: EIO, "cannot lock \(lockDirectory)/\(mountFolder).lock")
            }
            lock = held
        }
    }

    // MARK: - Expiry, sweep, shutdown

    private func startJanitor() {
        janitor.withLock { janitor in
            guard janitor == nil else { return }
            let pause = max(0.2, min(ttl / 4, 30))
            janitor = Task { [weak self] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(pause))
                    guard let self else { return }
                    _ = await self.expire(idleFor: self.ttl)
                }
            }
        }
    }

    /// Deletes the copies nobody reads that were last used `idleFor` seconds ago or more;
    /// returns how many.
    @discardableResult
    func expire(idleFor seconds: Double) async -> Int {
        let current = now()
        let due: [(String, String)] = copies.withLock { copies in
            var due: [(String, String)] = []
            for (fileID, copy) in copies where copy.readers == 0 && current - copy.lastUsed >= seconds {
                if let copyID = copy.copyID { due.append((fileID, copyID)) }
                copies[fileID] = nil
            }
            return due
        }
        var deleted = 0
        for (_, copyID) in due {
            do {
                try await owner.deletePermanently(fileID: copyID)
                deleted += 1
            } catch {
                logger.warning("could not delete the temporary copy \(copyID): \(DriveFSError(error).description) (the next mount sweeps it)")
            }
        }
        return deleted
    }

    /// At mount: deletes what crashed mounts of this account left in the cache folder.
    func sweep() async {
        do {
            let root = try await owner.list(folderID: "root")
            guard let cache = root.first(where: { $0.name == Self.folderName && $0.isFolder }) else { return }
            var swept = 0
            for entry in try await owner.list(folderID: cache.fileID) where entry.name != mountFolder {
                if entry.isFolder, let dash = entry.name.firstIndex(of: "-"), entry.name[..<dash] == machine {
                    if MountLock.isHeld(lockDirectory + "/" + entry.name + ".lock") { continue }
                } else if entry.isFolder, now() - entry.updatedAt < 86_400 {
                    continue
                }
                try await owner.deletePermanently(fileID: entry.fileID)
                unlink(lockDirectory + "/" + entry.name + ".lock")
                swept += 1
            }
            if swept > 0 { logger.info("share copies: removed \(swept) folder(s) of temporary copies left by earlier mounts") }
        } catch {
            logger.warning("share copies: could not sweep \(Self.folderName): \(DriveFSError(error).description)")
        }
    }

    /// At unmount: every copy goes, with this mount's folder.
    func shutdown() async {
        janitor.withLock { $0 }?.cancel()
        guard let id = folder.withLock({ $0 }) else { return }
        do {
            try await owner.deletePermanently(fileID: id)
            let count = copies.withLock { copies in copies.values.filter { $0.copyID != nil }.count }
            if count > 0 { logger.info("share copies: deleted \(count) temporary cop\(count == 1 ? "y" : "ies") from your drive") }
        } catch {
            logger.warning("share copies: could not delete \(Self.folderName)/\(mountFolder): \(DriveFSError(error).description) (the next mount sweeps it)")
            return
        }
        lock.withLock { lock in
            lock?.unlinkFile()
            lock = nil
        }
    }

    /// A short, stable id of this machine (`/etc/machine-id`), else of its host name.
    static func machineID() -> String {
        let text = (try? String(contentsOfFile: "/etc/machine-id", encoding: .utf8)) ?? ProcessInfo.processInfo.hostName
        let id = text.trimmingCharacters(in: .whitespacesAndNewlines).filter { $0.isLetter || $0.isNumber }
        return String(id.prefix(8)).lowercased().isEmpty ? "host" : String(id.prefix(8)).lowercased()
    }
}
