@testable import MountCommand
import Testing

/// The first signal unmounts (or, while unmount waits for uploads, says what it waits
/// for); the second ends the wait.
@Suite struct StopRequestsTests {
    enum Step { case signal, beginDrain, endDrain }

    @Test(arguments: [
        // systemd: SIGTERM while serving unmounts; a second ends the wait.
        ([Step.signal, .beginDrain, .signal], [StopRequests.Action.unmount, .none, .endWait]),
        // fusermount -u, then SIGTERM: report; again: end the wait.
        ([.beginDrain, .signal, .signal], [.none, .reportWaiting, .endWait]),
        // Ctrl-C twice before the loop returned: do not wait at all.
        ([.signal, .signal, .beginDrain], [.unmount, .none, .endWait]),
        // Signals after the wait are ignored; a second beginDrain does nothing.
        ([.beginDrain, .endDrain, .signal, .beginDrain], [.none, .none, .none, .none]),
        // More signals while draining keep ending the wait.
        ([.signal, .beginDrain, .signal, .signal], [.unmount, .none, .endWait, .endWait]),
    ])
    func signalsOverAMountsLife(steps: [Step], expected: [StopRequests.Action]) {
        var requests = StopRequests()
        var actions: [StopRequests.Action] = []
        for step in steps {
            switch step {
            case .signal: actions.append(requests.signal())
            case .beginDrain: actions.append(requests.beginDrain())
            case .endDrain:
                requests.endDrain()
                actions.append(.none)
            }
        }
        #expect(actions == expected)
    }
}
