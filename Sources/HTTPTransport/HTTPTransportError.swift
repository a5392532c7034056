/// A transport failure: the request did not produce an HTTP response.
///
/// An extensible struct (cases can be added without breaking callers); `description`
/// carries libcurl's own error text, never a header or body (tokens stay out of logs).
public struct HTTPTransportError: Error, CustomStringConvertible, Sendable, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Base: String, Sendable {
            case couldNotResolve, couldNotConnect, timedOut, stalled, tls, sendFailed, receiveFailed,
                cancelled, bodyTooLarge, bodyAborted, badRequest, shutdown, other
        }
        fileprivate let base: Base
        public var description: String { base.rawValue }

        /// DNS resolution failed.
        public static let couldNotResolve = Code(base: .couldNotResolve)
        /// TCP connect failed or was refused.
        public static let couldNotConnect = Code(base: .couldNotConnect)
        /// The connect or total time limit ran out.
        public static let timedOut = Code(base: .timedOut)
        /// Data stopped flowing for longer than the stall limit.
        public static let stalled = Code(base: .stalled)
        /// TLS handshake or certificate verification failed.
        public static let tls = Code(base: .tls)
        /// Sending the request failed mid-way.
        public static let sendFailed = Code(base: .sendFailed)
        /// The connection broke while receiving (e.g. the server closed it mid-body).
        public static let receiveFailed = Code(base: .receiveFailed)
        /// The calling task was cancelled; the transfer was removed.
        public static let cancelled = Code(base: .cancelled)
        /// The response body exceeded the caller's limit.
        public static let bodyTooLarge = Code(base: .bodyTooLarge)
        /// The caller's body sink threw.
        public static let bodyAborted = Code(base: .bodyAborted)
        /// The request could not be set up (bad URL, unreadable body file, …).
        public static let badRequest = Code(base: .badRequest)
        /// The client was shut down.
        public static let shutdown = Code(base: .shutdown)
        /// Anything else libcurl reported.
        public static let other = Code(base: .other)
    }

    public let code: Code
    /// libcurl's error text (CURLOPT_ERRORBUFFER, else curl_easy_strerror), or our own.
    public let message: String
    /// libcurl's numeric CURLcode, when libcurl produced the error.
    public let curlCode: Int?

    public init(code: Code, message: String, curlCode: Int? = nil) {
        self.code = code
        self.message = message
        self.curlCode = curlCode
    }

    public var isCancelled: Bool { code == .cancelled }

    /// True when retrying the same request may succeed (connection-level trouble).
    public var isTransient: Bool {
        [.couldNotConnect, .timedOut, .stalled, .sendFailed, .receiveFailed, .couldNotResolve].contains(code)
    }

    public var description: String {
        curlCode.map { "\(code): \(message) (curl \($0))" } ?? "\(code): \(message)"
    }
}
