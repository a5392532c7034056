import EmulatorTestSupport
import Foundation
import HTTPTransport
import Testing

/// aliyun-api.md §14 "Download": URLs, expiry, signature, ranges.
@Suite struct DownloadContractTests {
    static func expires(_ url: String) -> Int? {
        URLComponents(string: url)?.queryItems?.first { $0.name == "x-oss-expires" }?.value.flatMap { Int($0) }
    }

    @Test func downloadURLsComeInBatchesToo() async throws {
        try await withTestDrive { drive in
            let a = try #require(try await drive.upload("a.bin", testBytes(10, seed: 1))["file_id"] as? String)
            let b = try #require(try await drive.upload("b.bin", testBytes(20, seed: 2))["file_id"] as? String)
            let requests: [JSON] = [a, b, "nope"].map { id in
                ["id": id, "method": "POST", "url": "/file/get_download_url", "body": ["drive_id": drive.driveID, "file_id": id]]
            }
            let (status, result) = try await drive.post("/adrive/v4/batch", ["resource": "file", "requests": requests])
            #expect(status == 200)
            let responses = result["responses"] as? [JSON] ?? []
            #expect(responses.map { $0["status"] as? Int } == [200, 200, 404])
            let url = try #require((responses.first?["body"] as? JSON)?["url"] as? String)
            #expect(try await drive.get(url).body == testBytes(10, seed: 1))
            #expect(try await drive.stats()["download_urls"] as? Int == 2)
        }
    }

    /// The stats count bytes served per content, so a test can tell bytes fetched per file.
    @Test func statsCountBytesServedPerContent() async throws {
        try await withTestDrive { drive in
            let (first, second) = (testBytes(100_000, seed: 3), testBytes(50_000, seed: 4))
            let a = try await drive.upload("a.bin", first)
            let b = try await drive.upload("b.bin", second)
            _ = try await drive.hook("stats/reset")
            let urlA = try await drive.downloadURL(try #require(a["file_id"] as? String))
            let urlB = try await drive.downloadURL(try #require(b["file_id"] as? String))
            #expect(try await drive.get(urlA, headers: ["Range": "bytes=1000-1999"]).body.count == 1000)
            #expect(try await drive.get(urlA).body.count == 100_000)
            #expect(try await drive.get(urlB, headers: ["Range": "bytes=0-9"]).body.count == 10)
            let byContent = try #require(try await drive.stats()["bytes_downloaded_by_content"] as? [String: Int])
            #expect(byContent[try #require((a["content_hash"] as? String)?.uppercased())] == 101_000)
            #expect(byContent[try #require((b["content_hash"] as? String)?.uppercased())] == 10)
            #expect(try await drive.stats()["bytes_downloaded"] as? Int == 101_010)
        }
    }

    @Test func downloadURLLifetimeDefaultsTo900AndIsCappedAt14400() async throws {
        try await withTestDrive { drive in
            let fileID = try #require(try await drive.upload("f.bin", testBytes(100))["file_id"] as? String)
            // Bounded by the clock before and after each call (a loaded machine can take seconds).
            func window(_ call: () async throws -> String) async throws -> (Int, Int, Int) {
                let before = Int(Date().timeIntervalSince1970)
                let expires = try #require(Self.expires(try await call()))
                return (before, expires, Int(Date().timeIntervalSince1970) + 1)
            }
            let (a, standard, b) = try await window { try await drive.downloadURL(fileID) }
            #expect((a + 900...b + 900).contains(standard))
            let (c, long, d) = try await window { try await drive.downloadURL(fileID, expireSeconds: 100_000) }
            #expect((c + 14_400...d + 14_400).contains(long))
            let (_, body) = try await drive.post("/v2/file/get_download_url", ["drive_id": drive.driveID, "file_id": fileID])
            #expect(body["size"] as? Int == 100)
            #expect(body["method"] as? String == "GET")
            #expect((body["expiration"] as? String)?.hasSuffix("Z") == true)
            #expect(body["content_hash"] as? String == RapidHash.sha1(testBytes(100)))
        }
    }

    @Test func foldersAndTrashedFilesHaveNoDownloadURL() async throws {
        try await withTestDrive { drive in
            let folder = try await drive.mkdir("f")
            let (status, body) = try await drive.post("/v2/file/get_download_url", ["drive_id": drive.driveID, "file_id": folder])
            #expect(status == 400)
            #expect(body["code"] as? String == "InvalidResource.FileTypeFolder")
            let file = try await drive.upload("t.bin", testBytes(10))
            _ = try await drive.post("/v2/recyclebin/trash", ["drive_id": drive.driveID, "file_id": file["file_id"] ?? ""])
            let (trashed, trashedBody) = try await drive.post("/v2/file/get_download_url", ["drive_id": drive.driveID, "file_id": file["file_id"] ?? ""])
            #expect(trashed == 400)
            #expect(trashedBody["code"] as? String == "ForbiddenFileInTheRecycleBin")
        }
    }

    @Test func expiredURLsAnswer403RequestHasExpired() async throws {
        try await withTestDrive { drive in
            let fileID = try #require(try await drive.upload("f.bin", testBytes(100))["file_id"] as? String)
            let url = try await drive.downloadURL(fileID, expireSeconds: 60)
            #expect(try await drive.get(url).status == 200)
            try await drive.hook("faults", ["advance_clock": 61])
            let expired = try await drive.get(url)
            #expect(expired.status == 403)
            #expect(expired.headers["Content-Type"] == "application/xml")
            #expect(expired.text.contains("<Code>AccessDenied</Code>"))
            #expect(expired.text.contains("<Message>Request has expired.</Message>"))
            #expect(expired.text.contains("<Expires>") && expired.text.contains("<ServerTime>"))
            // A fresh URL works again.
            #expect(try await drive.get(try await drive.downloadURL(fileID)).status == 200)
        }
    }

    @Test func shortenedURLLifetimesApplyToNewURLs() async throws {
        try await withTestDrive { drive in
            let fileID = try #require(try await drive.upload("f.bin", testBytes(100))["file_id"] as? String)
            try await drive.hook("faults", ["download_url_ttl": 3])
            let expires = try #require(Self.expires(try await drive.downloadURL(fileID, expireSeconds: 14_400)))
            #expect(expires - Int(Date().timeIntervalSince1970) <= 4)
        }
    }

    @Test func tamperedSignaturesAreRejected() async throws {
        try await withTestDrive { drive in
            let fileID = try #require(try await drive.upload("f.bin", testBytes(100))["file_id"] as? String)
            let url = try await drive.downloadURL(fileID)
            let longer = url.replacingOccurrences(of: "x-oss-expires=", with: "x-oss-expires=9")
            let response = try await drive.get(longer)
            #expect(response.status == 403)
            #expect(response.text.contains("<Code>SignatureDoesNotMatch</Code>"))
        }
    }

    @Test func rangesFollowOSSRules() async throws {
        try await withTestDrive { drive in
            let content = testBytes(5000)
            let url = try await drive.downloadURL(try #require(try await drive.upload("r.bin", content)["file_id"] as? String))
            func fetch(_ range: String) async throws -> HTTPResponse { try await drive.get(url, headers: ["Range": range]) }
            let middle = try await fetch("bytes=10-19")
            #expect(middle.status == 206 && middle.body == Array(content[10...19]))
            let open = try await fetch("bytes=4990-")
            #expect(open.status == 206 && open.body == Array(content[4990...]))
            let suffix = try await fetch("bytes=-7")
            #expect(suffix.status == 206 && suffix.body == Array(content[4993...]))
            #expect(suffix.headers["Content-Range"] == "bytes 4993-4999/5000")
            let beyond = try await fetch("bytes=5000-6000")
            #expect(beyond.status == 416)
            #expect(beyond.headers["Content-Range"] == "bytes */5000")
            let full = try await drive.get(url)
            #expect(full.status == 200 && full.body == content)
            #expect(full.headers["Accept-Ranges"] == "bytes")
            let stats = try await drive.stats()
            #expect((stats["bytes_downloaded"] as? Int ?? 0) >= 5000 + 10 + 10 + 7)
        }
    }

    @Test func headReportsTheLength() async throws {
        try await withTestDrive { drive in
            let url = try await drive.downloadURL(try #require(try await drive.upload("h.bin", testBytes(1234))["file_id"] as? String))
            let head = try await drive.http.execute(HTTPRequest(method: "HEAD", url: url))
            #expect(head.status == 200)
            #expect(head.headers["Content-Length"] == "1234")
            #expect(head.body.isEmpty)
        }
    }
}
