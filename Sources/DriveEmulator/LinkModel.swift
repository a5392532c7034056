import Foundation
import Synchronization

/// A slow or distant link, modelled inside the emulator (this kernel has no netem): a
/// latency before every API answer and before the first byte of a download, a rate per
/// connection (object stores throttle each connection) and an optional cap on all of them
/// together (the user's downlink / uplink). Zero means "no limit".
public struct LinkModel: Sendable, Equatable, Codable {
    /// Seconds before an API answer goes out.
    public var apiLatency: Double = 0
    /// Seconds before the first byte of a download.
    public var dataLatency: Double = 0
    /// Bytes per second per connection.
    public var downloadRate: Double = 0
    public var uploadRate: Double = 0
    /// Bytes per second over all connections.
    public var totalDownloadRate: Double = 0
    public var totalUploadRate: Double = 0

    public init(
        apiLatency: Double = 0, dataLatency: Double = 0, downloadRate: Double = 0, uploadRate: Double = 0, totalDownloadRate: Double = 0,
        totalUploadRate: Double = 0
    ) {
        self.apiLatency = apiLatency
        self.dataLatency = dataLatency
        self.downloadRate = downloadRate
        self.uploadRate = uploadRate
        self.totalDownloadRate = totalDownloadRate
        self.totalUploadRate = totalUploadRate
    }

    /// Named links (`--link NAME`, `link_profile` in the faults hook).
    public static let profiles: [(name: String, link: LinkModel, about: String)] = [
        ("loopback", LinkModel(), "no latency, no limits (the default)"),
        (
            "home", LinkModel(apiLatency: 0.040, dataLatency: 0.040, downloadRate: 10e6, uploadRate: 5e6, totalDownloadRate: 100e6, totalUploadRate: 20e6),
            "40 ms, 10 MB/s per connection (5 up), 100 MB/s in all (20 up)"
        ),
        (
            "mobile", LinkModel(apiLatency: 0.080, dataLatency: 0.080, downloadRate: 2e6, uploadRate: 1e6, totalDownloadRate: 20e6, totalUploadRate: 5e6),
            "80 ms, 2 MB/s per connection (1 up), 20 MB/s in all (5 up)"
        ),
        (
            "datacenter", LinkModel(apiLatency: 0.002, dataLatency: 0.002, downloadRate: 50e6, uploadRate: 50e6, totalDownloadRate: 1e9, totalUploadRate: 1e9),
            "2 ms, 50 MB/s per connection, 1 GB/s in all"
        ),
    ]

    public static func profile(_ name: String) -> LinkModel? { profiles.first { $0.name == name }?.link }

    var isIdeal: Bool { self == LinkModel() }
}

/// The link's shared state: the model in force and, for the caps across connections, the
/// moment each direction is free again (a virtual clock per direction). Connections ask it
/// when their next slice may go; nothing here sleeps.
final class LinkShaper: Sendable {
    private struct State {
        var model: LinkModel
        var downloadFree: Double = 0
        var uploadFree: Double = 0
    }

    private let state: Mutex<State>

    init(_ model: LinkModel) { state = Mutex(State(model: model)) }

    var model: LinkModel {
        get { state.withLock { $0.model } }
        set { state.withLock { $0.model = newValue } }
    }

    /// When `bytes` may have crossed the link in the given direction, for a connection whose
    /// own pacing lets them go at `ready` (seconds, monotonic); reserves the total cap.
    func reserve(_ bytes: Int, upload: Bool, ready: Double) -> Double {
        state.withLock { state in
            let cap = upload ? state.model.totalUploadRate : state.model.totalDownloadRate
            guard cap > 0 else { return ready }
            let free = upload ? state.uploadFree : state.downloadFree
            let start = max(ready, free)
            let done = start + Double(bytes) / cap
            if upload { state.uploadFree = done } else { state.downloadFree = done }
            return start
        }
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
}
