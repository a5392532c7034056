import Foundation
public import HTTPTransport
import Logging
import Synchronization

/// One public share link (aliyun-api.md §10): its anonymous info, its share token (renewed
/// before it expires and when the service says it is stale, single-flight), listings, and —
/// with the user's own login (`owner`) — the two ways to its content: the legacy direct
/// link, and a server-side copy into the user's drive. Never logs the password or a token.
public final class ShareClient: Sendable {
    public struct Info: Sendable, Equatable {
        public var title: String
        public var hasPassword: Bool
        public var fileCount: Int
        public var creator: String
    }

    public let shareID: String
    /// The user's login, for content; nil: the share lists but cannot be read.
    public let owner: AliyunDriveClient?
    private let password: String
    private let endpoint: String
    private let http: any HTTPClient
    private let limiter: RateLimiter
    private let attempts: Int
    /// The clock for the share token's renewal and link expiry.
    private let now: @Sendable () -> Double
    private let stall: Duration
    private let logger = Logger(label: "adrivefs.share")
    private let token = Mutex<(value: String, renewAt: Double)?>(nil)
    private let tokenFlight = SingleFlight<Int, String>()
    /// The sharer's drive, as the listings say (the legacy link needs it).
    private let sharerDrive = Mutex("")

    /// Share calls have buckets of their own, at the rates public clients keep to (list
    /// ~4/s, links ~1/s): beyond them the service answers `ParamFlowException`.
    public static let limits: [RateLimiter.Kind: RateLimiter.Limit] = [
        .list: .init(rate: 4, burst: 8), .downloadURL: .init(rate: 1, burst: 2), .other: .init(rate: 15, burst: 30),
    ]

    static let canary = "client=web,app=share,version=v2.3.1"

    public init(
        shareID: String, password: String, endpoint: String, http: any HTTPClient, owner: AliyunDriveClient?, limiter: RateLimiter? = nil,
        attempts: Int = 6, stall: Duration = .seconds(20), now: @escaping @Sendable () -> Double = SystemTime.now
    ) {
        self.now = now
        self.shareID = shareID
        self.password = password
        self.endpoint = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
        self.http = http
        self.owner = owner
        self.limiter = limiter ?? RateLimiter(
            limits: Self.limits, now: now,
            sleep: { seconds in try await Task.sleep(for: .milliseconds(Int(seconds * 1000) + 1)) })
        self.attempts = max(1, attempts)
        self.stall = stall
    }

    /// The share's public info, then a share token (which checks the password). Errors say
    /// which of: no such share, cancelled, expired, forbidden, wrong or missing password.
    public func start() async throws -> Info {
        let object = try await anonymous("/adrive/v3/share_link/get_share_by_anonymous?share_id=\(shareID)", ["share_id": shareID])
        let info = Info(
            title: object["share_title"] as? String ?? object["share_name"] as? String ?? shareID,
            hasPassword: object["has_pwd"] as? Bool ?? false, fileCount: (object["file_count"] as? NSNumber)?.intValue ?? 0,
            creator: object["creator_name"] as? String ?? "")
        _ = try await currentToken()
        return info
    }

    // MARK: - Token

    /// The share token, fetched or renewed when it is within 5 minutes of expiring.
    func currentToken() async throws -> String {
        let current = now()
        if let cached = token.withLock({ $0 }), cached.renewAt > current { return cached.value }
        return try await renewToken()
    }

    private func renewToken() async throws -> String {
        try await tokenFlight.run(0) {
            let object = try await self.anonymous("/v2/share_link/get_share_token", ["share_id": self.shareID, "share_pwd": self.password], withToken: false)
            guard let value = object["share_token"] as? String, !value.isEmpty else {
                throw DriveError(.protocolViolation, "get_share_token returned no token")
            }
            let lifetime = (object["expires_in"] as? NSNumber)?.doubleValue ?? 7200
            self.token.withLock { $0 = (value, self.now() + max(30, lifetime - 300)) }
            return value
        }
    }

    /// Forgets `stale` (unless a newer one came meanwhile), so the next call fetches one.
    private func invalidate(_ stale: String) {
        token.withLock { current in
            if current?.value == stale { current = nil }
        }
    }

    /// The service's word that a share token is expired or belongs to another share.
    static func isStaleToken(_ error: DriveError) -> Bool {
        error.code == "ShareLinkTokenInvalid" || error.code.hasPrefix("InvalidParameterNotMatch")
            || error.message.contains("share_id doesn't match") || error.message.contains("ShareLinkToken is invalid")
    }

    // MARK: - Listing

    /// Every entry of a shared folder (`root`: the share's top level), 200 per page.
    public func list(folderID: String) async throws -> [DriveItem] {
        var items: [DriveItem] = []
        var marker = ""
        repeat {
            let page = try await anonymous(
                "/adrive/v3/file/list",
                ["share_id": shareID, "parent_file_id": folderID, "limit": 200, "marker": marker, "order_by": "name", "order_direction": "ASC"])
            for object in page["items"] as? [[String: Any]] ?? [] {
                if let drive = object["drive_id"] as? String, !drive.isEmpty { sharerDrive.withLock { $0 = drive } }
                if let item = DriveItem(json: object) { items.append(item) }
            }
            marker = page["next_marker"] as? String ?? ""
        } while !marker.isEmpty
        return items
    }

    public func item(fileID: String) async throws -> DriveItem {
        let object = try await anonymous("/adrive/v2/file/get_by_share", ["share_id": shareID, "file_id": fileID])
        if let drive = object["drive_id"] as? String, !drive.isEmpty { sharerDrive.withLock { $0 = drive } }
        guard let item = DriveItem(json: object) else { throw DriveError(.protocolViolation, "malformed file object") }
        return item
    }

    // MARK: - Content (needs the user's login)

    /// The legacy direct link of a shared file (`get_share_link_download_url`, ≤ 600 s).
    /// The service has refused it since 2024; callers probe it once per mount (`attempts`
    /// bounds the tries through `ParamFlowException`).
    public func legacyLink(fileID: String, attempts: Int? = nil) async throws -> DownloadLink {
        let owner = try requireOwner()
        let drive = sharerDrive.withLock { $0 }
        let object = try await authenticated(owner, "/v2/file/get_share_link_download_url", attempts: attempts) { _ in
            ["drive_id": drive, "file_id": fileID, "share_id": self.shareID, "expire_sec": 600]
        }
        guard let url = (object["url"] as? String).flatMap({ $0.isEmpty ? nil : $0 }) ?? object["download_url"] as? String, !url.isEmpty else {
            throw DriveError(.protocolViolation, "get_share_link_download_url returned no url")
        }
        let expires = URLComponents(string: url)?.queryItems?.first { $0.name == "x-oss-expires" }?.value.flatMap(Double.init)
        return DownloadLink(url: url, expiresAt: expires ?? now() + 500, referer: "https://www.alipan.com/", contentHash: nil)
    }

    /// Streams a byte range of a shared file through `link` (a legacy link).
    public func read(
        offset: Int64, length: Int, into sink: @escaping @Sendable (UnsafeRawBufferPointer) -> Void, fileID: String,
        link: @escaping @Sendable () async throws -> DownloadLink, forget: @escaping @Sendable () -> Void
    ) async throws {
        try await requireOwner().read(offset: offset, length: length, into: sink, label: fileID, link: link, forget: forget)
    }

    /// Copies a shared file (or folder) server-side into `parentID` of the user's drive
    /// (batch `/file/copy` with the share token: no byte moves) and returns the new file id.
    /// A folder copy that runs as an async task is waited for.
    public func copy(fileID: String, toParentID parentID: String, name: String? = nil) async throws -> String {
        let (copyID, task) = try await startCopy(fileID: fileID, toParentID: parentID, name: name)
        try await waitForCopy(task, progress: nil)
        return copyID
    }

    /// Saves a shared file or folder into `parentID` of the user's drive under `name`
    /// (转存, aliyun-api.md §10.8): copied server-side under a temporary name — so the copy
    /// cannot meet an entry of that name, whatever the service would do then — and renamed
    /// beside whatever has the name (the caller trashes a version it replaces). No byte
    /// moves. A copy that does not complete or cannot take its name is deleted: nothing
    /// half-saved stays. `progress` hears a folder copy's polls.
    public func save(
        fileID: String, toParentID parentID: String, name: String, progress: (@Sendable (TaskProgress) -> Void)? = nil
    ) async throws -> DriveItem {
        let owner = try requireOwner()
        let temporary = Self.savingPrefix + UUID().uuidString.prefix(8).lowercased()
        let (copyID, task) = try await startCopy(fileID: fileID, toParentID: parentID, name: temporary)
        do {
            try await waitForCopy(task, progress: progress)
            return try await owner.rename(fileID: copyID, to: name, beside: true)
        } catch {
            // Also when cancelled (an interrupted cp): the cleanup is not.
            let logger = logger
            await Task.detached {
                do {
                    try await owner.deletePermanently(fileID: copyID)
                } catch {
                    logger.warning("could not delete the unfinished copy \(copyID) (\(temporary)): \(error)")
                }
            }.value
            throw error
        }
    }

    /// What a save's copy is named until it takes its own name.
    public static let savingPrefix = ".adrivefs-saving-"

    private func startCopy(fileID: String, toParentID parentID: String, name: String?) async throws -> (copyID: String, task: String?) {
        let owner = try requireOwner()
        let drive = owner.driveID
        let object = try await authenticated(owner, "/adrive/v4/batch") { _ in
            var body: [String: any Sendable] = [
                "share_id": self.shareID, "file_id": fileID, "to_drive_id": drive, "to_parent_file_id": parentID, "auto_rename": true,
            ]
            if let name { body["new_name"] = name }
            return [
                "resource": "file",
                "requests": [["id": "0", "method": "POST", "url": "/file/copy", "headers": ["Content-Type": "application/json"], "body": body] as [String: any Sendable]],
            ]
        } check: { object in _ = try Self.batchItem(object) }
        let item = try Self.batchItem(object)
        guard let newID = item["file_id"] as? String, !newID.isEmpty else { throw DriveError(.protocolViolation, "copy returned no file_id") }
        return (newID, (item["async_task_id"] as? String).flatMap { $0.isEmpty ? nil : $0 })
    }

    private func waitForCopy(_ task: String?, progress: (@Sendable (TaskProgress) -> Void)?) async throws {
        guard let task else { return }
        try await requireOwner().waitForTask(task, extraHeaders: ["x-share-token": try await currentToken()], progress: progress)
    }

    /// The one sub-response of a batch call, or the service's error in it.
    static func batchItem(_ object: [String: Any]) throws -> [String: Any] {
        guard let first = (object["responses"] as? [[String: Any]])?.first else {
            throw DriveError(.protocolViolation, "batch returned no responses")
        }
        let status = (first["status"] as? NSNumber)?.intValue ?? 0
        let body = first["body"] as? [String: Any] ?? [:]
        guard (200..<300).contains(status) else {
            throw DriveError(.service, body["message"] as? String ?? "HTTP \(status)", status: status, code: body["code"] as? String ?? "")
        }
        return body
    }

    private func requireOwner() throws -> AliyunDriveClient {
        guard let owner else {
            throw DriveError(.authentication, "reading a share needs a logged-in account (adrivefs auth import, or ADRIVEFS_REFRESH_TOKEN)", code: "NoLogin")
        }
        return owner
    }

    // MARK: - Calls

    /// A call with the user's login and the share token; renews a stale token once.
    /// `check` looks inside a 200 answer for errors (batch sub-responses).
    private func authenticated(
        _ owner: AliyunDriveClient, _ path: String, attempts: Int? = nil, body: (String) -> [String: any Sendable],
        check: ([String: Any]) throws -> Void = { _ in }
    ) async throws -> [String: Any] {
        var renewed = false
        while true {
            let current = try await currentToken()
            do {
                let object = try await owner.call(path, body(current), extraHeaders: ["x-share-token": current, "X-Canary": Self.canary], attempts: attempts)
                try check(object)
                return object
            } catch let error as DriveError where Self.isStaleToken(error) && !renewed {
                renewed = true
                invalidate(current)
            }
        }
    }

    /// An anonymous call (no Authorization) on the share's own rate limits, with the share
    /// token unless `withToken` is false; retries throttling (`ParamFlowException`), 5xx and
    /// broken connections with backoff, and a stale token once.
    private func anonymous(_ path: String, _ body: [String: any Sendable], withToken: Bool = true) async throws -> [String: Any] {
        let payload = try AliyunDriveClient.encode(body)
        var attempt = 0
        var renewed = false
        while true {
            attempt += 1
            do {
                try await limiter.acquire(RateLimiter.kind(of: path))
            } catch {
                throw DriveError(.cancelled, "\(path) cancelled")
            }
            var headers: HTTPHeaders = ["Content-Type": "application/json", "X-Canary": Self.canary]
            let current = withToken ? try await currentToken() : ""
            if withToken { headers["x-share-token"] = current }
            let request = HTTPRequest(
                method: "POST", url: endpoint + path, headers: headers, body: .bytes(payload), timeouts: .init(connect: .seconds(10), stallTime: stall))
            let response: HTTPResponse
            do {
                response = try await http.execute(request)
            } catch let error as HTTPTransportError {
                if error.isCancelled { throw DriveError(.cancelled, "\(path) cancelled") }
                guard attempt < attempts else { throw DriveError(.unreachable, "\(endpoint) unreachable: \(error.message)") }
                try await pause(attempt: attempt, hint: nil)
                continue
            }
            if response.isSuccess { return AliyunDriveClient.decode(response.body) }
            let error = AliyunDriveClient.serviceError(response)
            if withToken, Self.isStaleToken(error), !renewed {
                renewed = true
                invalidate(current)
                continue
            }
            if response.status == 429 || response.status >= 500 || error.code == "ParamFlowException", attempt < attempts {
                try await pause(attempt: attempt, hint: AliyunDriveClient.retryAfter(response))
                continue
            }
            throw error
        }
    }

    private func pause(attempt: Int, hint: Duration?) async throws {
        let ceiling = min(Duration.milliseconds(250) * (1 << min(attempt - 1, 6)), .seconds(8))
        do {
            try await Task.sleep(for: hint.map { min($0, .seconds(30)) } ?? ceiling * Double.random(in: 0.5...1.0))
        } catch {
            throw DriveError(.cancelled, "cancelled while backing off")
        }
    }
}
