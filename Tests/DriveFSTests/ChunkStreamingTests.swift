import AliyunDrive
@testable import DriveFS
import FUSE
import Foundation
import Synchronization
import Testing

@Suite struct ChunkBufferTests {
    @Test func readersWaitOnlyForTheBytesTheyNeed() async throws {
        let buffer = ChunkBuffer(capacity: 1000, pool: StoragePool(limit: 0))
        let early = Task { try await buffer.wait(until: 100) }
        let late = Task { try await buffer.wait(until: 900) }
        [UInt8](repeating: 1, count: 150).withUnsafeBytes { buffer.append($0) }
        #expect(try await early.value == 100)
        #expect(buffer.filled == 150)
        [UInt8](repeating: 2, count: 800).withUnsafeBytes { buffer.append($0) }
        #expect(try await late.value == 900)
        #expect(buffer.view(140..<160).withUnsafeBytes { Array($0) } == Array(repeating: 1, count: 10) + Array(repeating: 2, count: 10))
        // Past the end of what will come: the reader gets what there is once it is over.
        let beyond = Task { try await buffer.wait(until: 1000) }
        buffer.finish()
        #expect(try await beyond.value == 950)
        #expect(buffer.isComplete)
        // Bytes beyond the capacity are dropped.
        [UInt8](repeating: 3, count: 100).withUnsafeBytes { buffer.append($0) }
        #expect(buffer.filled == 950)
    }

    @Test func aFailedDownloadFailsItsWaitersButNotBytesAlreadyThere() async throws {
        struct Broken: Error {}
        let buffer = ChunkBuffer(capacity: 100, pool: StoragePool(limit: 0))
        [UInt8](repeating: 7, count: 10).withUnsafeBytes { buffer.append($0) }
        let waiting = Task { try await buffer.wait(until: 50) }
        try await Task.sleep(for: .milliseconds(20))
        buffer.fail(Broken())
        await #expect(throws: Broken.self) { try await waiting.value }
        #expect(try await buffer.wait(until: 10) == 10)
        await #expect(throws: Broken.self) { try await buffer.wait(until: 11) }
        #expect(buffer.failed)
    }

    @Test func aCancelledReaderStopsWaitingAtOnce() async throws {
        let buffer = ChunkBuffer(capacity: 100, pool: StoragePool(limit: 0))
        let waiting = Task { try await buffer.wait(until: 50) }
        try await Task.sleep(for: .milliseconds(20))
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        // The buffer itself is unaffected.
        [UInt8](repeating: 1, count: 100).withUnsafeBytes { buffer.append($0) }
        #expect(try await buffer.wait(until: 100) == 100)
    }

    @Test func chunkMemoryIsRecycled() {
        let pool = StoragePool(limit: 1)
        let first = pool.take(byteCount: 4096)
        pool.give(first)
        let second = pool.take(byteCount: 4096)
        #expect(second.baseAddress == first.baseAddress)
        let other = pool.take(byteCount: 8192)
        #expect(other.baseAddress != first.baseAddress)
        pool.give(second)
        pool.give(other)  // over the limit: freed
        #expect(pool.take(byteCount: 8192).baseAddress != nil)
    }

    @Test func chunkSizedMemoryIsHugePageAlignedUsableAndFreed() throws {
        let pool = StoragePool(limit: 0)
        let chunk = pool.take(byteCount: 4 << 20)
        let base = try #require(chunk.baseAddress)
        #expect(UInt(bitPattern: base) % UInt(StoragePool.hugePage) == 0)
        // Every byte writable and readable, the last one included.
        chunk.initializeMemory(as: UInt8.self, repeating: 0xA5)
        #expect(chunk.load(fromByteOffset: (4 << 20) - 1, as: UInt8.self) == 0xA5)
        // Freed (limit 0, nothing kept); the next take maps afresh and works too.
        pool.give(chunk)
        let odd = pool.take(byteCount: (3 << 20) + 5)
        #expect(UInt(bitPattern: odd.baseAddress) % UInt(StoragePool.hugePage) == 0)
        odd.initializeMemory(as: UInt8.self, repeating: 1)
        #expect(odd.load(fromByteOffset: (3 << 20) + 4, as: UInt8.self) == 1)
        pool.give(odd)
        // Small buffers come from the allocator.
        let small = pool.take(byteCount: 1000)
        small.initializeMemory(as: UInt8.self, repeating: 2)
        pool.give(small)
    }
}

/// A drive whose streamed reads deliver the first `head` bytes of any range starting at or
/// beyond `gatedFrom`, then hold until `open()`; counts reads cancelled while held.
final class GatedDrive: FakeDrive, @unchecked Sendable {
    let head: Int
    let gatedFrom: Int64
    let opened = Atomic<Bool>(false)
    let cancelled = Atomic<Int>(0)
    let held = Atomic<Int>(0)

    init(bytes: [UInt8], head: Int, gatedFrom: Int64) {
        self.head = head
        self.gatedFrom = gatedFrom
        super.init(files: [("big.bin", "f1", bytes, 1)])
    }

    func open() { opened.store(true, ordering: .relaxed) }

    override func read(fileID: String, offset: Int64, length: Int, into sink: @escaping @Sendable (UnsafeRawBufferPointer) -> Void) async throws {
        let bytes = try await read(fileID: fileID, offset: offset, length: length)
        guard offset >= gatedFrom else {
            bytes.withUnsafeBytes { sink($0) }
            return
        }
        bytes.prefix(head).withUnsafeBytes { sink($0) }
        held.add(1, ordering: .relaxed)
        while !opened.load(ordering: .relaxed) {
            do { try await Task.sleep(for: .milliseconds(5)) } catch {
                cancelled.add(1, ordering: .relaxed)
                throw DriveError(.cancelled, "read cancelled")
            }
        }
        bytes.dropFirst(head).withUnsafeBytes { sink($0) }
    }
}

@Suite struct StreamingReadTests {
    static let content = (0..<(16 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ $0 >> 11) }

    func makeFS(_ drive: FakeDrive) throws -> DriveFileSystem {
        try DriveFileSystem(service: drive, configuration: DriveFSConfiguration(uid: 1, gid: 1, cacheSize: 16 << 20, readAhead: 8 << 20, chunkSize: 1 << 20))
    }

    @Test func aReadIsAnsweredAsSoonAsItsBytesArriveNotWhenTheChunkIsComplete() async throws {
        // Every range's first 64 KiB arrive at once; the rest of each chunk is held back.
        let drive = GatedDrive(bytes: Self.content, head: 64 << 10, gatedFrom: 0)
        defer { drive.open() }
        let fs = try makeFS(drive)
        let entry = try await fs.lookup(parent: 1, name: "big.bin")
        let inode = entry.attributes.inode
        let handle = try await fs.open(inode: inode, flags: 0).handle
        // Offset 0 counts as sequential, so this goes through the chunk download.
        let answered = Task { try await fs.read(inode: inode, handle: handle, offset: 0, size: 4096).array }
        // (The bound only tells "answered before the gate opened" from "never": a loaded
        // machine may take seconds.)
        let early = try await answerOrNil(answered, seconds: 30)
        // Answered while the rest of the chunk was still held back by the drive.
        #expect(early == Array(Self.content[0..<4096]))
        let gateWasOpen = drive.opened.load(ordering: .relaxed)
        #expect(!gateWasOpen)
        drive.open()
        #expect(try await fs.read(inode: inode, handle: handle, offset: 4096, size: 1 << 20).array == Array(Self.content[4096..<(4096 + (1 << 20))]))
    }

    @Test func aSeekCancelsTheStalePrefetchDownloads() async throws {
        // Chunk 0 arrives whole; read-ahead of everything after it is held.
        let drive = GatedDrive(bytes: Self.content, head: 0, gatedFrom: 1 << 20)
        defer { drive.open() }
        let fs = try makeFS(drive)
        let entry = try await fs.lookup(parent: 1, name: "big.bin")
        let inode = entry.attributes.inode
        let handle = try await fs.open(inode: inode, flags: 0).handle
        for step in 0..<6 {
            let bytes = try await fs.read(inode: inode, handle: handle, offset: Int64(step) * (128 << 10), size: 128 << 10).array
            #expect(bytes == Array(Self.content[(step * (128 << 10))..<((step + 1) * (128 << 10))]))
        }
        var waited = 0
        while drive.held.load(ordering: .relaxed) < 2 && waited < 200 {
            try await Task.sleep(for: .milliseconds(10))
            waited += 1
        }
        let prefetching = drive.held.load(ordering: .relaxed)
        #expect(prefetching >= 2)
        // A jump far away: the held read-ahead is cancelled, not left running.
        let far = try await fs.read(inode: inode, handle: handle, offset: 14 << 20, size: 4096).array
        #expect(far == Array(Self.content[(14 << 20)..<((14 << 20) + 4096)]))
        // Every held download is cancelled (the window may have grown meanwhile).
        waited = 0
        while drive.cancelled.load(ordering: .relaxed) < drive.held.load(ordering: .relaxed) && waited < 200 {
            try await Task.sleep(for: .milliseconds(10))
            waited += 1
        }
        let (cancelled, held) = (drive.cancelled.load(ordering: .relaxed), drive.held.load(ordering: .relaxed))
        #expect(cancelled == held && cancelled >= prefetching)
        // Reading there again starts afresh and gets the right bytes.
        drive.open()
        let again = try await fs.read(inode: inode, handle: handle, offset: 1 << 20, size: 4096).array
        #expect(again == Array(Self.content[(1 << 20)..<((1 << 20) + 4096)]))
    }
}

extension StreamingReadTests {
    @Test func aReaderWaitingOnAChunkAnotherReaderCancelledGetsItAnyway() async throws {
        let drive = GatedDrive(bytes: Self.content, head: 0, gatedFrom: 1 << 20)
        defer { drive.open() }
        let fs = try makeFS(drive)
        let inode = try await fs.lookup(parent: 1, name: "big.bin").attributes.inode
        let a = try await fs.open(inode: inode, flags: 0).handle
        let b = try await fs.open(inode: inode, flags: 0).handle
        // A reads chunk 0 in order: its read-ahead of chunks 1… is held by the drive.
        for step in 0..<4 { _ = try await fs.read(inode: inode, handle: a, offset: Int64(step) * (128 << 10), size: 128 << 10) }
        // B, also sequential, waits in chunk 1 on the download A started.
        for step in 0..<4 { _ = try await fs.read(inode: inode, handle: b, offset: Int64(step) * (128 << 10), size: 128 << 10) }
        let waiting = Task { try await fs.read(inode: inode, handle: b, offset: 1 << 20, size: 128 << 10).array }
        try await Task.sleep(for: .milliseconds(50))
        // A jumps away: its read-ahead is cancelled, chunk 1 included.
        _ = try await fs.read(inode: inode, handle: a, offset: 15 << 20, size: 4096)
        var waited = 0
        while drive.cancelled.load(ordering: .relaxed) == 0 && waited < 3000 {
            try await Task.sleep(for: .milliseconds(10))
            waited += 1
        }
        #expect(drive.cancelled.load(ordering: .relaxed) > 0)
        drive.open()
        // B's read started the download again and gets the right bytes, not an error.
        // A bound far above the work (a loaded 2-core machine stretches it), far below a hang.
        let bytes = try await answerOrNil(waiting, seconds: 30)
        #expect(bytes == Array(Self.content[(1 << 20)..<((1 << 20) + (128 << 10))]))
    }
}

/// The task's value if it finishes within `seconds`; otherwise cancels it and returns nil.
func answerOrNil<T: Sendable>(_ task: Task<T, any Error>, seconds: Double) async throws -> T? {
    let result = Mutex<Result<T, any Error>?>(nil)
    let watcher = Task {
        let value = await task.result
        result.withLock { $0 = value }
    }
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline, result.withLock({ $0 == nil }) {
        try await Task.sleep(for: .milliseconds(10))
    }
    guard let finished = result.withLock({ $0 }) else {
        task.cancel()
        watcher.cancel()
        return nil
    }
    return try finished.get()
}

extension StreamingReadTests {
    /// A video player's jump: a run that begins in the middle of a chunk fetches that chunk
    /// from the run on, not from its beginning; bytes before it still read right.
    @Test func aJumpIntoAChunksMiddleFetchesItFromThereOn() async throws {
        let drive = RecordingDrive(files: [("big.bin", "f1", Self.content, 1)])
        let fs = try makeFS(drive)
        let inode = try await fs.lookup(parent: 1, name: "big.bin").attributes.inode
        let handle = try await fs.open(inode: inode, flags: 0).handle
        // 1 MiB chunks; the jump lands 640 KiB into chunk 9, then plays on in 64 KiB reads.
        let jump = Int64(9 << 20) + (640 << 10)
        for step in 0..<8 {
            let offset = jump + Int64(step) * (64 << 10)
            let bytes = try await fs.read(inode: inode, handle: handle, offset: offset, size: 64 << 10).array
            #expect(bytes == Array(Self.content[Int(offset)..<Int(offset) + (64 << 10)]), "read \(step)")
        }
        // The random first reads (64 KiB each), chunk 9's tail from the fourth read on
        // (rounded down to 128 KiB), and the read-ahead: never chunk 9's first 640 KiB.
        let ranges = drive.ranges.withLock { $0 }
        #expect(!ranges.isEmpty && ranges.allSatisfy { $0.offset >= jump - (128 << 10) }, "\(ranges)")
        #expect(ranges.contains { $0.offset == Int64(9 << 20) + (768 << 10) && $0.length == 256 << 10 }, "chunk 9 from the fourth read on: \(ranges)")
        try await fs.release(inode: inode, handle: handle)
        // A reader after it, from the chunk's start: right bytes (the part before the tail straight from the drive).
        let other = try await fs.open(inode: inode, flags: 0).handle
        let head = try await fs.read(inode: inode, handle: other, offset: Int64(9 << 20), size: 1 << 20).array
        #expect(head == Array(Self.content[(9 << 20)..<(10 << 20)]))
    }

    @Test func aTailChunkIsNotWhatAWholeChunkReaderGets() async throws {
        let drive = FakeDrive(files: [("big.bin", "f1", Self.content, 1)])
        let fs = try makeFS(drive)
        let inode = try await fs.lookup(parent: 1, name: "big.bin").attributes.inode
        let handle = try await fs.open(inode: inode, flags: 0).handle
        let jump = Int64(3 << 20) + (512 << 10)
        for step in 0..<6 { _ = try await fs.read(inode: inode, handle: handle, offset: jump + Int64(step) * (64 << 10), size: 64 << 10) }
        // Staging for a write (and anything else that takes whole chunks) gets all of chunk 3.
        try await fs.release(inode: inode, handle: handle)
        let writer = try await fs.open(inode: inode, flags: O_RDWR)
        try await fs.prepareWrite(inode: inode, handle: writer.handle)
        let bytes = try await fs.read(inode: inode, handle: writer.handle, offset: Int64(3 << 20), size: 1 << 20).array
        #expect(bytes == Array(Self.content[(3 << 20)..<(4 << 20)]))
    }
}

/// A drive that records every range it is asked to stream.
final class RecordingDrive: FakeDrive, @unchecked Sendable {
    let ranges = Mutex<[(offset: Int64, length: Int)]>([])

    override func read(fileID: String, offset: Int64, length: Int, into sink: @escaping @Sendable (UnsafeRawBufferPointer) -> Void) async throws {
        ranges.withLock { $0.append((offset, length)) }
        try await super.read(fileID: fileID, offset: offset, length: length, into: sink)
    }
}

/// Readers reading ahead at once share the memory cache: each keeps its share of chunks
/// in flight, so none evicts the others' chunks before they are read.
@Suite struct ReadAheadShareTests {
    @Test func theCacheIsSharedAmongTheReadersStreaming() {
        let cache = ChunkCache(capacity: 48 << 20)
        let readers = [NSObject(), NSObject(), NSObject()]
        let (a, b, c) = (ObjectIdentifier(readers[0]), ObjectIdentifier(readers[1]), ObjectIdentifier(readers[2]))
        #expect(cache.readAheadShare(chunkSize: 4 << 20) == 9, "alone: all of it but the chunks read and the one before")
        cache.streaming(a, true)
        cache.streaming(a, true)
        #expect(cache.readAheadShare(chunkSize: 4 << 20) == 9)
        cache.streaming(b, true)
        #expect(cache.readAheadShare(chunkSize: 4 << 20) == 3)
        cache.streaming(c, true)
        #expect(cache.readAheadShare(chunkSize: 4 << 20) == 1)
        cache.streaming(b, false)
        cache.streaming(c, false)
        #expect(cache.readAheadShare(chunkSize: 4 << 20) == 9)
        #expect(ChunkCache(capacity: 4 << 20).readAheadShare(chunkSize: 4 << 20) == 1, "at least one")
        withExtendedLifetime(readers) {}
    }

    /// Waits (a loaded machine may take seconds) until every buffer's download is over.
    static func complete(_ buffers: [ChunkBuffer]) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while buffers.contains(where: { !$0.isComplete }) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(2)) }
    }

    /// Chunks already read go first (least recently used first), then chunks fetched ahead,
    /// and a chunk still arriving last — of those, the one fetched ahead last, which is
    /// needed last; a look (`holds`) is no use.
    @Test func evictionSparesChunksNotReadYetAndChunksStillArriving() async throws {
        let cache = ChunkCache(capacity: 3 * 1024)
        func key(_ index: Int64) -> ChunkCache.Key { ChunkCache.Key(fileID: "f", contentHash: "h", index: index) }
        let whole: @Sendable (ChunkBuffer) async throws -> Void = { buffer in [UInt8](repeating: 1, count: 1024).withUnsafeBytes { buffer.append($0) } }
        let endless: @Sendable (ChunkBuffer) async throws -> Void = { _ in try await Task.sleep(for: .seconds(3600)) }
        // Oldest first: one still arriving, one fetched ahead, one read.
        _ = cache.buffer(key(0), length: 1024, reading: false, load: endless)
        let ahead = cache.buffer(key(1), length: 1024, reading: false, load: whole).0
        let read = cache.buffer(key(2), length: 1024, reading: true, load: whole).0
        try await Self.complete([ahead, read])
        #expect(cache.holds(key(1)) && cache.holds(key(0)))
        _ = cache.buffer(key(3), length: 1024, reading: false, load: endless)
        #expect(!cache.holds(key(2)), "the chunk read goes first, though the newest")
        #expect(cache.holds(key(0)) && cache.holds(key(1)))
        _ = cache.buffer(key(4), length: 1024, reading: false, load: endless)
        #expect(!cache.holds(key(1)), "then the one fetched ahead")
        #expect(cache.holds(key(0)), "the one arriving stays while anything else can go")
        let last = cache.buffer(key(5), length: 1024, reading: false, load: endless).0
        #expect(!cache.holds(key(4)), "nothing else left: the arriving one fetched ahead last")
        #expect(cache.holds(key(0)) && cache.holds(key(3)))
        // Two fetched ahead and all there, the last one goes first.
        let two = ChunkCache(capacity: 2 * 1024)
        let next = two.buffer(key(10), length: 1024, reading: false, load: whole).0
        let later = two.buffer(key(11), length: 1024, reading: false, load: whole).0
        try await Self.complete([next, later])
        _ = two.buffer(key(12), length: 1024, reading: false, load: whole)
        #expect(two.holds(key(10)) && !two.holds(key(11)))
        // An evicted download nobody waits for is stopped, not left running for nothing.
        _ = cache.buffer(key(6), length: 1024, reading: false, load: endless)
        await #expect(throws: (any Error).self) { try await last.wait(until: 1024) }
        for index in Int64(0)...6 { if let buffer = cache.cached(key(index)) { cache.cancelDownload(key(index), of: buffer) } }
    }

    @Test func aReaderCountsWhileItReadsAheadAndNotOnceClosedOrRandom() async throws {
        let content = (0..<(8 << 20)).map { UInt8(truncatingIfNeeded: $0) }
        let drive = FakeDrive(files: [("a.bin", "fa", content, 1), ("b.bin", "fb", content, 2)])
        let fs = try DriveFileSystem(service: drive, configuration: DriveFSConfiguration(uid: 1, gid: 1, cacheSize: 16 << 20, chunkSize: 1 << 20))
        let share = { fs.chunks.readAheadShare(chunkSize: 1 << 20) }
        #expect(share() == 13)
        func sequential(_ name: String) async throws -> (InodeNumber, UInt64) {
            let inode = try await fs.lookup(parent: 1, name: name).attributes.inode
            let handle = try await fs.open(inode: inode, flags: 0).handle
            for step in 0..<4 { _ = try await fs.read(inode: inode, handle: handle, offset: Int64(step) * (64 << 10), size: 64 << 10) }
            return (inode, handle)
        }
        let (a, ha) = try await sequential("a.bin")
        #expect(share() == 13, "one reader reading ahead: all of it")
        let (b, hb) = try await sequential("b.bin")
        #expect(share() == 5, "two: a share each")
        // A jumps around: it no longer reads ahead, and the other gets the room back.
        _ = try await fs.read(inode: a, handle: ha, offset: 6 << 20, size: 4096)
        #expect(share() == 13)
        try await fs.release(inode: b, handle: hb)
        try await fs.release(inode: a, handle: ha)
        #expect(share() == 13)
    }
}
