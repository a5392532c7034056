import Foundation
import Glibc

/// The passport QR login that yields an app refresh token (aliyun-api.md §11).
/// States NEW → SCANED → CONFIRMED (or EXPIRED / CANCELED), driven by test hooks.
extension EmulatorState {
    func qrGenerate(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        let login = QRLogin(t: now + Int64.random(in: 1000...9999), ck: Formats.randomHex(32), status: .new, createdAt: now)
        persistent.qrLogins.append(login)
        if persistent.qrLogins.count > 50 { persistent.qrLogins.removeFirst(persistent.qrLogins.count - 50) }
        dirty = true
        let code = "https://passport.aliyundrive.com/qrcodeCheck.htm?lgToken=\(Formats.randomHex(32))&lgt=\(login.t)"
        return .json(200, [
            "content": ["data": ["t": login.t, "ck": login.ck, "codeContent": code, "resultCode": 100, "processFinished": false], "status": 0, "success": true],
            "hasError": false,
        ])
    }

    func qrQuery(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        var data: JSONObject = ["resultCode": 100, "processFinished": false]
        // t and ck from the form body, or from the query string (a GET, as one client sends).
        let t = (body.string("t") ?? request.query["t"]).flatMap { Int64($0) } ?? body.int("t")
        let ck = body.string("ck") ?? request.query["ck"]
        var status = QRStatus.expired
        if let t, let ck, let index = persistent.qrLogins.firstIndex(where: { $0.t == t && $0.ck == ck }) {
            expireStaleQR(index)
            let login = persistent.qrLogins[index]
            status = login.status
            if login.status == .confirmed, let refreshToken = login.refreshToken, let account = persistent.accounts.values.first {
                data["bizExt"] = bizExt(account: account, refreshToken: refreshToken)
                data["loginResult"] = "success"
                data["processFinished"] = true
            }
        }
        data["qrCodeStatus"] = status.rawValue
        // content.status: NEW 0, SCANED 1, CONFIRMED 2, EXPIRED -1 with success false; the
        // value for CANCELED is not known (aliyun-api.md §15): -2 here.
        let code: Int = switch status {
        case .new: 0
        case .scanned: 1
        case .confirmed: 2
        case .expired: -1
        case .canceled: -2
        }
        return .json(200, ["content": ["data": data, "status": code, "success": status != .expired], "hasError": false])
    }

    func expireStaleQR(_ index: Int) {
        let login = persistent.qrLogins[index]
        if [.new, .scanned].contains(login.status), login.createdAt + lifetimes.qrSeconds * 1000 < now {
            persistent.qrLogins[index].status = .expired
        }
    }

    /// Base64 of the JSON document the passport returns, encoded in GB18030 as the real one
    /// is (a Chinese nickname shows whether a client decodes it right).
    func bizExt(account: Account, refreshToken: String) -> String {
        let result: JSONObject = [
            "pds_login_result": [
                "role": "user", "isFirstLogin": false, "needLink": false, "loginType": "normal", "nickName": account.nickName,
                "needRpVerify": false, "avatar": "", "accessToken": mintAccessToken(for: account, web: false),
                "userName": account.userName, "userId": account.userID, "defaultDriveId": account.backupDriveID,
                "existLink": [Any](), "expiresIn": lifetimes.accessTokenSeconds, "expireTime": Formats.iso8601(milliseconds: now + 7_200_000),
                "requestId": Formats.randomHex(16), "dataPinSetup": true, "state": "", "tokenType": "Bearer", "dataPinSaved": true,
                "refreshToken": refreshToken, "status": "enabled",
            ] as JSONObject
        ]
        let utf8 = JSON.encode(result)
        return Data(GB18030Encoder.encode(utf8) ?? utf8).base64EncodedString()
    }

    /// Test hook: moves the newest (or the given) pending login along.
    func driveQR(action: String, t: Int64?) throws -> JSONObject {
        guard let index = t.flatMap({ t in persistent.qrLogins.firstIndex { $0.t == t } }) ?? persistent.qrLogins.indices.last else {
            throw APIError(404, "NotFound.QRCode", "no QR login is pending")
        }
        expireStaleQR(index)
        var login = persistent.qrLogins[index]
        switch (action, login.status) {
        case ("scan", .new): login.status = .scanned
        case ("confirm", .scanned):
            login.status = .confirmed
            if let account = persistent.accounts.values.first {
                let token = Formats.randomHex(32)
                persistent.refreshTokens[token] = RefreshToken(
                    userID: account.userID, chain: Formats.randomHex(8), web: false, expiresAt: now + lifetimes.refreshTokenSeconds * 1000)
                login.refreshToken = token
            }
        case ("expire", .new), ("expire", .scanned): login.status = .expired
        case ("cancel", .new), ("cancel", .scanned): login.status = .canceled
        default:
            throw APIError(409, "InvalidState.QRCode", "cannot \(action) a login in state \(login.status.rawValue)")
        }
        persistent.qrLogins[index] = login
        dirty = true
        return ["t": login.t, "status": login.status.rawValue]
    }
}

/// UTF-8 → GB18030 with glibc's iconv, for `bizExt`.
enum GB18030Encoder {
    static func encode(_ utf8: [UInt8]) -> [UInt8]? {
        let converter = iconv_open("GB18030", "UTF-8")
        guard converter != iconv_t(bitPattern: -1) else { return nil }
        defer { iconv_close(converter) }
        var input = utf8.map { CChar(bitPattern: $0) }
        var output = [CChar](repeating: 0, count: utf8.count * 2 + 16)
        let written = input.withUnsafeMutableBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target -> Int in
                var from = source.baseAddress
                var fromLeft = source.count
                var to = target.baseAddress
                var toLeft = target.count
                let result = iconv(converter, &from, &fromLeft, &to, &toLeft)
                return result == -1 || fromLeft != 0 ? -1 : target.count - toLeft
            }
        }
        return written < 0 ? nil : output.prefix(written).map { UInt8(bitPattern: $0) }
    }
}
