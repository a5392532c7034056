import AliyunDrive
import DriveFS
import Foundation
import FUSE
import Glibc
import HTTPTransport
import Logging
import Synchronization

/// Carries out a mount: token, login, checks, FUSE session, readiness, serve.
public enum Mounter {
    /// The per-user state directory (`$XDG_CONFIG_HOME/adrivefs` or `~/.config/adrivefs`).
    public static var stateDirectory: String {
        let environment = ProcessInfo.processInfo.environment
        if let config = environment["XDG_CONFIG_HOME"], !config.isEmpty { return config + "/adrivefs" }
        return (environment["HOME"] ?? NSHomeDirectory()) + "/.config/adrivefs"
    }

    public static var defaultTokenFile: String { stateDirectory + "/refresh_token" }

    /// The per-user cache directory (`$XDG_CACHE_HOME/adrivefs` or `~/.cache/adrivefs`).
    public static var cacheDirectory: String {
        let environment = ProcessInfo.processInfo.environment
        if let cache = environment["XDG_CACHE_HOME"], !cache.isEmpty { return cache + "/adrivefs" }
        return (environment["HOME"] ?? NSHomeDirectory()) + "/.cache/adrivefs"
    }

    /// Mounts and serves until unmounted. `ready` is called once the mount is live
    /// (nil error) or has failed (the error, one line).
    public static func run(_ request: MountRequest, ready: (String?) -> Void) -> Int32 {
        let logger = Logger(label: "adrivefs")
        // Taken from the start: a signal during startup must not kill the process halfway.
        let signals = StopSignals()
        let prepared: Prepared
        do {
            prepared = try request.share.map { try prepareShare(request, $0) } ?? prepare(request)
        } catch {
            ready("\(error)")
            return 1
        }
        let (session, http, fileSystem) = (prepared.session, prepared.http, prepared.fileSystem)
        // The control socket (adrivefs status / refresh) and SIGHUP (refresh).
        let started = Date()
        let control = try? ControlServer(path: ControlSocket.path(for: request.mountpoint)) { command in
            switch command {
            case "status": return StatusReport.json(request, prepared, since: started)
            case "refresh":
                prepared.fileSystem.refresh()
                return ["ok": true]
            default: return ["error": "unknown request '\(command)' (status, refresh)"]
            }
        }
        signal(SIGHUP, SIG_IGN)
        let hangup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        hangup.setEventHandler { prepared.fileSystem.refresh() }
        hangup.resume()
        ready(nil)
        ServiceManager.ready()
        logger.info("mounted \(request.source) on \(request.mountpoint)")
        for note in prepared.notes { logger.info("\(note)") }
        // In the background: the stat inside blocks until the session below serves requests.
        let mountpoint = request.mountpoint
        DispatchQueue.global().async { FUSESession.raiseKernelReadahead(mountpoint: mountpoint, kilobytes: 2048) }
        fileSystem.recoverPendingUploads()
        if request.share == nil { Task { await fileSystem.sweepUnlinked() } }
        if let started = prepared.started { Task { await started() } }
        let wait = request.options.uploadWait
        let drain = DrainHandle()
        signals.handle(
            .init(
                unmount: {
                    logger.info("signal received: unmounting")
                    session.exit()
                    session.unmount()
                },
                reportWaiting: {
                    let pending = fileSystem.pendingUploadPaths()
                    logger.info(
                        "still waiting for \(pending.count) upload(s): \(pending.joined(separator: ", ")); send the signal again to stop waiting (they stay journaled for the next mount)")
                },
                endWait: {
                    logger.info("signal received again: no longer waiting for uploads")
                    drain.cancel()
                }))
        // STATUS= for systemctl status: what waits for the drive.
        let reporter = DispatchSource.makeTimerSource(queue: .global())
        reporter.schedule(deadline: .now() + 5, repeating: 5)
        reporter.setEventHandler {
            let pending = fileSystem.pendingUploadPaths().count
            ServiceManager.status(pending == 0 ? "mounted" : "mounted; \(pending) upload(s) pending")
        }
        reporter.resume()
        let status = session.run(handlingSignals: false)
        reporter.cancel()
        let waiting = fileSystem.pendingUploadPaths().count
        ServiceManager.stopping(waiting == 0 ? "unmounting" : "unmounting; waiting for \(waiting) upload(s)")
        // Whatever happens below, the process ends: upload_wait for the uploads, a minute
        // for the rest (each step's calls have their own timeouts), then a hard exit that
        // says which step it cut short (pending uploads stay journaled).
        let step = Mutex("moving files unlinked while open to the trash")
        DispatchQueue.global().asyncAfter(deadline: .now() + wait + 60) {
            logger.error("unmount did not finish within upload_wait + 60 s (still \(step.withLock { $0 })); exiting, pending uploads stay journaled")
            exit(1)
        }
        _ = blocking { await fileSystem.trashDeferredFiles() }
        step.withLock { $0 = "waiting for uploads" }
        let pendingAtUnmount = fileSystem.pendingUploadPaths()
        if !pendingAtUnmount.isEmpty {
            logger.info(
                "unmounted; waiting up to \(Int(wait)) s for \(pendingAtUnmount.count) upload(s): \(pendingAtUnmount.joined(separator: ", ")) (SIGTERM or Ctrl-C twice stops waiting)")
        }
        if signals.beginDrain() { drain.cancel() }
        let pending = blocking { await drain.run { await fileSystem.drain(timeout: wait) } }
        signals.endDrain()
        fileSystem.close()
        if case .success(let pending) = pending, !pending.isEmpty {
            logger.error("unmounting with \(pending.count) upload(s) still pending (kept for the next mount): \(pending.joined(separator: ", "))")
        } else {
            fileSystem.removeStagingDirectory()
        }
        step.withLock { $0 = "deleting temporary share copies" }
        if let stopping = prepared.stopping { _ = blocking { await stopping() } }
        step.withLock { $0 = "closing connections" }
        control?.stop()
        hangup.cancel()
        http.shutdown()
        logger.info("unmounted \(request.mountpoint)")
        return status == 0 ? 0 : 1
    }

    /// A mount ready to serve, and what its source does once mounted and before exit.
    struct Prepared: Sendable {
        var session: FUSESession
        var http: CurlHTTPClient
        var fileSystem: DriveFileSystem
        var started: (@Sendable () async -> Void)? = nil
        var stopping: (@Sendable () async -> Void)? = nil
        /// Logged once the mount is live (before that, stderr is the user's terminal).
        var notes: [String] = []
        /// Who is logged in (for `adrivefs status`), and the client's call counts.
        var account: AliyunDriveClient? = nil
    }

    static func prepare(_ request: MountRequest) throws -> Prepared {
        let options = request.options
        let mountpoint = try checkMountpoint(request.mountpoint)
        let (found, tokenFile) = refreshToken(options)
        guard let token = found else {
            throw UsageError("no refresh token: set ADRIVEFS_REFRESH_TOKEN or run 'adrivefs auth import' (looked in \(tokenFile))")
        }
        let http = try CurlHTTPClient(configuration: .init(caFile: options.caFile))
        let client = AliyunDriveClient(
            configuration: .init(
                endpoint: options.endpoint, tokenFile: tokenFile, stateDirectory: stateDirectory,
                drive: DriveKind(rawValue: options.drive) ?? .default),
            http: http, refreshToken: token)
        let started: Result<Void, any Error> = blocking { try await client.start() }
        if case .failure(let error) = started {
            http.shutdown()
            throw UsageError(describe(error, endpoint: options.endpoint, rootID: options.rootID))
        }
        // Staging files and the upload journal belong to this account, drive and endpoint.
        let binding = AccountBinding(userID: client.userID, driveID: client.driveID, endpoint: client.endpoint)
        let cacheRoot = options.cacheDirectory ?? cacheDirectory
        let configuration = DriveFSConfiguration(
            rootID: options.rootID, uid: options.uid ?? getuid(), gid: options.gid ?? getgid(), umask: options.umask,
            directoryCacheTTL: options.directoryCacheTTL, cacheSize: options.cacheSize, readAhead: options.readAhead,
            readOnly: options.readOnly,
            state: StateLayout(journalRoot: stateDirectory + "/pending", stagingRoot: cacheRoot + "/staging", binding: binding),
            diskCacheDirectory: cacheRoot + "/chunks", diskCacheSize: options.diskCacheSize,
            timesDirectory: stateDirectory + "/times",
            uploadOptions: UploadOptions(rapid: options.rapidUpload, internalURLs: options.internalUpload), writeBackDelay: options.writeBack,
            maxStreams: options.maxStreams)
        let shares: DriveWithShares?
        do {
            shares = try sharesInDrive(options, owner: client, http: http)
        } catch {
            http.shutdown()
            throw error
        }
        let fileSystem = try makeFileSystem(service: shares ?? client, configuration: configuration, http: http)
        let validated: Result<Void, any Error> = blocking { try await fileSystem.validateRoot() }
        if case .failure(let error) = validated {
            http.shutdown()
            throw UsageError(describe(error, endpoint: options.endpoint, rootID: options.rootID))
        }
        let shown = shares?.shares ?? []
        let startShares: @Sendable () async -> Void = { for share in shown { await share.drive.start() } }
        let stopShares: @Sendable () async -> Void = { for share in shown { await share.drive.shutdown() } }
        let notes = shares?.shares.map { "share \($0.id) shown as \(DriveWithShares.folderName)/\($0.name) (read-only; cp from it saves server-side)" } ?? []
        return Prepared(
            session: try mount(fileSystem, request, at: mountpoint, http: http), http: http, fileSystem: fileSystem,
            started: shown.isEmpty ? nil : startShares, stopping: shown.isEmpty ? nil : stopShares,
            notes: notes, account: client)
    }

    /// The filesystem over `service`; on failure the transport is shut down and the error
    /// is the command's one line.
    static func makeFileSystem(service: any DriveService, configuration: DriveFSConfiguration, http: CurlHTTPClient) throws -> DriveFileSystem {
        do {
            return try DriveFileSystem(service: service, configuration: configuration)
        } catch {
            http.shutdown()
            throw UsageError("\(error)")
        }
    }

    /// The FUSE session, mounted.
    static func mount(_ fileSystem: DriveFileSystem, _ request: MountRequest, at mountpoint: String, http: CurlHTTPClient) throws -> FUSESession {
        let fuseOptions = ["fsname=\(request.source)", "subtype=adrivefs"] + request.options.fuseOptions
        do {
            let session = try FUSESession(fileSystem: fileSystem, options: fuseOptions, debug: request.debug)
            try session.mount(at: mountpoint)
            return session
        } catch {
            http.shutdown()
            throw UsageError("cannot mount on \(mountpoint): \(error)")
        }
    }

    /// The refresh token from the environment or the token file, if any.
    static func refreshToken(_ options: MountOptions) -> (token: String?, file: String) {
        let tokenFile = options.tokenFile ?? defaultTokenFile
        let environmentToken = ProcessInfo.processInfo.environment["ADRIVEFS_REFRESH_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        return (environmentToken ?? SecretFile.read(tokenFile), tokenFile)
    }

    static func describe(_ error: any Error, endpoint: String, rootID: String) -> String {
        switch error {
        case let error as DriveError where error.kind == .authentication:
            return "authentication failed: \(error.message)"
        case let error as DriveError where error.kind == .unreachable:
            return "cannot reach \(endpoint): \(error.message)"
        case let error as DriveFSError where error.errno == ENOTDIR:
            return "root_id \(rootID) is not a folder"
        case let error as DriveError where error.isNotFound:
            return rootID == "root" ? "\(error)" : "root_id \(rootID) does not exist"
        default:
            return "\(error)"
        }
    }

    /// The mount point must be an existing directory that is not already a mount.
    static func checkMountpoint(_ path: String) throws -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw UsageError("mount point \(path) does not exist")
        }
        guard isDirectory.boolValue else { throw UsageError("mount point \(path) is not a directory") }
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        if let mountinfo = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) {
            for line in mountinfo.split(separator: "\n") {
                let fields = line.split(separator: " ")
                if fields.count > 4, unescapeMountinfo(String(fields[4])) == resolved {
                    throw UsageError("mount point \(path) is already in use (something is mounted there)")
                }
            }
        }
        return resolved
    }

    /// mountinfo escapes space, tab, newline and backslash as octal.
    static func unescapeMountinfo(_ field: String) -> String {
        field.replacingOccurrences(of: "\\040", with: " ").replacingOccurrences(of: "\\011", with: "\t")
            .replacingOccurrences(of: "\\012", with: "\n").replacingOccurrences(of: "\\134", with: "\\")
    }

    /// Runs async setup from synchronous startup code (before the FUSE loop owns the thread).
    static func blocking<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) -> Result<T, any Error> {
        let box = ResultBox<T>()
        let semaphore = DispatchSemaphore(value: 0)
        Task {
            do { box.result = .success(try await work()) } catch { box.result = .failure(error) }
            semaphore.signal()
        }
        semaphore.wait()
        return box.result ?? .failure(UsageError("startup did not complete"))
    }

    /// `adrivefs auth import`: reads a token on stdin and stores it with mode 0600.
    public static func importToken(tokenFile: String?) throws {
        let data = FileHandle.standardInput.readDataToEndOfFile()
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty, !token.contains(where: \.isWhitespace) else {
            throw UsageError("expected one refresh token on standard input")
        }
        let path = tokenFile ?? defaultTokenFile
        try SecretFile.write(Array((token + "\n").utf8), to: path)
        FileHandle.standardError.write(Data("adrivefs: refresh token stored in \(path)\n".utf8))
    }
}

/// The wait for uploads at unmount, which a signal may end before it has even started.
private final class DrainHandle: Sendable {
    private let state = Mutex((task: Task<[String], Never>?.none, cancelled: false))

    func run(_ work: @escaping @Sendable () async -> [String]) async -> [String] {
        let task = Task { await work() }
        let cancelled = state.withLock { state in
            state.task = task
            return state.cancelled
        }
        if cancelled { task.cancel() }
        return await task.value
    }

    func cancel() {
        state.withLock { state in
            state.cancelled = true
            return state.task
        }?.cancel()
    }
}

/// Written by one task, read after the semaphore: no concurrent access.
private final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}
