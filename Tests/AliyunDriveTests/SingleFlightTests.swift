@testable import AliyunDrive
import Synchronization
import Testing

@Suite struct SingleFlightTests {
    @Test func concurrentCallersShareOneCallAndEachCanStopWaiting() async throws {
        let flights = SingleFlight<String, Int>()
        let calls = Atomic<Int>(0)
        let ended = Atomic<Bool>(false)
        let work: @Sendable () async throws -> Int = {
            calls.add(1, ordering: .relaxed)
            try await Task.sleep(for: .seconds(3))
            ended.store(true, ordering: .relaxed)
            return 42
        }
        let patient = Task { try await flights.run("k", work) }
        try await Task.sleep(for: .milliseconds(30))
        let impatient = Task { try await flights.run("k", work) }
        try await Task.sleep(for: .milliseconds(30))
        impatient.cancel()
        await #expect(throws: CancellationError.self) { try await impatient.value }
        // Not held until the call ends (a fact, not a time: a loaded machine stretches times).
        let endedAlready = ended.load(ordering: .relaxed)
        #expect(!endedAlready)
        #expect(try await patient.value == 42)
        #expect(calls.load(ordering: .relaxed) == 1)
        // Finished calls are not cached.
        #expect(try await flights.run("k", work) == 42)
        #expect(calls.load(ordering: .relaxed) == 2)
    }
}
