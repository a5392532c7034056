import AliyunDrive
@testable import DriveFS
import EmulatorTestSupport
import Foundation
import FUSE
import Glibc
import HTTPTransport
import Synchronization
import Testing

/// A share as the filesystem's drive, with the real clients against the in-process
/// emulator, driven by direct calls (no kernel mount): listings, the legacy link probe,
/// copies (one per file, expired, swept, deleted at shutdown), and the errors.
@Suite struct ShareDriveTests {
    struct Scene {
        let drive: TestDrive
        let owner: AliyunDriveClient?
        let share: ShareClient
        let shares: ShareDrive
        let fs: DriveFileSystem
        let state: String

        /// The demo drive's public share ("Videos and documents"); `login`: the reader's own account.
        init(_ drive: TestDrive, login: Bool = true, ttl: Double = 900, state: String? = nil) async throws {
            self.drive = drive
            self.state = state ?? NSTemporaryDirectory() + "share-state-\(UUID().uuidString)"
            let id = try #require(drive.emulator.shares.first { $0.password.isEmpty }?.id)
            if login {
                let token = try #require(try await drive.hook("tokens")["refresh_token"] as? String)
                let client = AliyunDriveClient(
                    configuration: .init(endpoint: drive.base, tokenFile: nil, stateDirectory: self.state, baseBackoff: .milliseconds(20)),
                    http: drive.http, refreshToken: token)
                try await client.start()
                owner = client
            } else {
                owner = nil
            }
            share = ShareClient(shareID: id, password: "", endpoint: drive.base, http: drive.http, owner: owner)
            _ = try await share.start()
            shares = ShareDrive(share: share, copyTTL: ttl, lockDirectory: self.state + "/locks")
            fs = try DriveFileSystem(service: shares, configuration: DriveFSConfiguration(uid: 1, gid: 1, readOnly: true))
        }

        func lookup(_ path: String) async throws -> Entry { try await fs.entry(at: path) }

        /// Opens, reads `length` bytes at `offset` (in 1 MiB reads), returns them and the handle (still open).
        func read(_ path: String, offset: Int64 = 0, length: Int) async throws -> (bytes: [UInt8], inode: InodeNumber, handle: UInt64) {
            let entry = try await lookup(path)
            let handle = try await fs.open(inode: entry.attributes.inode, flags: O_RDONLY).handle
            var collected: [UInt8] = []
            while collected.count < length {
                let bytes = try await fs.read(
                    inode: entry.attributes.inode, handle: handle, offset: offset + Int64(collected.count), size: min(1 << 20, length - collected.count)
                ).array
                guard !bytes.isEmpty else { break }
                collected += bytes
            }
            return (collected, entry.attributes.inode, handle)
        }

        /// The original's bytes, from the sharer's drive.
        func original(_ path: String, offset: Int, length: Int) async throws -> [UInt8] {
            let (status, file) = try await drive.post("/v2/file/get_by_path", ["drive_id": drive.driveID, "file_path": "/" + path])
            #expect(status == 200)
            let url = try await drive.downloadURL(try #require(file["file_id"] as? String))
            return Array(try await drive.get(url, headers: ["Range": "bytes=\(offset)-\(offset + length - 1)"]).body)
        }

        func stat(_ key: String) async throws -> Int { try await drive.stats()[key] as? Int ?? -1 }

        /// Entries of the user's `/.adrivefs-share-cache` (nil when there is none).
        func cacheFolders() async throws -> [JSON]? {
            let (root, _) = try await drive.listAll()
            guard let cache = root.first(where: { $0["name"] as? String == ShareCopies.folderName }), let id = cache["file_id"] as? String else { return nil }
            return try await drive.listAll(id).0
        }
    }

    @Test func copyModeServesTheSharedBytesAndTwoReadersShareOneCopy() async throws {
        try await withTestDrive(seed: .demo) { drive in
            let scene = try await Scene(drive)
            defer { try? FileManager.default.removeItem(atPath: scene.state) }
            let names = try await scene.fs.opendir(inode: 1)
            _ = names
            async let first = scene.read("Videos/sample.mp4", offset: 0, length: 3 << 20)
            async let second = scene.read("Videos/sample.mp4", offset: 40 << 20, length: 2 << 20)
            let (a, b) = try await (first, second)
            #expect(a.bytes == (try await scene.original("Videos/sample.mp4", offset: 0, length: 3 << 20)))
            #expect(b.bytes == (try await scene.original("Videos/sample.mp4", offset: 40 << 20, length: 2 << 20)))
            #expect(try await scene.stat("share_copies") == 1, "one copy for two readers")
            // The legacy link was asked once, refused (ParamFlowException), and not again.
            let legacyCalls = try await drive.requestCount("/v2/file/get_share_link_download_url")
            #expect(legacyCalls >= 1 && legacyCalls <= 3)
            _ = try await scene.read("Documents/notes.md", length: 100)
            #expect(try await drive.requestCount("/v2/file/get_share_link_download_url") == legacyCalls)
            #expect(try await scene.cacheFolders()?.count == 1, "one folder for this mount")
            try await scene.fs.release(inode: a.inode, handle: a.handle)
            try await scene.fs.release(inode: b.inode, handle: b.handle)
            // Unmount deletes every copy for good: the quota is back where it was.
            await scene.shares.shutdown()
            #expect(try await scene.cacheFolders()?.isEmpty == true)
            #expect(try await scene.stat("deletions") == 1)
        }
    }

    @Test func theLegacyLinkIsUsedWhenTheServiceGivesItAndNoCopyIsMade() async throws {
        try await withTestDrive(seed: .demo) { drive in
            try await drive.hook("faults", ["share_download_url": "ok"])
            let scene = try await Scene(drive)
            defer { try? FileManager.default.removeItem(atPath: scene.state) }
            let read = try await scene.read("Videos/sample.mp4", offset: 10 << 20, length: 1 << 20)
            #expect(read.bytes == (try await scene.original("Videos/sample.mp4", offset: 10 << 20, length: 1 << 20)))
            #expect(try await scene.stat("share_copies") == 0)
        }
    }

    @Test(arguments: ["gone", "disabled"])
    func aRefusedLegacyLinkSwitchesToCopies(mode: String) async throws {
        try await withTestDrive(seed: .demo) { drive in
            try await drive.hook("faults", ["share_download_url": mode])
            let scene = try await Scene(drive)
            defer { try? FileManager.default.removeItem(atPath: scene.state) }
            let read = try await scene.read("Documents/notes.md", length: 78)
            #expect(read.bytes == (try await scene.original("Documents/notes.md", offset: 0, length: 78)))
            #expect(try await scene.stat("share_copies") == 1)
        }
    }

    @Test func aCopyIsDeletedItsTTLAfterTheLastReaderClosed() async throws {
        try await withTestDrive(seed: .demo) { drive in
            let scene = try await Scene(drive, ttl: 1)
            defer { try? FileManager.default.removeItem(atPath: scene.state) }
            let used = try #require(try await drive.post("/v2/databox/get_personal_info", [:]).1["personal_space_info"] as? JSON)["used_size"] as? Int
            let read = try await scene.read("Videos/sample.mp4", length: 1 << 20)
            let during = try #require(try await drive.post("/v2/databox/get_personal_info", [:]).1["personal_space_info"] as? JSON)["used_size"] as? Int
            #expect(during == (used ?? 0) + 64 << 20, "the copy counts against the quota")
            try await Task.sleep(for: .seconds(1.5))
            #expect(try await scene.stat("deletions") == 0, "not while a reader has it open")
            try await scene.fs.release(inode: read.inode, handle: read.handle)
            for _ in 0..<60 where try await scene.stat("deletions") == 0 { try await Task.sleep(for: .milliseconds(100)) }
            #expect(try await scene.stat("deletions") == 1)
            let after = try #require(try await drive.post("/v2/databox/get_personal_info", [:]).1["personal_space_info"] as? JSON)["used_size"] as? Int
            #expect(after == used)
            // Read again, past what the memory cache holds: a new copy.
            _ = try await scene.read("Videos/sample.mp4", offset: 63 << 20, length: 4096)
            #expect(try await scene.stat("share_copies") == 2)
        }
    }

    @Test func aCrashedMountsCopiesAreSweptByTheNextMount() async throws {
        try await withTestDrive(seed: .demo) { drive in
            let state = NSTemporaryDirectory() + "share-state-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: state) }
            do {
                // The "crashed" mount: its copy stays, its lock goes with it.
                let crashed = try await Scene(drive, state: state)
                let read = try await crashed.read("Documents/notes.md", length: 10)
                #expect(read.bytes.count == 10)
            }
            let scene = try await Scene(drive, state: state)
            #expect(try await scene.cacheFolders()?.count == 1)
            // A live mount's folder is left alone by the sweep.
            let live = try await Scene(drive, state: state)
            _ = try await live.read("Documents/report.txt", length: 5)
            await scene.shares.start()
            let left = try #require(try await scene.cacheFolders())
            #expect(left.count == 1 && left.first?["name"] as? String == live.shares.copies?.mountFolder)
            #expect(try await scene.stat("deletions") == 1)
        }
    }

    @Test func withoutALoginTheShareListsAndReadsAreEACCES() async throws {
        try await withTestDrive(seed: .demo) { drive in
            let scene = try await Scene(drive, login: false)
            defer { try? FileManager.default.removeItem(atPath: scene.state) }
            let entry = try await scene.lookup("Videos/sample.mp4")
            #expect(entry.attributes.size == 64 << 20)
            #expect(await errnoOf { _ = try await scene.read("Videos/sample.mp4", length: 10) } == EACCES)
            #expect(try await scene.stat("share_copies") == 0)
        }
    }

    @Test func aFullDriveIsENOSPCAndABlockedFileEACCES() async throws {
        try await withTestDrive(seed: .demo) { drive in
            let scene = try await Scene(drive)
            defer { try? FileManager.default.removeItem(atPath: scene.state) }
            let used = try #require(try await drive.post("/v2/databox/get_personal_info", [:]).1["personal_space_info"] as? JSON)["used_size"] as? Int
            try await drive.hook("faults", ["quota_total": used ?? 0])
            #expect(await errnoOf { _ = try await scene.read("Videos/sample.mp4", length: 10) } == ENOSPC)
            try await drive.hook("faults", ["quota_total": 1 << 40])
            let (_, file) = try await drive.post("/v2/file/get_by_path", ["drive_id": drive.driveID, "file_path": "/Documents/notes.md"])
            try await drive.hook("faults", ["punish_file": try #require(file["file_id"] as? String)])
            #expect(await errnoOf { _ = try await scene.read("Documents/notes.md", length: 10) } == EACCES)
        }
    }

    @Test func anExpiredShareTokenIsRenewedAndACancelledShareIsENOENT() async throws {
        try await withTestDrive(seed: .demo) { drive in
            let scene = try await Scene(drive)
            defer { try? FileManager.default.removeItem(atPath: scene.state) }
            _ = try await scene.read("Documents/notes.md", length: 10)
            try await drive.hook("faults", ["expire_share_tokens": true])
            let tokens = try await drive.requestCount("/v2/share_link/get_share_token")
            // A fresh listing and a fresh copy both need the token: renewed once, transparently.
            #expect(try await scene.share.list(folderID: "root").count == 2)
            _ = try await scene.read("Documents/report.txt", length: 5)
            #expect(try await drive.requestCount("/v2/share_link/get_share_token") == tokens + 1)
            try await drive.hook("faults", ["cancel_share": scene.share.shareID])
            #expect(await errnoOf { _ = try await scene.shares.list(folderID: "root").count } == ENOENT)
        }
    }
}

/// The errno an operation fails with (nil when it succeeds).
func errnoOf(_ operation: () async throws -> Void) async -> Int32? {
    do {
        try await operation()
        return nil
    } catch {
        return DriveFSError(error).errno
    }
}

extension DriveFileSystem {
    /// The entry at a path below the root, looked up name by name as the kernel does.
    func entry(at path: String) async throws -> Entry {
        var inode: InodeNumber = 1
        var entry: Entry?
        for name in path.split(separator: "/") {
            entry = try await lookup(parent: inode, name: String(name))
            inode = entry?.attributes.inode ?? 0
        }
        return try #require(entry)
    }
}
