import Foundation
import Glibc
import Synchronization

/// The "link" section: figures over an emulated distant link (`ADRIVEFS_BENCH_LINK`,
/// default `home`), each beside the limit the link itself sets, measured in the same run.
enum LinkBench {
    typealias Row = (String, String, String)

    struct Link {
        var name: String
        /// Seconds per API round trip and before a download's first byte.
        var api: Double
        var data: Double
        var perConnection: Double
        var total: Double
        var upload: Double
    }

    static func run(api: APISession, binary: String, endpoint: String, profile: String) async throws -> [Row] {
        let answer = try await api.hook("faults", ["link_profile": profile])
        guard let described = answer["link"] as? [String: Any] else { throw BenchError("the emulator did not take the link profile \(profile)") }
        func number(_ key: String) -> Double { Double(described[key] as? Int ?? 0) }
        let link = Link(
            name: profile, api: number("api_latency_ms") / 1000, data: number("data_latency_ms") / 1000, perConnection: number("download_rate"),
            total: number("total_download_rate"), upload: number("upload_rate"))
        let rows = await Result { try await measure(api: api, binary: binary, endpoint: endpoint, link: link) }
        _ = try await api.hook("faults", ["link_profile": "loopback"])
        return try rows.get()
    }

    static func measure(api: APISession, binary: String, endpoint: String, link: Link) async throws -> [Row] {
        var rows: [Row] = []
        let rtt = max(link.api, 0.001)
        let login = try await api.hook("tokens", [:])
        guard let token = login["refresh_token"] as? String else { throw BenchError("no token for the link mount") }
        let mount = try MountProcess(binary: binary, endpoint: endpoint, refreshToken: token)
        defer { mount.stop() }
        let root = mount.mountpoint

        // Sequential 1 GiB, cold: the rate against the line, and bytes fetched per byte read.
        let file = try await api.post("/v2/file/get_by_path", ["drive_id": api.driveID, "file_path": "/bench/1GiB.bin"])
        let hash = (file["content_hash"] as? String ?? "").uppercased()
        _ = try await api.hook("stats/reset", [:])
        let sequential = try FileBench.sequentialRead(root + "/bench/1GiB.bin")
        let fetched = try await fetchedBytes(api, hash)
        let cap = link.total > 0 ? link.total : link.perConnection
        rows.append(("[\(link.name)] sequential read of 1 GiB", String(format: "%.0f MB/s", sequential.rate / 1e6),
                     String(format: "%.2f× the line's %.0f MB/s (goal ≥ 0.9); one connection alone: %.0f MB/s", sequential.rate / cap, cap / 1e6,
                            link.perConnection / 1e6)))
        rows.append(("[\(link.name)] bytes fetched / bytes read, sequential", String(format: "%.3f", Double(fetched) / Double(sequential.bytes)), "goal ≤ 1.01"))

        // Two sequential readers at once (a fresh mount: nothing cached), 256 MiB each of
        // two distant parts of the file: what each gets, and both together, against the line.
        do {
            let again = try await api.hook("tokens", [:])
            guard let token = again["refresh_token"] as? String else { throw BenchError("no token for the fairness mount") }
            let pair = try MountProcess(binary: binary, endpoint: endpoint, refreshToken: token)
            defer { pair.stop() }
            let path = pair.mountpoint + "/bench/1GiB.bin"
            let rates = Mutex([0.0, 0.0])
            DispatchQueue.concurrentPerform(iterations: 2) { reader in
                let rate = FileBench.rangeRead(path, offset: reader * (512 << 20), length: 256 << 20)
                rates.withLock { $0[reader] = rate }
            }
            let (a, b) = rates.withLock { ($0[0], $0[1]) }
            rows.append(("[\(link.name)] two sequential readers at once, 256 MiB each", String(format: "%.0f + %.0f MB/s", a / 1e6, b / 1e6),
                         String(format: "together %.2f× the line; slower / faster %.2f (fair: 1)", (a + b) / cap, max(a, b) > 0 ? min(a, b) / max(a, b) : 0)))
        }

        // Cold first byte of a file in a folder already listed: download link + GET.
        _ = try FileManager.default.contentsOfDirectory(atPath: root + "/Videos")
        let start = ContinuousClock.now
        try firstBytes(root + "/Videos/sample.mp4", at: 0, count: 4096)
        let first = seconds(ContinuousClock.now - start)
        rows.append(("[\(link.name)] cold first 4 KiB of a file", String(format: "%.0f ms", first * 1000),
                     String(format: "%.2f RTT (goal ≤ 2.5: download link + GET)", first / rtt)))

        // Random 4 KiB reads, and a video player's jumps (head, end, back, scrub).
        let video = try await api.post("/v2/file/get_by_path", ["drive_id": api.driveID, "file_path": "/Videos/sample.mp4"])
        let videoHash = (video["content_hash"] as? String ?? "").uppercased()
        _ = try await api.hook("stats/reset", [:])
        let random = try FileBench.randomReads(root + "/Videos/sample.mp4", size: 64 << 20, count: 40).sorted()
        let randomFetched = try await fetchedBytes(api, videoHash)
        rows.append(("[\(link.name)] random 4 KiB reads (40), median", String(format: "%.0f ms", random[random.count / 2] * 1000),
                     String(format: "%.2f RTT (goal ≤ 1.2); %.1f KiB fetched per read: bytes fetched / read %.3f (goal ≤ 1.01)", random[random.count / 2] / rtt,
                            Double(randomFetched) / 40 / 1024, Double(randomFetched) / Double(40 * 4096))))
        _ = try await api.hook("stats/reset", [:])
        let jumps = try videoPattern(root + "/Videos/sample.mp4", size: 64 << 20)
        // Downloads cut off by the next jump are counted when the emulator sees them go.
        usleep(500_000)
        let videoFetched = try await fetchedBytes(api, videoHash)
        let transfer = Double(1 << 20) / link.perConnection
        let jump = jumps.sorted()[jumps.count / 2]
        rows.append(("[\(link.name)] video: first 1 MiB after each of \(jumps.count) jumps, median", String(format: "%.0f ms", jump * 1000),
                     String(format: "%.2f× 2 RTT + one connection's transfer of 1 MiB (%.0f ms; goal ≤ 1); 1 RTT + transfer would be %.0f ms; each (ms): ",
                            jump / (2 * rtt + transfer), (2 * rtt + transfer) * 1000, (rtt + transfer) * 1000)
                        + jumps.map { String(format: "%.0f", $0 * 1000) }.joined(separator: " ")))
        rows.append(("[\(link.name)] bytes fetched / bytes read, video pattern", String(format: "%.2f", Double(videoFetched) / Double(videoRead)),
                     String(format: "%.1f MiB fetched for %.0f MiB read in %d places: what the read-ahead had in flight when the player jumped on",
                            Double(videoFetched) / 1048576, Double(videoRead) / 1048576, jumps.count + 1)))

        // A cold listing of 10,000 entries: 51 pages, one round trip each. `ls -f` is the
        // listing alone; `ls -l` adds a stat and two xattr probes per entry (ACL, SELinux),
        // which FUSE always hands to the daemon — measured warm too, where no call goes out.
        _ = try await api.hook("stats/reset", [:])
        let listing = try FileBench.timeCommand(["ls", "-l", root + "/bench/many"])
        let pages = try await api.listCalls()
        let warm = try FileBench.timeCommand(["ls", "-l", root + "/bench/many"])
        // SIGHUP: the daemon drops its cached listings (as `adrivefs refresh` does).
        kill(mount.process.processIdentifier, SIGHUP)
        usleep(300_000)
        let names = try FileBench.timeCommand(["ls", "-f", root + "/bench/many"])
        rows.append(("[\(link.name)] cold ls -f of 10,000 entries (the listing)", String(format: "%.2f s", names),
                     String(format: "%.2f× %d pages × 1 RTT (goal ≤ 1.2)", names / (Double(pages) * rtt), pages)))
        rows.append(("[\(link.name)] cold ls -l of 10,000 entries", String(format: "%.2f s", listing),
                     String(format: "%.2f× %d pages × 1 RTT (goal ≤ 1.2); warm, with no call out: %.2f s", listing / (Double(pages) * rtt), pages, warm)))

        // 64 MiB of new content, write + close: against one connection's upload rate.
        let local = mount.directory + "/link-upload.bin"
        try UploadBench.writeRandomFile(local, size: 64 << 20, seed: UInt64(Date().timeIntervalSince1970 * 1e6))
        let upload = try FileBench.timeCommand(["cp", local, root + "/bench/link-upload.bin"])
        let uploadRate = Double(64 << 20) / upload
        rows.append(("[\(link.name)] upload 64 MiB of new content (cp)", String(format: "%.1f MB/s", uploadRate / 1e6),
                     String(format: "%.2f× one connection's %.0f MB/s (goal ≥ 0.9)", uploadRate / link.upload, link.upload / 1e6)))

        // cp -r of 100 small files, with and without write-back (each file is a few round trips).
        let small = mount.directory + "/link-small"
        try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
        for index in 0..<100 { try Data(repeating: UInt8(index), count: 4096).write(to: URL(fileURLWithPath: small + "/file-\(index).bin")) }
        let plain = try FileBench.timeCommand(["cp", "-r", small, root + "/bench/link-small"])
        let again = try await api.hook("tokens", [:])
        guard let token = again["refresh_token"] as? String else { throw BenchError("no token for the write-back mount") }
        var withWriteBack = "write_back not supported by this build"
        if let deferred = try? MountProcess(binary: binary, endpoint: endpoint, refreshToken: token, options: "write_back=1") {
            let deferredStart = ContinuousClock.now
            _ = try FileBench.timeCommand(["cp", "-r", small, deferred.mountpoint + "/bench/link-small-deferred"])
            let deferredCopy = seconds(ContinuousClock.now - deferredStart)
            deferred.stop()
            withWriteBack = String(format: "with write_back=1: cp returns after %.2f s, all on the drive after %.2f s", deferredCopy,
                                   seconds(ContinuousClock.now - deferredStart))
        }
        rows.append(("[\(link.name)] cp -r of 100 files of 4 KiB", String(format: "%.2f s", plain),
                     String(format: "%.1f RTT per file; ", plain / 100 / rtt) + withWriteBack))
        for path in ["/bench/link-upload.bin", "/bench/link-small", "/bench/link-small-deferred"] {
            if let uploaded = try? await api.post("/v2/file/get_by_path", ["drive_id": api.driveID, "file_path": path]), let id = uploaded["file_id"] as? String {
                _ = try? await api.post("/v3/file/delete", ["drive_id": api.driveID, "file_id": id])
            }
        }
        return rows
    }

    static func fetchedBytes(_ api: APISession, _ hash: String) async throws -> Int {
        ((try await api.stats())["bytes_downloaded_by_content"] as? [String: Any])?[hash] as? Int ?? 0
    }

    static func firstBytes(_ path: String, at offset: Int, count: Int) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw BenchError("cannot open \(path)") }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: count)
        guard buffer.withUnsafeMutableBytes({ pread(fd, $0.baseAddress, count, off_t(offset)) }) > 0 else { throw BenchError("read failed") }
    }

    /// A player opening a video: 2 MiB of its head, then 1 MiB at the end (the index),
    /// back to the start, and three scrubs; the time to each jump's first 1 MiB.
    static func videoPattern(_ path: String, size: Int) throws -> [Double] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw BenchError("cannot open \(path)") }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 128 << 10)
        func read(at offset: Int, bytes: Int) -> Double {
            let start = ContinuousClock.now
            var done = 0
            while done < bytes {
                let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset + done)) }
                if n <= 0 { break }
                done += n
            }
            return seconds(ContinuousClock.now - start)
        }
        _ = read(at: 0, bytes: 2 << 20)
        let mib = 1 << 20
        return [size - mib, 2 * mib, size / 3, size * 2 / 3 + 12_345, size / 8 + 777].map { read(at: $0, bytes: mib) }
    }

    /// What `videoPattern` reads (its head and a mebibyte after each jump).
    static let videoRead = 7 << 20
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
