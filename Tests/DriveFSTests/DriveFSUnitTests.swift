import AliyunDrive
import Foundation
@testable import DriveFS
import FUSE
import Synchronization
import Testing

extension ReadBytes {
    /// The bytes as an array (tests compare them).
    var array: [UInt8] { withUnsafeBytes { Array($0) } }
}

/// A scripted drive: one folder of files held in memory; counts bytes served.
/// Unchecked: every stored property is a `let` of a Sendable type; open for subclasses that
/// script the streaming read.
class FakeDrive: DriveService, @unchecked Sendable {
    let items: [DriveItem]
    let contents: [String: [UInt8]]
    let bytesServed = Atomic<Int>(0)
    let listCalls = Atomic<Int>(0)

    /// What `servedContentHash` answers instead of the listed hash (content changed on the server).
    let servedHashOverride: String?

    /// Files are listed with a 40-hex content hash made from their id (not their real SHA-1).
    init(files: [(name: String, id: String, bytes: [UInt8], created: Double)], servedHashOverride: String? = nil) {
        items = files.map {
            DriveItem(
                fileID: $0.id, parentID: "root", name: $0.name, isFolder: false, size: Int64($0.bytes.count),
                contentHash: Self.listedHash($0.id), createdAt: $0.created, updatedAt: $0.created)
        }
        contents = Dictionary(uniqueKeysWithValues: files.map { ($0.id, $0.bytes) })
        self.servedHashOverride = servedHashOverride
    }

    static func listedHash(_ id: String) -> String {
        let hex = Array(id.utf8).map { String(format: "%02X", $0) }.joined()
        return String((hex + String(repeating: "0", count: 40)).prefix(40))
    }

    func list(folderID: String) async throws -> [DriveItem] {
        listCalls.add(1, ordering: .relaxed)
        return folderID == "root" ? items : []
    }
    func item(fileID: String) async throws -> DriveItem {
        guard let item = items.first(where: { $0.fileID == fileID }) else { throw DriveError(.service, "missing", status: 404, code: "NotFound.File") }
        return item
    }
    /// Every range read, streamed or not, in order.
    let requested = Mutex<[(offset: Int64, length: Int)]>([])

    func read(fileID: String, offset: Int64, length: Int) async throws -> [UInt8] {
        requested.withLock { $0.append((offset, length)) }
        let bytes = contents[fileID] ?? []
        let start = min(Int(offset), bytes.count)
        let slice = Array(bytes[start..<min(bytes.count, start + length)])
        bytesServed.add(slice.count, ordering: .relaxed)
        return slice
    }
    /// Streams in 64 KiB pieces, like a transport would.
    func read(fileID: String, offset: Int64, length: Int, into sink: @escaping @Sendable (UnsafeRawBufferPointer) -> Void) async throws {
        let bytes = try await read(fileID: fileID, offset: offset, length: length)
        var from = 0
        while from < bytes.count {
            let to = min(bytes.count, from + (64 << 10))
            bytes[from..<to].withUnsafeBytes { sink($0) }
            from = to
            await Task.yield()
        }
    }
    func servedContentHash(fileID: String) async throws -> String? {
        servedHashOverride ?? items.first { $0.fileID == fileID }?.contentHash
    }
    func space() async throws -> SpaceInfo { SpaceInfo(used: 10, total: 1 << 30) }

    // Read-only: writing is tested through real mounts against the emulator.
    static let readOnly = DriveError(.service, "read-only fake", status: 403, code: "ForbiddenNoPermission.File")
    func createFolder(parentID: String, name: String) async throws -> DriveItem { throw Self.readOnly }
    func rename(fileID: String, to name: String) async throws -> DriveItem { throw Self.readOnly }
    func move(fileID: String, toParentID: String, newName: String?) async throws { throw Self.readOnly }
    func trash(fileID: String) async throws { throw Self.readOnly }
    func upload(path: String, parentID: String, name: String, options: UploadOptions, contentHash: ContentHashSource) async throws -> UploadResult { throw Self.readOnly }
    func copyByHash(of source: DriveItem, parentID: String, name: String) async throws -> UploadResult? { throw Self.readOnly }
}

@Suite struct DriveFSUnitTests {
    static let big = (0..<(20 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }

    func makeFS(_ drive: FakeDrive) throws -> DriveFileSystem {
        try DriveFileSystem(service: drive, configuration: DriveFSConfiguration(uid: 1, gid: 1, cacheSize: 16 << 20, readAhead: 8 << 20, chunkSize: 1 << 20))
    }

    @Test func sequentialReadsPrefetchAndReturnExactBytes() async throws {
        let drive = FakeDrive(files: [("big.bin", "f1", Self.big, 1)])
        let fs = try makeFS(drive)
        let entry = try await fs.lookup(parent: 1, name: "big.bin")
        let handle = try await fs.open(inode: entry.attributes.inode, flags: 0).handle
        var offset: Int64 = 0
        var collected: [UInt8] = []
        while offset < Int64(Self.big.count) {
            let bytes = try await fs.read(inode: entry.attributes.inode, handle: handle, offset: offset, size: 128 << 10).array
            collected += bytes
            offset += Int64(bytes.count)
            if offset == 4 << 20 {
                // By now the read-ahead window runs ahead of the reader.
                try await Task.sleep(for: .milliseconds(50))
                #expect(drive.bytesServed.load(ordering: .relaxed) > Int(offset))
            }
        }
        #expect(collected == Self.big)
        try await fs.release(inode: entry.attributes.inode, handle: handle)
    }

    @Test func randomReadsFetchOnlyWhatTheyAskFor() async throws {
        let drive = FakeDrive(files: [("big.bin", "f1", Self.big, 1)])
        let fs = try makeFS(drive)
        let entry = try await fs.lookup(parent: 1, name: "big.bin")
        let handle = try await fs.open(inode: entry.attributes.inode, flags: 0).handle
        let pages = Int64(Self.big.count / 4096)
        for step in 1...50 {
            // Scattered offsets, never two in a row near each other.
            let offset = (Int64(step) * 7919 % pages) * 4096
            let bytes = try await fs.read(inode: entry.attributes.inode, handle: handle, offset: offset, size: 4096).array
            #expect(Array(bytes) == Array(Self.big[Int(offset)..<Int(offset) + 4096]))
        }
        #expect(drive.bytesServed.load(ordering: .relaxed) <= 50 * 4096 * 3)
    }

    @Test func duplicateNamesGetDistinctStableNames() async throws {
        let drive = FakeDrive(files: [("a.txt", "bbbbbbbb22", [2], 20), ("a.txt", "aaaaaaaa11", [1], 10), ("b", "cccccccc33", [3], 5)])
        let fs = try makeFS(drive)
        let handle = try await fs.opendir(inode: 1)
        let names = try await fs.readdir(inode: 1, handle: handle, offset: 0, plus: false).map(\.name)
        #expect(names == [".", "..", "a (bbbbbbbb).txt", "a.txt", "b"])
        let oldest = try await fs.lookup(parent: 1, name: "a.txt")
        #expect(try await fs.getxattr(inode: oldest.attributes.inode, name: "user.adrive.file_id") == Array("aaaaaaaa11".utf8))
        // Offsets are stable: reading from an offset continues after that entry.
        let rest = try await fs.readdir(inode: 1, handle: handle, offset: 3, plus: false).map(\.name)
        #expect(rest == ["a.txt", "b"])
    }

    @Test func forgetFreesInodesAndListingsAreCached() async throws {
        let drive = FakeDrive(files: [("x", "x1", [1, 2, 3], 1)])
        let fs = try makeFS(drive)
        let first = try await fs.lookup(parent: 1, name: "x")
        let again = try await fs.lookup(parent: 1, name: "x")
        #expect(first.attributes.inode == again.attributes.inode)
        #expect(drive.listCalls.load(ordering: .relaxed) == 1)
        fs.forget(inode: first.attributes.inode, count: 2)
        await #expect(throws: DriveFSError.self) { try await fs.getattr(inode: first.attributes.inode) }
        await #expect(throws: DriveFSError.self) { try await fs.lookup(parent: 1, name: "missing") }
        await #expect(throws: DriveFSError.self) { try await fs.open(inode: 1, flags: 0) }
    }

    @Test func plainReaddirEntriesNobodyLookedUpAreFreedOnReleasedir() async throws {
        let drive = FakeDrive(files: (0..<50).map { ("f\($0)", "id\($0)", [UInt8($0)], Double($0)) })
        let fs = try makeFS(drive)
        let kept = try await fs.lookup(parent: 1, name: "f7")
        let baseline = fs.inodes.count
        let handle = try await fs.opendir(inode: 1)
        let entries = try await fs.readdir(inode: 1, handle: handle, offset: 0, plus: false)
        #expect(entries.count == 52)
        #expect(fs.inodes.count == baseline + 49)
        await fs.releasedir(inode: 1, handle: handle)
        #expect(fs.inodes.count == baseline)
        // The looked-up one keeps its inode number.
        #expect(try await fs.getattr(inode: kept.attributes.inode).attributes.size == 1)
        #expect(try await fs.lookup(parent: 1, name: "f7").attributes.inode == kept.attributes.inode)
    }
}

@Suite struct AccessPatternTests {
    static let mib: Int64 = 1 << 20

    @Test func kernelReorderedReadsStaySequential() {
        var pattern = AccessPattern(maxWindow: 6)
        // The kernel's read-ahead sends 1 MiB reads from several threads: they arrive
        // out of order, sometimes several behind the furthest one seen.
        let order: [Int64] = [0, 1, 3, 2, 5, 4, 7, 6, 8, 9, 11, 10, 13, 12, 14]
        for index in order {
            let sequential = pattern.observe(offset: index * Self.mib, end: (index + 1) * Self.mib)
            #expect(sequential, "read \(index)")
        }
        #expect(pattern.window == 6)
    }

    @Test func theWindowNeverOutgrowsTwiceWhatTheRunHasRead() {
        // 1 MiB reads into 4 MiB chunks, from a jump: the window opens at two chunks and
        // grows with the run, not by doubling per read.
        var pattern = AccessPattern(maxWindow: 16, chunkSize: 4 * Self.mib)
        let jump = 100 * Self.mib
        var windows: [Int] = []
        for index in Int64(0)..<16 {
            _ = pattern.observe(offset: jump + index * Self.mib, end: jump + (index + 1) * Self.mib)
            windows.append(pattern.window)
        }
        // Random for three reads, then 2 (4 MiB read → 2 earned), … 16 MiB read → 8.
        #expect(windows == [0, 0, 0, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8])
        // From the start of the file the first read counts at once, still at two chunks.
        var head = AccessPattern(maxWindow: 16, chunkSize: 4 * Self.mib)
        #expect(head.observe(offset: 0, end: Self.mib) && head.window == 2)
        // The ceiling still holds.
        var capped = AccessPattern(maxWindow: 3, chunkSize: Self.mib)
        for index in Int64(0)..<20 { _ = capped.observe(offset: index * Self.mib, end: (index + 1) * Self.mib) }
        #expect(capped.window == 3)
        #expect(capped.hasLeft(50 * Self.mib) && capped.hasLeft(0) == false && capped.hasLeft(21 * Self.mib) == false)
    }

    @Test func scatteredReadsAreRandomAndCloseTheWindow() {
        var pattern = AccessPattern(maxWindow: 6)
        _ = pattern.observe(offset: 0, end: Self.mib)
        _ = pattern.observe(offset: Self.mib, end: 2 * Self.mib)
        #expect(pattern.window > 0)
        // A jump far ahead, then far behind: random.
        let step1 = pattern.observe(offset: 900 * Self.mib, end: 900 * Self.mib + 4096)
        #expect(!step1)
        #expect(pattern.window == 0)
        let step2 = pattern.observe(offset: 300 * Self.mib, end: 300 * Self.mib + 4096)
        #expect(!step2)
        // A reader that settles into a new sequential run is sequential from its fourth read.
        let step3 = pattern.observe(offset: 500 * Self.mib, end: 501 * Self.mib)
        #expect(!step3)
        let step4 = pattern.observe(offset: 501 * Self.mib, end: 502 * Self.mib)
        #expect(!step4)
        let step5 = pattern.observe(offset: 502 * Self.mib, end: 503 * Self.mib)
        #expect(!step5)
        let step6 = pattern.observe(offset: 503 * Self.mib, end: 504 * Self.mib)
        #expect(step6)
    }
}

@Suite struct StagedFileTests {
    static let hasher = HashWorker()

    @Test func followerHashesSequentialWritesAndGivesUpOnRewrites() async throws {
        let directory = NSTemporaryDirectory() + "staged-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let staged = try StagedFile(directory: directory, modified: 0, hasher: Self.hasher)
        defer { staged.remove() }
        var content: [UInt8] = []
        for index in 0..<40 {
            let piece = (0..<(300_000 + index)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ index) }
            let written = try piece.withUnsafeBytes { try staged.write($0, at: Int64(content.count), append: false, now: 0) }
            #expect(written == piece.count)
            content += piece
        }
        // A hole is content too (zeros), hashed like any other bytes.
        try staged.truncate(to: Int64(content.count + 5000), now: 0)
        content += [UInt8](repeating: 0, count: 5000)
        #expect(await staged.contentHash()?.hash == RapidUpload.sha1Hex(content))
        #expect(await staged.contentHash()?.size == Int64(content.count))
        // Rewriting bytes already hashed: the follower cannot know the hash any more.
        _ = try [UInt8(1)].withUnsafeBytes { try staged.write($0, at: 10, append: false, now: 0) }
        #expect(await staged.contentHash() == nil)
        // The hashing ran on its own thread, below the writers' priority (one such thread per
        // filesystem: every one this test process has made so far).
        let nice = Self.threadNiceValues(named: HashWorker.threadName)
        #expect(!nice.isEmpty && nice.allSatisfy { $0 == 10 }, "\(nice)")
    }

    /// Blocks are reserved ahead of a writer that extends the file (without changing its
    /// size), never across a hole, and go with a truncate below them.
    @Test func blocksAreReservedAheadOfAnExtendingWriter() throws {
        let directory = NSTemporaryDirectory() + "staged-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func onDisk(_ staged: StagedFile) -> (size: Int64, allocated: Int64) {
            var info = stat()
            _ = stat(staged.path, &info)
            return (Int64(info.st_size), Int64(info.st_blocks) * 512)
        }
        let mib = 1 << 20
        let piece = [UInt8](repeating: 7, count: mib)
        let growing = try StagedFile(directory: directory, modified: 0, hasher: Self.hasher)
        defer { growing.remove() }
        for index in 0..<3 { _ = try piece.withUnsafeBytes { try growing.write($0, at: Int64(index * mib), append: false, now: 0) } }
        var disk = onDisk(growing)
        #expect(disk.size == Int64(3 * mib))
        #expect(disk.allocated >= Int64(6 * mib), "\(disk.allocated) bytes allocated")
        // Content that stays staged gives the reservation back.
        growing.releaseReservation()
        disk = onDisk(growing)
        #expect(disk.size == Int64(3 * mib) && disk.allocated <= Int64(3 * mib + 64 << 10), "\(disk.allocated) bytes allocated")
        _ = try piece.withUnsafeBytes { try growing.write($0, at: Int64(3 * mib), append: false, now: 0) }
        #expect(onDisk(growing).allocated >= Int64(8 * mib))
        try growing.truncate(to: Int64(mib), now: 0)
        disk = onDisk(growing)
        #expect(disk.size == Int64(mib) && disk.allocated <= Int64(mib + 64 << 10))

        let sparse = try StagedFile(directory: directory, modified: 0, hasher: Self.hasher)
        defer { sparse.remove() }
        _ = try piece.withUnsafeBytes { try sparse.write($0, at: Int64(1 << 30), append: false, now: 0) }
        disk = onDisk(sparse)
        #expect(disk.size == Int64(1 << 30) + Int64(mib))
        #expect(disk.allocated <= Int64(2 * mib), "\(disk.allocated) bytes allocated for a 1 MiB write past a hole")
    }

    /// The nice value of each of this process's threads with that name (/proc/self/task).
    static func threadNiceValues(named name: String) -> [Int] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.compactMap { task in
            let comm = (try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            guard comm == name, let stat = try? String(contentsOfFile: "/proc/self/task/\(task)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return nil }
            // Fields after "(comm)": state is field 3, nice field 19.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 16 ? Int(fields[16]) : nil
        }
    }
}
