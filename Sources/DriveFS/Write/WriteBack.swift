import Foundation
import Synchronization

/// Time as `WriteBack` sees it (injected, so tests run backoffs without waiting).
protocol WriteBackClock: Sendable {
    func now() -> Double
    /// Returns at `deadline` (or throws when cancelled).
    func sleep(until deadline: Double) async throws
}

struct WallClock: WriteBackClock {
    func now() -> Double { Date().timeIntervalSince1970 }

    func sleep(until deadline: Double) async throws {
        let wait = deadline - now()
        if wait > 0 { try await Task.sleep(for: .seconds(wait)) }
    }
}

/// The uploads waiting to be tried again: a file whose upload failed, and what a crashed
/// mount left in its journal. One backoff policy for all of them; `drain(until:)` at
/// unmount; observable (`pending`). Each item is a job that tries once and says whether
/// it is done; the queue owns the tasks that run them and cancels them at `stop()`.
///
/// INVARIANT: an item that is not running has a timer armed for its `due` time (until
/// `stop()`); `drained` holds waiters only while a `.file` item is queued.
final class WriteBack: Sendable {
    enum Kind: Sendable, Equatable {
        /// A file of this mount: unmount waits for it.
        case file
        /// A crashed mount's upload: tried while mounted, left in its journal at unmount.
        case recovered
    }

    enum Outcome: Sendable, Equatable {
        case done
        case retry(error: String)
    }

    /// Waits after the `attempt`th failure: `first` doubling to `maximum`; while draining,
    /// at most `draining`.
    struct Policy: Sendable {
        var first: Double
        var maximum: Double = 60
        var draining: Double = 8

        func delay(afterFailure attempt: Int, draining isDraining: Bool) -> Double {
            let grown = first * pow(2, Double(max(0, attempt - 1)))
            return min(grown, isDraining ? min(draining, maximum) : maximum)
        }
    }

    struct Pending: Sendable, Equatable {
        var key: String
        var kind: Kind
        var path: String
        var since: Double
        var lastError: String
        /// Attempts made so far (the first is the failure that queued it).
        var attempts: Int
        var due: Double
    }

    typealias Job = @Sendable (_ attempt: Int) async -> Outcome

    private struct Item {
        var pending: Pending
        var job: Job
        var timer: Task<Void, Never>?
        var running = false
        /// Scheduled again while an attempt ran: a `.done` from that attempt does not end it.
        var requeued = false
    }

    private struct State {
        var items: [String: Item] = [:]
        var draining = false
        var stopped = false
        /// `drain` callers, resumed when no file is left or at their deadline.
        var drained: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
    }

    let policy: Policy
    private let clock: any WriteBackClock
    private let state = Mutex(State())

    init(policy: Policy, clock: any WriteBackClock = WallClock()) {
        self.policy = policy
        self.clock = clock
    }

    var pending: [Pending] { state.withLock { $0.items.values.map(\.pending).sorted { $0.since < $1.since } } }

    var now: Double { clock.now() }

    func isPending(_ key: String) -> Bool { state.withLock { $0.items[key] != nil } }

    /// Queues `job` to run after the policy's delay for a first failure (`attempts` made
    /// already), `after` seconds, or `immediately`. A key already queued keeps its schedule
    /// and gets the newer error.
    func schedule(
        _ key: String, kind: Kind = .file, path: String, error: String, attempts: Int = 1, immediately: Bool = false, after delay: Double? = nil,
        job: @escaping Job
    ) {
        let now = clock.now()
        state.withLock { state in
            guard !state.stopped else { return }
            if let item = state.items[key] {
                state.items[key]?.pending.lastError = error
                state.items[key]?.pending.path = path
                if item.running { state.items[key]?.requeued = true }
                return
            }
            let due = immediately ? now : now + (delay ?? policy.delay(afterFailure: attempts, draining: state.draining))
            let pending = Pending(key: key, kind: kind, path: path, since: now, lastError: error, attempts: attempts, due: due)
            state.items[key] = Item(pending: pending, job: job)
            arm(key, in: &state)
        }
    }

    /// Forgets `key` (its file was unlinked); a running attempt finishes on its own.
    func cancel(_ key: String) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.items.removeValue(forKey: key)?.timer?.cancel()
            return Self.drainedWaiters(&state)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Starts the timer of `key` for its due time (under the lock).
    private func arm(_ key: String, in state: inout State) {
        guard let item = state.items[key], !item.running else { return }
        item.timer?.cancel()
        let due = item.pending.due
        state.items[key]?.timer = Task { [clock] in
            do { try await clock.sleep(until: due) } catch { return }
            await self.fire(key)
        }
    }

    private func fire(_ key: String) async {
        let claimed: (Job, Int)? = state.withLock { state in
            guard var item = state.items[key], !item.running, !state.stopped else { return nil }
            // (The timer stays: it is the task running the attempt, which `stop()` cancels.)
            item.running = true
            state.items[key] = item
            return (item.job, item.pending.attempts + 1)
        }
        guard let (job, attempt) = claimed else { return }
        let outcome = await job(attempt)
        let now = clock.now()
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard var item = state.items[key] else { return Self.drainedWaiters(&state) }
            switch outcome {
            case .done where !item.requeued:
                state.items[key] = nil
            case .done, .retry:
                if case .retry(let error) = outcome { item.pending.lastError = error }
                item.running = false
                item.requeued = false
                item.pending.attempts = attempt
                item.pending.due = now + policy.delay(afterFailure: attempt, draining: state.draining)
                state.items[key] = item
                if !state.stopped { arm(key, in: &state) }
            }
            return Self.drainedWaiters(&state)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// The drain waiters to resume, once no file is left.
    private static func drainedWaiters(_ state: inout State) -> [CheckedContinuation<Void, Never>] {
        guard !state.drained.isEmpty, !state.items.values.contains(where: { $0.pending.kind == .file }) else { return [] }
        defer { state.drained = [:] }
        return Array(state.drained.values)
    }

    /// At unmount: tries every queued upload now and again on the draining schedule, and
    /// returns once no file of this mount is queued, or at `deadline`, or when the caller
    /// is cancelled.
    func drain(until deadline: Double) async {
        let id = state.withLock { state in
            state.draining = true
            for key in Array(state.items.keys) where state.items[key]?.running == false {
                state.items[key]?.pending.due = clock.now()
                arm(key, in: &state)
            }
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        let deadlineTimer = Task { [clock] in
            try? await clock.sleep(until: deadline)
            self.state.withLock { $0.drained.removeValue(forKey: id) }?.resume()
        }
        defer { deadlineTimer.cancel() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let parked = state.withLock { state -> Bool in
                    guard !Task.isCancelled, state.items.values.contains(where: { $0.pending.kind == .file }) else { return false }
                    state.drained[id] = continuation
                    return true
                }
                if !parked { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.drained.removeValue(forKey: id) }?.resume()
        }
    }

    /// Cancels every timer and running attempt (unmount); nothing is queued afterwards.
    func stop() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.stopped = true
            for item in state.items.values { item.timer?.cancel() }
            defer { state.drained = [:] }
            return Array(state.drained.values)
        }
        for waiter in waiters { waiter.resume() }
    }
}
