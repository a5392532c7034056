import Foundation
import Logging

/// Owns the refresh token, the current access token and the device session.
///
/// Refreshes are single-flight: concurrent callers share one `/v2/account/token` call.
/// The rotated refresh token is persisted (atomically, 0600) *before* the new access token
/// is handed out, so a crash can never leave only a dead token on disk.
actor TokenManager {
    struct Access: Sendable {
        var token: String
        var userID: String
        var device: DeviceIdentity?
    }

    struct Account: Sendable {
        var userID: String
        var defaultDriveID: String
    }

    private let tokenFile: String?
    private let stateDirectory: String
    private let refreshMargin: Double
    private let logger: Logger
    private var refreshToken: String
    private var accessToken: String?
    private var expiresAt: Double = 0
    private(set) var account: Account?
    private var device: DeviceIdentity?
    private var sessionReady = false
    private var refreshTask: Task<Void, any Error>?
    private var sessionTask: Task<Void, any Error>?
    /// Performs the token call: (refresh token) → response object. Set by the client.
    private let refresher: @Sendable (String) async throws -> [String: any Sendable]
    private let now: @Sendable () -> Double
    private let sessionCreator: @Sendable (Access, String) async throws -> Void

    init(
        refreshToken: String, tokenFile: String?, stateDirectory: String, refreshMargin: Double = 300,
        now: @escaping @Sendable () -> Double = SystemTime.now, logger: Logger,
        refresher: @escaping @Sendable (String) async throws -> [String: any Sendable],
        sessionCreator: @escaping @Sendable (Access, String) async throws -> Void
    ) {
        self.refreshToken = refreshToken
        self.tokenFile = tokenFile
        self.stateDirectory = stateDirectory
        self.refreshMargin = refreshMargin
        self.now = now
        self.logger = logger
        self.refresher = refresher
        self.sessionCreator = sessionCreator
    }

    /// A usable access token (refreshing first when missing or about to expire) with the
    /// device identity; creates the device session once per token.
    func access(withSession: Bool = true) async throws -> Access {
        if accessToken == nil || now() > expiresAt - refreshMargin {
            try await refresh()
        }
        if withSession && !sessionReady { try await createSession() }
        guard let token = accessToken, let account else { throw DriveError(.invalidState, "no access token after refresh") }
        return Access(token: token, userID: account.userID, device: device)
    }

    /// Forgets `token` if it is still the current one, so the next call refreshes.
    func invalidate(_ token: String) {
        if accessToken == token {
            accessToken = nil
            logger.info("access token rejected; refreshing")
        }
    }

    /// Forces a new device session on the next call.
    func invalidateSession() { sessionReady = false }

    /// Refreshes now (single-flight).
    func refresh() async throws {
        if let refreshTask { return try await refreshTask.value }
        let task = Task { try await self.performRefresh() }
        refreshTask = task
        defer { refreshTask = nil }
        try await task.value
    }

    private func performRefresh() async throws {
        let response = try await refresher(refreshToken)
        guard let access = response["access_token"] as? String, let rotated = response["refresh_token"] as? String,
            let userID = response["user_id"] as? String
        else {
            throw DriveError(.protocolViolation, "the token response lacks access_token, refresh_token or user_id")
        }
        let lifetime = (response["expires_in"] as? Int).map(Double.init) ?? 7200
        if let tokenFile {
            try SecretFile.write(Data((rotated + "\n").utf8), to: tokenFile)
        }
        refreshToken = rotated
        accessToken = access
        expiresAt = now() + lifetime
        let previousUser = account?.userID
        account = Account(userID: userID, defaultDriveID: response["default_drive_id"] as? String ?? "")
        if previousUser != userID || device == nil {
            device = try DeviceIdentity.loadOrCreate(directory: stateDirectory, userID: userID)
            sessionReady = false
        }
        logger.debug("access token refreshed; valid for \(Int(lifetime)) s")
    }

    private func createSession() async throws {
        if let sessionTask { return try await sessionTask.value }
        guard let token = accessToken, let account else { return }
        let access = Access(token: token, userID: account.userID, device: device)
        let current = refreshToken
        let task = Task { try await self.sessionCreator(access, current) }
        sessionTask = task
        defer { sessionTask = nil }
        try await task.value
        sessionReady = true
    }
}
