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
        rows += try await save(api: api, shareID: shareID, binary: binary, endpoint: endpoint, size: size)
        return rows
    }

    /// Saving the shared 1 GiB file into the drive: `cp` from `.shares/` within one own-drive
    /// mount (a server-side save) beside `cp` from a separate share mount into the own
    /// mount (which the kernel turns into read + write: the bytes come down, and go up
    /// unless the drive has them — the bench drive does, so the upload is a rapid one).
    private static func save(api: APISession, shareID: String, binary: String, endpoint: String, size: Int) async throws -> [(String, String, String)] {
        func token() async throws -> String {
            guard let token = try await api.hook("tokens", [:])["refresh_token"] as? String else { throw BenchError("no token for the mount") }
            return token
        }
        func moved() async throws -> (down: Int, up: Int, calls: Int) {
            let stats = try await api.stats()
            let calls = (stats["requests"] as? [String: Int] ?? [:]).filter { !$0.key.hasPrefix("/oss/") }.values.reduce(0, +)
            return (stats["bytes_downloaded"] as? Int ?? 0, (stats["bytes_uploaded"] as? Int ?? 0) + (stats["bytes_uploaded_internal"] as? Int ?? 0), calls)
        }
        func removeSaved() async {
            if let id = (try? await api.post("/v2/file/get_by_path", ["drive_id": api.driveID, "file_path": "/saved-1GiB.bin"]))?["file_id"] as? String {
                _ = try? await api.post("/v3/file/delete", ["drive_id": api.driveID, "file_id": id])
            }
        }
        var rows: [(String, String, String)] = []
        await removeSaved()
        let within: (seconds: Double, moved: (down: Int, up: Int, calls: Int))
        do {
            let mount = try MountProcess(binary: binary, endpoint: endpoint, refreshToken: try await token(), options: "share=\(shareID)")
            defer { mount.stop() }
            let shares = try FileManager.default.contentsOfDirectory(atPath: mount.mountpoint + "/.shares")
            guard let title = shares.first else { throw BenchError("no share under .shares") }
            _ = try FileBench.timeCommand(["ls", "-l", mount.mountpoint + "/.shares/\(title)/bench"])
            _ = try await api.hook("stats/reset", [:])
            let seconds = try FileBench.timeCommand(["cp", mount.mountpoint + "/.shares/\(title)/bench/1GiB.bin", mount.mountpoint + "/saved-1GiB.bin"])
            within = (seconds, try await moved())
        }
        await removeSaved()
        let across: (seconds: Double, moved: (down: Int, up: Int, calls: Int))
        do {
            let own = try MountProcess(binary: binary, endpoint: endpoint, refreshToken: try await token())
            defer { own.stop() }
            let share = try MountProcess(binary: binary, endpoint: endpoint, refreshToken: try await token(), source: "share:\(shareID)")
            defer { share.stop() }
            _ = try FileBench.timeCommand(["ls", "-l", share.mountpoint + "/bench"])
            _ = try await api.hook("stats/reset", [:])
            let seconds = try FileBench.timeCommand(["cp", share.mountpoint + "/bench/1GiB.bin", own.mountpoint + "/saved-1GiB.bin"])
            across = (seconds, try await moved())
        }
        await removeSaved()
        let gib = Double(size) / Double(1 << 30)
        rows.append(("share → save \(String(format: "%.0f", gib)) GiB into the drive: cp from .shares/ within one mount", String(format: "%.0f ms", within.seconds * 1000),
                     "\(within.moved.down + within.moved.up) bytes moved (down + up), \(within.moved.calls) API calls"))
        rows.append(("share → the same cp from a share mount into the own mount", String(format: "%.1f s", across.seconds),
                     String(format: "%d bytes down, %d up (rapid), %d API calls; %.0f× the save's time", across.moved.down, across.moved.up, across.moved.calls,
                            within.seconds > 0 ? across.seconds / within.seconds : 0)))
        return rows
    }
}
