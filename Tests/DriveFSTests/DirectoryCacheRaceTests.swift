import AliyunDrive
@testable import DriveFS
import Synchronization
import Testing

/// A drive whose listing calls can be held (to race them against own mutations) and whose
/// folder content can change.
final class SlowListingDrive: FakeDrive, @unchecked Sendable {
    let holding = Atomic<Bool>(false)
    let listed = Mutex<[DriveItem]>([])

    override func list(folderID: String) async throws -> [DriveItem] {
        listCalls.add(1, ordering: .relaxed)
        let snapshot = listed.withLock { $0 }
        while holding.load(ordering: .relaxed) { try await Task.sleep(for: .milliseconds(5)) }
        return snapshot
    }
}

@Suite struct DirectoryCacheRaceTests {
    static func item(_ id: String, _ name: String) -> DriveItem {
        DriveItem(fileID: id, parentID: "root", name: name, isFolder: false, size: 1, contentHash: nil, createdAt: 1, updatedAt: 1)
    }

    @Test func aListingCallInFlightAcrossAnOwnRenameDoesNotHideTheRename() async throws {
        let drive = SlowListingDrive(files: [])
        drive.listed.withLock { $0 = [Self.item("a1", "old.txt")] }
        let cache = DirectoryCache(service: drive, ttl: 60, now: { 1000 })
        // An `ls` starts; its call answers with the folder as it was.
        drive.holding.store(true, ordering: .relaxed)
        let early = Task { try await cache.listing("root") }
        while drive.listCalls.load(ordering: .relaxed) == 0 { try await Task.sleep(for: .milliseconds(5)) }
        // Meanwhile this mount renames the file (the server has the new name at once).
        drive.listed.withLock { $0 = [Self.item("a1", "new.txt")] }
        cache.update("root") { items in items = items.map { $0.fileID == "a1" ? Self.item("a1", "new.txt") : $0 } }
        drive.holding.store(false, ordering: .relaxed)
        // The `ls` that started first may show the old name…
        #expect(try await early.value.byName["old.txt"] != nil)
        // …but the next one must not trust that answer for a whole TTL.
        let next = try await cache.listing("root")
        #expect(next.byName["new.txt"] != nil && next.byName["old.txt"] == nil)
        #expect(drive.listCalls.load(ordering: .relaxed) == 2)
        // And that one is trusted: no third call.
        _ = try await cache.listing("root")
        #expect(drive.listCalls.load(ordering: .relaxed) == 2)
    }
}
