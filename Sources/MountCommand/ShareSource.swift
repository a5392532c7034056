import Foundation

/// A share named as a mount's SOURCE: `share:SHARE_ID`, or the link itself —
/// `https://www.alipan.com/s/SHARE_ID[/folder/FILE_ID]` (also `www.aliyundrive.com`, with or
/// without `www.`, `http`, a trailing slash or a query). A folder in the link is the root.
public struct ShareSource: Equatable, Sendable {
    public var shareID: String
    public var folderID: String?

    static let hosts: Set = ["www.alipan.com", "alipan.com", "www.aliyundrive.com", "aliyundrive.com"]

    /// nil when `text` is not a share at all; throws when it is one, badly written.
    public static func parse(_ text: String) throws(UsageError) -> ShareSource? {
        if text.hasPrefix("share:") {
            let id = String(text.dropFirst("share:".count))
            guard isValidID(id) else { throw UsageError("'\(text)' is not a share: expected share:SHARE_ID (letters and digits)") }
            return ShareSource(shareID: id)
        }
        guard text.hasPrefix("https://") || text.hasPrefix("http://") else { return nil }
        guard let url = URLComponents(string: text), let host = url.host?.lowercased(), hosts.contains(host) else {
            throw UsageError("'\(text)' is not a share link: expected https://www.alipan.com/s/SHARE_ID")
        }
        let parts = url.path.split(separator: "/").map(String.init)
        guard parts.count >= 2, parts[0] == "s", isValidID(parts[1]) else {
            throw UsageError("'\(text)' is not a share link: expected https://www.alipan.com/s/SHARE_ID")
        }
        var source = ShareSource(shareID: parts[1])
        if parts.count >= 4, parts[2] == "folder", isValidID(parts[3]) {
            source.folderID = parts[3]
        } else if parts.count > 2 {
            throw UsageError("'\(text)' is not a share link: expected …/s/SHARE_ID or …/s/SHARE_ID/folder/FILE_ID")
        }
        return source
    }

    static func isValidID(_ id: String) -> Bool {
        !id.isEmpty && id.count <= 64 && id.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) }
    }

    /// How `/proc/mounts` shows it.
    public var fsname: String { "share:" + shareID }
}
