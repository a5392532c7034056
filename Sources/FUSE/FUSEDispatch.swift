internal import CFuse
import Glibc
import Logging
import Synchronization

/// Turns a filesystem call into exactly one reply: success through `reply`, a thrown
/// error through `fuse_reply_err` (the binding's single errno mapping).
enum FUSEDispatch {
    static let logger = Logger(label: "adrivefs.fuse")

    ///
    /// The work runs as a task that a FUSE interrupt (the caller got a signal, e.g. Ctrl-C
    /// on a read stuck on the network) cancels; a cancelled operation answers EINTR.
    static func run<Value: Sendable>(
        _ req: fuse_req_t, _ operation: String, _ work: @escaping @Sendable () async throws -> Value,
        reply: @escaping @Sendable (consuming Request, Value) -> Void
    ) {
        let handle = RequestHandle(raw: req)
        // Registered before the task exists, so the request cannot be answered (and freed) first.
        let interrupt = Interrupt()
        let context = Unmanaged.passRetained(interrupt)
        fuse_req_interrupt_func(req, { _, data in
            guard let data else { return }
            Unmanaged<Interrupt>.fromOpaque(data).takeUnretainedValue().fire()
        }, context.toOpaque())
        let task = Task {
            let result: Result<Value, any Error>
            do { result = .success(try await work()) } catch { result = .failure(error) }
            // Unregistering takes the request's lock, which a running interrupt callback
            // holds: once it returns no callback can still use the context.
            let request = Request(handle)
            fuse_req_interrupt_func(request.raw, nil, nil)
            context.release()
            switch result {
            case .success(let value): reply(request, value)
            case .failure(let error):
                let code = SessionContext.from(request.raw).fileSystem.errno(for: error, operation: operation)
                request.reply(errno: code)
            }
        }
        interrupt.attach(task)
    }

    /// Cancels a request's task when the kernel interrupts the request (possibly before
    /// the task is attached).
    final class Interrupt: Sendable {
        private let state = Mutex<(task: Task<Void, Never>?, fired: Bool)>((nil, false))

        func fire() {
            let task = state.withLock { state in
                state.fired = true
                return state.task
            }
            task?.cancel()
        }

        func attach(_ task: Task<Void, Never>) {
            let fired = state.withLock { state in
                state.task = task
                return state.fired
            }
            if fired { task.cancel() }
        }
    }

    /// The errno of an error: its own when it knows it, EINTR for cancellation, else EIO
    /// (logged with its cause).
    static func errno(for error: any Error, operation: String) -> Int32 {
        if let convertible = error as? any ErrnoConvertible { return convertible.errno }
        if error is CancellationError { return EINTR }
        logger.error("\(operation) failed: \(error)")
        return EIO
    }
}

/// The context libfuse hands back to every callback as userdata.
final class SessionContext: Sendable {
    let fileSystem: any FileSystem
    let maxReadahead: UInt32

    init(fileSystem: any FileSystem, maxReadahead: UInt32) {
        self.fileSystem = fileSystem
        self.maxReadahead = maxReadahead
    }

    /// The one force-unwrap the binding keeps: libfuse always passes the userdata it was given.
    static func from(_ request: fuse_req_t) -> SessionContext {
        Unmanaged<SessionContext>.fromOpaque(fuse_req_userdata(request)!).takeUnretainedValue()
    }
}
