internal import CSecp256k1
import Crypto
import Foundation

/// The caller of an authenticated API call.
struct Caller {
    var account: Account
    var accessToken: String
    var web: Bool
    var drives: Set<String> { [account.backupDriveID, account.resourceDriveID, account.sboxDriveID] }
}

extension EmulatorState {
    // MARK: - Token refresh (aliyun-api.md §2)

    func refreshToken(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        guard let token = body.string("refresh_token"), let record = persistent.refreshTokens[token],
            record.expiresAt > now, let account = persistent.accounts[record.userID]
        else {
            throw APIError(400, "InvalidParameter.RefreshToken", "The input parameter refresh_token is not valid. ")
        }
        if request.path == "/token/refresh" && !record.web {
            throw APIError(400, "InvalidParameter.ClientId", "The input parameter client_id is not valid. ")
        }
        // Rotation: the presented token dies, the chain continues with a new one.
        persistent.refreshTokens[token] = nil
        let newToken = Formats.randomHex(32)
        persistent.refreshTokens[newToken] = RefreshToken(
            userID: record.userID, chain: record.chain, web: record.web, expiresAt: now + lifetimes.refreshTokenSeconds * 1000)
        let accessToken = mintAccessToken(for: account, web: record.web)
        stats.refreshes += 1
        dirty = true
        let expiresIn = lifetimes.accessTokenSeconds
        return .json(200, [
            "token_type": "Bearer", "access_token": accessToken, "refresh_token": newToken, "expires_in": expiresIn,
            "expire_time": Formats.iso8601(milliseconds: now + expiresIn * 1000).replacingOccurrences(of: ".000Z", with: "Z"),
            "user_id": account.userID, "user_name": account.userName, "nick_name": account.nickName,
            "default_drive_id": account.backupDriveID, "default_sbox_drive_id": account.sboxDriveID, "domain_id": "bj29",
            "device_id": Formats.randomHex(32), "role": "user", "status": "enabled", "avatar": "",
            "is_first_login": false, "need_link": false, "need_rp_verify": false, "pin_setup": true,
            "exist_link": [Any](), "state": "", "user_data": JSONObject(),
        ])
    }

    /// A JWT-shaped access token (header.payload.signature), recorded with its expiry.
    func mintAccessToken(for account: Account, web: Bool) -> String {
        let header = Formats.base64URL(Array(#"{"alg":"RS256","typ":"JWT"}"#.utf8))
        var claims: JSONObject = [
            "userId": account.userID, "customJson": #"{"clientId":"pJZInNHN2dZWk8qg","domainId":"bj29"}"#,
            "exp": nowSeconds + lifetimes.accessTokenSeconds, "iat": nowSeconds, "jti": Formats.randomHex(32),
        ]
        if web { claims["ref"] = "https://www.aliyundrive.com/" }
        let payload = Formats.base64URL(JSON.encode(claims))
        let signature = Formats.base64URL(Array(SHA256.hash(data: Array((header + payload + persistent.urlSecret).utf8))))
        let token = "\(header).\(payload).\(signature)"
        persistent.accessTokens[token] = AccessToken(
            userID: account.userID, web: web, expiresAt: now + lifetimes.accessTokenSeconds * 1000)
        dirty = true
        return token
    }

    /// The bearer token of a request: accepts `Bearer <t>`, `Bearer\t<t>` and a bare `<t>`.
    static func bearer(_ request: APIRequest) -> String? {
        guard var value = request.headers["authorization"]?.trimmingCharacters(in: .whitespaces), !value.isEmpty else {
            return nil
        }
        if value.lowercased().hasPrefix("bearer") {
            value = String(value.dropFirst(6)).trimmingCharacters(in: .whitespaces)
        }
        return value.isEmpty ? nil : value
    }

    /// Checks the access token and, unless `device` is false, the device-session headers.
    func authenticate(_ request: APIRequest, device: Bool = true) throws -> Caller {
        guard let token = Self.bearer(request) else {
            throw APIError(401, "AccessTokenInvalid", "AccessToken is invalid. not login")
        }
        guard let record = persistent.accessTokens[token], !record.revoked,
            let account = persistent.accounts[record.userID]
        else {
            throw APIError(401, "AccessTokenInvalid", "AccessToken is invalid. ErrValidateTokenFailed")
        }
        guard record.expiresAt > now else {
            throw APIError(401, "AccessTokenExpired", "AccessToken is invalid. expired")
        }
        let caller = Caller(account: account, accessToken: token, web: record.web)
        if device { try checkDevice(request, userID: account.userID) }
        return caller
    }

    func checkDevice(_ request: APIRequest, userID: String) throws {
        guard let deviceID = request.headers["x-device-id"], !deviceID.isEmpty,
            let signature = request.headers["x-signature"], !signature.isEmpty
        else {
            throw APIError(400, "UserDeviceIllegality", "invalid X-Device-Id")
        }
        guard Self.isSignatureShaped(signature) else {
            throw APIError(400, "DeviceSessionSignatureInvalid", "device session signature error")
        }
        guard let session = persistent.deviceSessions[userID + "/" + deviceID], !session.expired else {
            throw APIError(400, "DeviceSessionSignatureInvalid", "device session signature error")
        }
        if lifetimes.strictSignatures, !Self.verifySignature(signature, publicKey: session.publicKey, deviceID: deviceID, userID: userID) {
            throw APIError(400, "DeviceSessionSignatureInvalid", "device session signature error")
        }
    }

    /// Strict mode: recoverable ECDSA r‖s‖v over SHA-256("appId:deviceId:userId:0").
    static func verifySignature(_ signature: String, publicKey: String, deviceID: String, userID: String) -> Bool {
        let keyHex = publicKey.count == 128 ? "04" + publicKey : publicKey
        guard let key = Self.bytes(hex: keyHex), key.count == 65, let signatureBytes = Self.bytes(hex: signature), signatureBytes.count == 65 else {
            return false
        }
        let digest = Array(SHA256.hash(data: Array("5dde4e1bdf9e4966b387ba58f4b3fdc3:\(deviceID):\(userID):0".utf8)))
        return csecp256k1_verify(key, digest, signatureBytes) == 1
    }

    static func bytes(hex: String) -> [UInt8]? {
        let characters = Array(hex.utf8)
        guard characters.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        for index in stride(from: 0, to: characters.count, by: 2) {
            guard let byte = UInt8(String(decoding: characters[index...index + 1], as: UTF8.self), radix: 16) else { return nil }
            out.append(byte)
        }
        return out
    }

    /// Lenient check, as the real service appears to do: 128–130 hex characters.
    static func isSignatureShaped(_ value: String) -> Bool {
        (128...130).contains(value.count) && value.allSatisfy(\.isHexDigit)
    }

    // MARK: - Device sessions (aliyun-api.md §3)

    func createSession(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        let caller = try authenticate(request, device: false)
        guard let deviceID = request.headers["x-device-id"], !deviceID.isEmpty else {
            throw APIError(400, "UserDeviceIllegality", "invalid X-Device-Id")
        }
        guard let signature = request.headers["x-signature"], Self.isSignatureShaped(signature) else {
            throw APIError(400, "DeviceSessionSignatureInvalid", "device session signature error")
        }
        guard let publicKey = body.string("pubKey"), publicKey.count >= 64, publicKey.allSatisfy(\.isHexDigit) else {
            throw APIError.invalid("pubKey", "pubKey must be a hex-encoded secp256k1 public key")
        }
        let userID = caller.account.userID
        if lifetimes.strictSignatures, !Self.verifySignature(signature, publicKey: publicKey, deviceID: deviceID, userID: userID) {
            throw APIError(400, "DeviceSessionSignatureInvalid", "device session signature error")
        }
        persistent.deviceSessions[userID + "/" + deviceID] = DeviceSession(
            userID: userID, deviceID: deviceID, publicKey: publicKey, createdAt: now)
        // At most 10 devices per account: the oldest is logged out.
        let mine = persistent.deviceSessions.filter { $0.value.userID == userID }.sorted { $0.value.createdAt < $1.value.createdAt }
        for (key, _) in mine.dropLast(10) { persistent.deviceSessions[key] = nil }
        dirty = true
        return .json(200, ["result": true, "success": true, "code": NSNull(), "message": NSNull()])
    }

    func renewSession(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        _ = try authenticate(request)
        return .json(200, ["result": true, "success": true, "code": NSNull(), "message": NSNull()])
    }

    func deviceLogout(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        let caller = try authenticate(request)
        persistent.deviceSessions[caller.account.userID + "/" + (request.headers["x-device-id"] ?? "")] = nil
        dirty = true
        return .json(200, ["result": true, "success": true])
    }

    func deviceList(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        let caller = try authenticate(request)
        let items: [JSONObject] = persistent.deviceSessions.values.filter { $0.userID == caller.account.userID }.map {
            ["deviceId": $0.deviceID, "deviceName": "emulated", "createdAt": $0.createdAt]
        }
        return .json(200, ["result": ["devices": items], "success": true])
    }
}
