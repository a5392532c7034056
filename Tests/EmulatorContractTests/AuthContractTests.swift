import AliyunDrive
import EmulatorTestSupport
import Foundation
import HTTPTransport
import Testing

/// aliyun-api.md §14 "Auth and sessions".
@Suite struct AuthContractTests {
    @Test func refreshRotatesTheTokenAndRejectsThePreviousOne() async throws {
        try await withTestDrive(login: false) { drive in
            let first = drive.refreshToken
            let (status, body) = try await drive.post("/v2/account/token", ["grant_type": "refresh_token", "refresh_token": first], auth: false)
            #expect(status == 200)
            let rotated = try #require(body["refresh_token"] as? String)
            #expect(rotated != first)
            #expect(rotated.count == 32 && rotated.allSatisfy(\.isHexDigit))
            for field in ["access_token", "token_type", "expires_in", "user_id", "default_drive_id", "device_id", "nick_name", "expire_time"] {
                #expect(body[field] != nil, "missing \(field)")
            }
            #expect(body["expires_in"] as? Int == 7200)
            #expect((body["access_token"] as? String)?.split(separator: ".").count == 3)  // JWT-shaped
            #expect((body["user_id"] as? String)?.count == 32)

            let (reuse, error) = try await drive.post("/v2/account/token", ["refresh_token": first], auth: false)
            #expect(reuse == 400)
            #expect(error["code"] as? String == "InvalidParameter.RefreshToken")
            // The rotated token works once, too.
            #expect(try await drive.post("/v2/account/token", ["refresh_token": rotated], auth: false).0 == 200)
            #expect(try await drive.requestCount("/v2/account/token") == 3)
        }
    }

    @Test func accessTokensExpireAndCanBeRevoked() async throws {
        try await withTestDrive { drive in
            #expect(try await drive.post("/v2/user/get", [:]).0 == 200)
            try await drive.hook("faults", ["advance_clock": 7201])
            let (expired, body) = try await drive.post("/v2/user/get", [:])
            #expect(expired == 401)
            #expect(body["code"] as? String == "AccessTokenExpired")

            try await drive.hook("faults", ["advance_clock": -7201])
            try await drive.login()
            try await drive.hook("faults", ["revoke_access_tokens": true])
            let (revoked, revokedBody) = try await drive.post("/v2/user/get", [:])
            #expect(revoked == 401)
            #expect(revokedBody["code"] as? String == "AccessTokenInvalid")
        }
    }

    @Test func shortAccessTokenLifetimeIsConfigurable() async throws {
        try await withTestDrive(login: false) { drive in
            try await drive.hook("faults", ["access_token_ttl": 5])
            let (_, body) = try await drive.post("/v2/account/token", ["refresh_token": drive.refreshToken], auth: false)
            #expect(body["expires_in"] as? Int == 5)
        }
    }

    @Test(arguments: ["Bearer ", "Bearer\t", ""])
    func authorizationSchemesAreAccepted(prefix: String) async throws {
        try await withTestDrive { drive in
            let (status, _) = try await drive.post("/v2/user/get", [:], headers: ["Authorization": prefix + drive.accessToken])
            #expect(status == 200)
        }
    }

    @Test func deviceHeadersAndSessionAreRequired() async throws {
        try await withTestDrive { drive in
            let (missing, missingBody) = try await drive.post("/v2/user/get", [:], device: false)
            #expect(missing == 400)
            #expect(missingBody["code"] as? String == "UserDeviceIllegality")

            let (unknown, unknownBody) = try await drive.post("/v2/user/get", [:], headers: ["x-device-id": "never-registered"])
            #expect(unknown == 400)
            #expect(unknownBody["code"] as? String == "DeviceSessionSignatureInvalid")

            let (malformed, _) = try await drive.post("/v2/user/get", [:], headers: ["x-signature": "not-hex"])
            #expect(malformed == 400)

            try await drive.hook("faults", ["expire_device_sessions": true])
            let (expired, expiredBody) = try await drive.post("/v2/user/get", [:])
            #expect(expired == 400)
            #expect(expiredBody["code"] as? String == "DeviceSessionSignatureInvalid")
            let (renewed, _) = try await drive.post(
                "/users/v1/users/device/create_session", ["pubKey": "04" + String(repeating: "ef", count: 64)])
            #expect(renewed == 200)
            #expect(try await drive.post("/v2/user/get", [:]).0 == 200)
        }
    }

    @Test func deviceOfflineFaultAnswers401() async throws {
        try await withTestDrive { drive in
            try await drive.hook("faults", ["rules": [["path": "/v2/user/get", "kind": "device_offline", "count": 1]]])
            let (status, body) = try await drive.post("/v2/user/get", [:])
            #expect(status == 401)
            #expect(body["code"] as? String == "UserDeviceOffline")
            #expect(try await drive.post("/v2/user/get", [:]).0 == 200)
        }
    }

    @Test func sessionEndpointsRespond() async throws {
        try await withTestDrive { drive in
            let (renew, body) = try await drive.post("/users/v1/users/device/renew_session", [:])
            #expect(renew == 200)
            #expect(body["success"] as? Bool == true)
            let (list, listBody) = try await drive.post("/users/v2/users/device_list", [:])
            #expect(list == 200)
            #expect(((listBody["result"] as? JSON)?["devices"] as? [JSON])?.count == 1)
            #expect(try await drive.post("/users/v1/users/device_logout", [:]).0 == 200)
            #expect(try await drive.post("/v2/user/get", [:]).0 == 400)
        }
    }

    @Test func webTokensUseTheirOwnRefreshPathAndReferer() async throws {
        try await withTestDrive { drive in
            let web = try #require(try await drive.hook("tokens", ["web": true])["refresh_token"] as? String)
            let (appOnWebPath, appBody) = try await drive.post("/token/refresh", ["refresh_token": drive.refreshToken], auth: false)
            #expect(appOnWebPath == 400)
            #expect(appBody["code"] as? String == "InvalidParameter.ClientId")
            let (status, body) = try await drive.post("/token/refresh", ["refresh_token": web], auth: false)
            #expect(status == 200)
            let webAccess = try #require(body["access_token"] as? String)

            let file = try await drive.upload("web.txt", Array("referer bound".utf8))
            let (_, urlBody) = try await drive.post(
                "/v2/file/get_download_url", ["drive_id": drive.driveID, "file_id": file["file_id"] ?? ""],
                headers: ["Authorization": "Bearer " + webAccess])
            let url = try #require(urlBody["url"] as? String)
            #expect(url.contains("x-oss-additional-headers=referer"))
            #expect(try await drive.get(url).status == 403)
            let withReferer = try await drive.get(url, headers: ["Referer": "https://www.aliyundrive.com/"])
            #expect(withReferer.status == 200)
            #expect(withReferer.text == "referer bound")
            // App-token URLs carry no Referer binding.
            let appURL = try await drive.downloadURL(try #require(file["file_id"] as? String))
            #expect(!appURL.contains("referer"))
            #expect(try await drive.get(appURL).status == 200)
        }
    }
}

/// The optional strict mode: x-signature verified as ECDSA against the registered key.
@Suite struct StrictSignatureContractTests {
    @Test func realSignaturesPassAndFakeOnesFail() async throws {
        try await withTestDrive { drive in
            try await drive.hook("faults", ["strict_signatures": true])
            // The test session registered a made-up key with a made-up signature.
            let (fake, body) = try await drive.post("/v2/user/get", [:])
            #expect(fake == 400)
            #expect(body["code"] as? String == "DeviceSessionSignatureInvalid")
            // A real identity (the client's libsecp256k1 code) is accepted.
            let identity = try DeviceIdentity.generate()
            let signature = identity.signature(userID: drive.userID)
            #expect(signature.count == 130)
            #expect(identity.verify(signature: signature, userID: drive.userID))
            let headers = ["x-device-id": identity.deviceID, "x-signature": signature]
            let (created, _) = try await drive.post("/users/v1/users/device/create_session", ["pubKey": identity.publicKeyHex], headers: headers)
            #expect(created == 200)
            #expect(try await drive.post("/v2/user/get", [:], headers: headers).0 == 200)
            // A signature made for another user does not verify.
            let wrong = identity.signature(userID: String(repeating: "0", count: 32))
            #expect(try await drive.post("/v2/user/get", [:], headers: ["x-device-id": identity.deviceID, "x-signature": wrong]).0 == 400)
        }
    }
}
