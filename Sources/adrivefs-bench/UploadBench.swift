import Foundation
import Glibc

/// Upload figures: new content through the mount vs `curl` PUTting the same parts, rapid
/// upload vs `sha1sum`, and many small files.
enum UploadBench {
    typealias Row = (String, String, String)

    static func run(api: APISession, mount: MountProcess, downloadURL: String, size: Int, runs: Int, binary: String, endpoint: String) async throws -> [Row] {
        var rows: [Row] = []
        let work = mount.directory + "/upload-work"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        try FileManager.default.createDirectory(atPath: mount.mountpoint + "/bench/uploads", withIntermediateDirectories: true)
        // curl's uploads go there too, so that deleting the folder at the end takes everything.
        let uploads = try await api.post("/v2/file/get_by_path", ["drive_id": api.driveID, "file_path": "/bench/uploads"])
        guard let uploadsID = uploads["file_id"] as? String else { throw BenchError("no /bench/uploads on the drive") }
        let stamp = String(UInt64(Date().timeIntervalSince1970 * 1000), radix: 16)

        // 1. 1 GiB of content the drive has never seen: through the mount and curl PUTting
        // the same bytes to fresh part URLs, `runs` times, which goes first alternating;
        // each timed step starts from the same state (see `settle`); the best of each is
        // reported, like the reads.
        let fresh = work + "/fresh.bin"
        try writeRandomFile(fresh, size: size, seed: UInt64(Date().timeIntervalSince1970 * 1e6))
        var best = (mount: Double.infinity, write: 0.0, close: 0.0, curl: Double.infinity)
        var sent = 0
        for run in 0..<runs {
            for mountFirst in run % 2 == 0 ? [true, false] : [false, true] {
                // New content every time, so the server can never take it by hash.
                try patchHeader(fresh)
                if mountFirst {
                    _ = try await api.hook("stats/reset", [:])
                    try settle(warming: [fresh])
                    let (writeTime, closeTime) = try copyTimed(fresh, mount.mountpoint + "/bench/uploads/fresh-\(stamp)-\(run).bin")
                    sent = (try await api.stats()["bytes_uploaded"] as? Int) ?? 0
                    if writeTime + closeTime < best.mount { best = (writeTime + closeTime, writeTime, closeTime, best.curl) }
                } else {
                    let seconds = try await curlUpload(api: api, path: fresh, size: size, parentID: uploadsID, name: "curl-\(stamp)-\(run).bin", work: work)
                    best.curl = min(best.curl, seconds)
                }
            }
        }
        rows.append(("mount → upload 1 GiB of new content (write + close, best of \(runs))", String(format: "%.2f s", best.mount),
                     String(format: "%.2f GB/s; write %.2f s, close (the upload) %.2f s; %d MiB sent", Double(size) / best.mount / 1e9,
                            best.write, best.close, sent >> 20)))
        rows.append(("curl → PUT the same 1 GiB to the part URLs (best of \(runs))", String(format: "%.2f s", best.curl),
                     String(format: "ratio curl/mount %.2f (target ≥ 0.80); curl/close %.2f", best.curl / best.mount, best.curl / best.close)))
        // The write half alone: what writing 1 GiB through FUSE costs before an upload can
        // start (the size goes into the create call, so nothing overlaps it), with the
        // writes dropped, and with them staged into a local file as adrivefs does.
        var ceiling = (dropped: Double.infinity, staged: Double.infinity)
        for _ in 0..<runs {
            sync()
            ceiling.dropped = min(ceiling.dropped, try CeilingFS.writeSeconds(source: fresh, stagingDirectory: nil))
            sync()
            ceiling.staged = min(ceiling.staged, try CeilingFS.writeSeconds(source: fresh, stagingDirectory: work))
        }
        rows.append(("FUSE write ceiling: 1 GiB in 1 MiB writes, dropped / staged to a file (best of \(runs))",
                     String(format: "%.2f s", ceiling.dropped),
                     String(format: "staged %.2f s → with close() at curl's pace the ratio can reach %.2f", ceiling.staged,
                            best.curl / (best.curl + ceiling.staged))))
        try? FileManager.default.removeItem(atPath: fresh)

        // 2. Rapid upload: a local copy of content the drive already has.
        let known = work + "/known.bin"
        try curlFetch(downloadURL, to: known)
        var hashTime = Double.infinity
        for _ in 0..<runs { hashTime = min(hashTime, try FileBench.timeCommand(["sha1sum", known])) }
        var (rapidWrite, rapidClose, rapidSent) = (Double.infinity, 0.0, 0)
        for run in 0..<runs {
            _ = try await api.hook("stats/reset", [:])
            let (write, close) = try copyTimed(known, mount.mountpoint + "/bench/uploads/known-\(stamp)-\(run).bin")
            rapidSent += (try await api.stats()["bytes_uploaded"] as? Int) ?? -1
            if write + close < rapidWrite + rapidClose { (rapidWrite, rapidClose) = (write, close) }
        }
        let rapidTime = rapidWrite + rapidClose
        rows.append(("sha1sum of a 1 GiB local file (best of \(runs))", String(format: "%.2f s", hashTime), ""))
        rows.append(("mount → rapid upload of 1 GiB the drive has (write + close, best of \(runs))", String(format: "%.2f s", rapidTime),
                     String(format: "%.2f× sha1sum (target ≤ 1.30); write %.2f s, close %.2f s; %d bytes sent in all runs (target 0)",
                            rapidTime / hashTime, rapidWrite, rapidClose, rapidSent)))
        try? FileManager.default.removeItem(atPath: known)

        // 3. 1,000 files of 4 KiB.
        let small = work + "/small-\(stamp)"
        try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
        var generator = SplitMix(seed: UInt64(Date().timeIntervalSince1970))
        for index in 0..<1000 {
            let bytes = (0..<4096).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            try Data(bytes).write(to: URL(fileURLWithPath: small + "/file-\(index).bin"))
        }
        _ = try await api.hook("stats/reset", [:])
        let smallTime = try FileBench.timeCommand(["cp", "-r", small, mount.mountpoint + "/bench/uploads/"])
        let requests = (try await api.stats()["requests"] as? [String: Any]) ?? [:]
        let apiCalls = requests.filter { !$0.key.hasPrefix("/oss/") && !$0.key.hasPrefix("/__emulator") }.values.compactMap { $0 as? Int }.reduce(0, +)
        rows.append(("mount → cp -r of 1,000 files of 4 KiB", String(format: "%.0f files/s", 1000 / smallTime),
                     String(format: "%.2f s; %.2f API calls per file (+ 1 part PUT each)", smallTime, Double(apiCalls) / 1000)))
        // The same with write-back: cp returns once the files are safe on the local disk;
        // then the uploads, several at once, until the daemon (unmounted) has sent them all.
        let login = try await api.hook("tokens", [:])
        guard let token = login["refresh_token"] as? String else { throw BenchError("no token for the write-back mount") }
        // (A build without write-back — an older one, compared with this — fails to mount: no row.)
        if let deferred = try? MountProcess(binary: binary, endpoint: endpoint, refreshToken: token, options: "write_back=1") {
            let deferredStart = ContinuousClock.now
            _ = try FileBench.timeCommand(["cp", "-r", small, deferred.mountpoint + "/bench/uploads/deferred"])
            let deferredCopy = seconds(ContinuousClock.now - deferredStart)
            deferred.stop()
            let deferredAll = seconds(ContinuousClock.now - deferredStart)
            rows.append(("mount -o write_back=1 → cp -r of the same 1,000 files", String(format: "%.2f s", deferredCopy),
                         String(format: "cp returns %.0f× sooner than without write-back; all 1,000 on the drive after %.2f s (%.0f files/s; without: %.2f s)",
                                smallTime / deferredCopy, deferredAll, 1000 / deferredAll, smallTime)))
        }
        // Reading them back (as grep -r would), with the kernel's page cache dropped (root).
        sync()
        if getuid() == 0 { try? "3\n".write(toFile: "/proc/sys/vm/drop_caches", atomically: false, encoding: .utf8) }
        _ = try await api.hook("stats/reset", [:])
        let folder = mount.mountpoint + "/bench/uploads/" + URL(fileURLWithPath: small).lastPathComponent
        let readTime = try FileBench.timeCommand(["sh", "-c", "cat \"$0\"/* > /dev/null", folder])
        let readRequests = (try await api.stats()["requests"] as? [String: Any]) ?? [:]
        let readCalls = readRequests.filter { !$0.key.hasPrefix("/oss/") && !$0.key.hasPrefix("/__emulator") }.values.compactMap { $0 as? Int }.reduce(0, +)
        rows.append(("mount → reading the 1,000 files back (cat)", String(format: "%.0f files/s", 1000 / readTime),
                     String(format: "%.2f s; %.3f API calls per file (download links in batches of 32)", readTime, Double(readCalls) / 1000)))
        // The bench drive is kept between runs: delete what this run uploaded (and the trash
        // it made) for good, so the next run starts from the same state.
        _ = try? await api.post("/v3/file/delete", ["drive_id": api.driveID, "file_id": uploadsID])
        return rows
    }

    /// Creates an upload session for `size` bytes and PUTs the file's parts with one curl
    /// process (connection reused); returns the seconds curl took. Completes the upload.
    static func curlUpload(api: APISession, path: String, size: Int, parentID: String, name: String, work: String) async throws -> Double {
        let partSize = 10 << 20
        let count = (size + partSize - 1) / partSize
        let session = try await api.post("/adrive/v2/file/createWithFolders", [
            "drive_id": api.driveID, "parent_file_id": parentID, "name": name, "type": "file", "check_name_mode": "ignore", "size": size,
            "content_hash_name": "none", "proof_version": "v1", "part_info_list": (1...count).map { ["part_number": $0] },
        ])
        guard let fileID = session["file_id"] as? String, let uploadID = session["upload_id"] as? String,
            let parts = session["part_info_list"] as? [[String: Any]], parts.count == count
        else { throw BenchError("create returned no upload session") }
        // Split outside the timing; curl then sends each part from the page cache.
        let source = open(path, O_RDONLY)
        guard source >= 0 else { throw BenchError("cannot open \(path)") }
        defer { close(source) }
        // "Expect:" off: curl would wait a second per part for a 100 Continue.
        var arguments = ["curl", "-sS", "--fail", "-H", "Content-Type:", "-H", "Expect:"]
        var buffer = [UInt8](repeating: 0, count: partSize)
        for (index, part) in parts.enumerated() {
            let length = min(partSize, size - index * partSize)
            let read = buffer.withUnsafeMutableBytes { pread(source, $0.baseAddress, length, off_t(index * partSize)) }
            guard read == length, let url = part["upload_url"] as? String else { throw BenchError("cannot prepare part \(index + 1)") }
            let partPath = work + "/part-\(index + 1)"
            try Data(buffer[0..<length]).write(to: URL(fileURLWithPath: partPath))
            arguments += ["-T", partPath, url]
        }
        try settle(warming: (0..<count).map { work + "/part-\($0 + 1)" })
        let elapsed = try FileBench.timeCommand(arguments)
        _ = try await api.post("/v2/file/complete", ["drive_id": api.driveID, "file_id": fileID, "upload_id": uploadID])
        for index in 0..<count { unlink(work + "/part-\(index + 1)") }
        return elapsed
    }

    /// The same starting point for every timed upload: nothing dirty (writeback of earlier
    /// steps would throttle it), and — when run as root — a page cache holding only the
    /// source bytes. On VMs whose host backs guest memory lazily, a step that grows the
    /// page cache into memory never touched before is several times slower; without this
    /// the step after one that freed memory (the mount deletes its staging file) was
    /// favoured.
    static func settle(warming paths: [String]) throws {
        sync()
        if let drop = FileHandle(forWritingAtPath: "/proc/sys/vm/drop_caches") {
            try? drop.write(contentsOf: Data("1\n".utf8))
            try? drop.close()
        }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        for path in paths {
            let fd = open(path, O_RDONLY)
            guard fd >= 0 else { throw BenchError("cannot open \(path)") }
            defer { close(fd) }
            while buffer.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }) > 0 {}
        }
    }

    /// Copies with 1 MiB writes; returns the seconds spent writing and in `close()`.
    static func copyTimed(_ source: String, _ destination: String, create: Bool = true) throws -> (write: Double, close: Double) {
        let input = open(source, O_RDONLY)
        guard input >= 0 else { throw BenchError("cannot open \(source)") }
        defer { close(input) }
        let start = ContinuousClock.now
        let output = create ? open(destination, O_WRONLY | O_CREAT | O_TRUNC, 0o644) : open(destination, O_WRONLY)
        guard output >= 0 else { throw BenchError("cannot create \(destination): errno \(errno)") }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            guard count >= 0 else { throw BenchError("read failed: errno \(errno)") }
            if count == 0 { break }
            let written = buffer.withUnsafeBytes { write(output, $0.baseAddress, count) }
            guard written == count else { throw BenchError("write to the mount failed: errno \(errno)") }
        }
        let written = ContinuousClock.now
        guard close(output) == 0 else { throw BenchError("close (upload) failed: errno \(errno)") }
        return (seconds(written - start), seconds(ContinuousClock.now - written))
    }

    static func curlFetch(_ url: String, to path: String) throws {
        _ = try FileBench.timeCommand(["curl", "-sS", "--fail", "-o", path, url])
    }

    static func writeRandomFile(_ path: String, size: Int, seed: UInt64) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw BenchError("cannot create \(path)")
        }
        defer { try? handle.close() }
        var generator = SplitMix(seed: seed)
        var block = [UInt64](repeating: 0, count: (8 << 20) / 8)
        var written = 0
        while written < size {
            for index in block.indices { block[index] = generator.next() }
            let bytes = block.withUnsafeBytes { Data($0.prefix(min($0.count, size - written))) }
            handle.write(bytes)
            written += bytes.count
        }
    }

    /// Changes the first bytes so the content (and its pre-hash) is new again.
    static func patchHeader(_ path: String) throws {
        guard let handle = FileHandle(forUpdatingAtPath: path) else { throw BenchError("cannot open \(path)") }
        defer { try? handle.close() }
        handle.write(Data((0..<64).map { _ in UInt8.random(in: 0...255) }))
    }
}
