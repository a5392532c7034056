import DriveEmulator
import EmulatorTestSupport
import Foundation
import HTTPTransport
import Synchronization
import Testing

/// CurlHTTPClient against a real server on loopback (the emulator).
@Suite struct CurlHTTPClientTests {
    @Test func rangedDownloadReturnsExactlyTheRequestedBytes() async throws {
        try await withTestDrive { drive in
            let content = testBytes(300_000)
            let file = try await drive.upload("range.bin", content)
            let url = try await drive.downloadURL(try #require(file["file_id"] as? String))

            var request = HTTPRequest(url: url)
            request.setRange(1000...1999)
            let response = try await drive.http.execute(request)
            #expect(response.status == 206)
            #expect(response.body == Array(content[1000...1999]))
            #expect(response.headers["Content-Range"] == "bytes 1000-1999/300000")

            request.setRange(299_990...400_000)  // clipped at the end, like OSS
            let tail = try await drive.http.execute(request)
            #expect(tail.status == 206)
            #expect(tail.body == Array(content[299_990...]))

            request.setRange(300_000...300_010)
            let unsatisfiable = try await drive.http.execute(request)
            #expect(unsatisfiable.status == 416)
        }
    }

    @Test func twoHundredMegabyteBodyStreamsFromAndToDiskIntact() async throws {
        try await withTestDrive { drive in
            let size = 200 << 20
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("adrivefs-200mb-\(getpid())").path
            defer { try? FileManager.default.removeItem(atPath: path) }
            let expectedSHA1 = try writeLargeFile(path: path, size: size)

            // Upload: one part streamed from the file region (never loaded whole).
            let (status, created) = try await drive.post(
                "/adrive/v2/file/createWithFolders",
                ["drive_id": drive.driveID, "parent_file_id": "root", "name": "big.bin", "type": "file", "size": size,
                 "part_info_list": [["part_number": 1]]])
            #expect(status == 201)
            let part = try #require((created["part_info_list"] as? [JSON])?.first?["upload_url"] as? String)
            let put = try await drive.http.execute(
                HTTPRequest(method: "PUT", url: part, headers: ["Content-Type": ""], body: .file(path: path, offset: 0, length: Int64(size))))
            #expect(put.status == 200)
            let (_, completed) = try await drive.post(
                "/v2/file/complete", ["drive_id": drive.driveID, "file_id": created["file_id"] ?? "", "upload_id": created["upload_id"] ?? ""])
            #expect(completed["content_hash"] as? String == expectedSHA1)
            #expect((completed["size"] as? Int) == size)

            // Download: streamed chunk by chunk into a hasher.
            let url = try await drive.downloadURL(try #require(completed["file_id"] as? String))
            let sink = HashingSink()
            let response = try await drive.http.stream(HTTPRequest(url: url)) { _, chunk in sink.hasher.update(chunk) }
            #expect(response.status == 200)
            #expect(response.body.isEmpty)
            let (count, digest) = (sink.hasher.count, sink.hasher.hexDigest)
            #expect(count == size)
            #expect(digest == expectedSHA1)
        }
    }

    @Test func cancellingTheTaskRemovesTheTransferPromptly() async throws {
        try await withTestDrive { drive in
            let file = try await drive.upload("stall.bin", testBytes(200_000))
            let url = try await drive.downloadURL(try #require(file["file_id"] as? String))
            try await drive.hook("faults", ["rules": [["path": "/oss/d/*", "kind": "stall_after", "bytes": 1000, "count": 1]]])

            let started = ContinuousClock.now
            let task = Task { try await drive.http.execute(HTTPRequest(url: url, timeouts: .init(stallTime: .seconds(60)))) }
            try await Task.sleep(for: .milliseconds(300))
            task.cancel()
            let result = await task.result
            let elapsed = ContinuousClock.now - started
            guard case .failure(let error as HTTPTransportError) = result else {
                Issue.record("expected a cancellation error, got \(result)")
                return
            }
            #expect(error.isCancelled)
            // Well before the 60 s stall timeout: the cancellation ended it (the margin is for
            // a 2-core machine running the whole suite at once, where 5 s was once exceeded).
            #expect(elapsed < .seconds(30))
            // The client still works afterwards.
            #expect(try await drive.get("/__emulator/health").status == 200)
        }
    }

    @Test func stalledTransferFailsWithTheStallTimeout() async throws {
        try await withTestDrive { drive in
            let file = try await drive.upload("stall.bin", testBytes(200_000))
            let url = try await drive.downloadURL(try #require(file["file_id"] as? String))
            try await drive.hook("faults", ["rules": [["path": "/oss/d/*", "kind": "stall_after", "bytes": 5000, "count": 1]]])

            let started = ContinuousClock.now
            let error = await #expect(throws: HTTPTransportError.self) {
                try await drive.http.execute(HTTPRequest(url: url, timeouts: .init(stallTime: .seconds(2))))
            }
            #expect(error?.code == .stalled)
            // Bounded (no hang); the margin is for a 2-core machine running the whole suite.
            #expect(ContinuousClock.now - started < .seconds(20))
        }
    }

    @Test func connectionDroppedMidBodyIsAReceiveFailure() async throws {
        try await withTestDrive { drive in
            let file = try await drive.upload("drop.bin", testBytes(200_000))
            let url = try await drive.downloadURL(try #require(file["file_id"] as? String))
            try await drive.hook("faults", ["rules": [["path": "/oss/d/*", "kind": "drop_after", "bytes": 10_000, "count": 1]]])
            let error = await #expect(throws: HTTPTransportError.self) { try await drive.http.execute(HTTPRequest(url: url)) }
            #expect(error?.code == .receiveFailed)
            #expect(error?.isTransient == true)
            // The next request on a fresh connection succeeds.
            #expect(try await drive.http.execute(HTTPRequest(url: url)).body.count == 200_000)
        }
    }

    @Test func sequentialRequestsReuseOneConnection() async throws {
        try await withTestDrive { drive in
            try await drive.hook("stats/reset")
            for _ in 0..<20 {
                let (status, _) = try await drive.post("/v2/user/get", [:])
                #expect(status == 200)
            }
            let stats = try await drive.stats()
            let connections = try #require(stats["connections"] as? Int)
            #expect(connections < 20)
            #expect(connections <= 2)
        }
    }

    @Test func manyTransfersRunConcurrently() async throws {
        try await withTestDrive { drive in
            let content = testBytes(64 * 1024)
            let url = try await drive.downloadURL(try #require(try await drive.upload("c.bin", content)["file_id"] as? String))
            let bodies = try await withThrowingTaskGroup(of: [UInt8].self) { group in
                for index in 0..<32 {
                    group.addTask {
                        var request = HTTPRequest(url: url)
                        request.setRange(Int64(index * 1024)...Int64(index * 1024 + 1023))
                        return try await drive.http.execute(request).body
                    }
                }
                return try await group.reduce(into: [[UInt8]]()) { $0.append($1) }
            }
            #expect(bodies.count == 32)
            #expect(Set(bodies.map { $0 }.map(\.description)).count == 32)
            #expect(bodies.allSatisfy { $0.count == 1024 })
        }
    }

    @Test func emptyContentTypeIsSentExplicitlyEmpty() async throws {
        try await withTestDrive { drive in
            let (_, created) = try await drive.post(
                "/adrive/v2/file/createWithFolders",
                ["drive_id": drive.driveID, "parent_file_id": "root", "name": "ct.bin", "type": "file", "size": 4,
                 "part_info_list": [["part_number": 1]]])
            let url = try #require((created["part_info_list"] as? [JSON])?.first?["upload_url"] as? String)
            let rejected = try await drive.putPart(url, [1, 2, 3, 4], contentType: "application/x-www-form-urlencoded")
            #expect(rejected.status == 403)
            #expect(rejected.text.contains("SignatureDoesNotMatch"))
            let accepted = try await drive.putPart(url, [1, 2, 3, 4])
            #expect(accepted.status == 200)
            // The server saw the header present and empty, not a default type.
            let log = TestDrive.object(try await drive.get("/__emulator/requests").body)["requests"] as? [JSON] ?? []
            let puts = log.filter { ($0["method"] as? String) == "PUT" }
            #expect(puts.last?["content_type"] as? String == "")
        }
    }

    @Test func non2xxBodiesNeverReachTheSink() async throws {
        try await withTestDrive { drive in
            let url = try await drive.downloadURL(try #require(try await drive.upload("x.bin", testBytes(1000))["file_id"] as? String))
            let tampered = url.replacingOccurrences(of: "x-oss-signature=", with: "x-oss-signature=AA")
            let delivered = Mutex(0)
            let response = try await drive.http.stream(HTTPRequest(url: tampered)) { _, chunk in delivered.withLock { $0 += chunk.count } }
            #expect(response.status == 403)
            #expect(response.text.contains("SignatureDoesNotMatch"))
            #expect(delivered.withLock { $0 } == 0)
        }
    }

    @Test func sinkErrorsAbortTheTransferAndAreRethrown() async throws {
        struct Enough: Error {}
        try await withTestDrive { drive in
            let url = try await drive.downloadURL(try #require(try await drive.upload("x.bin", testBytes(500_000))["file_id"] as? String))
            await #expect(throws: Enough.self) {
                try await drive.http.stream(HTTPRequest(url: url)) { _, _ in throw Enough() }
            }
        }
    }

    @Test func bodyLimitIsEnforced() async throws {
        try await withTestDrive { drive in
            let url = try await drive.downloadURL(try #require(try await drive.upload("x.bin", testBytes(100_000))["file_id"] as? String))
            let error = await #expect(throws: HTTPTransportError.self) {
                try await drive.http.execute(HTTPRequest(url: url), maxBodyBytes: 10_000)
            }
            #expect(error?.code == .bodyTooLarge)
        }
    }

    @Test func refusedConnectionIsReportedWithCurlsText() async throws {
        let client = try CurlHTTPClient()
        defer { client.shutdown() }
        let error = await #expect(throws: HTTPTransportError.self) {
            try await client.execute(HTTPRequest(url: "http://127.0.0.1:1/"))
        }
        #expect(error?.code == .couldNotConnect)
        #expect(error?.message.isEmpty == false)
        #expect(error?.curlCode == 7)
    }

    @Test func explicitProxyReceivesAbsoluteFormRequests() async throws {
        try await withTestDrive(login: false) { drive in
            let proxied = try CurlHTTPClient(configuration: .init(proxy: drive.base))
            defer { proxied.shutdown() }
            // The host does not exist; only the proxy (the emulator) can answer.
            let response = try await proxied.execute(HTTPRequest(url: "http://drive.invalid/__emulator/health"))
            #expect(response.status == 200)
            #expect(response.text.contains("ok"))
        }
    }

    @Test func shutdownFailsLaterRequests() async throws {
        let client = try CurlHTTPClient()
        client.shutdown()
        let error = await #expect(throws: HTTPTransportError.self) {
            try await client.execute(HTTPRequest(url: "http://127.0.0.1:1/"))
        }
        #expect(error?.code == .shutdown)
    }
}
