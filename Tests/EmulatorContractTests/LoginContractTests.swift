import EmulatorTestSupport
import Foundation
import HTTPTransport
import Testing

/// aliyun-api.md §14 "Login": the passport QR state machine.
@Suite struct LoginContractTests {
    func generate(_ drive: TestDrive) async throws -> (Int, String) {
        let response = try await drive.get("/newlogin/qrcode/generate.do?appName=aliyun_drive&fromSite=52&appEntrance=web")
        let data = try #require(((TestDrive.object(response.body)["content"] as? JSON)?["data"] as? JSON))
        let codeContent = try #require(data["codeContent"] as? String)
        #expect(codeContent.hasPrefix("https://"))
        return (try #require(data["t"] as? Int), try #require(data["ck"] as? String))
    }

    func query(_ drive: TestDrive, t: Int, ck: String) async throws -> JSON {
        let form = "t=\(t)&ck=\(ck.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ck)&appName=aliyun_drive"
        let response = try await drive.http.execute(HTTPRequest(
            method: "POST", url: drive.base + "/newlogin/qrcode/query.do?appName=aliyun_drive&fromSite=52",
            headers: ["Content-Type": "application/x-www-form-urlencoded"], body: .bytes(Array(form.utf8))))
        #expect(response.status == 200)
        return try #require((TestDrive.object(response.body)["content"] as? JSON)?["data"] as? JSON)
    }

    @Test func scanConfirmYieldsAWorkingAppRefreshToken() async throws {
        try await withTestDrive(login: false) { drive in
            let (t, ck) = try await generate(drive)
            #expect(try await query(drive, t: t, ck: ck)["qrCodeStatus"] as? String == "NEW")
            try await drive.hook("qr/scan")
            #expect(try await query(drive, t: t, ck: ck)["qrCodeStatus"] as? String == "SCANED")
            try await drive.hook("qr/confirm")
            let confirmed = try await query(drive, t: t, ck: ck)
            #expect(confirmed["qrCodeStatus"] as? String == "CONFIRMED")
            let bizExt = try #require(confirmed["bizExt"] as? String)
            let decoded = try #require(Data(base64Encoded: bizExt))
            let result = try #require((try JSONSerialization.jsonObject(with: decoded) as? JSON)?["pds_login_result"] as? JSON)
            let refreshToken = try #require(result["refreshToken"] as? String)
            let (status, _) = try await drive.post("/v2/account/token", ["refresh_token": refreshToken], auth: false)
            #expect(status == 200)
        }
    }

    @Test func expiredCancelledAndUnknownLogins() async throws {
        try await withTestDrive(login: false) { drive in
            let (t, ck) = try await generate(drive)
            try await drive.hook("qr/expire")
            #expect(try await query(drive, t: t, ck: ck)["qrCodeStatus"] as? String == "EXPIRED")
            let (t2, ck2) = try await generate(drive)
            try await drive.hook("qr/cancel")
            #expect(try await query(drive, t: t2, ck: ck2)["qrCodeStatus"] as? String == "CANCELED")
            #expect(try await query(drive, t: 1, ck: "wrong")["qrCodeStatus"] as? String == "EXPIRED")
            let (t3, ck3) = try await generate(drive)
            try await drive.hook("faults", ["advance_clock": 181])
            #expect(try await query(drive, t: t3, ck: ck3)["qrCodeStatus"] as? String == "EXPIRED")
            // Confirming without a scan is refused by the hook.
            let (_, _) = try await generate(drive)
            #expect(try await drive.hook("qr/confirm")["code"] as? String == "InvalidState.QRCode")
        }
    }
}
