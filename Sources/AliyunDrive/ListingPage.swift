import Foundation

/// One page of a folder listing (`/adrive/v3/file/list`), decoded straight into the fields
/// a `DriveItem` needs: decoding a 200-item page as `[String: Any]` boxed every value of
/// every item, and on a distant link that work sat between one page's answer and the next
/// page's request. Lenient as `DriveItem(json:)`: a field of an unexpected type is absent.
struct ListingPage: Decodable {
    var items: [Entry]
    var nextMarker: String?

    private enum Keys: String, CodingKey {
        case items
        case nextMarker = "next_marker"
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        items = (try? container.decodeIfPresent([Entry].self, forKey: .items)) ?? []
        nextMarker = try? container.decodeIfPresent(String.self, forKey: .nextMarker)
    }

    /// The page's `next_marker`, read from its bytes without decoding them: the first
    /// `"next_marker"` followed by `:` and a string (inside a JSON string a quote is
    /// escaped, so these bytes can only be a key). Nil when it is not there in that plain
    /// form (the decoded page is then the only word).
    static func nextMarker(in bytes: [UInt8]) -> String? {
        let key = Array(#""next_marker""#.utf8)
        guard bytes.count > key.count else { return nil }
        var index = 0
        while index <= bytes.count - key.count {
            guard bytes[index] == key[0], bytes[index..<index + key.count].elementsEqual(key) else {
                index += 1
                continue
            }
            var cursor = index + key.count
            func skipSpace() { while cursor < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[cursor]) { cursor += 1 } }
            skipSpace()
            guard cursor < bytes.count, bytes[cursor] == UInt8(ascii: ":") else { return nil }
            cursor += 1
            skipSpace()
            guard cursor < bytes.count, bytes[cursor] == UInt8(ascii: "\"") else { return nil }
            let start = cursor + 1
            guard let end = bytes[start...].firstIndex(where: { $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }), bytes[end] == UInt8(ascii: "\"") else {
                return nil
            }
            return String(decoding: bytes[start..<end], as: UTF8.self)
        }
        return nil
    }

    struct Entry: Decodable {
        /// Nil for an entry without an id or a name (skipped, as `DriveItem(json:)` does).
        var item: DriveItem?

        private enum Keys: String, CodingKey {
            case fileID = "file_id", name, parentID = "parent_file_id", type, size, contentHash = "content_hash"
            case createdAt = "created_at", updatedAt = "updated_at", punishFlag = "punish_flag"
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Keys.self)
            func text(_ key: Keys) -> String? { (try? container.decodeIfPresent(String.self, forKey: key)) ?? nil }
            func number(_ key: Keys) -> Int64? { (try? container.decodeIfPresent(Int64.self, forKey: key)) ?? nil }
            guard let id = text(.fileID), let name = text(.name) else { return }
            let created = parseISO8601(text(.createdAt))
            var item = DriveItem(
                fileID: id, parentID: text(.parentID) ?? "", name: name, isFolder: text(.type) == "folder", size: number(.size) ?? 0,
                contentHash: text(.contentHash).flatMap { $0.isEmpty ? nil : $0.uppercased() }, createdAt: created,
                updatedAt: text(.updatedAt).map { parseISO8601($0) } ?? created)
            item.blocked = (number(.punishFlag) ?? 0) != 0
            self.item = item
        }
    }
}
