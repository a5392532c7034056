@testable import DriveFS
import Synchronization
import Testing

/// A clock the test moves by hand: sleepers wake when it passes their deadline.
final class ManualClock: WriteBackClock {
    private let state = Mutex<(now: Double, sleepers: [(deadline: Double, wake: CheckedContinuation<Void, any Error>)])>((0, []))

    func now() -> Double { state.withLock { $0.now } }

    func sleep(until deadline: Double) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let due = state.withLock { state -> Bool in
                if deadline <= state.now { return true }
                state.sleepers.append((deadline, continuation))
                return false
            }
            if due { continuation.resume() }
        }
        try Task.checkCancellation()
    }

    /// Moves time on and wakes the sleepers that are due.
    func advance(to time: Double) {
        let due = state.withLock { state in
            state.now = time
            let due = state.sleepers.filter { $0.deadline <= time }
            state.sleepers.removeAll { $0.deadline <= time }
            return due
        }
        for sleeper in due { sleeper.wake.resume() }
    }

    var sleeperCount: Int { state.withLock { $0.sleepers.count } }
}

/// What a job saw: the attempt numbers and the clock at each.
final class JobLog: Sendable {
    let attempts = Mutex<[(attempt: Int, at: Double)]>([])
}

@Suite struct WriteBackTests {
    /// Waits (in real time, up to 5 s) until `condition` holds: the queue's tasks run on
    /// the cooperative pool, not in step with the test.
    static func until(_ condition: () -> Bool) async {
        for _ in 0..<500 where !condition() { try? await Task.sleep(for: .milliseconds(10)) }
    }

    @Test func failuresAreRetriedWithOneDoublingBackoff() async throws {
        let clock = ManualClock()
        let queue = WriteBack(policy: .init(first: 1, maximum: 4), clock: clock)
        let log = JobLog()
        queue.schedule("a", path: "a.txt", error: "503") { attempt in
            log.attempts.withLock { $0.append((attempt, clock.now())) }
            return attempt < 5 ? .retry(error: "still 503") : .done
        }
        #expect(queue.pending.map(\.path) == ["a.txt"])
        #expect(queue.pending.first?.due == 1)
        await Self.until { clock.sleeperCount == 1 }
        // 1, 2, 4, then capped at 4: attempts at t = 1, 3, 7, 11.
        for (time, count) in [(1.0, 1), (3, 2), (7, 3), (11, 4)] {
            clock.advance(to: time - 0.1)
            try await Task.sleep(for: .milliseconds(30))
            #expect(log.attempts.withLock { $0.count } == count - 1, "nothing before t = \(time)")
            clock.advance(to: time)
            await Self.until { log.attempts.withLock { $0.count } == count && (count == 4 ? queue.pending.isEmpty : clock.sleeperCount == 1) }
        }
        let attempts = log.attempts.withLock { $0 }
        #expect(attempts.map(\.attempt) == [2, 3, 4, 5])
        #expect(attempts.map(\.at) == [1, 3, 7, 11])
        #expect(queue.pending.isEmpty)
    }

    @Test func drainTriesNowWaitsForFilesOnlyAndEndsAtItsDeadline() async throws {
        let clock = ManualClock()
        let queue = WriteBack(policy: .init(first: 30), clock: clock)
        let succeed = Mutex(false)
        queue.schedule("file", path: "f", error: "e") { _ in succeed.withLock { $0 } ? .done : .retry(error: "e") }
        queue.schedule("old", kind: .recovered, path: "r", error: "e") { _ in .retry(error: "e") }
        // Not due for 30 s; a drain tries at once and then on the draining schedule (8 s at most).
        let drained = Task { await queue.drain(until: 100) }
        await Self.until { queue.pending.first { $0.key == "file" }?.attempts == 2 }
        #expect(queue.pending.first { $0.key == "file" }?.attempts == 2)
        #expect(queue.pending.first { $0.key == "file" }?.due == 8)
        succeed.withLock { $0 = true }
        clock.advance(to: 8)
        // The file is done; the recovered upload does not hold the drain.
        await drained.value
        #expect(queue.pending.map(\.key) == ["old"])
        // A drain with nothing of this mount left returns at once; one that waits ends at its deadline.
        queue.schedule("stuck", path: "s", error: "e") { _ in .retry(error: "e") }
        let stuck = Task { await queue.drain(until: 20) }
        await Self.until { queue.pending.first { $0.key == "stuck" }?.attempts == 2 }
        clock.advance(to: 20)
        await stuck.value
        #expect(queue.isPending("stuck"))
        queue.stop()
    }

    @Test func aKeyScheduledWhileItsAttemptRunsIsTriedAgain() async throws {
        let clock = ManualClock()
        let queue = WriteBack(policy: .init(first: 1), clock: clock)
        let runs = Mutex(0)
        queue.schedule("k", path: "k", error: "e") { _ in
            let run = runs.withLock { runs in
                runs += 1
                return runs
            }
            // The first attempt finds the file clean, but a failure elsewhere queued it again meanwhile.
            if run == 1 { queue.schedule("k", path: "k", error: "failed again") { _ in .done } }
            return .done
        }
        await Self.until { clock.sleeperCount == 1 }
        clock.advance(to: 1)
        await Self.until { runs.withLock { $0 } == 1 && clock.sleeperCount == 1 }
        #expect(queue.isPending("k"))
        #expect(queue.pending.first?.lastError == "failed again")
        #expect(queue.pending.first?.due == 3)
        clock.advance(to: 3)
        await Self.until { !queue.isPending("k") }
        #expect(runs.withLock { $0 } == 2 && !queue.isPending("k"))
    }

    @Test func cancelAndStopForgetWhatIsQueued() async throws {
        let clock = ManualClock()
        let queue = WriteBack(policy: .init(first: 1), clock: clock)
        let ran = Mutex(false)
        queue.schedule("gone", path: "g", error: "e") { _ in
            ran.withLock { $0 = true }
            return .done
        }
        queue.cancel("gone")
        queue.schedule("later", path: "l", error: "e") { _ in
            ran.withLock { $0 = true }
            return .done
        }
        queue.stop()
        clock.advance(to: 10)
        try await Task.sleep(for: .milliseconds(100))
        #expect(!ran.withLock { $0 })
        queue.schedule("after", path: "a", error: "e") { _ in .done }
        #expect(!queue.isPending("after"))
    }
}
