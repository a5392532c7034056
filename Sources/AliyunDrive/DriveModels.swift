import Foundation

/// A file or folder as the VFS needs it.
public struct DriveItem: Sendable, Equatable {
    public var fileID: String
    public var parentID: String
    public var name: String
    public var isFolder: Bool
    public var size: Int64
    /// Uppercase SHA-1 of the content (files only).
    public var contentHash: String?
    /// Seconds since the epoch.
    public var createdAt: Double
    public var updatedAt: Double
    /// Blocked by the service (a shared file with `punish_flag` set): listed, not readable.
    public var blocked = false

    public init(fileID: String, parentID: String, name: String, isFolder: Bool, size: Int64, contentHash: String?, createdAt: Double, updatedAt: Double) {
        self.fileID = fileID
        self.parentID = parentID
        self.name = name
        self.isFolder = isFolder
        self.size = size
        self.contentHash = contentHash
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    init?(json: [String: Any]) {
        guard let id = json["file_id"] as? String, let name = json["name"] as? String else { return nil }
        fileID = id
        self.name = name
        parentID = json["parent_file_id"] as? String ?? ""
        isFolder = (json["type"] as? String) == "folder"
        size = (json["size"] as? NSNumber)?.int64Value ?? 0
        contentHash = (json["content_hash"] as? String).flatMap { $0.isEmpty ? nil : $0.uppercased() }
        createdAt = parseISO8601(json["created_at"] as? String)
        updatedAt = parseISO8601(json["updated_at"] as? String ?? json["created_at"] as? String)
        blocked = ((json["punish_flag"] as? NSNumber)?.intValue ?? 0) != 0
    }
}

/// Storage quota of the account.
public struct SpaceInfo: Sendable, Equatable {
    public var used: Int64
    public var total: Int64

    public init(used: Int64, total: Int64) {
        self.used = used
        self.total = total
    }
}

/// A signed download URL and when it stops working.
public struct DownloadLink: Sendable {
    public var url: String
    /// Epoch seconds.
    public var expiresAt: Double
    /// Web-token URLs must be fetched with this Referer (aliyun-api.md §6.2).
    public var referer: String?
    /// SHA-1 (uppercase hex) of the content this URL serves, when the server says.
    public var contentHash: String?
}

/// Which of the account's drives to mount.
public enum DriveKind: String, Sendable, CaseIterable {
    case `default`, resource, backup
}

/// `2021-11-06T03:15:19.060Z` (milliseconds optional) → epoch seconds; 0 when unparsable.
func parseISO8601(_ text: String?) -> Double {
    guard let text else { return 0 }
    let bytes = Array(text.utf8)
    guard bytes.count >= 19 else { return 0 }
    func number(_ range: Range<Int>) -> Int32? {
        var value: Int32 = 0
        for index in range {
            guard bytes[index] >= 48, bytes[index] <= 57 else { return nil }
            value = value * 10 + Int32(bytes[index] - 48)
        }
        return value
    }
    guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10), let hour = number(11..<13),
        let minute = number(14..<16), let second = number(17..<19)
    else { return 0 }
    var parts = tm()
    parts.tm_year = year - 1900
    parts.tm_mon = month - 1
    parts.tm_mday = day
    parts.tm_hour = hour
    parts.tm_min = minute
    parts.tm_sec = second
    var fraction = 0.0
    if bytes.count > 20, bytes[19] == 46 {
        var scale = 0.1
        var index = 20
        while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
            fraction += Double(bytes[index] - 48) * scale
            scale /= 10
            index += 1
        }
    }
    return Double(timegm(&parts)) + fraction
}
