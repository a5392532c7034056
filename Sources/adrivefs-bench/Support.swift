import Foundation
import HTTPTransport

/// The emulator as a child process, stopped with SIGTERM.
final class EmulatorProcess {
    let process: Process
    let base: String
    let refreshToken: String

    private init(process: Process, base: String, refreshToken: String) {
        self.process = process
        self.base = base
        self.refreshToken = refreshToken
    }

    static func start(binary: String, dataDirectory: String) throws -> EmulatorProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--port", "0", "--seed", "bench", "--data-dir", dataDirectory]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        var base = ""
        var token = ""
        var buffer = ""
        let handle = output.fileHandleForReading
        while token.isEmpty {
            let data = handle.availableData
            guard !data.isEmpty else { throw BenchError("the emulator exited before it was ready") }
            buffer += String(decoding: data, as: UTF8.self)
            for line in buffer.split(separator: "\n") {
                if line.hasPrefix("listening on ") { base = String(line.dropFirst("listening on ".count)) }
                if line.hasPrefix("refresh token: ") { token = String(line.dropFirst("refresh token: ".count)) }
            }
        }
        return EmulatorProcess(process: process, base: base, refreshToken: token)
    }

    func stop() {
        process.terminate()
        process.waitUntilExit()
    }
}

/// Just enough of the client protocol to reach the data: token refresh and device session.
struct APISession {
    let client: CurlHTTPClient
    let base: String
    let accessToken: String
    let driveID: String
    static let deviceID = "adrivefs-bench"
    static let signature = String(repeating: "ab", count: 64) + "01"

    static func login(client: CurlHTTPClient, base: String, refreshToken: String) async throws -> APISession {
        let unauthenticated = APISession(client: client, base: base, accessToken: "", driveID: "")
        let token = try await unauthenticated.post("/v2/account/token", ["grant_type": "refresh_token", "refresh_token": refreshToken])
        guard let access = token["access_token"] as? String, let drive = token["default_drive_id"] as? String else {
            throw BenchError("token refresh failed")
        }
        let session = APISession(client: client, base: base, accessToken: access, driveID: drive)
        _ = try await session.post("/users/v1/users/device/create_session", ["pubKey": "04" + String(repeating: "cd", count: 64)])
        return session
    }

    /// `POST /__emulator/<path>`.
    func hook(_ path: String, _ body: [String: Any]) async throws -> [String: Any] {
        let data = try JSONSerialization.data(withJSONObject: body)
        let response = try await client.execute(HTTPRequest(method: "POST", url: base + "/__emulator/" + path, body: .bytes(Array(data))))
        return (try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]) ?? [:]
    }

    func stats() async throws -> [String: Any] {
        let response = try await client.execute(HTTPRequest(url: base + "/__emulator/stats"))
        return (try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]) ?? [:]
    }

    func listCalls() async throws -> Int {
        ((try await stats())["requests"] as? [String: Any])?["/adrive/v3/file/list"] as? Int ?? 0
    }

    /// A call; when the device session is gone (an account keeps at most 10 devices, and
    /// every bench mount is one more), the session is made again and the call repeated.
    func post(_ path: String, _ body: [String: Any]) async throws -> [String: Any] {
        do {
            return try await postOnce(path, body)
        } catch let error as BenchError where !accessToken.isEmpty && error.description.contains("DeviceSessionSignatureInvalid") {
            _ = try await postOnce("/users/v1/users/device/create_session", ["pubKey": "04" + String(repeating: "cd", count: 64)])
            return try await postOnce(path, body)
        }
    }

    private func postOnce(_ path: String, _ body: [String: Any]) async throws -> [String: Any] {
        var headers: HTTPHeaders = ["Content-Type": "application/json"]
        if !accessToken.isEmpty {
            headers["Authorization"] = "Bearer " + accessToken
            headers["x-device-id"] = Self.deviceID
            headers["x-signature"] = Self.signature
        }
        let data = try JSONSerialization.data(withJSONObject: body)
        let response = try await client.execute(HTTPRequest(method: "POST", url: base + path, headers: headers, body: .bytes(Array(data))))
        guard response.isSuccess, let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] else {
            throw BenchError("\(path): HTTP \(response.status) \(response.text)")
        }
        return object
    }
}

/// CPU time (user + system), to show where a transfer's work goes.
enum CPUTime {
    /// Seconds another process has used so far (from /proc/PID/stat); 0 if unreadable.
    static func of(pid: Int32) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return 0 }
        // Fields after "(comm)": state is field 3, utime 14, stime 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Seconds used by this process (`RUSAGE_SELF`) or its reaped children (`RUSAGE_CHILDREN`).
    static func own(children: Bool = false) -> Double {
        var usage = rusage()
        getrusage(children ? RUSAGE_CHILDREN.rawValue : RUSAGE_SELF.rawValue, &usage)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }
}
