public import DriveEmulator
import Foundation
public import HTTPTransport

/// A JSON object as the tests read and write it.
public typealias JSON = [String: Any]

/// A running emulator plus a logged-in client session (refresh token exchanged, device
/// session created), speaking the real protocol through `CurlHTTPClient`.
///
/// Each test makes its own: nothing is shared between tests.
public final class TestDrive: @unchecked Sendable {
    public let emulator: DriveEmulator
    public let http: CurlHTTPClient
    public let base: String
    public private(set) var accessToken = ""
    public private(set) var refreshToken = ""
    public private(set) var driveID = ""
    public private(set) var resourceDriveID = ""
    public private(set) var userID = ""
    public let deviceID = "adrivefs-test-device"
    /// A well-formed x-signature (130 hex characters).
    public let signature = String(repeating: "ab", count: 64) + "01"

    public init(seed: EmulatorSeed = .none, dataDirectory: String? = nil, login: Bool = true) async throws {
        emulator = try DriveEmulator(configuration: .init(dataDirectory: dataDirectory, seed: seed))
        base = try await emulator.start()
        http = try CurlHTTPClient()
        refreshToken = emulator.refreshToken
        if login { try await self.login() }
    }

    /// Exchanges the refresh token and registers the device session.
    public func login() async throws {
        let (status, token) = try await post("/v2/account/token", ["grant_type": "refresh_token", "refresh_token": refreshToken], auth: false)
        guard status == 200, let access = token["access_token"] as? String, let refresh = token["refresh_token"] as? String else {
            throw TestDriveError("token refresh failed: \(status) \(token)")
        }
        accessToken = access
        refreshToken = refresh
        driveID = token["default_drive_id"] as? String ?? ""
        userID = token["user_id"] as? String ?? ""
        let (sessionStatus, _) = try await post(
            "/users/v1/users/device/create_session",
            ["deviceName": "test", "modelName": "swift", "pubKey": "04" + String(repeating: "cd", count: 64), "nonce": 0],
            device: true)
        guard sessionStatus == 200 else { throw TestDriveError("create_session failed: \(sessionStatus)") }
        let (_, user) = try await post("/v2/user/get", [:])
        resourceDriveID = user["resource_drive_id"] as? String ?? ""
    }

    public func stop() async {
        http.shutdown()
        await emulator.stop()
    }

    // MARK: - Requests

    /// POSTs a JSON body; returns the status and the decoded JSON object (empty if none).
    @discardableResult
    public func post(
        _ path: String, _ body: JSON, auth: Bool = true, device: Bool = true, headers extra: [String: String] = [:]
    ) async throws -> (Int, JSON) {
        let response = try await postRaw(path, body, auth: auth, device: device, headers: extra)
        return (response.status, Self.object(response.body))
    }

    public func postRaw(
        _ path: String, _ body: JSON, auth: Bool = true, device: Bool = true, headers extra: [String: String] = [:]
    ) async throws -> HTTPResponse {
        var headers: HTTPHeaders = ["Content-Type": "application/json"]
        if auth { headers["Authorization"] = "Bearer \(accessToken)" }
        if auth && device {
            headers["x-device-id"] = deviceID
            headers["x-signature"] = signature
        }
        for (name, value) in extra { headers[name] = value }
        let data = try JSONSerialization.data(withJSONObject: body)
        return try await http.execute(HTTPRequest(method: "POST", url: base + path, headers: headers, body: .bytes(Array(data))))
    }

    public func get(_ url: String, headers: HTTPHeaders = [:]) async throws -> HTTPResponse {
        try await http.execute(HTTPRequest(url: url.hasPrefix("http") ? url : base + url, headers: headers))
    }

    /// Test hooks: `POST /__emulator/<path>`.
    @discardableResult
    public func hook(_ path: String, _ body: JSON = [:]) async throws -> JSON {
        let data = try JSONSerialization.data(withJSONObject: body)
        let response = try await http.execute(HTTPRequest(method: "POST", url: base + "/__emulator/" + path, body: .bytes(Array(data))))
        return Self.object(response.body)
    }

    public func stats() async throws -> JSON {
        Self.object(try await get("/__emulator/stats").body)
    }

    public func requestCount(_ path: String) async throws -> Int {
        ((try await stats())["requests"] as? [String: Any])?[path] as? Int ?? 0
    }

    public static func object(_ bytes: [UInt8]) -> JSON {
        guard !bytes.isEmpty else { return [:] }
        return ((try? JSONSerialization.jsonObject(with: Data(bytes))) as? JSON) ?? [:]
    }

    // MARK: - Content helpers

    /// Creates a folder with `check_name_mode: refuse`; returns its id.
    public func mkdir(_ name: String, in parent: String = "root") async throws -> String {
        let (status, body) = try await post(
            "/adrive/v2/file/createWithFolders",
            ["drive_id": driveID, "parent_file_id": parent, "name": name, "type": "folder", "check_name_mode": "refuse"])
        guard status == 201, let id = body["file_id"] as? String else { throw TestDriveError("mkdir failed: \(status) \(body)") }
        return id
    }

    /// Uploads bytes with a plain (non-rapid) multipart upload of `partSize` parts; returns
    /// the completed file object.
    @discardableResult
    public func upload(
        _ name: String, _ content: [UInt8], in parent: String = "root", partSize: Int = 10 << 20, checkNameMode: String = "ignore"
    ) async throws -> JSON {
        let parts = max(1, (content.count + partSize - 1) / partSize)
        let (status, created) = try await post(
            "/adrive/v2/file/createWithFolders",
            [
                "drive_id": driveID, "parent_file_id": parent, "name": name, "type": "file", "size": content.count,
                "check_name_mode": checkNameMode, "part_info_list": (1...parts).map { ["part_number": $0] },
            ])
        guard status == 201, let fileID = created["file_id"] as? String, let uploadID = created["upload_id"] as? String,
            let partList = created["part_info_list"] as? [JSON]
        else { throw TestDriveError("create failed: \(status) \(created)") }
        for (index, part) in partList.enumerated() {
            let slice = Array(content[min(content.count, index * partSize)..<min(content.count, (index + 1) * partSize)])
            let response = try await putPart(part["upload_url"] as? String ?? "", slice)
            guard response.status == 200 else { throw TestDriveError("part \(index + 1) failed: \(response.status) \(response.text)") }
        }
        let (completeStatus, file) = try await post("/v2/file/complete", ["drive_id": driveID, "file_id": fileID, "upload_id": uploadID])
        guard completeStatus == 200 else { throw TestDriveError("complete failed: \(completeStatus) \(file)") }
        return file
    }

    /// PUTs a part body with an explicitly empty Content-Type, as OSS requires.
    public func putPart(_ url: String, _ bytes: [UInt8], contentType: String = "") async throws -> HTTPResponse {
        try await http.execute(HTTPRequest(method: "PUT", url: url, headers: ["Content-Type": contentType], body: .bytes(bytes)))
    }

    public func downloadURL(_ fileID: String, expireSeconds: Int? = nil) async throws -> String {
        var body: JSON = ["drive_id": driveID, "file_id": fileID]
        if let expireSeconds { body["expire_sec"] = expireSeconds }
        let (status, object) = try await post("/v2/file/get_download_url", body)
        guard status == 200, let url = object["url"] as? String else { throw TestDriveError("get_download_url: \(status) \(object)") }
        return url
    }

    /// Lists a folder completely (following markers); returns items and the page count.
    public func listAll(_ parent: String = "root", limit: Int = 200, extra: JSON = [:]) async throws -> ([JSON], Int) {
        var items: [JSON] = []
        var marker = ""
        var pages = 0
        repeat {
            var body: JSON = ["drive_id": driveID, "parent_file_id": parent, "limit": limit, "marker": marker]
            for (key, value) in extra { body[key] = value }
            let (status, page) = try await post("/adrive/v3/file/list", body)
            guard status == 200 else { throw TestDriveError("list failed: \(status) \(page)") }
            items += page["items"] as? [JSON] ?? []
            marker = page["next_marker"] as? String ?? ""
            pages += 1
        } while !marker.isEmpty && pages < 10_000
        return (items, pages)
    }
}

public struct TestDriveError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Deterministic test content.
public func testBytes(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    return (0..<count).map { _ in
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return UInt8(truncatingIfNeeded: state)
    }
}

/// Runs `body` with a fresh emulator and logged-in session, and always stops both.
public func withTestDrive(
    seed: EmulatorSeed = .none, dataDirectory: String? = nil, login: Bool = true, _ body: (TestDrive) async throws -> Void
) async throws {
    let drive = try await TestDrive(seed: seed, dataDirectory: dataDirectory, login: login)
    do {
        try await body(drive)
    } catch {
        await drive.stop()
        throw error
    }
    await drive.stop()
}
