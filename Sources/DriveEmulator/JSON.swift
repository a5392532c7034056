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
    /// Answers are written directly from the Swift values the handlers build: Foundation's
    /// `JSONSerialization` bridges every value to an `NSObject` first, which made a 200-item
    /// listing page cost the emulator more than a real service's round trip.
    static func encode(_ object: Any) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(4096)
        guard write(object, into: &out) else { return Array("{}".utf8) }
        return out
    }

    /// False for a value JSON cannot hold (the answer is then `{}`, as before).
    private static func write(_ value: Any, into out: inout [UInt8]) -> Bool {
        switch value {
        case let text as String:
            writeString(text, into: &out)
        case let object as [String: Any]:
            out.append(UInt8(ascii: "{"))
            var first = true
            for (key, element) in object {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                writeString(key, into: &out)
                out.append(UInt8(ascii: ":"))
                guard write(element, into: &out) else { return false }
            }
            out.append(UInt8(ascii: "}"))
        case let array as [Any]:
            out.append(UInt8(ascii: "["))
            for (index, element) in array.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                guard write(element, into: &out) else { return false }
            }
            out.append(UInt8(ascii: "]"))
        case is NSNull:
            out.append(contentsOf: "null".utf8)
        default:
            // Exact Swift number types first (an `Int` must not pass for a `Bool`);
            // anything else Foundation bridged (a request's NSNumber) goes through it.
            switch ObjectIdentifier(type(of: value)) {
            case ObjectIdentifier(Bool.self): out.append(contentsOf: ((value as? Bool) == true ? "true" : "false").utf8)
            case ObjectIdentifier(Int.self): out.append(contentsOf: String(value as? Int ?? 0).utf8)
            case ObjectIdentifier(Int64.self): out.append(contentsOf: String(value as? Int64 ?? 0).utf8)
            case ObjectIdentifier(Int32.self): out.append(contentsOf: String(value as? Int32 ?? 0).utf8)
            case ObjectIdentifier(UInt64.self): out.append(contentsOf: String(value as? UInt64 ?? 0).utf8)
            case ObjectIdentifier(Double.self):
                let number = value as? Double ?? 0
                guard number.isFinite else { return false }
                out.append(contentsOf: (number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)).utf8)
            default:
                guard JSONSerialization.isValidJSONObject([value]), let data = try? JSONSerialization.data(withJSONObject: [value]) else { return false }
                out.append(contentsOf: data.dropFirst().dropLast())
            }
        }
        return true
    }

    private static func writeString(_ text: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        if !text.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            out.append(contentsOf: text.utf8)
            out.append(UInt8(ascii: "\""))
            return
        }
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case UInt8(ascii: "\n"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case UInt8(ascii: "\r"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case UInt8(ascii: "\t"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(byte >> 4)], hex[Int(byte & 15)]])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
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
