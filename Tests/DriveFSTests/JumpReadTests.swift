import AliyunDrive
@testable import DriveFS
import FUSE
import Foundation
import Synchronization
import Testing

/// Reads after a jump (a player seeking): a large read streams its chunk's tail in pieces
/// and the reads after it cost no request each; a large read nobody follows costs one
/// piece; downloads a reader waits for are never cancelled as stale; a download far
/// behind the reader gives way to the tail; the kernel's reads of a run the reader has
/// left take only their own bytes.
@Suite struct JumpReadTests {
    static let mib = 1 << 20
    static let kib = 1 << 10
    static let content = StreamingReadTests.content

    func makeFS(_ drive: FakeDrive, chunk: Int = 1 << 20) throws -> DriveFileSystem {
        try DriveFileSystem(service: drive, configuration: DriveFSConfiguration(uid: 1, gid: 1, cacheSize: 16 * chunk, readAhead: 8 * chunk, chunkSize: chunk))
    }

    func open(_ fs: DriveFileSystem) async throws -> (InodeNumber, UInt64) {
        let inode = try await fs.lookup(parent: 1, name: "big.bin").attributes.inode
        let handle = try await fs.open(inode: inode, flags: 0).handle
        return (inode, handle)
    }

    func expectBytes(_ fs: DriveFileSystem, _ inode: InodeNumber, _ handle: UInt64, at offset: Int, size: Int) async throws {
        let bytes = try await fs.read(inode: inode, handle: handle, offset: Int64(offset), size: size).array
        let expected = Array(Self.content[offset..<offset + size])
        #expect(bytes == expected, "read at \(offset)")
    }

    @Test func theKernelsReadsAfterASeekComeFromOneTailInPieces() async throws {
        let drive = RecordingDrive(files: [("big.bin", "f1", Self.content, 1)])
        let fs = try makeFS(drive)
        let (inode, handle) = try await open(fs)
        // A seek into chunk 5, then reads as the kernel sends them: the program's 128 KiB,
        // then its read-ahead doubling.
        let jump = 5 * Self.mib + 200 * Self.kib
        var at = jump
        for size in [128 * Self.kib, 256 * Self.kib, 256 * Self.kib] {
            try await expectBytes(fs, inode, handle, at: at, size: size)
            at += size
        }
        // Chunk 5 was asked for exactly as the tail's pieces from the jump on: no range
        // per read, nothing before the jump.
        let inChunk = drive.requested.withLock { $0 }.filter { $0.offset >= Int64(5 * Self.mib) && $0.offset < Int64(6 * Self.mib) }
        let pieces = TailDownload.pieces(from: 200 * Self.kib, to: Self.mib).map { (Int64(5 * Self.mib + $0.lowerBound), $0.count) }
        #expect(inChunk.map(\.offset) == pieces.map(\.0) && inChunk.map(\.length) == pieces.map(\.1), "\(inChunk)")
        try await fs.release(inode: inode, handle: handle)
    }

    @Test func aLargeReadNobodyFollowsCostsOnePiece() async throws {
        // Every range delivers its first 512 KiB, then holds: the first piece is never done.
        let drive = GatedDrive(bytes: Self.content, head: 512 * Self.kib, gatedFrom: 0)
        defer { drive.open() }
        let fs = try makeFS(drive, chunk: 4 * Self.mib)
        let (inode, handle) = try await open(fs)
        let first = 4 * Self.mib + 100 * Self.kib
        try await expectBytes(fs, inode, handle, at: first, size: 128 * Self.kib)
        // The reader goes elsewhere, twice: each large read is one piece of its chunk.
        try await expectBytes(fs, inode, handle, at: 13 * Self.mib, size: 128 * Self.kib)
        try await expectBytes(fs, inode, handle, at: Self.mib + 8 * Self.kib, size: 128 * Self.kib)
        let ranges = drive.requested.withLock { $0 }
        #expect(ranges.map(\.offset) == [Int64(first), Int64(13 * Self.mib), Int64(Self.mib + 8 * Self.kib)], "\(ranges)")
        #expect(ranges.allSatisfy { $0.length == 512 * Self.kib })
        // The first two, left behind, were cancelled.
        var waited = 0
        while drive.cancelled.load(ordering: .relaxed) < 2 && waited < 300 {
            try await Task.sleep(for: .milliseconds(10))
            waited += 1
        }
        #expect(drive.cancelled.load(ordering: .relaxed) == 2)
        // Small random reads still take just their bytes (away from the tail still held).
        try await expectBytes(fs, inode, handle, at: 6 * Self.mib + 4096, size: 4096)
        #expect(drive.requested.withLock { $0.last?.length } == 4096)
    }

    @Test func aDownloadAReadWaitsForIsNotCancelledWhenTheReaderJumps() async throws {
        // Nothing arrives until the gate opens.
        let drive = GatedDrive(bytes: Self.content, head: 0, gatedFrom: 0)
        defer { drive.open() }
        let fs = try makeFS(drive)
        let (inode, handle) = try await open(fs)
        // A sequential read of chunk 0 (offset 0 counts as sequential) waits for it; its
        // read-ahead starts chunks 1 and 2.
        let waiting = Task { try await fs.read(inode: inode, handle: handle, offset: 0, size: 128 << 10).array }
        var waited = 0
        while drive.held.load(ordering: .relaxed) < 3 && waited < 300 {
            try await Task.sleep(for: .milliseconds(10))
            waited += 1
        }
        // The reader jumps far away (as a program does while the kernel still waits for
        // its read-ahead before the seek).
        let far = Task { try await fs.read(inode: inode, handle: handle, offset: 14 << 20, size: 4096).array }
        waited = 0
        while drive.cancelled.load(ordering: .relaxed) < 2 && waited < 300 {
            try await Task.sleep(for: .milliseconds(10))
            waited += 1
        }
        try await Task.sleep(for: .milliseconds(50))
        // The read-ahead nobody waits for is cancelled; chunk 0, which a read waits for, is not.
        #expect(drive.cancelled.load(ordering: .relaxed) == 2)
        drive.open()
        #expect(try await answerOrNil(waiting, seconds: 30) == Array(Self.content[0..<(128 << 10)]))
        #expect(try await answerOrNil(far, seconds: 30) == Array(Self.content[(14 << 20)..<((14 << 20) + 4096)]))
        #expect(drive.requested.withLock { $0 }.filter { $0.offset == 0 }.count == 1, "chunk 0 asked for once")
    }

    @Test func aDownloadFarBehindTheReaderGivesWayToTheTail() async throws {
        // Chunk 0 arrives whole; chunks after it deliver 512 KiB, then hold.
        let drive = GatedDrive(bytes: Self.content, head: 512 * Self.kib, gatedFrom: Int64(4 * Self.mib))
        defer { drive.open() }
        let fs = try makeFS(drive, chunk: 4 * Self.mib)
        let (inode, handle) = try await open(fs)
        // Sequential from the start: read-ahead starts chunks 1 and 2 (from their first byte).
        for step in 0..<4 { try await expectBytes(fs, inode, handle, at: step * 256 * Self.kib, size: 256 * Self.kib) }
        var waited = 0
        while !drive.requested.withLock({ $0.contains { $0.offset == Int64(8 * Self.mib) } }) && waited < 300 {
            try await Task.sleep(for: .milliseconds(10))
            waited += 1
        }
        // A jump 2 MiB into chunk 2, whose download is 512 KiB in and held: it is dropped
        // and the chunk comes from the jump on.
        let jump = 8 * Self.mib + 2 * Self.mib
        try await expectBytes(fs, inode, handle, at: jump, size: 128 * Self.kib)
        #expect(drive.requested.withLock { $0 }.contains { $0.offset == Int64(jump) && $0.length == 512 * Self.kib })
        waited = 0
        while drive.cancelled.load(ordering: .relaxed) < 1 && waited < 300 {
            try await Task.sleep(for: .milliseconds(10))
            waited += 1
        }
        #expect(drive.cancelled.load(ordering: .relaxed) >= 1, "the download from the chunk's start was cancelled")
        drive.open()
        try await expectBytes(fs, inode, handle, at: jump + 128 * Self.kib, size: 256 * Self.kib)
        // A reader of the chunk's start still gets the right bytes.
        try await expectBytes(fs, inode, handle, at: 8 * Self.mib, size: 4096)
    }

    @Test func readsTheKernelReorderedDoNotCancelTheReadAhead() async throws {
        // 4 MiB chunks of 64 MiB; from 16 MiB on the drive holds its answers, so the
        // read-ahead beyond the reader stays in flight.
        let content = Self.content + Self.content + Self.content + Self.content
        let drive = GatedDrive(bytes: content, head: 0, gatedFrom: Int64(16 * Self.mib))
        defer { drive.open() }
        let fs = try makeFS(drive, chunk: 4 * Self.mib)
        let (inode, handle) = try await open(fs)
        for step in 0..<16 { _ = try await fs.read(inode: inode, handle: handle, offset: Int64(step * Self.mib), size: Self.mib) }
        func read(at offset: Int) -> Task<[UInt8], any Error> {
            Task { try await fs.read(inode: inode, handle: handle, offset: Int64(offset), size: Self.mib).array }
        }
        // The kernel's next read waits for chunk 4; one that overtook it by more than the
        // pattern's slack starts a run of its own, and the next read continues that run
        // (neither is sequential yet).
        let waiting = read(at: 16 * Self.mib)
        try await Task.sleep(for: .milliseconds(50))
        let overtaking = read(at: 19 * Self.mib + 512 * Self.kib)
        try await Task.sleep(for: .milliseconds(50))
        let next = read(at: 20 * Self.mib + 512 * Self.kib)
        try await Task.sleep(for: .milliseconds(150))
        let held = drive.held.load(ordering: .relaxed)
        #expect(held >= 6, "read-ahead in flight: \(held)")
        #expect(drive.cancelled.load(ordering: .relaxed) == 0, "the read-ahead was cancelled by reads of the same stream")
        drive.open()
        for (task, offset) in [(waiting, 16 * Self.mib), (overtaking, 19 * Self.mib + 512 * Self.kib), (next, 20 * Self.mib + 512 * Self.kib)] {
            #expect(try await answerOrNil(task, seconds: 30) == Array(content[offset..<offset + Self.mib]))
        }
        // No chunk was asked for twice.
        let starts = drive.requested.withLock { $0 }.map(\.offset).filter { $0 % Int64(4 * Self.mib) == 0 }
        #expect(Set(starts).count == starts.count, "\(starts)")
    }

    @Test func aReadOfARunTheReaderLeftTakesOnlyItsBytesOfTheNextChunk() async throws {
        // Chunks 0 and 1 arrive whole; chunk 2 and later are held until the gate opens.
        let drive = GatedDrive(bytes: Self.content, head: 0, gatedFrom: Int64(2 * Self.mib))
        defer { drive.open() }
        let fs = try makeFS(drive)
        let (inode, handle) = try await open(fs)
        for step in 0..<8 { try await expectBytes(fs, inode, handle, at: step * 128 * Self.kib, size: 128 * Self.kib) }
        // A read across chunks 2 and 3, classified while the run held: it waits for chunk 2.
        let spanning = 3 * Self.mib - 64 * Self.kib
        let kernel = Task { try await fs.read(inode: inode, handle: handle, offset: Int64(spanning), size: 128 * Self.kib).array }
        try await Task.sleep(for: .milliseconds(100))
        // Then the reader jumps away; the downloads nobody waits for are cancelled.
        try await expectBytes(fs, inode, handle, at: 12 * Self.mib, size: 4096)
        try await Task.sleep(for: .milliseconds(100))
        drive.open()
        #expect(try await answerOrNil(kernel, seconds: 30) == Array(Self.content[spanning..<spanning + 128 * Self.kib]))
        // Chunk 3's part came as just that part, not as the whole chunk.
        let last = drive.requested.withLock { $0 }.last { $0.offset >= Int64(3 * Self.mib) && $0.offset < Int64(4 * Self.mib) }
        #expect(last?.offset == Int64(3 * Self.mib) && last?.length == 64 * Self.kib, "\(String(describing: last))")
    }
}
