import Foundation
import Glibc
public import HTTPTransport

/// The passport QR login that gives an app refresh token (aliyun-api.md §11): generate a
/// code, poll its state, decode `bizExt` (Base64 of GB18030 JSON) once confirmed. No
/// Authorization or device headers. The token it yields must be refreshed at once (it
/// rotates); `AliyunDriveClient.start()` does that.
public struct PassportClient: Sendable {
    public struct Code: Sendable, Equatable {
        /// Opaque; sent back verbatim.
        public var t: String
        public var ck: String
        /// What the QR code encodes (to be scanned with the Aliyun Drive app).
        public var content: String
    }

    public enum State: Sendable, Equatable {
        case waiting
        case scanned
        case confirmed(LoginResult)
        case expired
        case cancelled
    }

    public struct LoginResult: Sendable, Equatable {
        public var refreshToken: String
        public var nickName: String
        public var userID: String
        public var defaultDriveID: String
    }

    /// Base URL of the passport host (`https://passport.aliyundrive.com`; the emulator's own).
    public let base: String
    private let http: any HTTPClient
    static let parameters = "appName=aliyun_drive&fromSite=52&appEntrance=web&isMobile=false&lang=zh_CN&returnUrl=&bizParams=&_bx-v=2.0.31"

    public init(base: String, http: any HTTPClient) {
        self.base = base.hasSuffix("/") ? String(base.dropLast()) : base
        self.http = http
    }

    /// A new code.
    public func generate() async throws -> Code {
        let response = try await send(HTTPRequest(url: base + "/newlogin/qrcode/generate.do?" + Self.parameters, timeouts: .init(connect: .seconds(10), stallTime: .seconds(20))))
        let object = AliyunDriveClient.decode(response.body)
        let content = object["content"] as? [String: Any] ?? [:]
        let data = content["data"] as? [String: Any] ?? [:]
        guard response.isSuccess, object["hasError"] as? Bool != true, content["success"] as? Bool != false,
            let t = Self.text(data["t"]), let ck = data["ck"] as? String, let code = data["codeContent"] as? String, !code.isEmpty
        else {
            throw DriveError(.protocolViolation, "the passport service did not hand out a QR code (HTTP \(response.status))")
        }
        return Code(t: t, ck: ck, content: code)
    }

    /// The code's state now. Unknown states count as expired (aliyun-api.md §11.2).
    public func state(of code: Code) async throws -> State {
        let form = "t=\(Self.formEncode(code.t))&ck=\(Self.formEncode(code.ck))&" + Self.parameters
        let request = HTTPRequest(
            method: "POST", url: base + "/newlogin/qrcode/query.do?appName=aliyun_drive&fromSite=52&_bx-v=2.0.31",
            headers: ["Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"], body: .bytes(Array(form.utf8)),
            timeouts: .init(connect: .seconds(10), stallTime: .seconds(20)))
        let response = try await send(request)
        guard response.isSuccess else { throw DriveError(.service, "the passport service answered HTTP \(response.status)", status: response.status) }
        let data = ((AliyunDriveClient.decode(response.body)["content"] as? [String: Any])?["data"] as? [String: Any]) ?? [:]
        switch data["qrCodeStatus"] as? String {
        case "NEW": return .waiting
        case "SCANED": return .scanned
        case "CANCELED": return .cancelled
        case "CONFIRMED":
            guard let bizExt = data["bizExt"] as? String, let result = Self.loginResult(bizExt: bizExt) else {
                throw DriveError(.protocolViolation, "the login was confirmed but carried no readable token")
            }
            return .confirmed(result)
        default: return .expired
        }
    }

    /// `bizExt`: Base64 (standard or URL-safe, padded or not) of GB18030-encoded JSON.
    static func loginResult(bizExt: String) -> LoginResult? {
        var base64 = bizExt.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let bytes = Data(base64Encoded: base64), let json = GB18030.decode(Array(bytes)),
            let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
            let result = object["pds_login_result"] as? [String: Any], let token = result["refreshToken"] as? String, !token.isEmpty
        else { return nil }
        return LoginResult(
            refreshToken: token, nickName: result["nickName"] as? String ?? "", userID: result["userId"] as? String ?? "",
            defaultDriveID: text(result["defaultDriveId"]) ?? "")
    }

    private func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        do {
            return try await http.execute(request)
        } catch let error as HTTPTransportError {
            throw error.isCancelled ? DriveError(.cancelled, "cancelled") : DriveError(.unreachable, "\(base) unreachable: \(error.message)")
        }
    }

    static func text(_ value: Any?) -> String? {
        if let string = value as? String { return string }
        if let number = value as? NSNumber { return number.stringValue }
        return nil
    }

    static func formEncode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._*")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}

/// GB18030 ⇄ UTF-8 through glibc's iconv (the passport encodes `bizExt` in GB18030).
public enum GB18030 {
    public static func decode(_ bytes: [UInt8]) -> String? {
        convert(bytes, from: "GB18030", to: "UTF-8").map { String(decoding: $0, as: UTF8.self) }
    }

    public static func encode(_ text: String) -> [UInt8]? { convert(Array(text.utf8), from: "UTF-8", to: "GB18030") }

    static func convert(_ input: [UInt8], from source: String, to target: String) -> [UInt8]? {
        let descriptor = iconv_open(target, source)
        guard descriptor != iconv_t(bitPattern: -1) else { return nil }
        defer { iconv_close(descriptor) }
        var output = [UInt8](repeating: 0, count: input.count * 4 + 16)
        var source = input.map { CChar(bitPattern: $0) }
        let produced: Int? = source.withUnsafeMutableBufferPointer { inBuffer in
            output.withUnsafeMutableBufferPointer { outBuffer -> Int? in
                var inPointer = inBuffer.baseAddress
                var inLeft = inBuffer.count
                var outPointer = outBuffer.baseAddress.map { UnsafeMutableRawPointer($0).assumingMemoryBound(to: CChar.self) }
                var outLeft = outBuffer.count
                guard iconv(descriptor, &inPointer, &inLeft, &outPointer, &outLeft) != -1, inLeft == 0 else { return nil }
                return outBuffer.count - outLeft
            }
        }
        guard let produced else { return nil }
        return Array(output.prefix(produced))
    }
}
