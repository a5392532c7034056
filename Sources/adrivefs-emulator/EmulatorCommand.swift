import ArgumentParser
import DriveEmulator
import Foundation

/// `adrivefs-emulator`: a local Aliyun Drive for tests, benchmarks and the no-account demo.
@main
struct EmulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adrivefs-emulator",
        abstract: "Serve a faithful local emulation of the Aliyun Drive API.",
        discussion: """
            Answers every API host on one base URL, serves the download and part-upload URLs \
            it hands out, and exposes test hooks under /__emulator/ (stats, faults, QR login). \
            State and blobs live under --data-dir and survive a restart.
            """)

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one).")
    var port = 8787

    @Option(name: .customLong("internal-port"), help: "Port of the internal-upload listener (0 picks a free one).")
    var internalPort = 0

    @Option(name: .customLong("data-dir"), help: "Directory for blobs and state (default: a temporary directory).")
    var dataDir: String?

    @Option(help: "Sample content for a fresh data directory: none, demo or bench.")
    var seed = "demo"

    @Option(name: .customLong("refresh-token"), help: "Set the demo account's current refresh token.")
    var refreshToken: String?

    @Option(
        help: ArgumentHelp(
            "The link clients reach the emulator over: "
                + LinkModel.profiles.map { "\($0.name) (\($0.about))" }.joined(separator: "; ") + "."))
    var link = "loopback"

    func validate() throws {
        guard (0...65535).contains(port), (0...65535).contains(internalPort) else {
            throw ValidationError("ports must be between 0 and 65535")
        }
        guard EmulatorSeed(rawValue: seed) != nil else {
            throw ValidationError("--seed must be one of: none, demo, bench")
        }
        if let refreshToken, refreshToken.isEmpty { throw ValidationError("--refresh-token must not be empty") }
        guard LinkModel.profile(link) != nil else {
            throw ValidationError("--link must be one of: " + LinkModel.profiles.map(\.name).joined(separator: ", "))
        }
    }

    func run() async throws {
        let emulator: DriveEmulator
        do {
            emulator = try DriveEmulator(
                configuration: .init(
                    dataDirectory: dataDir, seed: EmulatorSeed(rawValue: seed) ?? .demo, refreshToken: refreshToken, host: host, port: port,
                    internalPort: internalPort, link: LinkModel.profile(link) ?? LinkModel()))
        } catch {
            FileHandle.standardError.write(Data("adrivefs-emulator: cannot prepare data directory: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let base: String
        do {
            base = try await emulator.start()
        } catch {
            FileHandle.standardError.write(Data("adrivefs-emulator: cannot listen on \(host):\(port): \(error)\n".utf8))
            throw ExitCode(1)
        }
        say("listening on \(base)")
        say("internal upload endpoint on \(emulator.internalBaseURL)")
        say("data directory: \(emulator.dataDirectory)")
        say("refresh token: \(emulator.refreshToken)")
        for share in emulator.shares {
            say("share: share:\(share.id) (\(share.name)), \(share.password.isEmpty ? "no password" : "password \(share.password)")")
        }

        let (signals, continuation) = AsyncStream<Int32>.makeStream()
        let sources = [SIGINT, SIGTERM].map { signalNumber in
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { continuation.yield(signalNumber) }
            source.resume()
            return source
        }
        for await _ in signals { break }
        sources.forEach { $0.cancel() }
        await emulator.stop()
        say("stopped")
    }
}

/// Writes a line to standard output at once (no buffering: scripts wait for these lines).
private func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
