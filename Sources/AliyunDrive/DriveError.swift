/// An error from the Aliyun Drive layer: the service's own error code, a transport
/// failure, or local trouble. `description` never contains a token.
public struct DriveError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// The service answered with an error (see `code` and `status`).
        case service
        /// The refresh token was rejected: the user must log in again.
        case authentication
        /// The network or the server could not be reached after retries.
        case unreachable
        /// The request was cancelled.
        case cancelled
        /// The response could not be understood.
        case protocolViolation
        /// The state directory or token file could not be read or written.
        case stateDirectory
        /// Something that should not happen locally.
        case invalidState
    }

    public let kind: Kind
    /// HTTP status for `.service`, else 0.
    public let status: Int
    /// The service's error code, e.g. `NotFound.File`.
    public let code: String
    public let message: String

    public init(_ kind: Kind, _ message: String, status: Int = 0, code: String = "") {
        self.kind = kind
        self.message = message
        self.status = status
        self.code = code
    }

    public var description: String {
        switch kind {
        case .service: "\(code.isEmpty ? "HTTP \(status)" : code): \(message)"
        default: message
        }
    }

    /// The item does not exist (or is in the recycle bin).
    public var isNotFound: Bool {
        code.hasPrefix("NotFound") || code == "ForbiddenFileInTheRecycleBin" || (kind == .service && status == 404)
    }
}
