import Foundation
import Glibc

/// A share of the bench folder, read through a share mount (copy mode, as the service
/// allows today) beside the same bytes read through the own drive's mount.
enum ShareBench {
    static func run(api: APISession, binary: String, endpoint: String, size: Int, runs: Int) async throws -> [(String, String, String)] {
        let folder = try await api.post("/v2/file/get_by_path", ["drive_id": api.driveID, "file_path": "/bench"])
        guard let folderID = folder["file_id"] as? String else { throw BenchError("no /bench folder") }
        let share = try await api.post("/adrive/v2/share_link/create", ["drive_id": api.driveID, "file_id_list": [folderID], "share_pwd": ""])
        guard let shareID = share["share_id"] as? String else { throw BenchError("could not create a share of /bench") }
        let rows: [(String, String, String)]
        do {
            rows = try await measure(api: api, shareID: shareID, binary: binary, endpoint: endpoint, size: size, runs: runs)
        } catch {
            _ = try? await api.post("/v2/share_link/cancel", ["share_id": shareID])
            throw error
        }
        _ = try? await api.post("/v2/share_link/cancel", ["share_id": shareID])
        return rows
    }

    private static func measure(
        api: APISession, shareID: String, binary: String, endpoint: String, size: Int, runs: Int
    ) async throws -> [(String, String, String)] {
        var rows: [(String, String, String)] = []

        // First byte: the folder listed beforehand (untimed), then open + one 4 KiB read.
        var firstByte: [String: (seconds: Double, calls: Int)] = [:]
        for source in ["adrive", "share:\(shareID)"] {
            let login = try await api.hook("tokens", [:])
            guard let token = login["refresh_token"] as? String else { throw BenchError("no token for the mount") }
            let mount = try MountProcess(binary: binary, endpoint: endpoint, refreshToken: token, source: source)
            defer { mount.stop() }
            _ = try FileBench.timeCommand(["ls", "-l", mount.mountpoint + "/bench"])
            _ = try await api.hook("stats/reset", [:])
            let start = ContinuousClock.now
            let fd = open(mount.mountpoint + "/bench/1GiB.bin", O_RDONLY)
            guard fd >= 0 else { throw BenchError("cannot open the file through \(source)") }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            let elapsed = seconds(ContinuousClock.now - start)
            close(fd)
            guard n == 4096 else { throw BenchError("first read through \(source) returned \(n)") }
            let calls = ((try await api.stats())["requests"] as? [String: Int] ?? [:]).filter { !$0.key.hasPrefix("/oss/") }.values.reduce(0, +)
            firstByte[source == "adrive" ? "drive" : "share"] = (elapsed, calls)
        }
        if let drive = firstByte["drive"], let shared = firstByte["share"] {
            rows.append(("share (copy mode) → first 4 KiB of a file, cold", String(format: "%.0f ms", shared.seconds * 1000),
                         String(format: "%d API calls (link probe, copy, download URL); own drive: %.0f ms, %d calls", shared.calls, drive.seconds * 1000, drive.calls)))
        }

        // Sequential 1 GiB through the share mount against the own drive's mount.
        var rates: [String: Double] = [:]
        for source in ["adrive", "share:\(shareID)"] {
            var best = 0.0
            for _ in 0..<runs {
                let login = try await api.hook("tokens", [:])
                guard let token = login["refresh_token"] as? String else { throw BenchError("no token for the mount") }
                let mount = try MountProcess(binary: binary, endpoint: endpoint, refreshToken: token, source: source)
                defer { mount.stop() }
                let read = try FileBench.sequentialRead(mount.mountpoint + "/bench/1GiB.bin")
                guard read.bytes == size else { throw BenchError("read \(read.bytes) bytes through \(source), expected \(size)") }
                best = max(best, read.rate)
            }
            rates[source == "adrive" ? "drive" : "share"] = best
        }
        let drive = rates["drive"] ?? 0
        let shared = rates["share"] ?? 0
        rows.append(("share (copy mode) → sequential read of 1 GiB (best of \(runs))", String(format: "%.2f GB/s", shared / 1e9),
                     String(format: "own drive %.2f GB/s: ratio %.2f", drive / 1e9, drive > 0 ? shared / drive : 0)))
        return rows
    }
}
