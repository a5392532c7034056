import Foundation

/// A decoded JSON object. The emulator reads requests loosely, as the real service does.
typealias JSONObject = [String: Any]

extension Dictionary where Key == String, Value == Any {
    func string(_ key: String) -> String? {
        switch self[key] {
        case let value as String: value
        case let value as NSNumber: value.stringValue
        default: nil
        }
    }

    func int(_ key: String) -> Int64? {
        switch self[key] {
        case let value as NSNumber: value.int64Value
        case let value as String: Int64(value)
        default: nil
        }
    }

    func bool(_ key: String) -> Bool? {
        switch self[key] {
        case let value as Bool: value
        case let value as NSNumber: value.boolValue
        case let value as String: value == "true"
        default: nil
        }
    }

    func objects(_ key: String) -> [JSONObject]? { self[key] as? [JSONObject] }
}

enum JSON {
    static func encode(_ object: Any) -> [UInt8] {
        guard JSONSerialization.isValidJSONObject(object),
            let data = try? JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes])
        else { return Array("{}".utf8) }
        return Array(data)
    }

    /// Parses a request body; an empty body is `{}`. Nil when the body is not a JSON object.
    static func decodeObject(_ bytes: [UInt8]) -> JSONObject? {
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return [:] }
        return (try? JSONSerialization.jsonObject(with: Data(bytes))) as? JSONObject
    }
}

/// Identifier and time formats the real service uses (aliyun-api.md §1).
enum Formats {
    static func randomHex(_ count: Int, uppercase: Bool = false) -> String {
        let digits = Array((uppercase ? "0123456789ABCDEF" : "0123456789abcdef").utf8)
        var rng = SystemRandomNumberGenerator()
        return String(decoding: (0..<count).map { _ in digits[Int(rng.next() % 16)] }, as: UTF8.self)
    }

    static func randomBase62(_ count: Int) -> String {
        let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        var rng = SystemRandomNumberGenerator()
        return String(decoding: (0..<count).map { _ in alphabet[Int(rng.next() % 62)] }, as: UTF8.self)
    }

    /// `2021-11-06T03:15:19.060Z` from epoch milliseconds.
    static func iso8601(milliseconds: Int64) -> String {
        var seconds = time_t(milliseconds / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(milliseconds % 1000), 3))Z"
    }

    /// `20060102_150405`, the suffix `auto_rename` appends.
    static func compactTime(milliseconds: Int64) -> String {
        let iso = iso8601(milliseconds: milliseconds)
        let digits = iso.prefix(19).filter(\.isNumber)
        return String(digits.prefix(8)) + "_" + String(digits.dropFirst(8))
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func hex(_ bytes: some Sequence<UInt8>, uppercase: Bool) -> String {
        let digits = Array((uppercase ? "0123456789ABCDEF" : "0123456789abcdef").utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
