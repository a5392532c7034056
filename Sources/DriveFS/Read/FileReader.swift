import AliyunDrive
import FUSE
import Synchronization

/// Reads of one open file. Sequential readers get an asynchronous read-ahead window of
/// parallel chunk downloads that grows while the pattern holds, up to a size that follows
/// the link (`ReadAheadWindow`); a seek cancels stale downloads; small random reads fetch
/// just the range they asked for, never megabytes per read. A large read after a jump
/// (a player seeking) streams its chunk's tail in pieces on several connections
/// (`TailDownload`), so the reads that follow it cost no round trip each. With a disk
/// cache, chunks come from disk when present there and every downloaded chunk is stored there.
///
/// LOCK ORDERING: the reader's state → a chunk buffer (whose progress is read under it);
/// the chunk cache's lock is never taken under the state's, and nothing is awaited there.
final class FileReader: Sendable {
    private struct State {
        var pattern: AccessPattern
        /// How many chunks the link wants in flight (the pattern's ceiling).
        var readAhead: ReadAheadWindow
        /// Chunks whose download this reader started and that are still arriving — read
        /// ahead, or the chunk it reads —, cancelled when the reader goes elsewhere or the
        /// file is closed.
        var downloads: [Int64: ChunkBuffer] = [:]
        /// Tails of chunks this reader jumped into, fetched in pieces, by chunk (widened
        /// when the reader reads on there).
        var tails: [Int64: TailDownload] = [:]
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
        // The cache holds what is in flight plus the chunks being read and the one before
        // them: a larger window would evict its own chunks before they are read.
        let chunk = configuration.chunkSize
        let window = ReadAheadWindow(
            initial: configuration.readAhead / chunk, maximum: min(configuration.maxStreams, configuration.cacheSize / chunk - 3), chunkSize: chunk)
        state = Mutex(State(pattern: AccessPattern(maxWindow: window.size, chunkSize: Int64(chunk)), readAhead: window))
    }

    /// Monotonic seconds, for the read-ahead's rate measures.
    private static let epoch = ContinuousClock.now
    private static func elapsed() -> Double {
        let duration = ContinuousClock.now - epoch
        return Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// Bytes of this reader's downloads arrived: the read-ahead window follows the rate.
    /// (Counted as they arrive, not per chunk: chunks started together end together, and
    /// rates measured between such bursts swung by a third from one sample to the next.)
    private func arrived(bytes: Int) {
        let now = Self.elapsed()
        state.withLock { $0.pattern.maxWindow = $0.readAhead.arrived(bytes: Int64(bytes), at: now) }
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
            if first == last, let streamed = try await streamed(first, localRange(first, offset, end), size: size) { return streamed }
            return try await direct(offset: offset, end: end)[...]
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
        // The chunks after the first are on their way while the first one comes in — in
        // pieces too right after a jump, when the reader waits for their first bytes.
        if !hasLeft(offset) { for index in (first + 1)...last { startChunk(index, pieces: tail > 0) } }
        var result: [UInt8] = []
        result.reserveCapacity(Int(end - offset))
        for index in first...last {
            let range = localRange(index, offset, end)
            // A read of a run the reader has left since (the kernel's read-ahead before a
            // seek, still being answered) takes just its bytes of a chunk not in memory.
            let stale = index > first && !cache.holds(key(index)) && hasLeft(offset)
            guard !stale, let (buffer, available) = try await bytes(of: index, range: range, tail: index == first ? tail : 0) else {
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

    /// A read outside a sequential run answered by a download of its chunk: one under way
    /// that is about to reach it (fetching the range again would fetch its bytes twice), or
    /// — for a large read, which is the kernel's own read-ahead or a program reading big
    /// blocks, as a player does after a seek — one it starts from here to the chunk's end,
    /// so that the reads after it are answered from that stream rather than each costing
    /// a round trip until the run is long enough to be called sequential. A reader that
    /// goes elsewhere instead cancels that stream as stale.
    private func streamed(_ index: Int64, _ range: Range<Int>, size: Int) async throws -> (any ReadBytes)? {
        if let buffer = cache.cached(key(index)), buffer.covers(range) {
            // Far ahead of it, after reads the kernel reordered: just this range.
            guard range.lowerBound - buffer.filled <= Self.nearBytes else {
                if !state.withLock({ $0.pattern.jumped }) { return nil }
                return try await speculate(index, range, size: size)
            }
            widenTail(index)
            do {
                let available = try await buffer.wait(until: range.upperBound)
                return buffer.view(range.lowerBound..<max(range.lowerBound, available))
            } catch where !Task.isCancelled && Self.isCancellation(error) {
                return nil  // its reader gave it up: this read goes its own way
            }
        }
        return try await speculate(index, range, size: size)
    }

    /// A large read starts its chunk's tail (see `streamed`).
    private func speculate(_ index: Int64, _ range: Range<Int>, size: Int) async throws -> (any ReadBytes)? {
        guard size >= Self.streamingReadSize else { return nil }
        let tail = range.lowerBound - range.lowerBound % 4096
        guard let (buffer, available) = try await bytes(of: index, range: range, tail: tail, speculative: true) else { return nil }
        return buffer.view(range.lowerBound..<max(range.lowerBound, available))
    }

    /// How far ahead of a download's bytes a read may start and still wait for them:
    /// about what arrives on one connection in the time a new request takes.
    static let nearBytes = 1 << 20
    /// The smallest read that starts a stream of its chunk though it is not sequential.
    static let streamingReadSize = 128 << 10

    /// Whether the reader's current run is elsewhere than `offset`.
    private func hasLeft(_ offset: Int64) -> Bool {
        state.withLock { $0.pattern.hasLeft(offset) }
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
    func startChunk(_ index: Int64, pieces: Bool = false) {
        guard let buffer = cache.prefetch(key(index), length: chunkLength(index), load: loader(index, pieces: pieces, widened: true)) else { return }
        state.withLock { $0.downloads[index] = buffer }
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
    private func bytes(of index: Int64, range: Range<Int>, tail: Int, speculative: Bool = false) async throws -> (ChunkBuffer, Int)? {
        let start = tail <= range.lowerBound ? tail : 0
        // A download of the chunk from further back, far from the bytes wanted and waited
        // for by nobody (read-ahead of a run this reader has left by a seek), gives way to
        // the tail. (Not after reads the kernel reordered: that run still wants it.)
        if start > 0, state.withLock({ $0.pattern.jumped }), let behind = cache.cached(key(index)), behind.covers(range), !behind.awaited,
            range.lowerBound - behind.filled > Self.nearBytes
        {
            cache.discard(key(index), of: behind)
        }
        while true {
            let load = loader(index, from: start, pieces: start > 0 || speculative, widened: !speculative)
            let (buffer, started) = cache.buffer(key(index), length: chunkLength(index), start: start, load: load)
            if !started, !speculative { widenTail(index) }
            if started { state.withLock { $0.downloads[index] = buffer } }
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
            // Only a read that starts a new run makes downloads stale (judged with the
            // window of the run it leaves): the next reads of that run are not yet
            // sequential either, but continue it — they cancelled the window of a
            // stream whose reads the kernel had reordered, to fetch it again.
            guard !sequential, state.pattern.run == 1 else { return (sequential, [Int64: ChunkBuffer]()) }
            let here = offset / chunkSize
            let stale = state.downloads.filter { $0.key < here - 1 || $0.key > here + window }
            state.downloads = state.downloads.filter { stale[$0.key] == nil }
            return (false, stale)
        }
        cancel(stale)
        return sequential
    }

    private func cancel(_ downloads: [Int64: ChunkBuffer]) {
        // A chunk whose bytes are all there is kept (its disk-cache store may still be
        // running), and so is one a read waits for: it is not stale (the kernel's own
        // read-ahead of the run before a seek), and cancelling it would only start it again.
        for (index, buffer) in downloads where buffer.filled < buffer.capacity && !buffer.awaited {
            cache.cancelDownload(key(index), of: buffer)
        }
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
        // their room back rather than push out the other readers' chunks. "Beyond" counts
        // from the furthest this reader has read: a read the kernel sent late, judging
        // from further back, cancelled chunks the next read started again.
        let beyond = state.withLock { state in
            let reach = max(lastChunk, (state.pattern.frontier - 1) / chunkSize) + Int64(share)
            let beyond = state.downloads.filter { $0.key > reach }
            // Those over (or failed) are no longer this reader's to cancel.
            state.downloads = state.downloads.filter { beyond[$0.key] == nil && $0.value.filled < $0.value.capacity && !$0.value.failed }
            return beyond
        }
        cancel(beyond)
        guard window > 0, lastChunk < lastIndex else { return }
        for index in (lastChunk + 1)...min(lastIndex, lastChunk + Int64(window)) where !cache.holds(key(index)) {
            // No room without pushing out what is still to be read: the rest waits.
            guard let buffer = cache.prefetch(key(index), length: chunkLength(index), load: loader(index)) else { break }
            state.withLock { $0.downloads[index] = buffer }
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
    /// In `pieces` (`TailDownload`, all at once when `widened`), or in one stream.
    private func loader(_ index: Int64, from start: Int = 0, pieces: Bool = false, widened: Bool = false) -> @Sendable (ChunkBuffer) async throws -> Void {
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
            if pieces {
                try await self.fetchTail(index, from: start, into: buffer, widened: widened)
            } else {
                try await service.read(fileID: fileID, offset: offset, length: length - start) {
                    buffer.append($0)
                    self.arrived(bytes: $0.count)
                }
            }
            // Stored under the listing's hash only if the URL served that content (a file
            // changed on the server since it was listed must not poison the cache).
            if let disk, start == 0, buffer.filled == length,
                (try? await service.servedContentHash(fileID: fileID))?.lowercased() == key.contentHash
            {
                buffer.withBytes(0..<length) { disk.store(key, bytes: $0) }
            }
        }
    }

    private func fetchTail(_ index: Int64, from start: Int, into buffer: ChunkBuffer, widened: Bool) async throws {
        let tail = TailDownload(from: start, to: chunkLength(index))
        if widened { tail.widen() }
        state.withLock { $0.tails[index] = tail }
        defer { state.withLock { if $0.tails[index] === tail { $0.tails[index] = nil } } }
        let service = self.service
        let fileID = item.fileID
        let chunkStart = index * chunkSize
        try await tail.run(into: buffer, fetch: { range, sink in
            try await service.read(fileID: fileID, offset: chunkStart + Int64(range.lowerBound), length: range.count, into: sink)
        }, arrived: { self.arrived(bytes: $0) })
    }

    /// The reader reads on in chunk `index`: the rest of a tail it started there comes now.
    private func widenTail(_ index: Int64) {
        state.withLock { $0.tails[index] }?.widen()
    }

    /// Stops the downloads this reader started ahead of it (on release).
    func close() {
        cache.streaming(ObjectIdentifier(self), false)
        let stale = state.withLock { state in
            defer { state.downloads.removeAll() }
            return state.downloads
        }
        cancel(stale)
    }
}

extension Array where Element == UInt8 {
    func prefixArray(_ count: Int) -> [UInt8] { self.count <= count ? self : Array(self[0..<count]) }
}
