import Foundation
import HTTPTransport

/// The request path every API call takes: authentication headers, token refresh on 401,
/// device-session renewal, and backoff on throttling, 5xx and connection errors.
extension AliyunDriveClient {
    static let deviceErrorCodes: Set = ["UserDeviceIllegality", "DeviceSessionSignatureInvalid", "UserDeviceOffline"]

    /// POSTs a JSON body to an authenticated endpoint and returns the decoded object.
    /// `extraHeaders` go with it (a share's `x-share-token` for calls on a share).
    /// `attempts`: tries for throttling, 5xx and connection errors (default: the configured).
    func call(_ path: String, _ body: [String: any Sendable], extraHeaders: HTTPHeaders = [:], attempts: Int? = nil) async throws -> [String: Any] {
        Self.decode(try await callForBytes(path, body, extraHeaders: extraHeaders, attempts: attempts))
    }

    /// `call`, answering the body's bytes (for answers decoded into types of their own).
    func callForBytes(_ path: String, _ body: [String: any Sendable], extraHeaders: HTTPHeaders = [:], attempts: Int? = nil) async throws -> [UInt8] {
        let maxAttempts = attempts ?? configuration.maxAttempts
        let payload = try Self.encode(body)
        var attempt = 0
        var refreshed = false
        var sessionRetries = 0
        while true {
            attempt += 1
            do {
                try await limiter.acquire(RateLimiter.kind(of: path))
            } catch {
                throw DriveError(.cancelled, "\(path) cancelled")
            }
            let access = try await tokens.access()
            var headers: HTTPHeaders = [
                "Content-Type": "application/json", "Authorization": "Bearer \(access.token)",
                "x-canary": "client=Android,app=adrive,version=v4.1.0",
            ]
            if let device = access.device {
                headers["x-device-id"] = device.deviceID
                headers["x-signature"] = device.signature(userID: access.userID)
            }
            for (name, value) in extraHeaders { headers[name] = value }
            let request = HTTPRequest(
                method: "POST", url: configuration.endpoint + path, headers: headers, body: .bytes(payload),
                timeouts: .init(connect: .seconds(10), stallTime: configuration.stallTimeout))
            let response: HTTPResponse
            counters.withLock { $0.calls += 1 }
            do {
                response = try await http.execute(request)
            } catch let error as HTTPTransportError {
                if error.isCancelled { throw DriveError(.cancelled, "\(path) cancelled") }
                guard attempt < maxAttempts else {
                    throw DriveError(.unreachable, "\(configuration.endpoint) unreachable: \(error.message)")
                }
                logger.debug("\(path): \(error.code); retrying")
                try await backoff(attempt: attempt, retryAfter: nil)
                continue
            }
            if response.isSuccess { return response.body }
            let error = Self.serviceError(response)
            if response.status == 401, error.code.hasPrefix("AccessToken"), !refreshed {
                refreshed = true
                await tokens.invalidate(access.token)
                continue
            }
            if Self.deviceErrorCodes.contains(error.code) || error.message.contains("not found device info"), sessionRetries < 2 {
                sessionRetries += 1
                logger.info("device session rejected (\(error.code)); creating a new one")
                await tokens.invalidateSession()
                continue
            }
            if response.status == 429 || error.code == "ParamFlowException" { counters.withLock { $0.throttled += 1 } }
            if (response.status == 429 || response.status >= 500 || error.code == "ParamFlowException"), attempt < maxAttempts {
                try await backoff(attempt: attempt, retryAfter: Self.retryAfter(response))
                continue
            }
            throw error
        }
    }

    /// Waits before the next attempt: the server's hint when given, else exponential
    /// backoff with full jitter. Honours task cancellation.
    func backoff(attempt: Int, retryAfter: Duration?) async throws {
        let delay: Duration
        if let retryAfter {
            delay = min(retryAfter, .seconds(30))
        } else {
            let ceiling = min(configuration.baseBackoff * (1 << min(attempt - 1, 10)), configuration.maxBackoff)
            delay = ceiling * Double.random(in: 0.5...1.0)
        }
        do {
            try await Task.sleep(for: delay)
        } catch {
            throw DriveError(.cancelled, "cancelled while backing off")
        }
    }

    /// `x-retry-after` (milliseconds) or `Retry-After` (seconds).
    static func retryAfter(_ response: HTTPResponse) -> Duration? {
        if let value = response.headers["x-retry-after"].flatMap(Int.init) { return .milliseconds(value) }
        if let value = response.headers["Retry-After"].flatMap(Int.init) { return .seconds(value) }
        return nil
    }

    static func serviceError(_ response: HTTPResponse) -> DriveError {
        let object = decode(response.body)
        let code = object["code"] as? String ?? ""
        let message = object["message"] as? String ?? (response.body.isEmpty ? "HTTP \(response.status)" : String(response.text.prefix(200)))
        return DriveError(.service, message, status: response.status, code: code)
    }

    static func encode(_ body: [String: any Sendable]) throws -> [UInt8] {
        guard let data = try? JSONSerialization.data(withJSONObject: body) else {
            throw DriveError(.invalidState, "request body is not JSON-serializable")
        }
        return Array(data)
    }

    static func decode(_ bytes: [UInt8]) -> [String: Any] {
        guard !bytes.isEmpty else { return [:] }
        return ((try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any]) ?? [:]
    }

    // MARK: - Token and session calls (no device headers)

    static func refreshCall(http: any HTTPClient, endpoint: String, refreshToken: String, stall: Duration, attempts: Int) async throws -> [String: any Sendable] {
        let body = try encode(["grant_type": "refresh_token", "refresh_token": refreshToken])
        var attempt = 0
        while true {
            attempt += 1
            let request = HTTPRequest(
                method: "POST", url: endpoint + "/v2/account/token", headers: ["Content-Type": "application/json"], body: .bytes(body),
                timeouts: .init(connect: .seconds(10), stallTime: stall))
            let response: HTTPResponse
            do {
                response = try await http.execute(request)
            } catch let error as HTTPTransportError {
                if error.isCancelled { throw DriveError(.cancelled, "token refresh cancelled") }
                guard attempt < min(attempts, 3) else { throw DriveError(.unreachable, "\(endpoint) unreachable: \(error.message)") }
                try await Task.sleep(for: .milliseconds(300 * attempt))
                continue
            }
            if response.isSuccess {
                var result: [String: any Sendable] = [:]
                for (key, value) in decode(response.body) {
                    if let text = value as? String { result[key] = text } else if let number = value as? NSNumber { result[key] = number.intValue }
                }
                return result
            }
            if response.status == 429 || response.status >= 500, attempt < attempts {
                try await Task.sleep(for: retryAfter(response) ?? .milliseconds(300 * attempt))
                continue
            }
            let error = serviceError(response)
            if error.code == "InvalidParameter.RefreshToken" || response.status == 400 || response.status == 401 {
                throw DriveError(.authentication, "the refresh token was rejected (\(error.code.isEmpty ? "HTTP \(response.status)" : error.code)); log in again", status: response.status, code: error.code)
            }
            throw error
        }
    }

    static func createSessionCall(http: any HTTPClient, endpoint: String, access: TokenManager.Access, refreshToken: String, stall: Duration) async throws {
        guard let device = access.device else { return }
        let body = try encode([
            "deviceName": "adrivefs", "modelName": "Linux FUSE", "pubKey": device.publicKeyHex, "nonce": 0, "refreshToken": refreshToken,
        ])
        let request = HTTPRequest(
            method: "POST", url: endpoint + "/users/v1/users/device/create_session",
            headers: [
                "Content-Type": "application/json", "Authorization": "Bearer \(access.token)", "x-device-id": device.deviceID,
                "x-signature": device.signature(userID: access.userID),
            ], body: .bytes(body), timeouts: .init(connect: .seconds(10), stallTime: stall))
        let response: HTTPResponse
        do {
            response = try await http.execute(request)
        } catch let error as HTTPTransportError {
            throw error.isCancelled ? DriveError(.cancelled, "cancelled") : DriveError(.unreachable, "\(endpoint) unreachable: \(error.message)")
        }
        let object = decode(response.body)
        guard response.isSuccess, (object["success"] as? Bool) ?? (object["result"] as? Bool) ?? true else {
            throw serviceError(response)
        }
    }
}
