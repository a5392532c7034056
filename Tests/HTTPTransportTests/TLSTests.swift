import Foundation
import Glibc
import HTTPTransport
import Testing

/// TLS peer verification against a real TLS server (`openssl s_server`) on loopback.
@Suite(.serialized) struct TLSTests {
    /// A self-signed certificate for 127.0.0.1 and an `openssl s_server -www` using it.
    final class TLSServer {
        let directory: URL
        let process = Process()
        let port: Int

        init() throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("adrivefs-tls-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let generate = Process()
            generate.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            generate.arguments = [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", directory.appendingPathComponent("key.pem").path,
                "-out", directory.appendingPathComponent("cert.pem").path,
            ]
            generate.standardError = FileHandle.nullDevice
            try generate.run()
            generate.waitUntilExit()
            guard generate.terminationStatus == 0 else { throw TestFailure("openssl req failed") }
            // Below the kernel's ephemeral range (32768–60999), where the suite's own
            // outgoing connections would sometimes hold the port.
            port = Int.random(in: 20_000...32_000)
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [
                "openssl", "s_server", "-quiet", "-www", "-accept", "127.0.0.1:\(port)",
                "-cert", directory.appendingPathComponent("cert.pem").path, "-key", directory.appendingPathComponent("key.pem").path,
            ]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
        }

        var caFile: String { directory.appendingPathComponent("cert.pem").path }
        var url: String { "https://127.0.0.1:\(port)/" }

        /// Waits until the server answers (with the right CA); gives up when it exits or
        /// after 30 s (two cores running the whole suite can be slow to start it).
        func waitUntilReady(client: CurlHTTPClient) async throws {
            let deadline = ContinuousClock.now + .seconds(30)
            while process.isRunning, ContinuousClock.now < deadline {
                if (try? await client.execute(HTTPRequest(url: url)))?.status == 200 { return }
                try await Task.sleep(for: .milliseconds(100))
            }
            throw TestFailure("openssl s_server on port \(port) did not come up (running: \(process.isRunning))")
        }

        deinit {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            try? FileManager.default.removeItem(at: directory)
        }
    }

    struct TestFailure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    @Test func selfSignedPeerIsRejectedUnlessItsCAIsConfigured() async throws {
        let server = try TLSServer()
        let trusting = try CurlHTTPClient(configuration: .init(caFile: server.caFile))
        defer { trusting.shutdown() }
        try await server.waitUntilReady(client: trusting)
        let response = try await trusting.execute(HTTPRequest(url: server.url))
        #expect(response.status == 200)

        let systemOnly = try CurlHTTPClient()
        defer { systemOnly.shutdown() }
        let error = await #expect(throws: HTTPTransportError.self) { try await systemOnly.execute(HTTPRequest(url: server.url)) }
        #expect(error?.code == .tls)
        #expect(error?.message.isEmpty == false)
        withExtendedLifetime(server) {}
    }
}
