@testable import AliyunDrive
import EmulatorTestSupport
import Foundation
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
}
