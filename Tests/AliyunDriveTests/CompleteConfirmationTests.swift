@testable import AliyunDrive
import EmulatorTestSupport
import Foundation
import Glibc
import Testing

/// An upload whose `complete` is refused or whose answer is lost succeeds when the drive
/// holds the file with the right size and SHA-1 — and only then.
@Suite struct CompleteConfirmationTests {
    /// How many files named `name` the root lists.
    static func count(_ name: String, _ drive: TestDrive) async throws -> Int {
        try await drive.listAll().0.filter { $0["name"] as? String == name }.count
    }

    @Test func aRapidUploadWhoseSessionTheServerClosedIsDone() async throws {
        try await withTestDrive { drive in
            let client = try await UploadClientTests.client(drive)
            let bytes = testBytes(3 << 20, seed: 41)
            let path = try UploadClientTests.file(bytes)
            defer { unlink(path) }
            _ = try await client.upload(path: path, parentID: "root", name: "known.bin")
            // Servers that close a rapid upload's session answer complete with 404 NotFound.UploadId.
            _ = try await drive.hook("faults", ["rapid_upload_sessions": "closed"])
            let completes = try await drive.requestCount("/v2/file/complete")
            let copy = try await client.upload(path: path, parentID: "root", name: "copy.bin")
            #expect(copy.rapid && copy.bytesSent == 0)
            #expect(copy.item.contentHash == RapidUpload.sha1Hex(bytes) && copy.item.size == Int64(bytes.count))
            #expect(try await drive.requestCount("/v2/file/complete") == completes + 1, "complete was asked, and refused")
            #expect(try await Self.count("copy.bin", drive) == 1)
        }
    }

    @Test func aCompleteWhoseAnswerIsLostIsDoneAndMakesNoDuplicate() async throws {
        try await withTestDrive { drive in
            let client = try await UploadClientTests.client(drive)
            let bytes = testBytes(200_000, seed: 42)
            let path = try UploadClientTests.file(bytes)
            defer { unlink(path) }
            _ = try await drive.hook("faults", ["rules": [["path": "/v2/file/complete", "kind": "drop_response", "count": 1]]])
            let result = try await client.upload(path: path, parentID: "root", name: "lost.bin")
            #expect(!result.rapid)
            #expect(result.item.contentHash == RapidUpload.sha1Hex(bytes))
            #expect(try await drive.requestCount("/v2/file/complete") >= 2, "the first answer was lost")
            #expect(try await Self.count("lost.bin", drive) == 1)
        }
    }

    @Test func everyAnswerOfCompleteLostStillEndsInTheFileReadBack() async throws {
        try await withTestDrive { drive in
            let client = try await UploadClientTests.client(drive)
            let bytes = testBytes(150_000, seed: 43)
            let path = try UploadClientTests.file(bytes)
            defer { unlink(path) }
            _ = try await drive.hook("faults", ["rules": [["path": "/v2/file/complete", "kind": "drop_response", "count": 20]]])
            let result = try await client.upload(path: path, parentID: "root", name: "gone.bin")
            #expect(result.item.size == Int64(bytes.count) && result.item.contentHash == RapidUpload.sha1Hex(bytes))
            #expect(try await Self.count("gone.bin", drive) == 1)
        }
    }

    @Test func aRefusedCompleteOfContentTheDriveDoesNotHoldStillFails() async throws {
        try await withTestDrive { drive in
            let client = try await UploadClientTests.client(drive)
            let bytes = testBytes(150_000, seed: 44)
            let path = try UploadClientTests.file(bytes)
            defer { unlink(path) }
            // Refused before it took effect: the file was never completed.
            _ = try await drive.hook("faults", ["rules": [["path": "/v2/file/complete", "status": 404, "code": "NotFound.UploadId", "count": 1]]])
            await #expect(throws: DriveError.self) {
                _ = try await client.upload(path: path, parentID: "root", name: "refused.bin")
            }
            #expect(try await Self.count("refused.bin", drive) == 0)
        }
    }
}

/// `bizExt` of a confirmed QR login: Base64 of GB18030 JSON.
@Suite struct BizExtTests {
    @Test func aChineseNicknameSurvivesGB18030AndURLSafeUnpaddedBase64() throws {
        let json = #"{"pds_login_result":{"refreshToken":"r1","nickName":"阿里云盘用户","userId":"u1","defaultDriveId":"9"}}"#
        let gb = try #require(GB18030.encode(json))
        #expect(gb != Array(json.utf8), "GB18030 bytes differ from UTF-8 for Chinese text")
        let standard = Data(gb).base64EncodedString()
        let urlSafe = standard.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        for text in [standard, urlSafe] {
            let result = try #require(PassportClient.loginResult(bizExt: text))
            #expect(result == .init(refreshToken: "r1", nickName: "阿里云盘用户", userID: "u1", defaultDriveID: "9"))
        }
        #expect(PassportClient.loginResult(bizExt: "not base64!") == nil)
    }
}
