import AliyunDrive
import Synchronization
import Testing

/// Token buckets against a virtual clock: waiting advances the clock instead of sleeping.
@Suite struct RateLimiterTests {
    final class VirtualClock: Sendable {
        let time = Mutex(1000.0)
        let slept = Mutex(0.0)
        var now: Double { time.withLock { $0 } }
        func sleep(_ seconds: Double) {
            time.withLock { $0 += seconds }
            slept.withLock { $0 += seconds }
        }
    }

    @Test func burstsPassThenCallsArePacedAtTheRate() async throws {
        let clock = VirtualClock()
        let limiter = RateLimiter(
            limits: [.list: .init(rate: 2, burst: 3)], now: { clock.now }, sleep: { clock.sleep($0) })
        for _ in 0..<3 { try await limiter.acquire(.list) }
        #expect(clock.slept.withLock { $0 } == 0)
        for _ in 0..<4 { try await limiter.acquire(.list) }
        // Four more permits at 2 per second: about two seconds of waiting.
        let waited = clock.slept.withLock { $0 }
        #expect(waited >= 1.99 && waited <= 2.01)
        // Kinds without a limit never wait.
        try await limiter.acquire(.other)
        #expect(clock.slept.withLock { $0 } == waited)
    }

    @Test func idleTimeRefillsUpToTheBurst() async throws {
        let clock = VirtualClock()
        let limiter = RateLimiter(limits: [.downloadURL: .init(rate: 1, burst: 2)], now: { clock.now }, sleep: { clock.sleep($0) })
        for _ in 0..<2 { try await limiter.acquire(.downloadURL) }
        clock.time.withLock { $0 += 100 }
        for _ in 0..<2 { try await limiter.acquire(.downloadURL) }
        #expect(clock.slept.withLock { $0 } == 0)
        try await limiter.acquire(.downloadURL)
        #expect(clock.slept.withLock { $0 } >= 0.99)
    }

    @Test func pathsMapToBuckets() {
        #expect(RateLimiter.kind(of: "/adrive/v3/file/list") == .list)
        #expect(RateLimiter.kind(of: "/v2/file/get_download_url") == .downloadURL)
        #expect(RateLimiter.kind(of: "/v2/user/get") == .other)
    }
}
