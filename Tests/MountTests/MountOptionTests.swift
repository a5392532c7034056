import DriveEmulator
import EmulatorTestSupport
import Foundation
import Glibc
import Testing

/// Options, mount(8) shapes, signals and the auth subcommand, through real mounts.
@Suite(.serialized, .enabled(if: FUSEAvailability.canMount, "\(FUSEAvailability.problem ?? "")"))
struct MountOptionTests {
    @Test func rootIDResourceDriveOwnershipAndReadOnly() async throws {
        let m = try await MountedDrive(seed: .demo)
        do {
            let (_, documents) = try await m.drive.post("/v2/file/get_by_path", ["drive_id": m.drive.driveID, "file_path": "/Documents"])
            let folder = try #require(documents["file_id"] as? String)
            try await m.mount(options: ["root_id=\(folder)", "uid=1234", "gid=4321", "umask=027", "ro"])
            #expect(try m.shell("ls", m.mountpoint).contains("notes.md"))
            #expect(try m.shell("stat", "-c", "%u %g %a", m.path("notes.md")) == "1234 4321 440\n")
            let (status, _, error) = try MountedDrive.run(["sh", "-c", "echo x >> '\(m.path("notes.md"))'"])
            #expect(status != 0)
            #expect(error.contains("Read-only file system"))
            await m.unmount()
            try await m.mount(options: ["drive=resource"])
            #expect(try m.shell("cat", m.path("welcome.txt")) == "A file in the resource drive.\n")
            await m.unmount()
            // A root_id that does not exist fails the mount with a clear line.
            var environment = ProcessInfo.processInfo.environment
            environment["XDG_CONFIG_HOME"] = m.stateDirectory
            let (bad, _, message) = try MountedDrive.run(
                [MountedDrive.binary, "adrive", m.mountpoint, "-f", "-o", "endpoint=\(m.endpoint),token_file=\(m.tokenFile),root_id=\(String(repeating: "0", count: 40))"],
                environment: environment)
            #expect(bad != 0)
            #expect(message.contains("root_id"))
        } catch {
            await m.finish()
            throw error
        }
        await m.finish()
    }

    /// Other users: refused without `allow_other`; let in with it; and with
    /// `default_permissions` the kernel checks the mode bits (`umask`).
    @Test func allowOtherAndDefaultPermissions() async throws {
        guard getuid() == 0 else { return }
        let m = try await MountedDrive(seed: .demo)
        do {
            // The test directory must be traversable by the other user.
            chmod(m.directory.path, 0o755)
            let asNobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat", m.path("README.txt")]
            try await m.mount()
            var (status, _, error) = try MountedDrive.run(asNobody)
            #expect(status != 0 && error.contains("Permission denied"), "\(error)")
            await m.unmount()
            try await m.mount(options: ["allow_other"])
            (status, _, error) = try MountedDrive.run(asNobody)
            #expect(status == 0, "\(error)")
            await m.unmount()
            try await m.mount(options: ["allow_other", "default_permissions", "umask=077"])
            (status, _, error) = try MountedDrive.run(asNobody)
            #expect(status != 0 && error.contains("Permission denied"), "\(error)")
            #expect(try m.shell("cat", m.path("README.txt")).hasPrefix("Welcome"))
        } catch {
            await m.finish()
            throw error
        }
        await m.finish()
    }

    /// `ca_file`: the API behind TLS with a private certificate (socat in front of the
    /// emulator) is refused without it and trusted with it.
    @Test func caFileTrustsAPrivateCertificate() async throws {
        let m = try await MountedDrive(seed: .demo)
        var proxy: Process?
        do {
            let cert = m.directory.appendingPathComponent("cert.pem").path
            let key = m.directory.appendingPathComponent("key.pem").path
            try m.shell(
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert)
            let upstream = m.endpoint.replacingOccurrences(of: "http://", with: "")
            let log = m.directory.appendingPathComponent("socat.log").path
            let (socat, port) = try await Self.startTLSProxy(cert: cert, key: key, upstream: upstream, log: log)
            proxy = socat
            var environment = ProcessInfo.processInfo.environment
            environment["XDG_CONFIG_HOME"] = m.stateDirectory
            let https = "endpoint=https://127.0.0.1:\(port),token_file=\(m.tokenFile)"
            let (refused, _, message) = try MountedDrive.run([MountedDrive.binary, "adrive", m.mountpoint, "-o", https], environment: environment)
            #expect(refused != 0)
            #expect(message.lowercased().contains("certificate"), "\(message)")
            try await m.mount(options: ["endpoint=https://127.0.0.1:\(port)", "ca_file=\(cert)"])
            #expect(try m.shell("cat", m.path("README.txt")).hasPrefix("Welcome"))
        } catch {
            if let proxy { Self.stop(proxy) }
            await m.finish()
            throw error
        }
        if let proxy { Self.stop(proxy) }
        await m.finish()
    }

    /// Starts socat as a TLS front for `upstream` and returns its port once a request
    /// through it succeeds. The port is taken below the kernel's ephemeral range (the
    /// suite's own connections use that range, and a clash made socat exit at once); if
    /// socat still exits, the next port is tried.
    static func startTLSProxy(cert: String, key: String, upstream: String, log: String) async throws -> (Process, Int) {
        for _ in 0..<8 {
            let port = Int.random(in: 20_000...32_000)
            let proxy = Process()
            proxy.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            proxy.arguments = [
                "socat", "-lf", log,
                "OPENSSL-LISTEN:\(port),bind=127.0.0.1,reuseaddr,fork,cert=\(cert),key=\(key),verify=0", "TCP:\(upstream)",
            ]
            // socat forks per connection: no inherited pipes (the test runner waits for them to close).
            proxy.standardInput = FileHandle.nullDevice
            proxy.standardOutput = FileHandle.nullDevice
            proxy.standardError = FileHandle.nullDevice
            try proxy.run()
            let deadline = ContinuousClock.now + .seconds(30)
            while proxy.isRunning, ContinuousClock.now < deadline {
                let probe = ["curl", "-s", "-o", "/dev/null", "--cacert", cert, "https://127.0.0.1:\(port)/__emulator/health"]
                if (try? MountedDrive.run(probe))?.0 == 0 { return (proxy, port) }
                try await Task.sleep(for: .milliseconds(100))
            }
            stop(proxy)
            if ContinuousClock.now >= deadline { break }
        }
        let said = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        throw TestDriveError("the TLS proxy (socat) did not come up: \(said)")
    }

    /// Kills socat and the children it forked for connections.
    static func stop(_ proxy: Process) {
        guard proxy.isRunning else { return }
        _ = try? MountedDrive.run(["pkill", "-9", "-P", String(proxy.processIdentifier)])
        kill(proxy.processIdentifier, SIGKILL)
        proxy.waitUntilExit()
    }

    @Test func webTokenDownloadsCarryTheReferer() async throws {
        let setup: (MountedDrive) async throws -> Void = { m in
            let login = try await m.drive.hook("tokens", ["web": true])
            let web = try #require(login["refresh_token"] as? String)
            try Data((web + "\n").utf8).write(to: URL(fileURLWithPath: m.tokenFile))
        }
        try await withMount(setup: setup) { m in
            let notes = try m.shell("cat", m.path("Documents/notes.md"))
            #expect(notes.hasPrefix("# Notes"))
        }
    }

    @Test func mountHelperAndSignals() async throws {
        let m = try await MountedDrive(seed: .none)
        do {
            // `mount -t fuse.adrivefs` runs mount.fuse3, which runs `adrivefs adrive MNT -o …`
            // from PATH (mount(8) itself resets PATH, so the helper is called directly here).
            var environment = ProcessInfo.processInfo.environment
            environment["PATH"] = URL(fileURLWithPath: MountedDrive.binary).deletingLastPathComponent().path + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
            environment["XDG_CONFIG_HOME"] = m.stateDirectory
            let (status, _, error) = try MountedDrive.run(
                ["mount.fuse3", "adrive", m.mountpoint, "-t", "fuse.adrivefs", "-o", "endpoint=\(m.endpoint),token_file=\(m.tokenFile),_netdev,noatime,rw,nosuid,nodev"],
                environment: environment)
            #expect(status == 0, "\(error)")
            #expect(m.isMounted)
            let mounts = try String(contentsOfFile: "/proc/mounts", encoding: .utf8)
            #expect(mounts.contains("adrive \(m.mountpoint) fuse.adrivefs"))
            #expect(try MountedDrive.run(["umount", m.mountpoint]).0 == 0)
            #expect(!m.isMounted)

            // SIGTERM to a foreground daemon unmounts cleanly.
            try await m.mount()
            let pid = try #require(Int32(try m.shell("sh", "-c", "pgrep -f 'adrivefs adrive \(m.mountpoint) -f' | head -1").trimmingCharacters(in: .whitespacesAndNewlines)))
            kill(pid, SIGTERM)
            for _ in 0..<100 where m.isMounted { try await Task.sleep(for: .milliseconds(50)) }
            #expect(!m.isMounted)
        } catch {
            await m.finish()
            throw error
        }
        await m.finish()
    }

    @Test func authImportStoresTheTokenPrivately() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("adrivefs-auth-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("nested/token").path
        let (status, out, error) = try MountedDrive.run(["sh", "-c", "echo 0123456789abcdef0123456789abcdef | '\(MountedDrive.binary)' auth import --token-file '\(file)'"])
        #expect(status == 0)
        #expect(!out.contains("0123456789abcdef") && !error.contains("0123456789abcdef"))
        #expect(SecretFile(path: file) == "0123456789abcdef0123456789abcdef")
        let mode = try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let (empty, _, emptyError) = try MountedDrive.run(["sh", "-c", "printf '' | '\(MountedDrive.binary)' auth import --token-file '\(file)'"])
        #expect(empty != 0)
        #expect(emptyError.contains("expected one refresh token"))
    }
}
