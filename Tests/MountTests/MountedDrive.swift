import DriveEmulator
import EmulatorTestSupport
import Foundation
import Glibc
import HTTPTransport
import Testing

/// Whether real mounts can run here, and why not.
enum FUSEAvailability {
    static var problem: String? {
        if !FileManager.default.fileExists(atPath: "/dev/fuse") { return "/dev/fuse is missing" }
        guard let fusermount = ["/usr/bin/fusermount3", "/bin/fusermount3"].first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            return "fusermount3 is not installed (apt-get install fuse3)"
        }
        if getuid() != 0, let attributes = try? FileManager.default.attributesOfItem(atPath: fusermount),
            ((attributes[.posixPermissions] as? Int) ?? 0) & 0o4000 == 0
        {
            return "fusermount3 is not setuid and we are not root"
        }
        return nil
    }
    static var canMount: Bool { problem == nil }
}

/// The built `adrivefs` binary mounted through /dev/fuse against an in-process emulator.
/// Always unmounts (`fusermount3 -u -z`) and kills the daemon; fails the test when the
/// daemon logged an unexpected error or a token.
final class MountedDrive: @unchecked Sendable {
    let drive: TestDrive
    let directory: URL
    let mountpoint: String
    /// XDG_CONFIG_HOME and XDG_CACHE_HOME of the daemon (another mount's, when shared).
    let stateDirectory: String
    let cacheDirectory: String
    let tokenFile: String
    let logFile: String
    private var process: Process?
    var allowedLogPatterns: [String] = []

    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("adrivefs").path
    }

    /// `sharingStateWith`: another mount's state and cache directories, as two accounts of
    /// one person share `~/.config/adrivefs` and `~/.cache/adrivefs` (the token file is this
    /// mount's own).
    init(seed: EmulatorSeed = .demo, sharingStateWith other: MountedDrive? = nil) async throws {
        drive = try await TestDrive(seed: seed, login: true)
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("adrivefs-mount-\(UUID().uuidString)")
        mountpoint = directory.appendingPathComponent("mnt").path
        stateDirectory = other?.stateDirectory ?? directory.appendingPathComponent("state").path
        cacheDirectory = other?.cacheDirectory ?? directory.appendingPathComponent("cache").path
        tokenFile = other == nil ? directory.appendingPathComponent("state/adrivefs/refresh_token").path : directory.appendingPathComponent("refresh_token").path
        logFile = directory.appendingPathComponent("daemon.log").path
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: stateDirectory + "/adrivefs", withIntermediateDirectories: true)
        // A fresh login chain for the mount (the test session keeps its own).
        let token = try #require(try await drive.hook("tokens")["refresh_token"] as? String)
        try Data((token + "\n").utf8).write(to: URL(fileURLWithPath: tokenFile))
    }

    var endpoint: String { drive.base }

    /// Starts `adrivefs adrive MNT -f -o …` and waits for the mount in /proc/self/mountinfo.
    func mount(source: String = "adrive", options: [String] = [], environment extra: [String: String] = [:]) async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = [source, mountpoint, "-f", "-o", (["endpoint=\(endpoint)", "token_file=\(tokenFile)"] + options).joined(separator: ",")]
        var environment = ProcessInfo.processInfo.environment
        environment["XDG_CONFIG_HOME"] = stateDirectory
        environment["XDG_CACHE_HOME"] = cacheDirectory
        environment["ADRIVEFS_REFRESH_TOKEN"] = nil
        for (key, value) in extra { environment[key] = value }
        process.environment = environment
        _ = FileManager.default.createFile(atPath: logFile, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile))
        log.seekToEndOfFile()
        process.standardError = log
        process.standardOutput = log
        try process.run()
        self.process = process
        for _ in 0..<200 {
            if isMounted { return }
            if !process.isRunning { throw TestDriveError("adrivefs exited (\(process.terminationStatus)) before mounting: \(daemonLog)") }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestDriveError("the mount did not appear within 10 s: \(daemonLog)")
    }

    var isMounted: Bool {
        let mountinfo = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        return mountinfo.split(separator: "\n").contains { $0.split(separator: " ").dropFirst(4).first.map(String.init) == mountpoint }
    }

    /// The daemon's environment for a command run by hand (as `mount` does).
    var environment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["XDG_CONFIG_HOME"] = stateDirectory
        environment["XDG_CACHE_HOME"] = cacheDirectory
        environment["ADRIVEFS_REFRESH_TOKEN"] = nil
        environment["ADRIVEFS_SHARE_PWD"] = nil
        return environment
    }

    var daemonLog: String { (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "" }

    /// Unmounts and stops the daemon (always safe to call).
    func unmount() async {
        _ = try? Self.run(["fusermount3", "-u", "-z", mountpoint])
        if let process {
            for _ in 0..<100 where process.isRunning { try? await Task.sleep(for: .milliseconds(50)) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        process = nil
    }

    /// The daemon process, while it runs.
    var daemonPID: pid_t? { process.flatMap { $0.isRunning ? $0.processIdentifier : nil } }

    /// Waits up to `seconds` for the daemon to exit; true when it has.
    func waitForDaemonExit(_ seconds: Double) async -> Bool {
        guard let process else { return true }
        for _ in 0..<Int(seconds * 20) where process.isRunning { try? await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning { return false }
        self.process = nil
        return true
    }

    /// The journal entries (pending uploads) of every mount and account in the state directory.
    func journalEntries() -> [String] {
        let root = stateDirectory + "/adrivefs/pending"
        guard let walker = FileManager.default.enumerator(atPath: root) else { return [] }
        return walker.compactMap { $0 as? String }.filter { $0.hasSuffix(".json") && !$0.hasSuffix("binding.json") }.map { root + "/" + $0 }
    }

    /// kill -9 of the daemon (a crash), then a lazy unmount of what it left.
    func killDaemon() async {
        if let process {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        process = nil
        _ = try? Self.run(["fusermount3", "-u", "-z", mountpoint])
    }

    /// Stops everything and checks the daemon's log.
    func finish() async {
        await unmount()
        let log = daemonLog
        for line in log.split(separator: "\n") {
            let lower = line.lowercased()
            if (lower.contains("error") || lower.contains("warning")) && !allowedLogPatterns.contains(where: { line.contains($0) }) {
                Issue.record("daemon logged: \(line)")
            }
        }
        let secrets = [drive.refreshToken, drive.accessToken] + [SecretFile(path: tokenFile)]
        for secret in secrets where secret.count > 8 && log.contains(secret) {
            Issue.record("a token appeared in the daemon log")
        }
        await drive.stop()
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: - Tools

    /// Runs a command; returns (status, stdout, stderr).
    @discardableResult
    static func run(_ arguments: [String], environment: [String: String]? = nil) throws -> (Int32, String, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        if let environment { process.environment = environment }
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    @discardableResult
    func shell(_ arguments: String...) throws -> String {
        let (status, out, err) = try Self.run(Array(arguments))
        guard status == 0 else { throw TestDriveError("\(arguments.joined(separator: " ")) failed (\(status)): \(err)") }
        return out
    }

    func path(_ relative: String) -> String { mountpoint + "/" + relative }

    /// The server's file object at a drive path, or nil when there is none.
    func remoteFile(_ path: String) async throws -> JSON? {
        let (status, file) = try await drive.post("/v2/file/get_by_path", ["drive_id": drive.driveID, "file_path": path])
        return status == 200 ? file : nil
    }

    /// The bytes of a drive file fetched straight from the emulator (the reference).
    func remoteBytes(_ drivePath: String) async throws -> [UInt8] {
        let file = try #require(try await remoteFile(drivePath), "\(drivePath) is not on the server")
        let url = try await drive.downloadURL(try #require(file["file_id"] as? String))
        return try await drive.get(url).body
    }
}

/// Reads a token file's content (empty when absent).
func SecretFile(path: String) -> String {
    ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Runs `body` against a fresh mount and always cleans up.
func withMount(
    seed: EmulatorSeed = .demo, options: [String] = [], allow: [String] = [], setup: (MountedDrive) async throws -> Void = { _ in },
    _ body: (MountedDrive) async throws -> Void
) async throws {
    let mounted = try await MountedDrive(seed: seed)
    mounted.allowedLogPatterns = allow
    do {
        try await setup(mounted)
        try await mounted.mount(options: options)
        try await body(mounted)
    } catch {
        await mounted.finish()
        throw error
    }
    await mounted.finish()
}

/// Polls for up to `seconds` until `probe` returns a value.
func eventually<T>(_ seconds: Double = 5, _ probe: () async throws -> T?) async throws -> T? {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if let value = try await probe() { return value }
        try await Task.sleep(for: .milliseconds(100))
    }
    return try await probe()
}
