import AliyunDrive
import FUSE
import Synchronization

/// Reads of one open file. Sequential readers get an asynchronous read-ahead window of
/// parallel chunk downloads that grows while the pattern holds, up to a size that follows
/// the link (`ReadAheadWindow`); a seek cancels stale prefetch; random readers fetch just the range they asked for, never megabytes per
/// small read. With a disk cache, chunks come from disk when present there and every
/// downloaded chunk is stored there.
final class FileReader: Sendable {
    private struct State {
        var pattern: AccessPattern
        /// How many chunks the link wants in flight (the pattern's ceiling).
        var readAhead: ReadAheadWindow
        /// Chunks whose download this reader started ahead of it (cancelled when the
        /// pattern breaks or the file is closed).
        var prefetches: [Int64: ChunkBuffer] = [:]
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
        // The cache holds what is in flight plus the chunk being read and the one before
        // it: a larger window would evict its own chunks before they are read.
        let chunk = configuration.chunkSize
        let window = ReadAheadWindow(
            initial: configuration.readAhead / chunk, maximum: min(configuration.maxStreams, configuration.cacheSize / chunk - 2), chunkSize: chunk)
        state = Mutex(State(pattern: AccessPattern(maxWindow: window.size), readAhead: window))
    }

    /// Monotonic seconds, for the read-ahead's rate measures.
    private static let epoch = ContinuousClock.now
    private static func elapsed() -> Double {
        let duration = ContinuousClock.now - epoch
        return Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// A chunk of this reader's arrived whole: the read-ahead window follows the rate.
    private func arrived(bytes: Int) {
        let now = Self.elapsed()
        state.withLock { state in
            state.pattern.maxWindow = state.readAhead.completed(bytes: Int64(bytes), at: now)
        }
    }

    private var chunkSize: Int64 { Int64(configuration.chunkSize) }

    /// The read's bytes if one chunk in memory already holds them all (the common case of
    /// a sequential reader served by read-ahead); otherwise nil, and `read` follows.
    func readFromMemory(offset: Int64, size: Int) -> (any ReadBytes)? {
        guard offset < item.size, size > 0 else { return [UInt8]()[...] }
        let end = min(offset + Int64(size), item.size)
        let sequential = classify(offset: offset, end: end)
        let first = offset / chunkSize
        if sequential { schedulePrefetch(after: (end - 1) / chunkSize) }
        if first == (end - 1) / chunkSize, let buffer = cache.cached(key(first)) {
            let range = localRange(first, offset, end)
            if buffer.covers(range), buffer.filled >= range.upperBound { return buffer.view(range) }
        }
        state.withLock { $0.classified[offset] = sequential }
        return nil
    }

    func read(offset: Int64, size: Int) async throws -> any ReadBytes {
        let fileSize = item.size
        guard offset < fileSize, size > 0 else { return [UInt8]()[...] }
        let end = min(offset + Int64(size), fileSize)
        let first = offset / chunkSize
        let last = (end - 1) / chunkSize
        let noted = state.withLock { $0.classified.removeValue(forKey: offset) }
        let sequential = noted ?? classify(offset: offset, end: end)
        if !sequential {
            // Random access: serve from chunks already in memory or on disk, else fetch just this range.
            if let cached = cachedRange(offset: offset, end: end, first: first, last: last) { return cached[...] }
            if let stored = diskRange(offset: offset, end: end, first: first, last: last) { return stored[...] }
            return try await service.read(fileID: item.fileID, offset: offset, length: Int(end - offset))
                .prefixArray(Int(end - offset))[...]
        }
        if noted == nil { schedulePrefetch(after: last) }
        // A run that began inside the first chunk (a jump) fetches that chunk from this
        // read on (the run's earlier reads were fetched as random ones).
        let tail = tailStart(of: first, at: offset)
        if first == last {
            // The common case: answer from the chunk itself, as soon as its bytes are there.
            let range = localRange(first, offset, end)
            guard let (buffer, available) = try await bytes(of: first, range: range, tail: tail) else {
                return try await direct(offset: offset, end: end)[...]
            }
            return buffer.view(range.lowerBound..<max(range.lowerBound, available))
        }
        var result: [UInt8] = []
        result.reserveCapacity(Int(end - offset))
        for index in first...last {
            let range = localRange(index, offset, end)
            guard let (buffer, available) = try await bytes(of: index, range: range, tail: index == first ? tail : 0) else {
                let chunkStart = index * chunkSize
                result += try await direct(offset: chunkStart + Int64(range.lowerBound), end: chunkStart + Int64(range.upperBound))
                continue
            }
            guard available > range.lowerBound else { break }
            buffer.withBytes(range.lowerBound..<available) { result.append(contentsOf: $0) }
            if available < range.upperBound { break }
        }
        return result[...]
    }

    /// The range read straight from the drive (a chunk in memory holds only a later part).
    private func direct(offset: Int64, end: Int64) async throws -> [UInt8] {
        try await service.read(fileID: item.fileID, offset: offset, length: Int(end - offset)).prefixArray(Int(end - offset))
    }

    /// Where chunk `index` should start if fetched now for a read at `offset`: there
    /// (rounded down to 128 KiB, for reads the kernel reorders) when the current run began
    /// inside the chunk — a jump into it —, else at its beginning.
    private func tailStart(of index: Int64, at offset: Int64) -> Int {
        let runStart = state.withLock { $0.pattern.runStart }
        let chunkStart = index * chunkSize
        guard runStart > chunkStart, runStart < chunkStart + chunkSize, offset >= chunkStart else { return 0 }
        let within = Int(offset - chunkStart)
        return within - within % (128 << 10)
    }

    /// Starts downloading chunk `index` unless it is cached or on its way.
    func startChunk(_ index: Int64) {
        guard cache.cached(key(index)) == nil else { return }
        _ = cache.buffer(key(index), length: chunkLength(index), load: loader(index))
    }

    /// Chunk `index` once all its bytes are there, and how many there are. (A chunk in
    /// memory that holds only its tail is not it: the whole chunk is fetched on its own.)
    func wholeChunk(_ index: Int64) async throws -> (ChunkBuffer, Int) {
        let length = chunkLength(index)
        if let whole = try await bytes(of: index, range: 0..<length, tail: 0) { return whole }
        let buffer = ChunkBuffer(capacity: length, pool: cache.pool)
        try await service.read(fileID: item.fileID, offset: index * chunkSize, length: length) { buffer.append($0) }
        buffer.finish()
        return (buffer, buffer.filled)
    }

    /// Waits until chunk `index` holds its bytes up to `range`'s end (or all it will),
    /// starting its download — from `tail` on — if nobody has; nil when the chunk in memory
    /// begins after `range` does. A download cancelled under us (another reader's stale
    /// prefetch) is started again while this caller still wants it.
    private func bytes(of index: Int64, range: Range<Int>, tail: Int) async throws -> (ChunkBuffer, Int)? {
        let start = tail <= range.lowerBound ? tail : 0
        while true {
            let (buffer, _) = cache.buffer(key(index), length: chunkLength(index), start: start, load: loader(index, from: start))
            guard buffer.covers(range) else { return nil }
            do {
                return (buffer, try await buffer.wait(until: range.upperBound))
            } catch where !Task.isCancelled && Self.isCancellation(error) {
                continue
            }
        }
    }

    static func isCancellation(_ error: any Error) -> Bool {
        if error is CancellationError { return true }
        if let error = error as? DriveError { return error.kind == .cancelled }
        return false
    }

    /// Feeds the read to the access pattern; a read that breaks the pattern cancels the
    /// prefetch it made stale — the downloads far from it. Those near it stay: the kernel
    /// sends a sequential reader's reads from several threads, and on a slow link enough
    /// of them are in flight that one may land past the pattern's slack; cancelling the
    /// chunks around it would only fetch them again a moment later.
    private func classify(offset: Int64, end: Int64) -> Bool {
        defer { cache.streaming(ObjectIdentifier(self), state.withLock { $0.pattern.window > 0 }) }
        let (sequential, stale) = state.withLock { state in
            let window = Int64(max(state.pattern.window, 2))
            let sequential = state.pattern.observe(offset: offset, end: end)
            guard !sequential else { return (true, [Int64: ChunkBuffer]()) }
            let here = offset / chunkSize
            let stale = state.prefetches.filter { $0.key < here - 1 || $0.key > here + window }
            state.prefetches = state.prefetches.filter { stale[$0.key] == nil }
            return (false, stale)
        }
        cancel(stale)
        return sequential
    }

    private func cancel(_ prefetches: [Int64: ChunkBuffer]) {
        // A chunk whose bytes are all there is kept (its disk-cache store may still be running).
        for (index, buffer) in prefetches where buffer.filled < buffer.capacity { cache.cancelDownload(key(index), of: buffer) }
    }

    /// The part of chunk `index` that falls inside the file range `offset..<end`, in
    /// chunk-relative bytes.
    private func localRange(_ index: Int64, _ offset: Int64, _ end: Int64) -> Range<Int> {
        let chunkStart = index * chunkSize
        let from = Int(max(offset, chunkStart) - chunkStart)
        let to = Int(min(end, chunkStart + chunkSize) - chunkStart)
        return from..<max(from, to)
    }

    /// The range from chunks in memory, if they already hold all of it.
    private func cachedRange(offset: Int64, end: Int64, first: Int64, last: Int64) -> [UInt8]? {
        assemble(offset: offset, end: end, first: first, last: last) { index, range in
            guard let buffer = cache.cached(key(index)), buffer.covers(range), buffer.filled >= range.upperBound else { return nil }
            return buffer.withBytes(range) { Array($0) }
        }
    }

    /// The range read from the disk cache, if every chunk it touches is there.
    private func diskRange(offset: Int64, end: Int64, first: Int64, last: Int64) -> [UInt8]? {
        guard let disk else { return nil }
        return assemble(offset: offset, end: end, first: first, last: last) { index, range in
            disk.read(diskKey(index), chunkLength: chunkLength(index), from: range.lowerBound, count: range.count)
        }
    }

    /// The file range `offset..<end` put together from the parts of chunks `first...last`
    /// that `part` gives (chunk index, chunk-relative range); nil if any part is missing.
    private func assemble(
        offset: Int64, end: Int64, first: Int64, last: Int64, _ part: (Int64, Range<Int>) -> [UInt8]?
    ) -> [UInt8]? {
        var result: [UInt8] = []
        result.reserveCapacity(Int(end - offset))
        for index in first...last {
            guard let bytes = part(index, localRange(index, offset, end)) else { return nil }
            result.append(contentsOf: bytes)
        }
        return result
    }

    private func schedulePrefetch(after lastChunk: Int64) {
        let lastIndex = (item.size - 1) / chunkSize
        let share = cache.readAheadShare(chunkSize: configuration.chunkSize)
        let window = min(state.withLock { $0.pattern.window }, share)
        // Downloads beyond the share (it shrank: another reader began reading ahead) give
        // their room back rather than push out chunks about to be read. (Not beyond the
        // pattern's window: that one regrows after a reordered read, and its downloads are
        // still wanted.)
        let beyond = state.withLock { state in
            let beyond = state.prefetches.filter { $0.key > lastChunk + Int64(share) }
            state.prefetches = state.prefetches.filter { beyond[$0.key] == nil }
            return beyond
        }
        cancel(beyond)
        guard window > 0, lastChunk < lastIndex else { return }
        for index in (lastChunk + 1)...min(lastIndex, lastChunk + Int64(window)) where cache.cached(key(index)) == nil {
            let (buffer, started) = cache.buffer(key(index), length: chunkLength(index), load: loader(index))
            guard started else { continue }
            state.withLock { state in
                state.prefetches = state.prefetches.filter { $0.key > lastChunk }
                state.prefetches[index] = buffer
            }
        }
    }

    private func key(_ index: Int64) -> ChunkCache.Key {
        ChunkCache.Key(fileID: item.fileID, contentHash: item.contentHash ?? "", index: index)
    }

    private func diskKey(_ index: Int64) -> DiskChunkCache.Key {
        DiskChunkCache.Key(contentHash: item.contentHash ?? "", chunkSize: configuration.chunkSize, index: index)
    }

    private func chunkLength(_ index: Int64) -> Int {
        Int(max(0, min(chunkSize, item.size - index * chunkSize)))
    }

    /// Fills chunk `index` from its byte `start` on: from the disk cache if there, else
    /// streamed from the server as it arrives (and then, when whole, stored on disk).
    private func loader(_ index: Int64, from start: Int = 0) -> @Sendable (ChunkBuffer) async throws -> Void {
        let service = self.service
        let fileID = item.fileID
        let offset = index * chunkSize + Int64(start)
        let length = chunkLength(index)
        let disk = self.disk
        let key = diskKey(index)
        return { buffer in
            if let disk, let stored = disk.read(key, length: length) {
                stored[start...].withUnsafeBytes { buffer.append($0) }
                return
            }
            try await service.read(fileID: fileID, offset: offset, length: length - start) { buffer.append($0) }
            self.arrived(bytes: length - start)
            // Stored under the listing's hash only if the URL served that content (a file
            // changed on the server since it was listed must not poison the cache).
            if let disk, start == 0, buffer.filled == length,
                (try? await service.servedContentHash(fileID: fileID))?.lowercased() == key.contentHash
            {
                buffer.withBytes(0..<length) { disk.store(key, bytes: $0) }
            }
        }
    }

    /// Stops the downloads this reader started ahead of it (on release).
    func close() {
        cache.streaming(ObjectIdentifier(self), false)
        let stale = state.withLock { state in
            defer { state.prefetches.removeAll() }
            return state.prefetches
        }
        cancel(stale)
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
/// up to `maxWindow` (set by `ReadAheadWindow`). Anything else is random access and closes the window, so
/// scattered small reads practically never trigger read-ahead by chance.
struct AccessPattern: Sendable {
    /// The window's ceiling (the read-ahead's current size).
    var maxWindow: Int
    static let aheadSlack: Int64 = 2 << 20
    static let nearSlack: Int64 = 128 << 10
    /// How many recent read ends a read may continue (about what the kernel has in flight).
    static let memory = 8
    static let runLength = 4
    private(set) var frontier: Int64 = 0
    private(set) var recentEnds: [Int64] = []
    private(set) var run = 0
    private(set) var window = 0
    /// Where the current run began (its lowest offset).
    private(set) var runStart: Int64 = 0

    init(maxWindow: Int) { self.maxWindow = maxWindow }

    mutating func observe(offset: Int64, end: Int64) -> Bool {
        let continues = (offset >= frontier - Self.nearSlack && offset <= frontier + Self.aheadSlack)
            || recentEnds.contains { abs(offset - $0) <= Self.nearSlack }
        run = offset == 0 ? max(run + 1, Self.runLength) : continues ? run + 1 : 1
        runStart = run == 1 ? offset : min(runStart, offset)
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

