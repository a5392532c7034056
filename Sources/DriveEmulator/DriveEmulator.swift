import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A faithful local Aliyun Drive: the API on one base URL, OSS-style download and part
/// upload URLs served by the same process, an internal-upload listener on a second port,
/// and test hooks under `/__emulator/`. See aliyun-api.md §14 for the checklist.
///
/// Safe for concurrent use: all state lives behind one lock, and handlers never block
/// on the network while holding it.
public final class DriveEmulator: Sendable {
    public struct Configuration: Sendable {
        /// Where blobs and state.json live; nil: a fresh temporary directory.
        public var dataDirectory: String?
        /// Content for a fresh data directory (ignored when state.json exists).
        public var seed: EmulatorSeed
        /// Sets the current refresh token of the seeded account's first login.
        public var refreshToken: String?
        public var host: String
        /// 0 picks a free port.
        public var port: Int
        /// Port of the internal-upload listener (0: a free one).
        public var internalPort: Int
        /// The link clients reach the emulator over (latency, rates); changeable at run time.
        public var link: LinkModel

        public init(
            dataDirectory: String? = nil, seed: EmulatorSeed = .none, refreshToken: String? = nil, host: String = "127.0.0.1",
            port: Int = 0, internalPort: Int = 0, link: LinkModel = LinkModel()
        ) {
            self.link = link
            self.dataDirectory = dataDirectory
            self.seed = seed
            self.refreshToken = refreshToken
            self.host = host
            self.port = port
            self.internalPort = internalPort
        }
    }

    private struct Runtime: Sendable {
        var channels: [any Channel] = []
        var saver: RepeatedTask?
        /// The ports bound by `start` (kept for `goOnline`).
        var ports: (api: Int, internal: Int) = (0, 0)
    }

    private let offline = Atomic<Bool>(false)
    var isOffline: Bool { offline.load(ordering: .relaxed) }
    /// The link model in force (faults hook: `link_profile`, `api_latency_ms`, …).
    let link: LinkShaper

    let state: Mutex<EmulatorState>
    private let configuration: Configuration
    private let group: MultiThreadedEventLoopGroup
    private let runtime = Mutex(Runtime())
    private let ownsDataDirectory: Bool
    private let logger = Logger(label: "adrivefs.emulator")
    /// Writes state snapshots, in order, off the event loops.
    private let saveQueue = DispatchQueue(label: "adrivefs-emulator.save")
    private let saving = Mutex<(busy: Bool, notBefore: ContinuousClock.Instant)>((false, .now))
    public let dataDirectory: String

    public init(configuration: Configuration) throws {
        link = LinkShaper(configuration.link)
        self.configuration = configuration
        let directory: URL
        if let path = configuration.dataDirectory {
            directory = URL(fileURLWithPath: path)
            ownsDataDirectory = false
        } else {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("adrivefs-emulator-" + Formats.randomHex(12))
            ownsDataDirectory = true
        }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        dataDirectory = directory.path
        let emulatorState = EmulatorState(dataDirectory: directory)
        if try !emulatorState.load() {
            try emulatorState.seed(configuration.seed, refreshToken: configuration.refreshToken)
        } else if let token = configuration.refreshToken {
            emulatorState.setPrimaryRefreshToken(token)
        }
        try emulatorState.ensureEmptyBlob()
        try emulatorState.save()
        state = Mutex(emulatorState)
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(2, System.coreCount))
    }

    /// Binds the listeners; returns the API base URL (`http://HOST:PORT`).
    @discardableResult
    public func start() async throws -> String {
        let api = try await bind(port: configuration.port, isInternal: false)
        let internalChannel = try await bind(port: configuration.internalPort, isInternal: true)
        let host = configuration.host.contains(":") ? "[\(configuration.host)]" : configuration.host
        let base = "http://\(host):\(api.localAddress?.port ?? configuration.port)"
        let internalBase = "http://\(host):\(internalChannel.localAddress?.port ?? 0)"
        state.withLock {
            $0.baseURL = base
            $0.internalBaseURL = internalBase
        }
        let saver = group.next().scheduleRepeatedTask(initialDelay: .milliseconds(500), delay: .milliseconds(500)) { [self] _ in
            saveIfDirty()
        }
        runtime.withLock {
            $0.channels = [api, internalChannel]
            $0.saver = saver
            $0.ports = (api.localAddress?.port ?? configuration.port, internalChannel.localAddress?.port ?? configuration.internalPort)
        }
        return base
    }

    /// Simulates an outage (tests): stops listening (connections are refused) and drops
    /// every open connection at its next request. State is kept.
    public func goOffline() async {
        offline.store(true, ordering: .relaxed)
        let channels = runtime.withLock { value in
            defer { value.channels = [] }
            return value.channels
        }
        for channel in channels { try? await channel.close() }
    }

    /// Ends `goOffline`: listens again on the same ports.
    public func goOnline() async throws {
        let ports = runtime.withLock { $0.ports }
        let api = try await bind(port: ports.api, isInternal: false)
        let internalChannel = try await bind(port: ports.internal, isInternal: true)
        runtime.withLock { $0.channels = [api, internalChannel] }
        offline.store(false, ordering: .relaxed)
    }

    private func bind(port: Int, isInternal: Bool) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(EmulatorHTTPHandler(emulator: self, isInternal: isInternal))
                }
            }
            .bind(host: configuration.host, port: port).get()
    }

    /// The API base URL once started.
    public var baseURL: String { state.withLock { $0.baseURL } }
    /// The internal-upload base URL once started.
    public var internalBaseURL: String { state.withLock { $0.internalBaseURL ?? "" } }
    /// The current refresh token of the seeded account's first login.
    public var refreshToken: String { state.withLock { $0.primaryRefreshToken ?? "" } }

    /// The share links (id, password — empty for none — and name), oldest first.
    public var shares: [(id: String, password: String, name: String)] {
        state.withLock { state in
            state.persistent.shares.values.filter { !$0.cancelled }.sorted { $0.createdAt < $1.createdAt || ($0.createdAt == $1.createdAt && $0.name < $1.name) }
                .map { ($0.shareID, $0.password, $0.name) }
        }
    }

    /// Stops listening, saves state, and removes a temporary data directory.
    public func stop() async {
        let runtime = runtime.withLock { value in
            defer { value = Runtime() }
            return value
        }
        runtime.saver?.cancel()
        for channel in runtime.channels { try? await channel.close() }
        saveIfDirty(force: true)
        try? await group.shutdownGracefully()
        if ownsDataDirectory { try? FileManager.default.removeItem(atPath: dataDirectory) }
    }

    /// Saves changed state. Periodic saves run on their own queue, one at a time, and back
    /// off to four times the last save's duration (a big drive's state.json takes a while to
    /// encode); `force` (stop) waits for everything queued and then writes the latest state.
    func saveIfDirty(force: Bool = false) {
        let now = ContinuousClock.now
        if !force {
            let due = saving.withLock { saving in
                guard !saving.busy, now >= saving.notBefore else { return false }
                saving.busy = true
                return true
            }
            guard due else { return }
        }
        guard let snapshot = state.withLock({ $0.dirty || force ? $0.snapshot() : nil }) else {
            if !force { saving.withLock { $0.busy = false } }
            return
        }
        let write: @Sendable () -> Void = { [self] in
            let started = ContinuousClock.now
            do { try snapshot.write() } catch { logger.error("saving emulator state failed: \(error)") }
            let finished = ContinuousClock.now
            saving.withLock { saving in
                if !force { saving.busy = false }
                saving.notBefore = finished + (finished - started) * 4
            }
        }
        if force { saveQueue.sync(execute: write) } else { saveQueue.async(execute: write) }
    }
}
