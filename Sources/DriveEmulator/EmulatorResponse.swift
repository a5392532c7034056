/// What the HTTP layer should send back.
struct EmulatorResponse: Sendable {
    enum Body: Sendable {
        case bytes([UInt8])
        /// A byte range of a file on disk, sent with sendfile.
        case file(path: String, offset: Int64, length: Int64)
    }

    /// How a data transfer should misbehave (fault injection).
    enum Misbehaviour: Sendable, Equatable {
        /// Send this many body bytes, then close the connection.
        case dropAfter(Int64)
        /// Send this many body bytes, then go silent.
        case stallAfter(Int64)
        /// Carry out the request, then close the connection without answering (a response
        /// lost on the way back).
        case dropResponse
    }

    var status: Int
    var headers: [(String, String)]
    var body: Body
    var misbehaviour: Misbehaviour?
    /// The SHA-1 of the content a download serves (its bytes are counted under it).
    var contentSHA1: String?

    init(status: Int, headers: [(String, String)] = [], body: Body = .bytes([]), misbehaviour: Misbehaviour? = nil) {
        self.status = status
        self.headers = headers
        self.body = body
        self.misbehaviour = misbehaviour
    }

    static func json(_ status: Int, _ object: Any, headers: [(String, String)] = []) -> EmulatorResponse {
        EmulatorResponse(
            status: status, headers: [("Content-Type", "application/json;charset=UTF-8")] + headers,
            body: .bytes(JSON.encode(object)))
    }

    static func empty(_ status: Int) -> EmulatorResponse { EmulatorResponse(status: status) }

    static func text(_ status: Int, _ text: String, headers: [(String, String)] = []) -> EmulatorResponse {
        EmulatorResponse(status: status, headers: [("Content-Type", "text/plain")] + headers, body: .bytes(Array(text.utf8)))
    }

    /// An OSS-style XML error document.
    static func ossError(_ status: Int, code: String, message: String, extra: [(String, String)] = []) -> EmulatorResponse {
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  <Code>\(code)</Code>\n  <Message>\(message)</Message>\n"
        xml += "  <RequestId>\(Formats.randomHex(24, uppercase: true))</RequestId>\n  <HostId>cn-beijing-data.aliyundrive.net</HostId>\n"
        for (name, value) in extra { xml += "  <\(name)>\(value)</\(name)>\n" }
        xml += "</Error>\n"
        return EmulatorResponse(status: status, headers: [("Content-Type", "application/xml")], body: .bytes(Array(xml.utf8)))
    }
}

/// An API error with the service's JSON error body `{"code","message","requestId"}`.
struct APIError: Error {
    var status: Int
    var code: String
    var message: String
    var extra: [String: any Sendable] = [:]
    var headers: [(String, String)] = []

    init(_ status: Int, _ code: String, _ message: String, extra: [String: any Sendable] = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra
    }

    var response: EmulatorResponse {
        var body: JSONObject = ["code": code, "message": message, "requestId": Formats.randomHex(16, uppercase: true)]
        for (key, value) in extra { body[key] = value }
        return .json(status, body, headers: headers)
    }

    static func notFound(_ what: String = "file") -> APIError {
        APIError(404, "NotFound.File", "The resource \(what) cannot be found. file not exist")
    }

    static func invalid(_ parameter: String, _ detail: String = "") -> APIError {
        APIError(400, "InvalidParameter.\(parameter.capitalizedFirst)", "The input parameter \(parameter) is not valid. \(detail)")
    }
}

extension String {
    var capitalizedFirst: String {
        let parts = split(separator: "_").map { $0.prefix(1).uppercased() + $0.dropFirst() }
        return parts.joined()
    }
}

/// An API request after the HTTP layer has read it whole.
struct APIRequest {
    var method: String
    var path: String
    var query: [String: String]
    /// Header names lowercased.
    var headers: [String: String]
    var body: [UInt8]
    /// True when the request came in on the internal-upload listener.
    var internalListener: Bool = false
}
extension EmulatorResponse: Error {}
