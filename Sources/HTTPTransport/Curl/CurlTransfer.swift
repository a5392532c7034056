internal import CCurl
import Glibc
import Synchronization

/// One request on the wire: owns its easy handle, header list, body source and the
/// continuation waiting for it.
///
/// Confined to the curl thread once submitted (everything but `isCancelled`), hence
/// `@unchecked Sendable`: the only cross-thread access is the atomic cancel flag.
final class CurlTransfer: @unchecked Sendable {
    enum BodyMode {
        /// Collect the whole body, failing past the limit.
        case collect(limit: Int)
        /// Hand 2xx bodies to the sink; collect other bodies (truncated at 64 KiB).
        case stream(@Sendable (Int, UnsafeRawBufferPointer) throws -> Void)
    }

    let id: UInt64
    let request: HTTPRequest
    let mode: BodyMode
    private let cancelFlag = Atomic<Bool>(false)
    private var continuation: CheckedContinuation<HTTPResponse, any Error>?

    // Curl-thread state.
    private(set) var easy: UnsafeMutableRawPointer?
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private let errorBuffer: UnsafeMutablePointer<CChar>
    private var status = 0
    private var responseHeaders = HTTPHeaders()
    private var collected: [UInt8] = []
    private var failure: (any Error)?
    private var uploadFD: Int32 = -1
    private var uploadPosition: Int64 = 0
    private var lastProgressBytes: Int64 = -1
    private var lastProgressAt = ContinuousClock.now

    init(id: UInt64, request: HTTPRequest, mode: BodyMode, continuation: CheckedContinuation<HTTPResponse, any Error>) {
        self.id = id
        self.request = request
        self.mode = mode
        self.continuation = continuation
        errorBuffer = .allocate(capacity: ccurl_error_size())
        errorBuffer.initialize(repeating: 0, count: ccurl_error_size())
    }

    deinit {
        if let easy { curl_easy_cleanup(easy) }
        if let headerList { curl_slist_free_all(headerList) }
        if uploadFD >= 0 { close(uploadFD) }
        errorBuffer.deallocate()
    }

    var isCancelled: Bool { cancelFlag.load(ordering: .acquiring) }
    func markCancelled() { cancelFlag.store(true, ordering: .releasing) }

    /// Completes the waiting call exactly once.
    func finish(_ result: Result<HTTPResponse, any Error>) {
        guard let continuation else { return }
        self.continuation = nil
        continuation.resume(with: result)
    }

    // MARK: - Setup

    /// Creates and configures the easy handle. On failure the transfer is not started.
    func prepare(configuration: CurlHTTPClient.Configuration) throws(HTTPTransportError) {
        guard let easy = curl_easy_init() else {
            throw HTTPTransportError(code: .other, message: "curl_easy_init failed")
        }
        self.easy = easy
        let me = Unmanaged.passUnretained(self).toOpaque()
        var ok = true
        func set(_ option: CURLoption, _ value: Int) { ok = ok && ccurl_easy_setopt_long(easy, option, value) == CURLE_OK }
        func set(_ option: CURLoption, _ value: String) { ok = ok && ccurl_easy_setopt_string(easy, option, value) == CURLE_OK }

        set(CURLOPT_URL, request.url)
        set(CURLOPT_NOSIGNAL, 1)
        set(CURLOPT_FOLLOWLOCATION, 1)
        set(CURLOPT_MAXREDIRS, 5)
        set(CURLOPT_BUFFERSIZE, 256 << 10)
        // 256 KiB sends: with 1 MiB ones the receiving emulator spent 2.3× the CPU per byte
        // (its page-cache copy ran ~30× slower) and part uploads took twice curl's time.
        set(CURLOPT_UPLOAD_BUFFERSIZE, 256 << 10)
        set(CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2TLS))
        set(CURLOPT_TCP_KEEPALIVE, 1)
        if let caFile = configuration.caFile { set(CURLOPT_CAINFO, caFile) }
        if let proxy = configuration.proxy { set(CURLOPT_PROXY, proxy) }
        if let connect = request.timeouts.connect { set(CURLOPT_CONNECTTIMEOUT_MS, max(1, connect.milliseconds)) }
        if let total = request.timeouts.total { set(CURLOPT_TIMEOUT_MS, max(1, total.milliseconds)) }
        // Stall detection and prompt cancellation both live in the progress callback.
        set(CURLOPT_NOPROGRESS, 0)
        ok = ok && ccurl_easy_setopt_xferinfo_fn(easy, curlProgressCallback) == CURLE_OK
        ok = ok && ccurl_easy_setopt_ptr(easy, CURLOPT_XFERINFODATA, me) == CURLE_OK
        ok = ok && ccurl_easy_setopt_ptr(easy, CURLOPT_ERRORBUFFER, errorBuffer) == CURLE_OK
        ok = ok && ccurl_easy_setopt_ptr(easy, CURLOPT_PRIVATE, me) == CURLE_OK
        ok = ok && ccurl_easy_setopt_data_fn(easy, CURLOPT_WRITEFUNCTION, curlWriteCallback) == CURLE_OK
        ok = ok && ccurl_easy_setopt_ptr(easy, CURLOPT_WRITEDATA, me) == CURLE_OK
        ok = ok && ccurl_easy_setopt_data_fn(easy, CURLOPT_HEADERFUNCTION, curlHeaderCallback) == CURLE_OK
        ok = ok && ccurl_easy_setopt_ptr(easy, CURLOPT_HEADERDATA, me) == CURLE_OK

        let method = request.method.uppercased()
        switch request.body {
        case .none:
            if method == "GET" {
                set(CURLOPT_HTTPGET, 1)
            } else if method == "HEAD" {
                set(CURLOPT_NOBODY, 1)
            } else {
                set(CURLOPT_CUSTOMREQUEST, method)
            }
        case .bytes, .file:
            if case .file(let path, _, _) = request.body {
                uploadFD = open(path, O_RDONLY | O_CLOEXEC)
                if uploadFD < 0 {
                    throw HTTPTransportError(code: .badRequest, message: "cannot open request body file: errno \(errno)")
                }
            }
            set(CURLOPT_UPLOAD, 1)
            ok = ok && ccurl_easy_setopt_off_t(easy, CURLOPT_INFILESIZE_LARGE, curl_off_t(request.body.length)) == CURLE_OK
            ok = ok && ccurl_easy_setopt_data_fn(easy, CURLOPT_READFUNCTION, curlReadCallback) == CURLE_OK
            ok = ok && ccurl_easy_setopt_ptr(easy, CURLOPT_READDATA, me) == CURLE_OK
            ok = ok && ccurl_easy_setopt_seek_fn(easy, curlSeekCallback) == CURLE_OK
            ok = ok && ccurl_easy_setopt_ptr(easy, CURLOPT_SEEKDATA, me) == CURLE_OK
            if method != "PUT" { set(CURLOPT_CUSTOMREQUEST, method) }
        }

        var list: UnsafeMutablePointer<curl_slist>?
        for field in request.headers {
            // "Name;" is curl's spelling for "send this header with an empty value".
            list = curl_slist_append(list, field.value.isEmpty ? "\(field.name);" : "\(field.name): \(field.value)")
        }
        if request.body.length > 0 || request.method.uppercased() != "GET" {
            list = curl_slist_append(list, "Expect:")  // no 100-continue round trip
        }
        headerList = list
        ok = ok && ccurl_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, list) == CURLE_OK
        if !ok {
            throw HTTPTransportError(code: .badRequest, message: "could not configure request: \(errorText)")
        }
    }

    // MARK: - Completion

    /// Builds the outcome once libcurl reports the transfer done.
    func complete(with code: CURLcode) {
        if let failure {
            finish(.failure(failure))
        } else if code == CURLE_OK {
            finish(.success(HTTPResponse(status: status, headers: responseHeaders, body: collected)))
        } else {
            finish(.failure(Self.error(for: code, text: errorText)))
        }
    }

    private var errorText: String {
        let text = String(cString: errorBuffer)
        return text.isEmpty ? "" : text
    }

    static func error(for code: CURLcode, text: String) -> HTTPTransportError {
        let message = text.isEmpty ? String(cString: curl_easy_strerror(code)) : text
        let kind: HTTPTransportError.Code
        switch code {
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY: kind = .couldNotResolve
        case CURLE_COULDNT_CONNECT: kind = .couldNotConnect
        case CURLE_OPERATION_TIMEDOUT: kind = message.contains("too slow") ? .stalled : .timedOut
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
            CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH:
            kind = .tls
        case CURLE_SEND_ERROR, CURLE_READ_ERROR: kind = .sendFailed
        case CURLE_RECV_ERROR, CURLE_PARTIAL_FILE, CURLE_GOT_NOTHING, CURLE_HTTP2, CURLE_HTTP2_STREAM: kind = .receiveFailed
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL: kind = .badRequest
        default: kind = .other
        }
        return HTTPTransportError(code: kind, message: message, curlCode: Int(code.rawValue))
    }

    // MARK: - Callbacks (curl thread)

    fileprivate func receiveHeader(_ line: UnsafeRawBufferPointer) {
        var end = line.count
        while end > 0, line[end - 1] == 0x0A || line[end - 1] == 0x0D { end -= 1 }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: line[0..<end]), as: UTF8.self)
        if text.hasPrefix("HTTP/") {
            // A new response (redirect hop or 1xx): start over.
            let parts = text.split(separator: " ", maxSplits: 2)
            status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
            responseHeaders = HTTPHeaders()
            collected.removeAll(keepingCapacity: true)
        } else if let colon = text.firstIndex(of: ":") {
            let name = String(text[..<colon])
            let value = text[text.index(after: colon)...].trimmingCharacters(in: " \t")
            responseHeaders.add(name: name, value: value)
            // Size the collection buffer once instead of growing it chunk by chunk.
            if case .collect(let limit) = mode, name.lowercased() == "content-length", let length = Int(value), length <= limit {
                collected.reserveCapacity(length)
            }
        }
    }

    /// Returns false to abort the transfer.
    fileprivate func receiveBody(_ chunk: UnsafeRawBufferPointer) -> Bool {
        switch mode {
        case .collect(let limit):
            if collected.count + chunk.count > limit {
                failure = HTTPTransportError(code: .bodyTooLarge, message: "response body exceeds \(limit) bytes")
                return false
            }
            collected.append(contentsOf: chunk.bindMemory(to: UInt8.self))  // contiguous: one memcpy
        case .stream(let sink):
            if (200..<300).contains(status) {
                do { try sink(status, chunk) } catch {
                    failure = error
                    return false
                }
            } else if collected.count < 64 << 10 {
                collected.append(contentsOf: chunk.bindMemory(to: UInt8.self).prefix((64 << 10) - collected.count))
            }
        }
        return true
    }

    /// Fills `buffer` with the next request-body bytes; returns the count, or nil on error.
    fileprivate func sendBody(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        let remaining = request.body.length - uploadPosition
        let count = Int(min(Int64(buffer.count), max(0, remaining)))
        guard count > 0 else { return 0 }
        switch request.body {
        case .none:
            return 0
        case .bytes(let bytes):
            let start = Int(uploadPosition)
            bytes.withUnsafeBytes { source in
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[start..<start + count]))
            }
            uploadPosition += Int64(count)
            return count
        case .file(_, let offset, _):
            let n = pread(uploadFD, buffer.baseAddress, count, off_t(offset + uploadPosition))
            guard n > 0 else {
                // A local problem, not the network's: not transient, so not retried as is.
                let reason = n == 0 ? "it ended early (changed while being sent)" : String(cString: strerror(errno))
                failure = HTTPTransportError(code: .badRequest, message: "reading the request body file failed: \(reason)")
                return nil
            }
            uploadPosition += Int64(n)
            return n
        }
    }

    /// Returns false to abort: the task was cancelled, or nothing moved for `stallTime`.
    fileprivate func progress(bytes: Int64) -> Bool {
        if isCancelled {
            failure = HTTPTransportError(code: .cancelled, message: "request cancelled")
            return false
        }
        let now = ContinuousClock.now
        if bytes != lastProgressBytes {
            lastProgressBytes = bytes
            lastProgressAt = now
            return true
        }
        if let stall = request.timeouts.stallTime, now - lastProgressAt > stall {
            failure = HTTPTransportError(code: .stalled, message: "no data moved for \(stall)")
            return false
        }
        return true
    }

    fileprivate func seekBody(to offset: Int64) -> Bool {
        guard offset >= 0, offset <= request.body.length else { return false }
        uploadPosition = offset
        return true
    }
}

extension Duration {
    var milliseconds: Int {
        let (seconds, attoseconds) = components
        return Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var slice = Substring(self)
        while let first = slice.first, set.contains(first) { slice.removeFirst() }
        while let last = slice.last, set.contains(last) { slice.removeLast() }
        return String(slice)
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String { String(self).trimmingCharacters(in: set) }
}

// MARK: - C callbacks

private func transfer(_ userdata: UnsafeMutableRawPointer?) -> CurlTransfer? {
    userdata.map { Unmanaged<CurlTransfer>.fromOpaque($0).takeUnretainedValue() }
}

private let curlWriteCallback: ccurl_data_fn = { ptr, size, nmemb, userdata in
    let count = size * nmemb
    guard let transfer = transfer(userdata) else { return 0 }
    return transfer.receiveBody(UnsafeRawBufferPointer(start: ptr, count: count)) ? count : ccurl_writefunc_error()
}

private let curlHeaderCallback: ccurl_data_fn = { ptr, size, nmemb, userdata in
    let count = size * nmemb
    transfer(userdata)?.receiveHeader(UnsafeRawBufferPointer(start: ptr, count: count))
    return count
}

private let curlReadCallback: ccurl_data_fn = { ptr, size, nmemb, userdata in
    guard let transfer = transfer(userdata) else { return ccurl_readfunc_abort() }
    let buffer = UnsafeMutableRawBufferPointer(start: ptr, count: size * nmemb)
    return transfer.sendBody(into: buffer) ?? ccurl_readfunc_abort()
}

private let curlProgressCallback: ccurl_xferinfo_fn = { userdata, _, downloaded, _, uploaded in
    guard let transfer = transfer(userdata) else { return 1 }
    return transfer.progress(bytes: Int64(downloaded) + Int64(uploaded)) ? 0 : 1
}

private let curlSeekCallback: ccurl_seek_fn = { userdata, offset, origin in
    guard origin == SEEK_SET, let transfer = transfer(userdata) else { return 2 }  // CURL_SEEKFUNC_CANTSEEK
    return transfer.seekBody(to: Int64(offset)) ? 0 : 1  // CURL_SEEKFUNC_OK / _FAIL
}
