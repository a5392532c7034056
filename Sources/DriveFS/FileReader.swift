import AliyunDrive
import Synchronization

/// Reads of one open file. Sequential readers get an asynchronous read-ahead window of
/// parallel chunk downloads that grows while the pattern holds; a seek cancels stale
/// prefetch; random readers fetch just the range they asked for, never megabytes per
/// small read. With a disk cache, chunks come from disk when present there and every
/// downloaded chunk is stored there.
final class FileReader: Sendable {
    private struct State {
        var pattern: AccessPattern
        var prefetches: [Int64: Task<Void, Never>] = [:]
        /// Reads already classified by `readFromMemory` that went on to `read`, by offset.
        var classified: [Int64: Bool] = [:]
    }

    let item: DriveItem
    private let service: any DriveService
    private let cache: ChunkCache
    private let disk: DiskChunkCache?
    private let configuration: DriveFSConfiguration
    private let state: Mutex<State>

    init(item: DriveItem, service: any DriveService, cache: ChunkCache, disk: DiskChunkCache?, configuration: DriveFSConfiguration) {
        self.item = item
        self.service = service
        self.cache = cache
        self.disk = DiskChunkCache.Key.isCacheable(item.contentHash) ? disk : nil
        self.configuration = configuration
        // Read-ahead beyond half the cache would evict its own chunks before they are read.
        let maxWindow = max(1, min(configuration.readAhead, configuration.cacheSize / 2) / configuration.chunkSize)
        state = Mutex(State(pattern: AccessPattern(maxWindow: maxWindow)))
    }

    /// The read's bytes if one cached chunk holds them all (the common case of a
    /// sequential reader served by read-ahead); otherwise nil, and `read` follows.
    func readFromMemory(offset: Int64, size: Int) -> ArraySlice<UInt8>? {
        guard offset < item.size, size > 0 else { return [] }
        let end = min(offset + Int64(size), item.size)
        let sequential = classify(offset: offset, end: end)
        let chunkSize = Int64(configuration.chunkSize)
        let first = offset / chunkSize
        if sequential { schedulePrefetch(after: (end - 1) / chunkSize) }
        if first == (end - 1) / chunkSize, let bytes = cache.cached(key(first)) {
            return piece(of: bytes, index: first, offset: offset, end: end)
        }
        state.withLock { $0.classified[offset] = sequential }
        return nil
    }

    func read(offset: Int64, size: Int) async throws -> ArraySlice<UInt8> {
        let fileSize = item.size
        guard offset < fileSize, size > 0 else { return [] }
        let end = min(offset + Int64(size), fileSize)
        let chunkSize = Int64(configuration.chunkSize)
        let first = offset / chunkSize
        let last = (end - 1) / chunkSize
        let noted = state.withLock { $0.classified.removeValue(forKey: offset) }
        let sequential = noted ?? classify(offset: offset, end: end)
        if !sequential {
            // Random access: serve from chunks already in memory, else fetch just this range.
            if let cached = cachedRange(offset: offset, end: end, first: first, last: last) { return cached[...] }
            if let stored = diskRange(offset: offset, end: end, first: first, last: last) { return stored[...] }
            return try await service.read(fileID: item.fileID, offset: offset, length: Int(end - offset))
                .prefixArray(Int(end - offset))[...]
        }
        if noted == nil { schedulePrefetch(after: last) }
        if first == last {
            // The common case: answer from the cached chunk itself, no copy.
            return piece(of: try await chunk(first), index: first, offset: offset, end: end)
        }
        var result: [UInt8] = []
        result.reserveCapacity(Int(end - offset))
        for index in first...last {
            let part = piece(of: try await chunk(index), index: index, offset: offset, end: end)
            guard !part.isEmpty else { break }
            result.append(contentsOf: part)
        }
        return result[...]
    }

    /// Feeds the read to the access pattern; a read that breaks the pattern cancels
    /// stale prefetch.
    private func classify(offset: Int64, end: Int64) -> Bool {
        state.withLock { state in
            let sequential = state.pattern.observe(offset: offset, end: end)
            if !sequential {
                for task in state.prefetches.values { task.cancel() }
                state.prefetches.removeAll()
            }
            return sequential
        }
    }

    /// The part of chunk `index` that falls inside the file range `offset..<end`.
    private func piece(of bytes: [UInt8], index: Int64, offset: Int64, end: Int64) -> ArraySlice<UInt8> {
        let chunkStart = index * Int64(configuration.chunkSize)
        let from = Int(max(offset, chunkStart) - chunkStart)
        let to = Int(min(end, chunkStart + Int64(bytes.count)) - chunkStart)
        return from < to ? bytes[from..<to] : []
    }

    private func cachedRange(offset: Int64, end: Int64, first: Int64, last: Int64) -> [UInt8]? {
        var result: [UInt8] = []
        for index in first...last {
            guard let bytes = cache.cached(key(index)) else {
                return nil
            }
            let part = piece(of: bytes, index: index, offset: offset, end: end)
            guard !part.isEmpty else { return nil }
            result.append(contentsOf: part)
        }
        return result
    }

    /// The range read from the disk cache, if every chunk it touches is there.
    private func diskRange(offset: Int64, end: Int64, first: Int64, last: Int64) -> [UInt8]? {
        guard let disk else { return nil }
        let chunkSize = Int64(configuration.chunkSize)
        var result: [UInt8] = []
        for index in first...last {
            let chunkStart = index * chunkSize
            let from = max(offset, chunkStart)
            let to = min(end, chunkStart + chunkSize)
            guard let part = disk.read(
                diskKey(index), chunkLength: chunkLength(index), from: Int(from - chunkStart), count: Int(to - from))
            else { return nil }
            result.append(contentsOf: part)
        }
        return result
    }

    private func schedulePrefetch(after lastChunk: Int64) {
        let chunkSize = Int64(configuration.chunkSize)
        let lastIndex = (item.size - 1) / chunkSize
        let window = state.withLock { $0.pattern.window }
        guard window > 0, lastChunk < lastIndex else { return }
        for index in (lastChunk + 1)...min(lastIndex, lastChunk + Int64(window)) {
            if let task = cache.prefetch(key(index), load: loader(index)) {
                state.withLock { state in
                    state.prefetches = state.prefetches.filter { $0.key > lastChunk }
                    state.prefetches[index] = task
                }
            }
        }
    }

    private func chunk(_ index: Int64) async throws -> [UInt8] {
        try await cache.chunk(key(index), load: loader(index))
    }

    private func key(_ index: Int64) -> ChunkCache.Key {
        ChunkCache.Key(fileID: item.fileID, contentHash: item.contentHash ?? "", index: index)
    }

    private func diskKey(_ index: Int64) -> DiskChunkCache.Key {
        DiskChunkCache.Key(contentHash: item.contentHash ?? "", chunkSize: configuration.chunkSize, index: index)
    }

    private func chunkLength(_ index: Int64) -> Int {
        let chunkSize = Int64(configuration.chunkSize)
        return Int(min(chunkSize, item.size - index * chunkSize))
    }

    /// Fetches chunk `index`: from the disk cache if there, else downloaded (and then
    /// stored on disk).
    private func loader(_ index: Int64) -> @Sendable () async throws -> [UInt8] {
        let service = self.service
        let fileID = item.fileID
        let offset = index * Int64(configuration.chunkSize)
        let length = chunkLength(index)
        guard let disk else { return { try await service.read(fileID: fileID, offset: offset, length: length) } }
        let key = diskKey(index)
        return {
            if let stored = disk.read(key, length: length) { return stored }
            let bytes = try await service.read(fileID: fileID, offset: offset, length: length)
            // Stored under the listing's hash only if the URL served that content (a file
            // changed on the server since it was listed must not poison the cache).
            if bytes.count == length, (try? await service.servedContentHash(fileID: fileID))?.lowercased() == key.contentHash {
                disk.store(key, bytes: bytes)
            }
            return bytes
        }
    }

    /// Stops any prefetch still running (on release).
    func close() {
        state.withLock { state in
            for task in state.prefetches.values { task.cancel() }
            state.prefetches.removeAll()
        }
    }
}

extension Array where Element == UInt8 {
    func prefixArray(_ count: Int) -> [UInt8] { self.count <= count ? self : Array(self[0..<count]) }
}

/// Tells sequential readers from random ones, read by read, and sizes the read-ahead
/// window (in chunks) for sequential ones.
///
/// The kernel sends a sequential reader's reads from several threads at once (its own
/// read-ahead), so they arrive slightly out of order: a read continues the pattern when
/// it starts at most 2 MiB beyond the furthest end seen so far (it overtook one or two
/// reads) or within 128 KiB of where one of the last few reads ended (it was overtaken).
/// A read that continues nothing starts a new run; the fourth read of a run (or any
/// read at offset 0) makes the reader sequential, and the window then doubles per read
/// up to `maxWindow`. Anything else is random access and closes the window, so
/// scattered small reads practically never trigger read-ahead by chance.
struct AccessPattern: Sendable {
    let maxWindow: Int
    static let aheadSlack: Int64 = 2 << 20
    static let nearSlack: Int64 = 128 << 10
    /// How many recent read ends a read may continue (about what the kernel has in flight).
    static let memory = 8
    static let runLength = 4
    private(set) var frontier: Int64 = 0
    private(set) var recentEnds: [Int64] = []
    private(set) var run = 0
    private(set) var window = 0

    init(maxWindow: Int) { self.maxWindow = maxWindow }

    mutating func observe(offset: Int64, end: Int64) -> Bool {
        let continues = (offset >= frontier - Self.nearSlack && offset <= frontier + Self.aheadSlack)
            || recentEnds.contains { abs(offset - $0) <= Self.nearSlack }
        run = offset == 0 ? max(run + 1, Self.runLength) : continues ? run + 1 : 1
        if recentEnds.count == Self.memory { recentEnds.removeFirst() }
        recentEnds.append(end)
        if run >= Self.runLength {
            window = min(maxWindow, max(2, window * 2))
            frontier = max(frontier, end)
            return true
        }
        window = 0
        frontier = run == 1 ? end : max(frontier, end)
        return false
    }
}

