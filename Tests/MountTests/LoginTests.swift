import DriveEmulator
import EmulatorTestSupport
import Foundation
import Glibc
import Testing

/// `adrivefs login` against the emulator's passport: the states as a script sees them (no
/// terminal), the token stored rotated with mode 0600 and never shown, an expired code
/// replaced, a cancelled login, and `adrivefs auth status`.
@Suite(.serialized) struct LoginTests {
    /// Runs `adrivefs ARGS` in the background; `drive` moves the QR login along meanwhile.
    static func run(_ arguments: [String], state: String, drive: (Int) async throws -> Void) async throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: MountedDrive.binary)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["XDG_CONFIG_HOME"] = state
        environment["ADRIVEFS_LOGIN_POLL"] = "0.1"
        environment["ADRIVEFS_REFRESH_TOKEN"] = nil
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        let collected = OutputBox()
        output.fileHandleForReading.readabilityHandler = { handle in collected.append(handle.availableData) }
        try process.run()
        var step = 0
        while process.isRunning && step < 400 {
            try await drive(step)
            step += 1
            try await Task.sleep(for: .milliseconds(50))
        }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        output.fileHandleForReading.readabilityHandler = nil
        collected.append(output.fileHandleForReading.readDataToEndOfFile())
        return (process.terminationStatus, collected.text)
    }

    @Test func aConfirmedLoginStoresTheRotatedTokenPrivatelyAndAMountTakesIt() async throws {
        let m = try await MountedDrive()
        defer { Task { await m.finish() } }
        try? FileManager.default.removeItem(atPath: m.tokenFile)
        let refreshesBefore = try await m.drive.stats()["refreshes"] as? Int ?? 0
        let (status, output) = try await Self.run(["login", "--endpoint", m.endpoint, "--token-file", m.tokenFile], state: m.stateDirectory) { step in
            if step == 4 { _ = try await m.drive.hook("qr/scan") }
            if step == 8 { _ = try await m.drive.hook("qr/confirm") }
        }
        #expect(status == 0, "\(output)")
        let lines = output.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("scan with the Aliyun Drive app: https://passport.aliyundrive.com/qrcodeCheck.htm?") == true)
        #expect(lines.dropFirst().prefix(3) == ["waiting", "scanned", "confirmed"])
        // The nickname came through GB18030 (the demo account's is Chinese).
        #expect(lines.last?.hasPrefix("logged in as 云盘用户emulator (user id \(m.drive.userID), drive \(m.drive.driveID))") == true, "\(output)")
        let token = SecretFile(path: m.tokenFile)
        #expect(token.count >= 16)
        #expect(try FileManager.default.attributesOfItem(atPath: m.tokenFile)[.posixPermissions] as? Int == 0o600)
        #expect(!output.contains(token), "the token is never shown")
        // Refreshed once at once: the token stored is the rotated one.
        #expect((try await m.drive.stats()["refreshes"] as? Int ?? 0) > refreshesBefore)
        try await m.mount()
        #expect(try m.shell("cat", m.path("Documents/notes.md")).hasPrefix("# Notes"))

        // auth status says whose it is, and rotates (stores) it once more.
        let (statusCode, statusOut, _) = try MountedDrive.run(
            [MountedDrive.binary, "auth", "status", "--endpoint", m.endpoint, "--token-file", m.tokenFile], environment: m.environment)
        #expect(statusCode == 0)
        #expect(statusOut.contains("account: 云盘用户emulator (user id \(m.drive.userID))"))
        #expect(statusOut.contains("quota: ") && statusOut.contains("resource \(m.drive.resourceDriveID)"))
        #expect(!statusOut.contains(SecretFile(path: m.tokenFile)))
    }

    @Test func anExpiredCodeIsReplacedAndACancelledLoginExitsOne() async throws {
        let m = try await MountedDrive()
        defer { Task { await m.finish() } }
        try? FileManager.default.removeItem(atPath: m.tokenFile)
        let (status, output) = try await Self.run(["login", "--endpoint", m.endpoint, "--token-file", m.tokenFile], state: m.stateDirectory) { step in
            if step == 4 { _ = try await m.drive.hook("qr/expire") }
            if step == 10 { _ = try await m.drive.hook("qr/scan") }
            if step == 14 { _ = try await m.drive.hook("qr/confirm") }
        }
        #expect(status == 0, "\(output)")
        #expect(output.contains("expired; new code"))
        #expect(output.components(separatedBy: "scan with the Aliyun Drive app:").count == 3, "two codes shown")
        #expect(!SecretFile(path: m.tokenFile).isEmpty)

        try? FileManager.default.removeItem(atPath: m.tokenFile)
        let (cancelled, cancelOutput) = try await Self.run(["login", "--endpoint", m.endpoint, "--token-file", m.tokenFile], state: m.stateDirectory) { step in
            if step == 4 { _ = try await m.drive.hook("qr/cancel") }
        }
        #expect(cancelled == 1)
        #expect(cancelOutput.contains("adrivefs: the login was cancelled on the phone"))
        #expect(!FileManager.default.fileExists(atPath: m.tokenFile))

        // auth status without a token, and with a rejected one: one line, exit 1.
        let (missing, _, missingError) = try MountedDrive.run(
            [MountedDrive.binary, "auth", "status", "--endpoint", m.endpoint, "--token-file", m.tokenFile], environment: m.environment)
        #expect(missing == 1 && missingError.contains("no refresh token in \(m.tokenFile): run adrivefs login"))
        try Data("0123456789abcdef0123456789abcdef\n".utf8).write(to: URL(fileURLWithPath: m.tokenFile))
        let (rejected, _, rejectedError) = try MountedDrive.run(
            [MountedDrive.binary, "auth", "status", "--endpoint", m.endpoint, "--token-file", m.tokenFile], environment: m.environment)
        #expect(rejected == 1 && rejectedError.contains("the token was rejected"))
        #expect(!rejectedError.contains("0123456789abcdef"))
    }
}

/// Output of a child process, appended from its pipe's handler.
final class OutputBox: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func append(_ chunk: Data) { lock.withLock { data.append(chunk) } }
    var text: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
}
