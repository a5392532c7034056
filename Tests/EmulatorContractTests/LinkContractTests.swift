import DriveEmulator
import EmulatorTestSupport
import Foundation
import HTTPTransport
import Testing

/// The emulated link (this kernel has no netem): what `curl` sees through a profile —
/// the API latency, the delay before a download's first byte, the rate of one connection,
/// and the total cap over several. A loaded machine only ever makes things slower, so the
/// bounds are exact from below (never faster than the link) and loose from above.
@Suite(.serialized) struct LinkContractTests {
    /// curl's (first byte, total, bytes) for `url`, optionally a range.
    static func curl(_ url: String, range: String? = nil, headers: [String] = [], data: String? = nil) throws -> (first: Double, total: Double, bytes: Int) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        var arguments = ["curl", "-s", "-o", "/dev/null", "-w", "%{time_starttransfer} %{time_total} %{size_download}"]
        if let range { arguments += ["-r", range] }
        for header in headers { arguments += ["-H", header] }
        if let data { arguments += ["-d", data] }
        process.arguments = arguments + [url]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        process.waitUntilExit()
        let fields = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: " ")
        guard fields.count == 3, let first = Double(fields[0]), let total = Double(fields[1]), let bytes = Int(fields[2]) else {
            throw TestDriveError("curl said nothing useful")
        }
        return (first, total, bytes)
    }

    @Test func throughTheHomeProfileCurlSeesItsLatencyAndRate() async throws {
        try await withTestDrive { drive in
            let content = testBytes(6 << 20, seed: 3)
            let fileID = try #require(try await drive.upload("six.bin", content)["file_id"] as? String)
            let url = try await drive.downloadURL(fileID)
            try await drive.hook("faults", ["link_profile": "home"])
            // An API call: at least the 40 ms the profile adds.
            let api = try Self.curl(drive.base + "/v2/user/get", headers: ["Authorization: Bearer \(drive.accessToken)", "Content-Type: application/json"], data: "{}")
            #expect(api.total >= 0.040 && api.total < 0.5, "API call took \(api.total) s")
            // A download: 40 ms before the first byte, then 10 MB/s on one connection.
            let download = try Self.curl(url)
            #expect(download.bytes == content.count)
            #expect(download.first >= 0.040, "first byte after \(download.first) s")
            let rate = Double(content.count) / (download.total - download.first)
            #expect(rate <= 10e6 * 1.1, "one connection got \(rate / 1e6) MB/s")
            #expect(rate >= 10e6 * 0.05, "one connection got only \(rate / 1e6) MB/s")
            // Back to loopback: no delay worth measuring.
            try await drive.hook("faults", ["link_profile": "loopback"])
            #expect(try Self.curl(url).total < download.total / 4)
        }
    }

    /// Statistics count bytes sent, not bytes asked for: a client that gives up on a paced
    /// download (a reader's stale read-ahead) is counted for what reached it.
    @Test func aDownloadCutShortIsCountedForWhatWasSent() async throws {
        try await withTestDrive { drive in
            let content = testBytes(4 << 20, seed: 6)
            let fileID = try #require(try await drive.upload("cut.bin", content)["file_id"] as? String)
            let url = try await drive.downloadURL(fileID)
            try await drive.hook("faults", ["download_rate": 2_000_000])
            _ = try await drive.hook("stats/reset")
            // curl gives up after 0.6 s: about 1.2 MB of the 4 MiB were sent by then.
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["curl", "-s", "-o", "/dev/null", "--max-time", "0.6", url]
            try process.run()
            process.waitUntilExit()
            #expect(process.terminationStatus == 28, "curl timed out")
            // The emulator notices the closed connection at its next slice.
            try await Task.sleep(for: .milliseconds(400))
            let stats = try await drive.stats()
            let sent = try #require(stats["bytes_downloaded"] as? Int)
            #expect(sent > 0 && sent < 3 << 20, "counted \(sent) bytes of a download cut short")
            let byContent = try #require(stats["bytes_downloaded_by_content"] as? [String: Any])
            #expect(byContent.values.compactMap { $0 as? Int } == [sent])
            // A download that runs to its end is counted whole.
            _ = try await drive.hook("stats/reset")
            try await drive.hook("faults", ["download_rate": 0])
            #expect(try Self.curl(url).bytes == content.count)
            #expect(try await drive.stats()["bytes_downloaded"] as? Int == content.count)
        }
    }

    @Test func partUploadsArePacedToTheUploadRate() async throws {
        try await withTestDrive { drive in
            let content = testBytes(3 << 20, seed: 5)
            try await drive.hook("faults", ["upload_rate": 4_000_000])
            let start = ContinuousClock.now
            _ = try await drive.upload("paced.bin", content)
            let elapsed = ContinuousClock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let rate = Double(content.count) / seconds
            #expect(rate <= 4e6 * 1.1, "the upload went at \(rate / 1e6) MB/s")
            #expect(rate >= 4e6 * 0.05, "the upload went at only \(rate / 1e6) MB/s")
        }
    }

    @Test func theTotalCapIsSharedByConnections() async throws {
        try await withTestDrive { drive in
            let content = testBytes(4 << 20, seed: 4)
            let fileID = try #require(try await drive.upload("four.bin", content)["file_id"] as? String)
            let url = try await drive.downloadURL(fileID)
            // 20 MB/s per connection, 16 MB/s in all: four at once share the cap.
            try await drive.hook("faults", ["download_rate": 20_000_000, "total_download_rate": 16_000_000])
            let start = ContinuousClock.now
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<4 { group.addTask { try Self.curl(url).bytes } }
                for try await bytes in group { #expect(bytes == content.count) }
            }
            let elapsed = ContinuousClock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let total = Double(4 * content.count) / seconds
            #expect(total <= 16e6 * 1.1, "four connections together got \(total / 1e6) MB/s")
            #expect(total >= 16e6 * 0.05, "four connections together got only \(total / 1e6) MB/s")
        }
    }
}
