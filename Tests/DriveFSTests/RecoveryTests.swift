import AliyunDrive
import Foundation
@testable import DriveFS
import Glibc
import Synchronization
import Testing

/// A drive that takes uploads: records what each one read from its staging file and which
/// hash the caller claimed.
final class UploadRecordingDrive: FakeDrive, @unchecked Sendable {
    struct Upload: Sendable, Equatable {
        var name: String
        var content: [UInt8]
        var claimedHash: String?
        /// The hash came as a pending one (awaited here).
        var pending = false
    }
    let uploads = Mutex<[Upload]>([])

    init() { super.init(files: []) }

    override func upload(path: String, parentID: String, name: String, options: UploadOptions, contentHash: ContentHashSource) async throws -> UploadResult {
        let content = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        var upload = Upload(name: name, content: content, claimedHash: nil)
        switch contentHash {
        case .known(let hash): upload.claimedHash = hash
        case .pending(let hash): (upload.claimedHash, upload.pending) = (await hash(), true)
        case .unknown: break
        }
        uploads.withLock { [upload] in $0.append(upload) }
        let item = DriveItem(
            fileID: "uploaded-\(name)", parentID: parentID, name: name, isFolder: false, size: Int64(content.count),
            contentHash: RapidUpload.sha1Hex(content), createdAt: 0, updatedAt: 0)
        return UploadResult(item: item, rapid: false, bytesSent: Int64(content.count))
    }
    override func trash(fileID: String) async throws {}
}

/// Finishing the uploads a crashed mount journaled — including after a crash of the whole
/// system, when a staging file that was never synced may hold something else.
@Suite struct RecoveryTests {
    static let binding = AccountBinding(userID: "u1", driveID: "d1", endpoint: "http://127.0.0.1:1")

    struct Scene {
        let root: String
        let layout: StateLayout
        /// The crashed mount's journal and staging folders (nobody holds their locks).
        let dead: StateLayout
        let journal: UploadJournal
        let stagingRoot: String
        let drive = UploadRecordingDrive()

        init(binding: AccountBinding = RecoveryTests.binding) {
            root = NSTemporaryDirectory() + "recovery-\(UUID().uuidString)"
            stagingRoot = root + "/cache/staging"
            layout = StateLayout(journalRoot: root + "/state/pending", stagingRoot: stagingRoot, binding: binding)
            dead = StateLayout(journalRoot: layout.journalRoot, stagingRoot: stagingRoot, binding: binding, mountID: "dead-mount")
            journal = UploadJournal(directory: dead.journalDirectory)
        }

        /// A staging file of the dead mount holding `content`, journaled as uploading
        /// `journaledContent` (nil: no hash recorded — synced before the entry was written).
        func leave(
            _ name: String, content: [UInt8], journaled journaledContent: [UInt8]?, boot: String?, in state: StateLayout? = nil,
            binding: AccountBinding?? = nil
        ) throws {
            let state = state ?? dead
            let directory = state.stagingDirectory
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let id = UUID().uuidString
            try Data(content).write(to: URL(fileURLWithPath: directory + "/" + id))
            try UploadJournal(directory: state.journalDirectory).record(
                .init(
                    id: id, stagingPath: directory + "/" + id, parentID: "root", name: name, replaces: nil, displayPath: name,
                    binding: binding ?? state.binding, size: journaledContent.map { Int64($0.count) },
                    contentHash: journaledContent.map(RapidUpload.sha1Hex), unsyncedBoot: boot), durable: true)
        }

        func mount(readOnly: Bool = false, layout: StateLayout? = nil) throws -> DriveFileSystem {
            try DriveFileSystem(
                service: drive,
                configuration: DriveFSConfiguration(uid: 1, gid: 1, readOnly: readOnly, state: layout ?? self.layout, uploadRetryDelay: 0.05))
        }

        /// Waits (bounded: a loaded 2-core machine stretches this) until the journal is empty.
        func settled() async throws {
            for _ in 0..<3000 where !journal.entries().isEmpty { try await Task.sleep(for: .milliseconds(10)) }
            try await Task.sleep(for: .milliseconds(50))
        }

        var lostAndFound: String { layout.lostAndFound }
    }

    @Test func theBootIDIsKnownAndAnEntryOfThisBootNeedsNoCheck() throws {
        let boot = try #require(UploadJournal.bootID)
        #expect(boot.count == 36)
        let entry = UploadJournal.Entry(
            id: "x", stagingPath: "/nonexistent", parentID: "root", name: "x", replaces: nil, displayPath: "x", binding: Self.binding, unsyncedBoot: boot)
        #expect(!entry.needsVerification)
        #expect(UploadJournal.Entry(id: "x", stagingPath: "", parentID: "", name: "", replaces: nil, displayPath: "", binding: Self.binding, unsyncedBoot: "other").needsVerification)
        #expect(!UploadJournal.Entry(id: "x", stagingPath: "", parentID: "", name: "", replaces: nil, displayPath: "", binding: Self.binding).needsVerification)
    }

    @Test func anEntryWrittenBeforeHashesWereJournaledStillDecodes() throws {
        let old = #"{"id":"a","stagingPath":"/s/a","parentID":"root","name":"n","displayPath":"n","owner":7}"#
        let entry = try JSONDecoder().decode(UploadJournal.Entry.self, from: Data(old.utf8))
        #expect(entry.owner == 7 && entry.binding == nil && entry.contentHash == nil && entry.unsyncedBoot == nil && !entry.needsVerification)
    }

    @Test func afterASystemCrashOnlyContentMatchingTheJournalIsUploaded() async throws {
        let scene = Scene()
        defer { try? FileManager.default.removeItem(atPath: scene.root) }
        let intact = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        let meant = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 17) }
        let torn = Array(meant[0..<100_000]) + [UInt8](repeating: 0, count: 200_000)
        // Unsynced in a boot that has ended: checked. Synced (no hash): trusted as before.
        try scene.leave("intact.bin", content: intact, journaled: intact, boot: "00000000-0000-0000-0000-000000000000")
        try scene.leave("torn.bin", content: torn, journaled: meant, boot: "00000000-0000-0000-0000-000000000000")
        try scene.leave("synced.bin", content: intact, journaled: nil, boot: nil)
        // Unsynced, and the system went down before the upload had hashed it: cannot be checked.
        try scene.leave("unhashed.bin", content: intact, journaled: nil, boot: "00000000-0000-0000-0000-000000000000")
        let fs = try scene.mount()
        fs.recoverPendingUploads()
        try await scene.settled()

        let uploads = scene.drive.uploads.withLock { $0 }.sorted { $0.name < $1.name }
        #expect(uploads.map(\.name) == ["intact.bin", "synced.bin"])
        #expect(uploads.first?.content == intact)
        // The verified hash is handed to the upload: the file is not hashed a second time.
        #expect(uploads.first?.claimedHash == RapidUpload.sha1Hex(intact))
        #expect(uploads.last?.claimedHash == nil)
        #expect(scene.journal.entries().isEmpty)
        // The torn content is not lost, and not passed off as the user's file either.
        let kept = try FileManager.default.contentsOfDirectory(atPath: scene.lostAndFound).filter { !$0.hasSuffix(".json") }.sorted()
        #expect(kept.count == 2 && kept.first?.hasPrefix("torn.bin.") == true && kept.last?.hasPrefix("unhashed.bin.") == true)
        let keptBytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: scene.lostAndFound + "/" + (kept.first ?? ""))))
        #expect(keptBytes == torn)
        // Nothing else of the dead mount is left behind.
        try await eventuallyTrue { !FileManager.default.fileExists(atPath: scene.dead.stagingDirectory) }
        #expect(!FileManager.default.fileExists(atPath: scene.dead.stagingDirectory))
        #expect(!FileManager.default.fileExists(atPath: scene.dead.journalDirectory))
    }

    @Test func withinTheSameBootTheStagedContentIsUploadedAsItIs() async throws {
        // Only a system crash loses unsynced bytes: after a daemon crash the page cache
        // holds the content, newer writes included, and that is what goes up.
        let scene = Scene()
        defer { try? FileManager.default.removeItem(atPath: scene.root) }
        let first = [UInt8](repeating: 1, count: 5000)
        let later = [UInt8](repeating: 2, count: 7000)
        let boot: String = try #require(UploadJournal.bootID)
        try scene.leave("edited.bin", content: later, journaled: first, boot: boot)
        let fs = try scene.mount()
        fs.recoverPendingUploads()
        try await scene.settled()
        let uploads = scene.drive.uploads.withLock { $0 }
        #expect(uploads == [.init(name: "edited.bin", content: later, claimedHash: nil)])
        #expect(scene.journal.entries().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: scene.lostAndFound))
    }
}

/// Polls `condition` for up to 30 s.
func eventuallyTrue(_ condition: () -> Bool) async throws {
    for _ in 0..<600 where !condition() { try await Task.sleep(for: .milliseconds(50)) }
}
