import AliyunDrive
internal import CQRencode
import Foundation
import Glibc
import HTTPTransport

/// `adrivefs login`: a QR code in the terminal, scanned with the Aliyun Drive app, gives an
/// app refresh token; it is refreshed at once (it rotates) and the rotated one stored with
/// mode 0600 — never shown. `adrivefs auth status`: whose the stored token is.
public enum LoginCommand {
    public struct Options: Equatable, Sendable {
        public var tokenFile: String?
        /// The API base URL (the emulator answers the passport paths there too).
        public var endpoint: String = "https://api.aliyundrive.com"
        /// The passport host; default: passport.aliyundrive.com, or `endpoint` when one is given.
        public var passport: String?

        public init(tokenFile: String? = nil, endpoint: String? = nil, passport: String? = nil) {
            self.tokenFile = tokenFile
            if let endpoint { self.endpoint = endpoint }
            self.passport = passport ?? (endpoint == nil ? "https://passport.aliyundrive.com" : endpoint)
        }
    }

    /// Codes shown before giving up (each lives about three minutes).
    static let codes = 4

    public static func login(_ options: Options) -> Int32 {
        let output = Output(terminal: isatty(STDOUT_FILENO) == 1)
        let http: CurlHTTPClient
        do {
            http = try CurlHTTPClient()
        } catch {
            Daemon.fail("\(error)")
            return 1
        }
        defer { http.shutdown() }
        let tokenFile = options.tokenFile ?? Mounter.defaultTokenFile
        let poll = Double(ProcessInfo.processInfo.environment["ADRIVEFS_LOGIN_POLL"] ?? "") ?? 2
        let passport = PassportClient(base: options.passport ?? options.endpoint, http: http)
        let result: Result<String, any Error> = Mounter.blocking {
            for attempt in 1...codes {
                let code = try await passport.generate()
                output.show(code, renewed: attempt > 1)
                var last: PassportClient.State?
                while true {
                    let state = try await passport.state(of: code)
                    if state != last { output.say(state) }
                    last = state
                    switch state {
                    case .waiting, .scanned:
                        try await Task.sleep(for: .seconds(poll))
                        continue
                    case .cancelled:
                        throw UsageError("the login was cancelled on the phone")
                    case .expired:
                        break
                    case .confirmed(let login):
                        return try await store(login, options: options, tokenFile: tokenFile, http: http)
                    }
                    break
                }
            }
            throw UsageError("the QR code expired \(codes) times; run adrivefs login again when you have the phone at hand")
        }
        switch result {
        case .success(let line):
            print(line)
            return 0
        case .failure(let error):
            Daemon.fail(describe(error, options))
            return 1
        }
    }

    /// Refreshes the new token once (it rotates; the client stores the rotated one, mode
    /// 0600, before using it) and says whose it is.
    static func store(_ login: PassportClient.LoginResult, options: Options, tokenFile: String, http: CurlHTTPClient) async throws -> String {
        let client = AliyunDriveClient(
            configuration: .init(endpoint: options.endpoint, tokenFile: tokenFile, stateDirectory: Mounter.stateDirectory), http: http,
            refreshToken: login.refreshToken)
        try await client.start()
        let account = client.account
        let name = login.nickName.isEmpty ? account?.nickName ?? "?" : login.nickName
        return "logged in as \(name) (user id \(account?.userID ?? login.userID), drive \(account?.defaultDriveID ?? login.defaultDriveID)); the token is in \(tokenFile)"
    }

    /// `adrivefs auth status`: the account, drives and quota of the stored token. A refresh
    /// rotates the token; the client stores the new one.
    public static func status(_ options: Options) -> Int32 {
        let tokenFile = options.tokenFile ?? Mounter.defaultTokenFile
        let environment = ProcessInfo.processInfo.environment["ADRIVEFS_REFRESH_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        guard let token = environment ?? SecretFile.read(tokenFile) else {
            Daemon.fail("no refresh token in \(tokenFile): run adrivefs login (or adrivefs auth import)")
            return 1
        }
        let result: Result<[String], any Error> = Mounter.blocking {
            let http = try CurlHTTPClient()
            defer { http.shutdown() }
            let client = AliyunDriveClient(
                configuration: .init(endpoint: options.endpoint, tokenFile: environment == nil ? tokenFile : nil, stateDirectory: Mounter.stateDirectory),
                http: http, refreshToken: token)
            try await client.start()
            let space = try await client.space()
            let account = client.account
            return [
                "account: \(account?.nickName ?? "?") (user id \(client.userID))",
                "drives: default \(account?.defaultDriveID ?? "?"), resource \((account?.resourceDriveID).flatMap { $0.isEmpty ? nil : $0 } ?? "none")",
                "quota: \(format(space.used)) of \(format(space.total)) used",
                "token: \(environment == nil ? tokenFile : "ADRIVEFS_REFRESH_TOKEN")",
            ]
        }
        switch result {
        case .success(let lines):
            lines.forEach { print($0) }
            return 0
        case .failure(let error):
            Daemon.fail(describe(error, options))
            return 1
        }
    }

    static func describe(_ error: any Error, _ options: Options) -> String {
        switch error {
        case let error as DriveError where error.kind == .authentication: "the token was rejected (\(error.code.isEmpty ? "HTTP \(error.status)" : error.code)): run adrivefs login"
        case let error as DriveError where error.kind == .unreachable: "cannot reach the service: \(error.message)"
        default: "\(error)"
        }
    }

    static func format(_ bytes: Int64) -> String {
        let gib = Double(bytes) / Double(1 << 30)
        return gib >= 1024 ? String(format: "%.1f TiB", gib / 1024) : String(format: "%.1f GiB", gib)
    }

    /// What the user sees: the code drawn (terminal) or its URL (anything else), and the
    /// states as they change. Never a token.
    struct Output: Sendable {
        let terminal: Bool

        func show(_ code: PassportClient.Code, renewed: Bool) {
            if renewed { print(terminal ? "\nThe code expired; here is a new one." : "expired; new code") }
            if terminal, let lines = QRRenderer.lines(for: code.content) {
                print(lines.joined(separator: "\n"))
                print("Scan it with the Aliyun Drive app (阿里云盘; other scanners open a download page), or open:")
                print(code.content)
            } else {
                print("scan with the Aliyun Drive app: \(code.content)")
            }
            fflush(nil)
        }

        func say(_ state: PassportClient.State) {
            let line: String? = switch state {
            case .waiting: terminal ? "Waiting for the scan…" : "waiting"
            case .scanned: terminal ? "Scanned — confirm the login on your phone." : "scanned"
            case .confirmed: terminal ? "Confirmed." : "confirmed"
            case .expired, .cancelled: nil
            }
            if let line {
                print(line)
                fflush(nil)
            }
        }
    }
}

/// A QR code in a terminal: two module rows per line with half blocks ("▀": the top module
/// in the foreground colour, the bottom one in the background), a quiet zone of 4 modules,
/// and explicit black on white whatever the terminal's theme (a dark theme would invert
/// a code drawn in the default colours, and phones do not read inverted codes).
enum QRRenderer {
    static let quietZone = 4

    static func lines(for text: String) -> [String]? {
        var width: Int32 = 0
        guard let modules = cqr_encode(text, &width) else { return nil }
        defer { free(modules) }
        let side = Int(width)
        return lines(modules: (0..<side * side).map { modules[$0] != 0 }, side: side)
    }

    /// `modules`: row by row, true for dark.
    static func lines(modules: [Bool], side: Int) -> [String] {
        let full = side + 2 * quietZone
        func dark(_ row: Int, _ column: Int) -> Bool {
            let (r, c) = (row - quietZone, column - quietZone)
            return r >= 0 && r < side && c >= 0 && c < side && modules[r * side + c]
        }
        var lines: [String] = []
        for row in stride(from: 0, to: full, by: 2) {
            var line = ""
            for column in 0..<full {
                // 30/97: black/white foreground (top module), 40/107: background (bottom).
                line += "\u{1B}[\(dark(row, column) ? 30 : 97);\(dark(row + 1, column) ? 40 : 107)m▀"
            }
            lines.append(line + "\u{1B}[0m")
        }
        return lines
    }
}
