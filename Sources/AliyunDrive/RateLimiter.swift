import Synchronization

/// Per-endpoint token buckets (aliyun-api.md §12.2): each class of call gets `rate`
/// permits per second with bursts up to `burst`. `acquire` waits, without blocking a
/// thread, until the call may go out. Time is injected so tests need not sleep.
public final class RateLimiter: Sendable {
    public struct Limit: Sendable, Equatable {
        public var rate: Double
        public var burst: Double
        public init(rate: Double, burst: Double) {
            self.rate = rate
            self.burst = burst
        }
    }

    /// Which bucket a call draws from.
    public enum Kind: Sendable, Hashable { case list, downloadURL, other }

    /// Generous defaults: far above what one mount normally needs, low enough that a
    /// runaway loop (or `find` over a huge tree) does not hammer the service.
    public static let defaultLimits: [Kind: Limit] = [
        .list: Limit(rate: 20, burst: 60), .downloadURL: Limit(rate: 10, burst: 20), .other: Limit(rate: 30, burst: 60),
    ]

    private struct Bucket {
        var tokens: Double
        var updated: Double
    }

    private let limits: [Kind: Limit]
    private let buckets: Mutex<[Kind: Bucket]>
    private let now: @Sendable () -> Double
    private let sleep: @Sendable (Double) async throws -> Void

    public init(
        limits: [Kind: Limit] = RateLimiter.defaultLimits, now: @escaping @Sendable () -> Double,
        sleep: @escaping @Sendable (Double) async throws -> Void
    ) {
        self.limits = limits
        self.now = now
        self.sleep = sleep
        let start = now()
        buckets = Mutex(limits.mapValues { Bucket(tokens: $0.burst, updated: start) })
    }

    /// The bucket of an API path.
    public static func kind(of path: String) -> Kind {
        if path.hasSuffix("/file/list") || path.hasSuffix("/list_by_share") { return .list }
        if path.hasSuffix("get_download_url") { return .downloadURL }
        return .other
    }

    /// Takes one permit for `kind`, waiting as long as needed.
    public func acquire(_ kind: Kind) async throws {
        guard let limit = limits[kind], limit.rate > 0 else { return }
        while true {
            let wait: Double = buckets.withLock { buckets in
                let current = now()
                var bucket = buckets[kind] ?? Bucket(tokens: limit.burst, updated: current)
                bucket.tokens = min(limit.burst, bucket.tokens + (current - bucket.updated) * limit.rate)
                bucket.updated = current
                defer { buckets[kind] = bucket }
                if bucket.tokens >= 1 {
                    bucket.tokens -= 1
                    return 0
                }
                return (1 - bucket.tokens) / limit.rate
            }
            if wait <= 0 { return }
            try await sleep(wait)
        }
    }
}
