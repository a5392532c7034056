/// An HTTP request, as a value. Safe to share between tasks.
public struct HTTPRequest: Sendable {
    /// The request method, e.g. `GET`, `POST`, `PUT`.
    public var method: String
    /// The absolute URL (`http://` or `https://`).
    public var url: String
    /// Request headers. A header whose value is the empty string is sent *explicitly
    /// empty* (`Content-Type:` on the wire) — OSS part uploads need exactly that.
    public var headers: HTTPHeaders
    /// What to send as the request body.
    public var body: HTTPRequestBody
    /// Connect, stall and total time limits for this request.
    public var timeouts: HTTPTimeouts

    public init(
        method: String = "GET", url: String, headers: HTTPHeaders = [:], body: HTTPRequestBody = .none,
        timeouts: HTTPTimeouts = .init()
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeouts = timeouts
    }

    /// Sets a `Range: bytes=lower-upper` header (both ends inclusive).
    public mutating func setRange(_ range: ClosedRange<Int64>) {
        headers["Range"] = "bytes=\(range.lowerBound)-\(range.upperBound)"
    }
}

/// The body of a request.
public enum HTTPRequestBody: Sendable {
    /// No body.
    case none
    /// Bytes held in memory (JSON API calls).
    case bytes([UInt8])
    /// A region of a file, streamed from disk as the transfer goes; never loaded whole.
    case file(path: String, offset: Int64, length: Int64)

    /// The number of bytes the body holds.
    public var length: Int64 {
        switch self {
        case .none: 0
        case .bytes(let bytes): Int64(bytes.count)
        case .file(_, _, let length): length
        }
    }
}

/// Time limits for one request. `nil` means no limit of that kind.
public struct HTTPTimeouts: Sendable, Equatable {
    /// Time allowed to establish the connection (TCP and TLS).
    public var connect: Duration?
    /// Abort when not a single byte moved (either way) for this long, checked about once a
    /// second: a dead server or a silent network path fails in bounded time.
    public var stallTime: Duration?
    /// Upper bound on the whole transfer.
    public var total: Duration?

    public init(connect: Duration? = .seconds(15), stallTime: Duration? = .seconds(30), total: Duration? = nil) {
        self.connect = connect
        self.stallTime = stallTime
        self.total = total
    }
}

/// A received response. `body` holds the collected body (for streamed requests: the body
/// of a non-2xx response only, so an error document never reaches the caller's sink).
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(status: Int, headers: HTTPHeaders, body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// True for 2xx statuses.
    public var isSuccess: Bool { (200..<300).contains(status) }

    /// The body as UTF-8 text (lossy), for error messages and tests.
    public var text: String { String(decoding: body, as: UTF8.self) }
}
