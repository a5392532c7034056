@testable import AliyunDrive
import EmulatorTestSupport
import Foundation
import Glibc
import Synchronization
import HTTPTransport
import Testing

/// The real client's uploads and mutations against the in-process emulator.
@Suite struct UploadClientTests {
    /// A client logged in with a fresh login chain of the emulator's account.
    static func client(_ drive: TestDrive) async throws -> AliyunDriveClient {
        let login = try await drive.hook("tokens")
        let token = try #require(login["refresh_token"] as? String)
        let state = NSTemporaryDirectory() + "adrivefs-client-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let client = AliyunDriveClient(
            configuration: .init(endpoint: drive.base, tokenFile: nil, stateDirectory: state, baseBackoff: .milliseconds(20)),
            http: drive.http, refreshToken: token)
        try await client.start()
        // The device identity was written at start and is held in memory from then on;
        // nothing else goes there without a token file, so the folder need not outlive this.
        try? FileManager.default.removeItem(atPath: state)
        return client
    }

    static func file(_ bytes: [UInt8]) throws -> String {
        let path = NSTemporaryDirectory() + "adrivefs-upload-\(UUID().uuidString)"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    static func uploaded(_ drive: TestDrive) async throws -> Int { try await drive.stats()["bytes_uploaded"] as? Int ?? -1 }

    @Test func partSizesStayWithinTenThousandParts() {
        #expect(AliyunDriveClient.partSize(for: 0) == 10 << 20)
        #expect(AliyunDriveClient.partSize(for: 50 << 30) == 10 << 20)
        let huge: Int64 = 1 << 40
        let size = AliyunDriveClient.partSize(for: huge)
        #expect((huge + size - 1) / size <= 10_000)
        #expect(size % (1 << 20) == 0)
    }

    @Test func newContentIsUploadedInPartsAndKnownContentIsRapid() async throws {
        try await withTestDrive { drive in
            let client = try await Self.client(drive)
            let bytes = testBytes(25 << 20, seed: 7)
            let path = try Self.file(bytes)
            defer { unlink(path) }
            let first = try await client.upload(path: path, parentID: "root", name: "big.bin")
            #expect(!first.rapid)
            #expect(first.bytesSent == Int64(bytes.count))
            #expect(first.item.size == Int64(bytes.count))
            #expect(first.item.contentHash == RapidUpload.sha1Hex(bytes))
            #expect(try await Self.uploaded(drive) == bytes.count)
            // The same content again (pre-hash probe → full hash + proof): no bytes sent.
            let second = try await client.upload(path: path, parentID: "root", name: "copy.bin")
            #expect(second.rapid)
            #expect(second.bytesSent == 0)
            #expect(second.item.fileID != first.item.fileID)
            #expect(try await Self.uploaded(drive) == bytes.count)
            // Small files go straight to the full hash; empty files work too.
            for content in [[UInt8](), Array("hello".utf8)] {
                let small = try Self.file(content)
                defer { unlink(small) }
                let result = try await client.upload(path: small, parentID: "root", name: "small-\(content.count)")
                #expect(result.item.size == Int64(content.count))
                #expect(result.item.contentHash == RapidUpload.sha1Hex(content))
            }
            // With rapid upload off the bytes are sent even though the server knows them.
            let plain = try await client.upload(path: path, parentID: "root", name: "plain.bin", options: .init(rapid: false))
            #expect(!plain.rapid && plain.bytesSent == Int64(bytes.count))
        }
    }

    /// A hash still being computed when the upload starts does not hold back the parts:
    /// it is awaited for the final check (and a wrong one fails it); for content the drive
    /// has, after the pre-hash probe matched; and one that gives up (nil) is replaced by
    /// hashing the file.
    @Test func aPendingHashIsAwaitedOnlyWhereItIsNeeded() async throws {
        try await withTestDrive { drive in
            let client = try await Self.client(drive)
            let bytes = testBytes(25 << 20, seed: 11)
            let path = try Self.file(bytes)
            defer { unlink(path) }
            let sha1 = RapidUpload.sha1Hex(bytes)
            // Hands out the hash only once part bytes have reached the server (or after 20 s,
            // which would mean the upload waited for it first).
            let partsFirst = Mutex(false)
            let pending = ContentHashSource.pending {
                for _ in 0..<2000 {
                    if (try? await Self.uploaded(drive)) ?? 0 > 0 {
                        partsFirst.withLock { $0 = true }
                        break
                    }
                    try? await Task.sleep(for: .milliseconds(10))
                }
                return sha1
            }
            let new = try await client.upload(path: path, parentID: "root", name: "new.bin", contentHash: pending)
            #expect(partsFirst.withLock { $0 })
            #expect(!new.rapid && new.item.contentHash == sha1 && new.bytesSent == Int64(bytes.count))

            // The drive has it now: probe, then the pending hash, then no bytes.
            let awaited = Mutex(false)
            let known = try await client.upload(path: path, parentID: "root", name: "again.bin", contentHash: .pending {
                awaited.withLock { $0 = true }
                return sha1
            })
            #expect(known.rapid && known.bytesSent == 0 && awaited.withLock { $0 })

            // A pending hash that gives up: the file is hashed instead, and checked.
            let other = try Self.file(testBytes(12 << 20, seed: 12))
            defer { unlink(other) }
            let gaveUp = try await client.upload(path: other, parentID: "root", name: "other.bin", contentHash: .pending { nil })
            #expect(gaveUp.item.contentHash == RapidUpload.sha1Hex(testBytes(12 << 20, seed: 12)))

            // A wrong hash fails the final check, and the new file does not stay as the user's.
            let wrong = try Self.file(testBytes(12 << 20, seed: 13))
            defer { unlink(wrong) }
            let error = await #expect(throws: DriveError.self) {
                try await client.upload(path: wrong, parentID: "root", name: "wrong.bin", contentHash: .pending { String(repeating: "0", count: 40) })
            }
            #expect(error?.code == "UploadMismatch")
            #expect(try await client.list(folderID: "root").contains { $0.name == "wrong.bin" } == false)
        }
    }

    /// A copy by hash reads only the proof's bytes and sends none; content the drive does
    /// not have is refused without leaving an entry behind.
    @Test func copyByHashReadsOnlyTheProofBytes() async throws {
        try await withTestDrive { drive in
            let client = try await Self.client(drive)
            let bytes = testBytes(3 << 20, seed: 21)
            let path = try Self.file(bytes)
            defer { unlink(path) }
            let original = try await client.upload(path: path, parentID: "root", name: "original.bin").item
            let (down, up) = (try await drive.stats()["bytes_downloaded"] as? Int ?? -1, try await Self.uploaded(drive))
            let copy = try #require(try await client.copyByHash(of: original, parentID: "root", name: "copy.bin"))
            #expect(copy.rapid && copy.item.fileID != original.fileID && copy.item.name == "copy.bin")
            #expect(copy.item.contentHash == RapidUpload.sha1Hex(bytes) && copy.item.size == Int64(bytes.count))
            #expect(try await Self.uploaded(drive) == up)
            #expect(try await drive.stats()["bytes_downloaded"] as? Int ?? -1 <= down + 8)

            var unknown = original
            unknown.contentHash = String(repeating: "1", count: 40)
            #expect(try await client.copyByHash(of: unknown, parentID: "root", name: "ghost.bin") == nil)
            #expect(try await client.list(folderID: "root").contains { $0.name == "ghost.bin" } == false)
            // A listed hash the file no longer has (changed elsewhere) names content the drive
            // knows, but the proof read from the file does not match it: refused, nil.
            let otherPath = try Self.file(testBytes(3 << 20, seed: 22))
            defer { unlink(otherPath) }
            let other = try await client.upload(path: otherPath, parentID: "root", name: "other.bin").item
            var stale = original
            stale.contentHash = other.contentHash
            #expect(try await client.copyByHash(of: stale, parentID: "root", name: "stale.bin") == nil)
            #expect(try await client.list(folderID: "root").contains { $0.name == "stale.bin" } == false)
        }
    }

    @Test func expiredPartURLsAndThrottlingAreRetried() async throws {
        try await withTestDrive { drive in
            let client = try await Self.client(drive)
            // Part URLs live 1 s (a part takes longer with the retries), 30 % of part PUTs
            // and API calls answer 429, and one data connection drops mid-part.
            try await drive.hook("faults", [
                "upload_url_ttl": 1, "seed": 3,
                "rules": [
                    ["path": "/oss/u*", "status": 429, "probability": 0.3],
                    ["path": "/adrive/v2/file/createWithFolders", "status": 429, "count": 2],
                    ["path": "/oss/u*", "kind": "drop_after", "bytes": 1 << 20, "count": 1],
                ],
            ])
            let bytes = testBytes(31 << 20, seed: 9)
            let path = try Self.file(bytes)
            defer { unlink(path) }
            let result = try await client.upload(path: path, parentID: "root", name: "slow.bin", options: .init(rapid: false))
            #expect(result.item.contentHash == RapidUpload.sha1Hex(bytes))
            // The faults happened: URLs were renewed and parts were refused at least once.
            #expect(try await drive.requestCount("/v2/file/get_upload_url") > 0)
            let log = TestDrive.object(try await drive.get(drive.base + "/__emulator/requests").body)["requests"] as? [JSON] ?? []
            #expect(log.contains { ($0["path"] as? String)?.hasPrefix("/oss/u") == true && $0["status"] as? Int == 429 })
        }
    }

    @Test func foldersRenameMoveAndTrash() async throws {
        try await withTestDrive { drive in
            let client = try await Self.client(drive)
            let folder = try await client.createFolder(parentID: "root", name: "docs")
            await #expect(throws: DriveError.self) { try await client.createFolder(parentID: "root", name: "docs") }
            let path = try Self.file(Array("x".utf8))
            defer { unlink(path) }
            let file = try await client.upload(path: path, parentID: "root", name: "a.txt").item
            let renamed = try await client.rename(fileID: file.fileID, to: "b.txt")
            #expect(renamed.name == "b.txt")
            try await client.move(fileID: file.fileID, toParentID: folder.fileID, newName: "c.txt")
            #expect(try await client.list(folderID: folder.fileID).map(\.name) == ["c.txt"])
            try await client.trash(fileID: file.fileID)
            #expect(try await client.list(folderID: folder.fileID).isEmpty)
            try await client.trash(fileID: file.fileID)  // already gone: fine
        }
    }
}
