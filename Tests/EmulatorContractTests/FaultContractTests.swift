@testable import DriveEmulator
import EmulatorTestSupport
import Foundation
import HTTPTransport
import Testing

/// aliyun-api.md §14 "Faults and limits", the stats hook, persistence, and the emulator's
/// own proof-code check against the §8.4 vectors.
@Suite struct FaultContractTests {
    @Test func scriptedRateLimitsCarryRetryHeaders() async throws {
        try await withTestDrive { drive in
            try await drive.hook("faults", ["rules": [
                ["path": "/v2/user/get", "status": 429, "count": 2, "retry_after_ms": 1500, "retry_header": "both"]
            ]])
            for _ in 0..<2 {
                let response = try await drive.postRaw("/v2/user/get", [:])
                #expect(response.status == 429)
                #expect(response.headers["x-retry-after"] == "1500")
                #expect(response.headers["Retry-After"] == "2")
                #expect(TestDrive.object(response.body)["code"] as? String == "TooManyRequests")
            }
            #expect(try await drive.post("/v2/user/get", [:]).0 == 200)
            #expect(try await drive.requestCount("/v2/user/get") == 4)  // 3 here + 1 at login
        }
    }

    @Test func aDroppedResponseTookEffectButNeverArrives() async throws {
        try await withTestDrive { drive in
            let folder = try await drive.mkdir("before")
            // Two uses: libcurl sends a request again once when a reused connection closes.
            try await drive.hook("faults", ["rules": [["path": "/v3/file/update", "kind": "drop_response", "count": 2]]])
            await #expect(throws: (any Error).self) {
                _ = try await drive.postRaw("/v3/file/update", ["drive_id": drive.driveID, "file_id": folder, "name": "after"])
            }
            let (status, item) = try await drive.post("/v2/file/get", ["drive_id": drive.driveID, "file_id": folder])
            #expect(status == 200 && item["name"] as? String == "after")
            // Used up: the next request is answered.
            #expect(try await drive.post("/v3/file/update", ["drive_id": drive.driveID, "file_id": folder, "name": "again"]).0 == 200)
        }
    }

    @Test func probabilisticFaultsAreReproducible() async throws {
        try await withTestDrive { drive in
            func run() async throws -> [Int] {
                try await drive.hook("faults", ["clear": true, "seed": 7, "rules": [["path": "/v2/user/get", "status": 429, "probability": 0.3]]])
                var statuses: [Int] = []
                for _ in 0..<40 { statuses.append(try await drive.post("/v2/user/get", [:]).0) }
                return statuses
            }
            let first = try await run()
            let second = try await run()
            #expect(first == second)
            let limited = first.filter { $0 == 429 }.count
            #expect(limited > 3 && limited < 25)
            #expect(first.allSatisfy { $0 == 200 || $0 == 429 })
        }
    }

    @Test func gatewayErrorsAndShareFlowControl() async throws {
        try await withTestDrive { drive in
            try await drive.hook("faults", ["rules": [
                ["path": "/v2/user/get", "kind": "bad_gateway", "count": 1],
                ["path": "/v2/share_link/get_share_token", "kind": "param_flow", "count": 1],
                ["path": "/adrive/v3/file/list", "status": 503, "count": 1],
            ]])
            let gateway = try await drive.postRaw("/v2/user/get", [:])
            #expect(gateway.status == 502 && gateway.text == "Bad Gateway")
            let (flow, body) = try await drive.post("/v2/share_link/get_share_token", ["share_id": "x"], auth: false)
            #expect(flow == 429)
            #expect(body["code"] as? String == "ParamFlowException")
            #expect(try await drive.post("/adrive/v3/file/list", ["drive_id": drive.driveID, "parent_file_id": "root"]).0 == 503)
            let rules = TestDrive.object(try await drive.get("/__emulator/faults").body)["rules"] as? [EmulatorTestSupport.JSON]
            #expect(rules?.isEmpty == true)  // all used up
        }
    }

    @Test func statsCountRequestsAndResetToZero() async throws {
        try await withTestDrive { drive in
            _ = try await drive.listAll()
            _ = try await drive.listAll()
            #expect(try await drive.requestCount("/adrive/v3/file/list") == 2)
            let reset = try await drive.hook("stats/reset")
            #expect(reset["total_requests"] as? Int == 0)
            #expect(try await drive.requestCount("/adrive/v3/file/list") == 0)
        }
    }

    @Test func stateSurvivesARestartOfTheEmulator() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("adrivefs-persist-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var refreshToken = ""
        var fileID = ""
        let content = testBytes(70_000)
        try await withTestDrive(dataDirectory: directory) { drive in
            fileID = try #require(try await drive.upload("keep.bin", content)["file_id"] as? String)
            refreshToken = drive.refreshToken
        }
        let emulator = try DriveEmulator(configuration: .init(dataDirectory: directory))
        _ = try await emulator.start()
        let client = try CurlHTTPClient()
        do {
            let body = try JSONSerialization.data(withJSONObject: ["refresh_token": refreshToken])
            let response = try await client.execute(HTTPRequest(method: "POST", url: emulator.baseURL + "/v2/account/token", body: .bytes(Array(body))))
            #expect(response.status == 200)  // the rotated token was persisted
            let state = emulator.state.withLock { $0.persistent.nodes[fileID] }
            #expect(state?.name == "keep.bin")
            #expect(state?.size == Int64(content.count))
        }
        client.shutdown()
        await emulator.stop()
    }

    @Test func changesReachTheDiskWithoutAStop() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("adrivefs-save-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await withTestDrive(dataDirectory: directory) { drive in
            let fileID = try #require(try await drive.upload("saved-in-the-background.bin", testBytes(1000))["file_id"] as? String)
            // The periodic save (every 500 ms, off the event loop) writes it while the emulator runs.
            var saved = false
            for _ in 0..<50 where !saved {
                try await Task.sleep(for: .milliseconds(100))
                let text = (try? String(contentsOfFile: directory + "/state.json", encoding: .utf8)) ?? ""
                saved = text.contains(fileID) && text.contains("saved-in-the-background.bin")
            }
            #expect(saved)
        }
    }

    @Test(arguments: [
        (Array("0123456789abcdefghij".utf8), "test-access-token", "MjM0NTY3ODk="),
        (Array("AAAAA".utf8), "test-access-token", "QUFB"),
        ((0..<1024).map { UInt8($0 % 256) }, "test-access-token", "dnd4eXp7fH0="),
        (Array("0123456789abcdefghij".utf8), "token-4", "aWo="),
        ([UInt8](), "test-access-token", ""),
    ])
    func emulatorProofCheckAcceptsTheVectorsAndRejectsOthers(content: [UInt8], token: String, proof: String) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("adrivefs-proof-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let state = EmulatorState(dataDirectory: directory)
        _ = try state.load()
        let key = try state.storeBytes(content)
        #expect(try state.verifyProof(proof, key: key, accessToken: token))
        #expect(try !state.verifyProof(proof + "x", key: key, accessToken: token))
    }
}
