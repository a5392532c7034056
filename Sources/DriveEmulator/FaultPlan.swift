/// Scripted faults, set through `POST /__emulator/faults`.
///
/// Each rule matches a request path (exact, or a prefix when it ends in `*`) and fires
/// for the next `count` matching requests, or with `probability` on each (from a seeded
/// generator, so runs are reproducible). The first matching rule wins.
struct FaultPlan {
    struct Rule {
        enum Kind: String {
            /// Answer with `status` and a JSON error `code` (429 adds retry headers).
            case status
            /// 502 with the plain-text body "Bad Gateway".
            case badGateway = "bad_gateway"
            /// 401 UserDeviceOffline.
            case deviceOffline = "device_offline"
            /// Rate limiting of anonymous share calls.
            case paramFlow = "param_flow"
            /// Data plane: send `bytes` body bytes, then close the connection.
            case dropAfter = "drop_after"
            /// Data plane: send `bytes` body bytes, then go silent.
            case stallAfter = "stall_after"
            /// Carry the request out, then close the connection without an answer.
            case dropResponse = "drop_response"
        }

        var path: String
        var kind: Kind
        var status: Int
        var code: String
        var remaining: Int?
        var probability: Double?
        var retryAfterMilliseconds: Int?
        /// Which retry header a 429 carries: "x-retry-after" (ms), "Retry-After" (s), "both" or "none".
        var retryHeader: String
        var bytes: Int64

        func matches(_ requestPath: String) -> Bool {
            path.hasSuffix("*") ? requestPath.hasPrefix(String(path.dropLast())) : requestPath == path
        }
    }

    enum Action {
        case respond(EmulatorResponse)
        case misbehave(EmulatorResponse.Misbehaviour)
    }

    var rules: [Rule] = []
    private var generator = SplitMix64(seed: 42)

    mutating func reseed(_ seed: UInt64) { generator = SplitMix64(seed: seed) }

    mutating func add(_ object: JSONObject) throws(APIError) {
        guard let path = object.string("path"), !path.isEmpty else { throw APIError.invalid("path", "a fault needs a path") }
        let kindName = object.string("kind") ?? "status"
        guard let kind = Rule.Kind(rawValue: kindName) else { throw APIError.invalid("kind", "unknown fault kind \(kindName)") }
        let status = Int(object.int("status") ?? 429)
        var code = object.string("code") ?? ""
        if code.isEmpty {
            code = status == 429 ? "TooManyRequests" : status >= 500 ? "InternalError" : "FaultInjected"
        }
        let probability = (object["probability"] as? Double) ?? object.int("probability").map(Double.init)
        var remaining = object.int("count").map(Int.init)
        if remaining == nil && probability == nil { remaining = 1 }
        rules.append(
            Rule(
                path: path, kind: kind, status: status, code: code, remaining: remaining, probability: probability,
                retryAfterMilliseconds: object.int("retry_after_ms").map(Int.init),
                retryHeader: object.string("retry_header") ?? "x-retry-after", bytes: object.int("bytes") ?? 0))
    }

    /// The fault to apply to a request on `path`, if any; consumes one use of the rule.
    mutating func action(for path: String, dataPlane: Bool) -> Action? {
        for index in rules.indices where rules[index].matches(path) {
            let rule = rules[index]
            let isDataKind = rule.kind == .dropAfter || rule.kind == .stallAfter
            if isDataKind && !dataPlane { continue }
            if let probability = rule.probability {
                if let remaining = rule.remaining, remaining <= 0 { continue }
                guard generator.nextDouble() < probability else { continue }
            } else if let remaining = rule.remaining, remaining <= 0 {
                continue
            }
            if let remaining = rule.remaining {
                rules[index].remaining = remaining - 1
                if remaining <= 1 { rules.remove(at: index) }
            }
            return Self.action(for: rule)
        }
        return nil
    }

    private static func action(for rule: Rule) -> Action {
        switch rule.kind {
        case .dropAfter: return .misbehave(.dropAfter(rule.bytes))
        case .stallAfter: return .misbehave(.stallAfter(rule.bytes))
        case .dropResponse: return .misbehave(.dropResponse)
        case .badGateway: return .respond(.text(502, "Bad Gateway"))
        case .deviceOffline:
            return .respond(APIError(401, "UserDeviceOffline", "user device is offline, please login again").response)
        case .paramFlow:
            let body: JSONObject = ["code": "ParamFlowException", "message": "127.0.0.1", "resultCode": "ParamFlowException"]
            return .respond(.json(429, body))
        case .status:
            var error = APIError(rule.status, rule.code, rule.status == 429 ? "Too Many Requests" : "fault injected")
            if rule.status == 429 {
                let milliseconds = rule.retryAfterMilliseconds ?? 200
                if rule.retryHeader == "x-retry-after" || rule.retryHeader == "both" {
                    error.headers.append(("x-retry-after", String(milliseconds)))
                }
                if rule.retryHeader == "Retry-After" || rule.retryHeader == "both" {
                    error.headers.append(("Retry-After", String(max(1, (milliseconds + 999) / 1000))))
                }
            }
            return .respond(error.response)
        }
    }
}

/// A small seeded generator so probabilistic faults are reproducible.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func nextDouble() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
