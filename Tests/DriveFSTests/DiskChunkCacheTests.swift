import AliyunDrive
@testable import DriveFS
import Foundation
import Glibc
import Testing

extension DiskChunkCache {
    func store(_ key: Key, bytes: [UInt8]) { bytes.withUnsafeBytes { store(key, bytes: $0) } }
}

@Suite struct DiskChunkCacheTests {
    let directory: String

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("adrivefs-chunks-\(UUID().uuidString)").path
    }

    static let hash = "0123456789ABCDEF0123456789ABCDEF01234567"

    func key(_ index: Int64, hash: String = Self.hash) -> DiskChunkCache.Key {
        DiskChunkCache.Key(contentHash: hash, chunkSize: 1024, index: index)
    }

    func bytes(_ count: Int, _ seed: UInt8) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7) &+ seed } }

    func files() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    func setMtime(_ key: DiskChunkCache.Key, _ seconds: Int) {
        var times = [timespec(tv_sec: seconds, tv_nsec: 0), timespec(tv_sec: seconds, tv_nsec: 0)]
        #expect(utimensat(AT_FDCWD, directory + "/" + key.fileName, &times, 0) == 0)
    }

    @Test func storesReadsWholeChunksAndRangesPrivately() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cache = try DiskChunkCache(directory: directory, capacity: 1 << 20)
        let chunk = bytes(1024, 1)
        #expect(cache.read(key(0), length: 1024) == nil)
        cache.store(key(0), bytes: chunk)
        #expect(cache.read(key(0), length: 1024) == chunk)
        #expect(cache.read(key(0), chunkLength: 1024, from: 100, count: 50) == Array(chunk[100..<150]))
        #expect(cache.usedBytes == 1024)
        // Lowercase and uppercase hashes name the same content.
        #expect(cache.read(key(0, hash: Self.hash.lowercased()), length: 1024) == chunk)
        // No temporary file is left; the folder and the chunk are private.
        #expect(files() == [key(0).fileName])
        var info = stat()
        #expect(stat(directory, &info) == 0 && info.st_mode & 0o777 == 0o700)
        #expect(stat(directory + "/" + key(0).fileName, &info) == 0 && info.st_mode & 0o777 == 0o600)
    }

    @Test func aChunkOfTheWrongLengthIsDroppedNotServed() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cache = try DiskChunkCache(directory: directory, capacity: 1 << 20)
        cache.store(key(3), bytes: bytes(1024, 2))
        // Truncated behind the cache's back (a crash, a full disk).
        #expect(truncate(directory + "/" + key(3).fileName, 1000) == 0)
        #expect(cache.read(key(3), length: 1024) == nil)
        #expect(files().isEmpty)
        #expect(cache.usedBytes == 0)
        // A chunk deleted behind its back is a miss, and forgotten.
        cache.store(key(4), bytes: bytes(1024, 3))
        unlink(directory + "/" + key(4).fileName)
        #expect(cache.read(key(4), length: 1024) == nil)
        #expect(cache.usedBytes == 0)
    }

    @Test func evictsLeastRecentlyUsedChunksBeyondItsCapacity() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cache = try DiskChunkCache(directory: directory, capacity: 3 * 1024)
        for index in 0..<3 { cache.store(key(Int64(index)), bytes: bytes(1024, UInt8(index))) }
        // Using chunk 0 makes chunk 1 the oldest.
        #expect(cache.read(key(0), length: 1024) != nil)
        cache.store(key(3), bytes: bytes(1024, 3))
        #expect(cache.usedBytes == 3 * 1024)
        #expect(files() == [key(0), key(2), key(3)].map(\.fileName).sorted())
        #expect(cache.read(key(1), length: 1024) == nil)
        // A chunk bigger than the whole cache is not stored.
        cache.store(key(9), bytes: bytes(4096, 9))
        #expect(!cache.contains(key(9)))
    }

    @Test func aNewInstanceFindsChunksOnDiskOldestFirstAndCleansLeftovers() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let cache = try DiskChunkCache(directory: directory, capacity: 1 << 20)
            for index in 0..<4 { cache.store(key(Int64(index)), bytes: bytes(1024, UInt8(index))) }
        }
        // Recency as a previous run left it: chunk 2 oldest, then 0, 3, 1.
        for (index, mtime) in [(2, 1_000), (0, 2_000), (3, 3_000), (1, 4_000)] { setMtime(key(Int64(index)), mtime) }
        // A temporary file from a crash and an unrelated file.
        #expect(FileManager.default.createFile(atPath: directory + "/.tmp-1-1", contents: Data([1, 2, 3])))
        #expect(FileManager.default.createFile(atPath: directory + "/notes.txt", contents: Data([1])))
        let cache = try DiskChunkCache(directory: directory, capacity: 2 * 1024)
        #expect(cache.usedBytes == 2 * 1024)
        #expect(files() == ([key(3), key(1)].map(\.fileName) + ["notes.txt"]).sorted())
        #expect(cache.read(key(1), length: 1024) == bytes(1024, 1))
        // Reading touched the mtime, so the next run keeps it over chunk 3.
        var info = stat()
        #expect(stat(directory + "/" + key(1).fileName, &info) == 0 && info.st_mtim.tv_sec > 4_000)
    }

    @Test func onlySHA1HashesAreCacheable() {
        #expect(DiskChunkCache.Key.isCacheable(Self.hash))
        #expect(!DiskChunkCache.Key.isCacheable(nil))
        #expect(!DiskChunkCache.Key.isCacheable(""))
        #expect(!DiskChunkCache.Key.isCacheable("Hf1"))
        #expect(!DiskChunkCache.Key.isCacheable(String(repeating: "g", count: 40)))
        #expect(DiskChunkCache.Key(fileName: key(7).fileName) == key(7))
        #expect(DiskChunkCache.Key(fileName: "x-1-2") == nil)
    }

    // MARK: - Through the filesystem

    func makeFS(_ drive: FakeDrive, diskCacheSize: Int = 64 << 20) throws -> DriveFileSystem {
        try DriveFileSystem(
            service: drive,
            configuration: DriveFSConfiguration(
                uid: 1, gid: 1, cacheSize: 4 << 20, readAhead: 2 << 20, chunkSize: 1 << 20, diskCacheDirectory: directory,
                diskCacheSize: diskCacheSize))
    }

    func readAll(_ fs: DriveFileSystem, _ name: String, size: Int) async throws -> [UInt8] {
        let entry = try await fs.lookup(parent: 1, name: name)
        let handle = try await fs.open(inode: entry.attributes.inode, flags: 0).handle
        var collected: [UInt8] = []
        while collected.count < size {
            let bytes = try await fs.read(inode: entry.attributes.inode, handle: handle, offset: Int64(collected.count), size: 128 << 10).array
            guard !bytes.isEmpty else { break }
            collected += bytes
        }
        try await fs.release(inode: entry.attributes.inode, handle: handle)
        return collected
    }

    @Test func contentReadOnceIsServedFromDiskByTheNextMount() async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let content = bytes(5 << 20 + 123, 5)
        let first = FakeDrive(files: [("v.bin", "f1", content, 1)])
        #expect(try await readAll(try makeFS(first), "v.bin", size: content.count) == content)
        // Six chunks: five whole ones and the short last one (stored right after readers got them).
        for _ in 0..<100 where files().count < 6 { try await Task.sleep(for: .milliseconds(20)) }
        #expect(files().count == 6)
        #expect(first.bytesServed.load(ordering: .relaxed) >= content.count)

        // A new filesystem (a remount) reads it all, sequentially and at random, from disk.
        let second = FakeDrive(files: [("v.bin", "f1", content, 1)])
        let fs = try makeFS(second)
        #expect(try await readAll(fs, "v.bin", size: content.count) == content)
        let entry = try await fs.lookup(parent: 1, name: "v.bin")
        let handle = try await fs.open(inode: entry.attributes.inode, flags: 0).handle
        for offset in [3_000_000, 17, 5 << 20, 1_048_570] {
            let bytes = try await fs.read(inode: entry.attributes.inode, handle: handle, offset: Int64(offset), size: 4096).array
            #expect(Array(bytes) == Array(content[offset..<min(content.count, offset + 4096)]))
        }
        #expect(second.bytesServed.load(ordering: .relaxed) == 0)
    }

    @Test func contentTheServerNoLongerVouchesForIsNotStored() async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let content = bytes(3 << 20, 6)
        // The listing is stale: the download URL now serves other content.
        let drive = FakeDrive(files: [("v.bin", "f1", content, 1)], servedHashOverride: String(repeating: "E", count: 40))
        #expect(try await readAll(try makeFS(drive), "v.bin", size: content.count) == content)
        #expect(files().isEmpty)
    }

    @Test func anUnusableCacheFolderFailsTheFilesystemWithAClearError() throws {
        let file = directory + "-file"
        #expect(FileManager.default.createFile(atPath: file, contents: Data([1])))
        defer { unlink(file) }
        let drive = FakeDrive(files: [])
        #expect {
            _ = try DriveFileSystem(
                service: drive,
                configuration: DriveFSConfiguration(uid: 1, gid: 1, diskCacheDirectory: file + "/chunks", diskCacheSize: 1 << 20))
        } throws: { error in
            "\(error)".contains("cannot use the disk cache \(file)/chunks")
        }
    }
}
