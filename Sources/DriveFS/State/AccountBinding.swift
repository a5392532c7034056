/// Whose state it is: the account (`user_id`), the drive (`drive_id`) and the API endpoint
/// a piece of per-mount state came from. Everything a later mount may act on — journal
/// entries, staging files — lives under a folder named after its binding and records it;
/// a mount acts only on state bound to its own account, drive and endpoint.
public struct AccountBinding: Codable, Sendable, Hashable, CustomStringConvertible {
    public var userID: String
    public var driveID: String
    /// Normalized: lowercase scheme and host, no trailing slash.
    public var endpoint: String

    public init(userID: String, driveID: String, endpoint: String) {
        self.userID = userID
        self.driveID = driveID
        self.endpoint = Self.normalize(endpoint)
    }

    /// The folder name of this binding's state: readable and safe as one path component.
    /// Distinct bindings may (in theory) share a name after the unsafe characters are
    /// replaced; every entry also records its binding, and a mount checks it.
    public var directoryName: String {
        "\(Self.safe(userID, limit: 64))-\(Self.safe(driveID, limit: 32))-\(Self.fnv1a(endpoint))"
    }

    public var description: String { "user \(userID), drive \(driveID) at \(endpoint)" }

    static func normalize(_ endpoint: String) -> String {
        var text = endpoint
        while text.hasSuffix("/") { text.removeLast() }
        guard let schemeEnd = text.range(of: "://") else { return text }
        let hostEnd = text[schemeEnd.upperBound...].firstIndex(of: "/") ?? text.endIndex
        return text[..<hostEnd].lowercased() + text[hostEnd...]
    }

    private static func safe(_ text: String, limit: Int) -> String {
        let mapped = text.unicodeScalars.prefix(limit).map { scalar -> Character in
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", "_", ".": Character(scalar)
            default: "_"
            }
        }
        // No leading dot: neither hidden nor `.`/`..`.
        let name = String(mapped)
        return name.first == "." ? "_" + name.dropFirst() : name.isEmpty ? "_" : name
    }

    /// A stable 64-bit FNV-1a of the endpoint (Swift's `Hasher` is seeded per process).
    private static func fnv1a(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
