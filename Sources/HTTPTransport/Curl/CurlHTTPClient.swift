internal import CCurl
import Foundation
import Synchronization

/// The libcurl implementation of `HTTPClient`.
///
/// One dedicated thread drives a `curl_multi` handle; calls are bridged to async/await
/// with checked continuations, so nothing blocks Swift's cooperative pool and any number
/// of transfers run at once. The multi handle's connection cache gives keep-alive reuse
/// (and HTTP/2 multiplexing over TLS where the server offers it). Proxies come from the
/// usual environment variables (`http_proxy`, `https_proxy`, `no_proxy`, `all_proxy`),
/// which libcurl reads itself, unless `Configuration.proxy` overrides them. TLS peers
/// are verified against the system CA store, plus `Configuration.caFile` when given.
///
/// Safe for concurrent use. Call `shutdown()` when done; pending calls then fail with
/// `.shutdown`.
public final class CurlHTTPClient: HTTPClient {
    public struct Configuration: Sendable {
        /// A PEM bundle used instead of the system CA store.
        public var caFile: String?
        /// An explicit proxy URL; nil uses the environment.
        public var proxy: String?
        /// Idle connections kept for reuse.
        public var maxCachedConnections: Int

        public init(caFile: String? = nil, proxy: String? = nil, maxCachedConnections: Int = 32) {
            self.caFile = caFile
            self.proxy = proxy
            self.maxCachedConnections = maxCachedConnections
        }
    }

    private let loop: CurlLoop
    private let nextID = Atomic<UInt64>(1)

    public init(configuration: Configuration = .init()) throws {
        loop = try CurlLoop(configuration: configuration)
    }

    deinit { loop.shutdown() }

    /// Stops the curl thread; in-flight and later calls fail with `.shutdown`.
    public func shutdown() { loop.shutdown() }

    public func execute(_ request: HTTPRequest, maxBodyBytes: Int) async throws -> HTTPResponse {
        try await perform(request, mode: .collect(limit: maxBodyBytes))
    }

    public func stream(
        _ request: HTTPRequest, onBody: @escaping @Sendable (_ status: Int, _ bytes: UnsafeRawBufferPointer) throws -> Void
    ) async throws -> HTTPResponse {
        try await perform(request, mode: .stream(onBody))
    }

    private func perform(_ request: HTTPRequest, mode: CurlTransfer.BodyMode) async throws -> HTTPResponse {
        let id = nextID.add(1, ordering: .relaxed).oldValue
        let box = Mutex<CurlTransfer?>(nil)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let transfer = CurlTransfer(id: id, request: request, mode: mode, continuation: continuation)
                let cancelledEarly = box.withLock { slot -> Bool in
                    slot = transfer
                    return Task.isCancelled
                }
                if cancelledEarly { transfer.markCancelled() }
                loop.submit(transfer)
            }
        } onCancel: {
            if let transfer = box.withLock({ $0 }) {
                transfer.markCancelled()
                loop.cancel(id: transfer.id)
            }
        }
    }
}

/// The thread that owns the `curl_multi` handle and every easy handle added to it.
final class CurlLoop: Sendable {
    private struct Inbox {
        var pending: [CurlTransfer] = []
        var cancelled: [UInt64] = []
        var stopping = false
        var stopped = false
    }

    private struct Multi: @unchecked Sendable { let pointer: UnsafeMutableRawPointer }

    private static let globalInit: Bool = curl_global_init(Int(CURL_GLOBAL_ALL)) == CURLE_OK

    private let multi: Multi
    private let inbox = Mutex(Inbox())
    private let configuration: CurlHTTPClient.Configuration

    init(configuration: CurlHTTPClient.Configuration) throws {
        guard Self.globalInit, let pointer = curl_multi_init() else {
            throw HTTPTransportError(code: .other, message: "libcurl could not be initialised")
        }
        _ = ccurl_multi_setopt_long(pointer, CURLMOPT_MAXCONNECTS, configuration.maxCachedConnections)
        multi = Multi(pointer: pointer)
        self.configuration = configuration
        Thread { [self] in
            CurrentThread.setName("adrivefs.curl")
            run()
        }.start()
    }

    func submit(_ transfer: CurlTransfer) {
        let accepted = inbox.withLock { inbox -> Bool in
            guard !inbox.stopping else { return false }
            inbox.pending.append(transfer)
            return true
        }
        guard accepted else {
            transfer.finish(.failure(HTTPTransportError(code: .shutdown, message: "HTTP client was shut down")))
            return
        }
        curl_multi_wakeup(multi.pointer)
    }

    func cancel(id: UInt64) {
        inbox.withLock { $0.cancelled.append(id) }
        curl_multi_wakeup(multi.pointer)
    }

    func shutdown() {
        let wake = inbox.withLock { inbox -> Bool in
            defer { inbox.stopping = true }
            return !inbox.stopping
        }
        if wake { curl_multi_wakeup(multi.pointer) }
    }

    private func run() {
        var active: [UInt64: CurlTransfer] = [:]
        let cancelledError = HTTPTransportError(code: .cancelled, message: "request cancelled")
        while true {
            let (pending, cancelled, stopping) = inbox.withLock { inbox in
                defer { inbox.pending = []; inbox.cancelled = [] }
                return (inbox.pending, inbox.cancelled, inbox.stopping)
            }
            for transfer in pending {
                if transfer.isCancelled {
                    transfer.finish(.failure(cancelledError))
                    continue
                }
                do {
                    try transfer.prepare(configuration: configuration)
                } catch {
                    transfer.finish(.failure(error))
                    continue
                }
                guard let easy = transfer.easy, curl_multi_add_handle(multi.pointer, easy) == CURLM_OK else {
                    transfer.finish(.failure(HTTPTransportError(code: .other, message: "curl_multi_add_handle failed")))
                    continue
                }
                active[transfer.id] = transfer
            }
            for id in cancelled {
                guard let transfer = active.removeValue(forKey: id), let easy = transfer.easy else { continue }
                curl_multi_remove_handle(multi.pointer, easy)
                transfer.finish(.failure(cancelledError))
            }
            if stopping {
                for transfer in active.values {
                    if let easy = transfer.easy { curl_multi_remove_handle(multi.pointer, easy) }
                    transfer.finish(.failure(HTTPTransportError(code: .shutdown, message: "HTTP client was shut down")))
                }
                active.removeAll()
                break
            }

            var running: Int32 = 0
            curl_multi_perform(multi.pointer, &running)
            var left: Int32 = 0
            while let message = curl_multi_info_read(multi.pointer, &left) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
                let code = ccurl_msg_result(message)
                var userdata: UnsafeMutableRawPointer?
                _ = ccurl_easy_getinfo_ptr(easy, CURLINFO_PRIVATE, &userdata)
                guard let userdata else { continue }
                let transfer = Unmanaged<CurlTransfer>.fromOpaque(userdata).takeUnretainedValue()
                curl_multi_remove_handle(multi.pointer, easy)
                active.removeValue(forKey: transfer.id)
                transfer.complete(with: code)
            }
            var ready: Int32 = 0
            curl_multi_poll(multi.pointer, nil, 0, 1000, &ready)
        }
        curl_multi_cleanup(multi.pointer)
    }
}
