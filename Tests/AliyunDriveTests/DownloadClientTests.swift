@testable import AliyunDrive
import EmulatorTestSupport
import Foundation
import Synchronization
import Testing

/// The real client's reads against the in-process emulator.
@Suite struct DownloadClientTests {
    @Test func concurrentReadsOfAFreshFileShareOneLinkAndOneLookup() async throws {
        try await withTestDrive(seed: .demo) { drive in
            let client = try await UploadClientTests.client(drive)
            let (_, video) = try await drive.post("/v2/file/get_by_path", ["drive_id": drive.driveID, "file_path": "/Videos/sample.mp4"])
            let fileID = try #require(video["file_id"] as? String)
            _ = try await drive.hook("stats/reset")
            let chunk = 1 << 20
            let pieces = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
                for index in 0..<8 {
                    group.addTask { (index, try await client.read(fileID: fileID, offset: Int64(index * chunk), length: chunk).count) }
                    group.addTask { (-1, try await client.item(fileID: fileID).size == 64 << 20 ? 1 : 0) }
                }
                return try await group.reduce(into: [Int: Int]()) { $0[$1.0, default: 0] += $1.1 }
            }
            #expect((0..<8).allSatisfy { pieces[$0] == chunk })
            #expect(pieces[-1] == 8)
            #expect(try await drive.requestCount("/v2/file/get_download_url") == 1)
            #expect(try await drive.requestCount("/v2/file/get") <= 2)
        }
    }

    @Test func aStreamedReadResumesAfterADroppedConnectionDeliveringEachByteOnce() async throws {
        try await withTestDrive(seed: .demo) { drive in
            let client = try await UploadClientTests.client(drive)
            let (_, video) = try await drive.post("/v2/file/get_by_path", ["drive_id": drive.driveID, "file_path": "/Videos/sample.mp4"])
            let fileID = try #require(video["file_id"] as? String)
            let reference = try await drive.get(try await drive.downloadURL(fileID)).body
            // The first two data connections drop after 300,000 bytes.
            try await drive.hook("faults", ["rules": [["path": "/oss/d/*", "kind": "drop_after", "bytes": 300_000, "count": 2]]])
            let offset = 5_000_000
            let length = 3 << 20
            let pieces = Mutex<[[UInt8]]>([])
            try await client.read(fileID: fileID, offset: Int64(offset), length: length) { chunk in
                pieces.withLock { $0.append(Array(chunk.bindMemory(to: UInt8.self))) }
            }
            let streamed = pieces.withLock { $0 }
            #expect(streamed.count > 1)  // it arrived in pieces, as it came
            #expect(Array(streamed.joined()) == Array(reference[offset..<offset + length]))
            // Each retry asked only for what was still missing.
            let log = TestDrive.object(try await drive.get(drive.base + "/__emulator/requests").body)["requests"] as? [JSON] ?? []
            let ranges = log.filter { ($0["path"] as? String)?.hasPrefix("/oss/d/") == true }.compactMap { $0["range"] as? String }
            let starts = ranges.suffix(3).compactMap { Int($0.dropFirst("bytes=".count).split(separator: "-").first ?? "") }
            #expect(starts.count == 3)
            #expect(starts.first == offset)
            #expect(starts == starts.sorted() && Set(starts).count == 3)
            #expect(starts.last.map { $0 >= offset + 2 * 300_000 - 65_536 } == true)
        }
    }

    @Test func aServerIgnoringRangeStillYieldsTheRequestedBytes() async throws {
        // A 200 with the whole body: the leading bytes are skipped, the transfer stops once
        // the range is complete.
        let sink = Mutex<[UInt8]>([])
        let progress = RangeProgress(length: 5) { chunk in sink.withLock { $0 += Array(chunk.bindMemory(to: UInt8.self)) } }
        progress.begin(skipping: 3)
        #expect([UInt8]([0, 1, 2, 3, 4]).withUnsafeBytes { progress.receive(status: 200, $0) })
        #expect(![UInt8]([5, 6, 7, 8, 9]).withUnsafeBytes { progress.receive(status: 200, $0) })
        #expect(sink.withLock { $0 } == [3, 4, 5, 6, 7])
        #expect(progress.delivered == 5)
        // A 206 body starts at the requested byte and is never delivered beyond the length.
        let partial = RangeProgress(length: 4) { chunk in sink.withLock { $0 += Array(chunk.bindMemory(to: UInt8.self)) } }
        partial.begin(skipping: 100)
        #expect([UInt8]([9, 8, 7, 6, 5, 4]).withUnsafeBytes { partial.receive(status: 206, $0) })
        #expect(sink.withLock { $0 } == [3, 4, 5, 6, 7, 9, 8, 7, 6])
    }
}
