import AliyunDrive
@testable import DriveFS
import EmulatorTestSupport
import Foundation
import FUSE
import Glibc
import Testing

/// Shares shown inside the own drive (`DriveWithShares`), driven by direct calls against the
/// in-process emulator (no mount): the `.shares` folder, read-only entries, and a whole-file
/// `copy_file_range` from a share as a server-side save — with the service's refusals.
@Suite struct SharesInDriveTests {
    struct Scene {
        let drive: TestDrive
        let owner: AliyunDriveClient
        let fs: DriveFileSystem
        let state: String
        let shareName: String

        init(_ drive: TestDrive) async throws {
            self.drive = drive
            state = NSTemporaryDirectory() + "shares-in-drive-\(UUID().uuidString)"
            let id = try #require(drive.emulator.shares.first { $0.password.isEmpty }?.id)
            let token = try #require(try await drive.hook("tokens")["refresh_token"] as? String)
            owner = AliyunDriveClient(
                configuration: .init(endpoint: drive.base, tokenFile: nil, stateDirectory: state, baseBackoff: .milliseconds(20)), http: drive.http,
                refreshToken: token)
            try await owner.start()
            let share = ShareClient(shareID: id, password: "", endpoint: drive.base, http: drive.http, owner: owner)
            let info = try await share.start()
            shareName = info.title
            let shares = DriveWithShares(
                own: owner, mountRootID: "root",
                shares: [.init(name: info.title, drive: ShareDrive(share: share, copyTTL: 900, lockDirectory: state + "/locks"), rootID: "root")])
            let binding = AccountBinding(userID: owner.userID, driveID: owner.driveID, endpoint: "direct")
            let configuration = DriveFSConfiguration(
                uid: getuid(), gid: getgid(), directoryCacheTTL: 0,
                state: StateLayout(journalRoot: state + "/pending", stagingRoot: state + "/staging", binding: binding, mountID: UUID().uuidString),
                timesDirectory: state + "/times")
            fs = try DriveFileSystem(service: shares, configuration: configuration)
        }

        func finish() async {
            _ = await fs.drain(timeout: 5)
            fs.close()
            try? FileManager.default.removeItem(atPath: state)
        }

        func lookup(_ path: String) async throws -> Entry { try await fs.entry(at: path) }

        func names(_ path: String) async throws -> [String] {
            let inode = path.isEmpty ? 1 : try await lookup(path).attributes.inode
            let handle = try await fs.opendir(inode: inode)
            defer { Task { await fs.releasedir(inode: inode, handle: handle) } }
            return try await fs.readdir(inode: inode, handle: handle, offset: 0, plus: false).map(\.name).filter { $0 != "." && $0 != ".." }
        }

        /// `cp SHARED DEST` as coreutils does it: create DEST (or open it truncating),
        /// copy_file_range the whole file, release.
        /// `opened`: runs once the source is open.
        func copy(_ shared: String, to folder: String, as name: String, opened: () async throws -> Void = {}) async throws -> Int {
            let source = try await lookup(".shares/\(shareName)/" + shared)
            let from = try await fs.open(inode: source.attributes.inode, flags: O_RDONLY)
            try await opened()
            let parent = folder.isEmpty ? 1 : try await lookup(folder).attributes.inode
            let entry: Entry
            let to: OpenReply
            if let existing = try? await fs.lookup(parent: parent, name: name) {
                (entry, to) = (existing, try await fs.open(inode: existing.attributes.inode, flags: O_WRONLY | O_TRUNC))
            } else {
                (entry, to) = try await fs.create(parent: parent, name: name, mode: 0o644, flags: O_WRONLY | O_CREAT | O_TRUNC)
            }
            defer {
                Task {
                    try? await fs.flush(inode: entry.attributes.inode, handle: to.handle)
                    try? await fs.release(inode: entry.attributes.inode, handle: to.handle)
                    try? await fs.release(inode: source.attributes.inode, handle: from.handle)
                }
            }
            return try await fs.copyFileRange(
                from: FileRange(inode: source.attributes.inode, handle: from.handle, offset: 0),
                to: FileRange(inode: entry.attributes.inode, handle: to.handle, offset: 0), length: Int(source.attributes.size) + 1)
        }

        func stat(_ key: String) async throws -> Int { try await drive.stats()[key] as? Int ?? -1 }

        /// Entries of a drive folder still under a save's temporary name.
        func leftovers(_ folder: String) async throws -> [String] {
            let id = try #require(try await remote(folder)?["file_id"] as? String)
            return try await drive.listAll(id).0.compactMap { $0["name"] as? String }.filter { $0.hasPrefix(ShareClient.savingPrefix) }
        }

        func used() async throws -> Int {
            try #require(try await drive.post("/v2/databox/get_personal_info", [:]).1["personal_space_info"] as? JSON)["used_size"] as? Int ?? -1
        }

        func remote(_ path: String) async throws -> JSON? {
            let (status, file) = try await drive.post("/v2/file/get_by_path", ["drive_id": drive.driveID, "file_path": path])
            return status == 200 ? file : nil
        }
    }

    func withScene(_ body: (Scene) async throws -> Void) async throws {
        try await withTestDrive(seed: .demo) { drive in
            let scene = try await Scene(drive)
            do {
                try await body(scene)
            } catch {
                await scene.finish()
                throw error
            }
            await scene.finish()
        }
    }

    @Test func sharedIDsRoundTripAndNoneIsADriveID() {
        let cases: [(String, SharedID?)] = [
            ("shares:", .folder), ("share:abc:root", .entry(share: "abc", fileID: "root")),
            ("share:abc:35a0efe201487c7e127fca587f49bec6fd2293f4", .entry(share: "abc", fileID: "35a0efe201487c7e127fca587f49bec6fd2293f4")),
            ("root", nil), ("35a0efe201487c7e127fca587f49bec6fd2293f4", nil), ("share:", nil), ("share::x", nil), ("share:abc:", nil), ("shares", nil),
        ]
        for (id, expected) in cases {
            #expect(SharedID(id) == expected, "\(id)")
            if let expected { #expect(expected.id == id) }
        }
        #expect(SharedID.serviceID("share:abc:f00d") == "f00d" && SharedID.serviceID("f00d") == "f00d")
    }

    @Test func shareFoldersAreNamedByTitleUniqueAndUsable() {
        let names = DriveWithShares.folderNames([
            ("A1", "Movies"), ("B2", "Movies"), ("C3", ""), ("D4", ".."), ("E5", "Music"), ("F6", String(repeating: "x", count: 300)),
        ])
        #expect(names == ["Movies (A1)", "Movies (B2)", "C3", "D4", "Music", "F6"])
    }

    @Test func theSharesFolderListsEachShareReadOnly() async throws {
        try await withScene { s in
            #expect(try await s.names("").contains(".shares"))
            #expect(try await s.names(".shares") == [s.shareName])
            #expect(try await s.names(".shares/\(s.shareName)").sorted() == ["Documents", "Videos"])
            let video = try await s.lookup(".shares/\(s.shareName)/Videos/sample.mp4")
            #expect(video.attributes.size == 64 << 20 && video.attributes.permissions & 0o222 == 0)
            #expect(try await s.lookup(".shares").attributes.permissions & 0o222 == 0)
            #expect(try await s.lookup("Documents").attributes.permissions & 0o200 != 0, "the own drive stays writable")
            let shareID = try await s.fs.getxattr(inode: video.attributes.inode, name: "user.adrive.share_id")
            #expect(String(decoding: shareID, as: UTF8.self) == s.drive.emulator.shares.first { $0.password.isEmpty }?.id)
            let fileID = String(decoding: try await s.fs.getxattr(inode: video.attributes.inode, name: "user.adrive.file_id"), as: UTF8.self)
            #expect(fileID == (try await s.remote("/Videos/sample.mp4"))?["file_id"] as? String, "the share's own file_id")
            // Nothing under .shares changes.
            let folder = try await s.lookup(".shares/\(s.shareName)/Documents").attributes.inode
            let root = try await s.lookup(".shares/\(s.shareName)").attributes.inode
            #expect(await errnoOf { _ = try await s.fs.create(parent: folder, name: "new.txt", mode: 0o644, flags: O_WRONLY | O_CREAT) } == EROFS)
            #expect(await errnoOf { _ = try await s.fs.mkdir(parent: folder, name: "new", mode: 0o755) } == EROFS)
            #expect(await errnoOf { try await s.fs.unlink(parent: folder, name: "notes.md") } == EROFS)
            #expect(await errnoOf { try await s.fs.rmdir(parent: root, name: "Documents") } == EROFS)
            #expect(await errnoOf { try await s.fs.rename(parent: folder, name: "notes.md", newParent: 1, newName: "notes.md", flags: 0) } == EROFS)
            #expect(await errnoOf { try await s.fs.rename(parent: 1, name: "README.txt", newParent: folder, newName: "README.txt", flags: 0) } == EROFS)
            #expect(await errnoOf { try await s.fs.rename(parent: 1, name: ".shares", newParent: 1, newName: "x", flags: 0) } == EROFS)
            let notes = try await s.lookup(".shares/\(s.shareName)/Documents/notes.md").attributes.inode
            #expect(await errnoOf { _ = try await s.fs.open(inode: notes, flags: O_WRONLY) } == EROFS)
            #expect(await errnoOf { _ = try await s.fs.setattr(inode: notes, changes: AttributeChanges(size: 0)) } == EROFS)
            #expect(try await s.stat("share_copies") == 0, "listing copies nothing")
        }
    }

    @Test func copyFileRangeFromAShareSavesServerSideWithNoBytesMoved() async throws {
        try await withScene { s in
            let before = try await s.used()
            let copied = try await s.copy("Videos/sample.mp4", to: "Documents", as: "saved.mp4")
            #expect(copied == 64 << 20)
            let (down, up) = (try await s.stat("bytes_downloaded"), try await s.stat("bytes_uploaded"))
            #expect(down == 0 && up == 0, "no byte through the data plane")
            #expect(try await s.stat("share_copies") == 1)
            let saved = try #require(try await s.remote("/Documents/saved.mp4"))
            let original = try #require(try await s.remote("/Videos/sample.mp4"))
            #expect(saved["content_hash"] as? String == original["content_hash"] as? String && saved["size"] as? Int == 64 << 20)
            #expect(try await s.used() == before + 64 << 20)
            let names = try await s.drive.listAll(try #require(try await s.remote("/Documents"))["file_id"] as? String ?? "").0.compactMap { $0["name"] as? String }
            #expect(!names.contains { $0.hasPrefix(ShareClient.savingPrefix) }, "no temporary name left: \(names)")
            #expect(names.filter { $0 == "saved.mp4" }.count == 1)
            // The inode now reads the saved file.
            let entry = try await s.lookup("Documents/saved.mp4")
            #expect(entry.attributes.size == 64 << 20)
        }
    }

    @Test func savingOverAnExistingFileTrashesTheOldOne() async throws {
        try await withScene { s in
            let old = try #require(try await s.remote("/Documents/中文文件.txt")?["file_id"] as? String)
            let copied = try await s.copy("Documents/notes.md", to: "Documents", as: "中文文件.txt")
            #expect(copied == 78)
            let now = try #require(try await s.remote("/Documents/中文文件.txt"))
            #expect(now["size"] as? Int == 78 && now["file_id"] as? String != old)
            let trash = try await s.drive.post("/v2/recyclebin/list", ["drive_id": s.drive.driveID]).1["items"] as? [JSON] ?? []
            #expect(trash.contains { $0["file_id"] as? String == old }, "the replaced version is in the trash")
        }
    }

    @Test func refusalsAreTheCopysErrorsAndLeaveNothingBehind() async throws {
        try await withScene { s in
            let used = try await s.used()
            try await s.drive.hook("faults", ["quota_total": used + 10])
            #expect(await errnoOf { _ = try await s.copy("Videos/sample.mp4", to: "Documents", as: "full.mp4") } == ENOSPC)
            #expect(try await s.used() == used)
            try await s.drive.hook("faults", ["quota_total": 1 << 40])
            // Blocked, or cancelled, after the source was opened: the save itself is refused.
            let notes = try #require(try await s.remote("/Documents/notes.md")?["file_id"] as? String)
            let punish: @Sendable () async throws -> Void = { _ = try await s.drive.hook("faults", ["punish_file": notes]) }
            let blocked = await errnoOf { _ = try await s.copy("Documents/notes.md", to: "Documents", as: "blocked.md", opened: punish) }
            #expect(blocked == EACCES)
            let shareID = try #require(s.drive.emulator.shares.first { $0.password.isEmpty }?.id)
            let cancel: @Sendable () async throws -> Void = { _ = try await s.drive.hook("faults", ["cancel_share": shareID]) }
            let gone = await errnoOf { _ = try await s.copy("Documents/report.txt", to: "Documents", as: "gone.txt", opened: cancel) }
            #expect(gone == ENOENT)
            #expect(try await s.leftovers("/Documents").isEmpty)
            #expect(try await s.stat("bytes_downloaded") == 0)
        }
    }

    @Test func aRealSharesFolderIsShownBesideTheVirtualOne() async throws {
        try await withScene { s in
            let real = try await s.drive.mkdir(".shares")
            let names = try await s.names("")
            let shown = try #require(names.first { $0.hasPrefix(".shares (") })
            #expect(names.contains(".shares") && shown == ".shares (\(real.prefix(8)))")
            #expect(try await s.names(".shares") == [s.shareName], "the plain name is the virtual folder")
            #expect(try await s.names(shown).isEmpty, "the real one is reachable under its suffix")
        }
    }
}
