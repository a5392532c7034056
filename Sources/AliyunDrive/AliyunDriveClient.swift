import Foundation
public import HTTPTransport
import Logging
import Synchronization

/// The Aliyun Drive API client: tokens, device session, retries, listings, download
/// links and ranged reads. Knows JSON and HTTP, not FUSE. Safe for concurrent use.
public final class AliyunDriveClient: Sendable {
    public struct Configuration: Sendable {
        /// API base URL; every host of the service is reached through it.
        public var endpoint: String
        /// Where rotated refresh tokens are persisted (nil: keep them in memory only).
        public var tokenFile: String?
        /// Per-user state: device identities.
        public var stateDirectory: String
        public var drive: DriveKind
        /// Attempts per request for throttling, 5xx and connection errors.
        public var maxAttempts: Int
        /// First backoff delay; doubles per attempt (with jitter), capped at `maxBackoff`.
        public var baseBackoff: Duration
        public var maxBackoff: Duration
        /// Stall limit for API calls and data transfers.
        public var stallTimeout: Duration
        /// The clock for token and download-link expiry, and rate limits (tests pass their own).
        public var now: @Sendable () -> Double

        public init(
            endpoint: String, tokenFile: String?, stateDirectory: String, drive: DriveKind = .default, maxAttempts: Int = 6,
            baseBackoff: Duration = .milliseconds(200), maxBackoff: Duration = .seconds(5), stallTimeout: Duration = .seconds(20),
            now: @escaping @Sendable () -> Double = SystemTime.now
        ) {
            self.now = now
            self.endpoint = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
            self.tokenFile = tokenFile
            self.stateDirectory = stateDirectory
            self.drive = drive
            self.maxAttempts = max(1, maxAttempts)
            self.baseBackoff = baseBackoff
            self.maxBackoff = maxBackoff
            self.stallTimeout = stallTimeout
        }
    }

    let configuration: Configuration
    let http: any HTTPClient
    let tokens: TokenManager
    let limiter: RateLimiter
    let logger = Logger(label: "adrivefs.api")
    private let links = Mutex<[String: DownloadLink]>([:])
    /// Concurrent requests for the same download link or file share one call.
    private let linkFlights = SingleFlight<String, DownloadLink>()
    private let itemFlights = SingleFlight<String, DriveItem>()
    private let driveIDs = Mutex<(selected: String, resource: String, backup: String)>(("", "", ""))
    private let user = Mutex("")
    private let profile = Mutex<Account?>(nil)
    /// API calls sent, and answers that said to slow down (429, ParamFlowException).
    let counters = Mutex((calls: 0, throttled: 0))

    public var callCounts: (calls: Int, throttled: Int) { counters.withLock { $0 } }

    /// Who is logged in and which drives the account has (from `/v2/user/get`).
    public struct Account: Sendable, Equatable {
        public var userID: String
        public var nickName: String
        public var defaultDriveID: String
        public var resourceDriveID: String
        public var backupDriveID: String
    }

    public init(configuration: Configuration, http: any HTTPClient, refreshToken: String, limiter: RateLimiter? = nil) {
        self.configuration = configuration
        self.http = http
        self.limiter = limiter ?? RateLimiter(
            now: configuration.now, sleep: { seconds in try await Task.sleep(for: .milliseconds(Int(seconds * 1000) + 1)) })
        let endpoint = configuration.endpoint
        let stall = configuration.stallTimeout
        let logger = Logger(label: "adrivefs.api")
        let refresher: @Sendable (String) async throws -> [String: any Sendable] = { token in
            try await Self.refreshCall(http: http, endpoint: endpoint, refreshToken: token, stall: stall, attempts: configuration.maxAttempts)
        }
        tokens = TokenManager(
            refreshToken: refreshToken, tokenFile: configuration.tokenFile, stateDirectory: configuration.stateDirectory,
            now: configuration.now, logger: logger, refresher: refresher,
            sessionCreator: { access, refreshToken in
                try await Self.createSessionCall(http: http, endpoint: endpoint, access: access, refreshToken: refreshToken, stall: stall)
            })
    }

    /// Logs in (refresh + device session) and resolves the drive to mount. Fails fast with
    /// `.authentication` for a rejected token and `.unreachable` for a dead endpoint.
    public func start() async throws {
        try await tokens.refresh()
        let user = try await call("/v2/user/get", [:])
        let backup = user["backup_drive_id"] as? String ?? user["default_drive_id"] as? String ?? ""
        let resource = user["resource_drive_id"] as? String ?? ""
        let selected: String
        switch configuration.drive {
        case .default: selected = user["default_drive_id"] as? String ?? backup
        case .backup: selected = backup
        case .resource: selected = resource
        }
        guard !selected.isEmpty else { throw DriveError(.protocolViolation, "the account has no \(configuration.drive.rawValue) drive") }
        guard let userID = user["user_id"] as? String, !userID.isEmpty else { throw DriveError(.protocolViolation, "/v2/user/get returned no user_id") }
        driveIDs.withLock { $0 = (selected, resource, backup) }
        self.user.withLock { $0 = userID }
        let nick = (user["nick_name"] as? String).flatMap { $0.isEmpty ? nil : $0 } ?? user["user_name"] as? String ?? ""
        profile.withLock {
            $0 = Account(
                userID: userID, nickName: nick, defaultDriveID: user["default_drive_id"] as? String ?? backup, resourceDriveID: resource,
                backupDriveID: backup)
        }
    }

    /// The account, once `start()` returned.
    public var account: Account? { profile.withLock { $0 } }

    /// The drive being served.
    public var driveID: String { driveIDs.withLock { $0.selected } }

    /// The account logged in (`user_id`), once `start()` returned.
    public var userID: String { user.withLock { $0 } }

    /// The API base URL every call goes to.
    public var endpoint: String { configuration.endpoint }

    // MARK: - Metadata

    /// Every entry of a folder (all pages, 200 per call).
    /// Every entry of a folder, 200 per page. Each page's request goes out as soon as the
    /// answer before it names its marker (found by `ListingPage.nextMarker(in:)` before
    /// that answer is decoded), so decoding overlaps the next round trip; a decoded marker
    /// that disagrees with the early one (never seen) re-requests with the decoded one.
    public func list(folderID: String) async throws -> [DriveItem] {
        let fetch: @Sendable (String) async throws -> [UInt8] = { marker in
            try await self.callForBytes(
                "/adrive/v3/file/list",
                ["drive_id": self.driveID, "parent_file_id": folderID, "limit": 200, "marker": marker, "order_by": "name", "order_direction": "ASC",
                 "fields": "*"])
        }
        var items: [DriveItem] = []
        var next: (marker: String, page: Task<[UInt8], any Error>)? = nil
        defer { next?.page.cancel() }
        var marker = ""
        repeat {
            let bytes: [UInt8]
            if let ahead = next, ahead.marker == marker {
                next = nil
                bytes = try await withTaskCancellationHandler { try await ahead.page.value } onCancel: { ahead.page.cancel() }
            } else {
                next?.page.cancel()
                next = nil
                bytes = try await fetch(marker)
            }
            if let early = ListingPage.nextMarker(in: bytes), !early.isEmpty {
                next = (early, Task { try await fetch(early) })
            }
            let page: ListingPage
            do {
                page = try JSONDecoder().decode(ListingPage.self, from: Data(bytes))
            } catch {
                throw DriveError(.protocolViolation, "malformed listing page: \(error)")
            }
            items += page.items.compactMap(\.item)
            marker = page.nextMarker ?? ""
        } while !marker.isEmpty
        return items
    }

    public func item(fileID: String) async throws -> DriveItem {
        try await itemFlights.run(fileID) {
            let object = try await self.call("/v2/file/get", ["drive_id": self.driveID, "file_id": fileID])
            guard let item = DriveItem(json: object) else { throw DriveError(.protocolViolation, "malformed file object") }
            return item
        }
    }

    public func space() async throws -> SpaceInfo {
        let info = try await call("/v2/databox/get_personal_info", [:])
        let space = info["personal_space_info"] as? [String: Any] ?? [:]
        return SpaceInfo(
            used: (space["used_size"] as? NSNumber)?.int64Value ?? 0, total: (space["total_size"] as? NSNumber)?.int64Value ?? 0)
    }

    // MARK: - Downloads

    /// A download link for the file, cached until a minute before it expires.
    /// Concurrent callers share one `get_download_url` call.
    public func downloadLink(fileID: String) async throws -> DownloadLink {
        let now = configuration.now()
        if let cached = links.withLock({ $0[fileID] }), cached.expiresAt - now > 60 { return cached }
        return try await linkFlights.run(fileID) { try await self.fetchLink(fileID: fileID) }
    }

    private func fetchLink(fileID: String) async throws -> DownloadLink {
        let now = configuration.now()
        let object = try await call("/v2/file/get_download_url", ["drive_id": driveID, "file_id": fileID, "expire_sec": 14_400])
        guard let link = Self.link(from: object, now: now) else {
            throw DriveError(.protocolViolation, "get_download_url returned no url")
        }
        links.withLock { $0[fileID] = link }
        return link
    }

    /// A link from a `get_download_url` answer; nil without a url.
    static func link(from object: [String: Any], now: Double) -> DownloadLink? {
        guard let url = object["url"] as? String, !url.isEmpty else { return nil }
        let expires = URLComponents(string: url)?.queryItems?.first { $0.name == "x-oss-expires" }?.value.flatMap(Double.init)
            ?? parseISO8601(object["expiration"] as? String)
        let referer = url.contains("x-oss-additional-headers=referer") ? "https://www.aliyundrive.com/" : nil
        let hash = (object["content_hash"] as? String).flatMap { $0.isEmpty ? nil : $0.uppercased() }
        return DownloadLink(url: url, expiresAt: expires > 0 ? expires : now + 600, referer: referer, contentHash: hash)
    }

    /// When the first of `fileIDs` has no cached download link, fetches in one batch call
    /// (≤ 100 sub-requests, as aligo's `batch_download_url`) the links of those of them that
    /// have none, so that opening them next costs no call — one call per window of files,
    /// not one per file. Failures are ignored: a later read asks for its link alone.
    public func prefetchDownloadLinks(fileIDs: [String]) async {
        let now = configuration.now()
        let wanted = Array(links.withLock { links in fileIDs.filter { (links[$0]?.expiresAt ?? 0) - now <= 60 } }.prefix(100))
        guard wanted.count > 1, wanted.first == fileIDs.first else { return }
        let requests: [[String: any Sendable]] = wanted.map { fileID in
            [
                "id": fileID, "method": "POST", "url": "/file/get_download_url", "headers": ["Content-Type": "application/json"],
                "body": ["drive_id": driveID, "file_id": fileID, "expire_sec": 14_400] as [String: any Sendable],
            ]
        }
        guard let object = try? await call("/adrive/v4/batch", ["resource": "file", "requests": requests]) else { return }
        for response in object["responses"] as? [[String: Any]] ?? [] {
            guard let fileID = response["id"] as? String, (response["status"] as? NSNumber)?.intValue == 200,
                let body = response["body"] as? [String: Any], let link = Self.link(from: body, now: now)
            else { continue }
            links.withLock { $0[fileID] = link }
        }
    }

    /// The SHA-1 of the content the file's download URL serves (the cached link's), so a
    /// cache keyed by content hash can check what it stores; nil when the server does not say.
    public func servedContentHash(fileID: String) async throws -> String? {
        try await downloadLink(fileID: fileID).contentHash
    }

    /// Drops a cached link (after a 403 or a content change).
    public func forgetLink(fileID: String) { _ = links.withLock { $0.removeValue(forKey: fileID) } }

    /// Reads `length` bytes at `offset` (fewer at the end of the file) into memory.
    public func read(fileID: String, offset: Int64, length: Int) async throws -> [UInt8] {
        let collected = Mutex<[UInt8]>([])
        collected.withLock { $0.reserveCapacity(max(0, length)) }
        try await read(fileID: fileID, offset: offset, length: length) { chunk in
            collected.withLock { $0.append(contentsOf: chunk.bindMemory(to: UInt8.self)) }
        }
        return collected.withLock { $0 }
    }

    /// Streams `length` bytes at `offset` (fewer at the end of the file) to `sink` in order,
    /// as they arrive, on the transport's thread. Renews an expired URL and retries
    /// throttling and broken connections with backoff, resuming after the bytes already
    /// delivered, so `sink` sees every byte exactly once.
    public func read(
        fileID: String, offset: Int64, length: Int, into sink: @escaping @Sendable (UnsafeRawBufferPointer) -> Void
    ) async throws {
        try await read(
            offset: offset, length: length, into: sink, label: fileID, link: { try await self.downloadLink(fileID: fileID) },
            forget: { self.forgetLink(fileID: fileID) })
    }

    /// The ranged read behind `read(fileID:…)`, on whatever download link `link` hands out
    /// (`forget` drops it after a 403, so the next `link` is fresh).
    func read(
        offset: Int64, length: Int, into sink: @escaping @Sendable (UnsafeRawBufferPointer) -> Void, label fileID: String,
        link: @Sendable () async throws -> DownloadLink, forget: @Sendable () -> Void
    ) async throws {
        guard length > 0 else { return }
        let progress = RangeProgress(length: length, sink: sink)
        var renewed = false
        var attempt = 0
        while progress.delivered < length {
            attempt += 1
            let link = try await link()
            let start = offset + Int64(progress.delivered)
            var request = HTTPRequest(url: link.url, timeouts: .init(connect: .seconds(10), stallTime: configuration.stallTimeout))
            request.setRange(start...(offset + Int64(length) - 1))
            if let referer = link.referer { request.headers["Referer"] = referer }
            progress.begin(skipping: start)
            let response: HTTPResponse
            do {
                response = try await http.stream(request) { status, chunk in
                    guard progress.receive(status: status, chunk) else { throw RangeProgress.Complete() }
                }
            } catch is RangeProgress.Complete {
                return
            } catch let error as HTTPTransportError where !error.isCancelled && attempt < configuration.maxAttempts {
                logger.debug("range read of \(fileID) failed (\(error.code)) after \(progress.delivered) bytes; retrying")
                if progress.madeProgress { attempt = 0 }  // a dropped connection that delivered something resumes afresh
                try await backoff(attempt: max(attempt, 1), retryAfter: nil)
                continue
            } catch let error as HTTPTransportError {
                throw error.isCancelled ? DriveError(.cancelled, "read cancelled") : DriveError(.unreachable, "data server unreachable: \(error)")
            }
            switch response.status {
            case 200, 206, 416:
                // A complete response that ended short: the file ends there.
                return
            case 403 where !renewed:
                // Expired (or otherwise refused) URL: renew once and retry the same range.
                renewed = true
                forget()
                logger.debug("download URL refused (\(Self.ossCode(response))); renewing")
            case 429 where attempt < configuration.maxAttempts, 500...599 where attempt < configuration.maxAttempts:
                try await backoff(attempt: attempt, retryAfter: Self.retryAfter(response))
            default:
                throw DriveError(.service, "data server answered HTTP \(response.status) \(Self.ossCode(response))", status: response.status, code: Self.ossCode(response))
            }
        }
    }

    static func ossCode(_ response: HTTPResponse) -> String {
        let text = response.text
        guard let start = text.range(of: "<Code>"), let end = text.range(of: "</Code>"), start.upperBound <= end.lowerBound else { return "" }
        return String(text[start.upperBound..<end.lowerBound])
    }
}
