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

    /// What a service answer means, decided here where the answer is understood, so the
    /// layers above never look at wire codes or message texts.
    public enum Condition: String, Sendable {
        /// The item does not exist (or is in the recycle bin).
        case notFound
        /// An entry of that name exists already.
        case exists
        /// The account's quota is used up.
        case noSpace
        /// Larger than the account or the service takes for one file.
        case fileTooLarge
        /// The account may not do this (or the file is blocked).
        case permissionDenied
        /// A file operation was asked of a folder.
        case isFolder
        /// A move into a place it cannot go (itself, its own subfolder).
        case invalidTarget
        /// The share was cancelled or has expired.
        case shareGone
        /// The share refuses this client: wrong or missing password, a forbidden share, a
        /// share token that is not valid.
        case shareDenied
        /// The service is busy or rate limiting (429, flow control).
        case busy
    }

    public let kind: Kind
    /// What the answer means, when it is one the layers above act on; nil otherwise.
    public let condition: Condition?
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
        condition = kind == .service ? Self.classify(status: status, code: code, message: message) : nil
    }

    /// The one place service codes are read for their meaning.
    static func classify(status: Int, code: String, message: String) -> Condition? {
        if code == "ShareLink.Cancelled" || code == "ShareLink.Expired" { return .shareGone }
        if code == "ShareLink.Forbidden" || code.hasSuffix(".SharePwd") || code == "ShareLinkTokenInvalid" { return .shareDenied }
        if code.hasPrefix("NotFound") || code == "ForbiddenFileInTheRecycleBin" || status == 404 { return .notFound }
        if code == "InvalidResource.FileTypeFolder" { return .isFolder }
        if code.hasPrefix("ForbiddenNoPermission") { return .permissionDenied }
        if code.hasPrefix("AlreadyExist") { return .exists }
        if code.hasPrefix("QuotaExhausted") { return .noSpace }
        if code.hasPrefix("FileSizeExceed") || message.contains("file size is exceed") { return .fileTooLarge }
        if code == "InvalidParameter.ToParentFileId" { return .invalidTarget }
        if status == 429 || code == "ParamFlowException" || code == "TooManyRequests" { return .busy }
        return nil
    }

    public var description: String {
        switch kind {
        case .service: "\(code.isEmpty ? "HTTP \(status)" : code): \(message)"
        default: message
        }
    }

    /// The item does not exist (or is in the recycle bin).
    public var isNotFound: Bool { condition == .notFound }

    /// The share itself is gone or refused (not one file of it).
    public var isShareUnavailable: Bool { code.hasPrefix("ShareLink.") || code == "NotFound.ShareLink" }

    /// The answers that mean a share's legacy download link is not to be had (aliyun-api.md §10.5).
    public var refusesLegacyLink: Bool {
        kind == .service && (status == 410 || status == 404 || status == 429 || code == "ParamFlowException" || code == "FeatureTemporaryDisabled")
    }
}
