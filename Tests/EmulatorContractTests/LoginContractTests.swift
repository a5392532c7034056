import AliyunDrive
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
            // Base64 of GB18030, as the real passport sends it: not valid UTF-8 (the nickname is Chinese).
            let decoded = try #require(Data(base64Encoded: bizExt))
            #expect(String(data: decoded, encoding: .utf8) == nil)
            let text = try #require(GB18030.decode(Array(decoded)))
            let result = try #require((try JSONSerialization.jsonObject(with: Data(text.utf8)) as? JSON)?["pds_login_result"] as? JSON)
            #expect(result["nickName"] as? String == "云盘用户emulator")
            #expect(confirmed["loginResult"] as? String == "success")
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
            let (t4, ck4) = try await generate(drive)
            #expect(try await drive.hook("qr/confirm")["code"] as? String == "InvalidState.QRCode")
            // content.status per state, success false only for EXPIRED; t/ck in the query of a GET too.
            func content(_ t: Int, _ ck: String) async throws -> JSON {
                let url = drive.base + "/newlogin/qrcode/query.do?t=\(t)&ck=\(ck.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ck)"
                return try #require(TestDrive.object(try await drive.http.execute(HTTPRequest(url: url)).body)["content"] as? JSON)
            }
            let fresh = try await content(t4, ck4)
            #expect(fresh["status"] as? Int == 0 && fresh["success"] as? Bool == true)
            #expect((fresh["data"] as? JSON)?["qrCodeStatus"] as? String == "NEW")
            let expired = try await content(t, ck)
            #expect(expired["status"] as? Int == -1 && expired["success"] as? Bool == false)
        }
    }
}
