import AliyunDrive
import Foundation

/// Which file an inode stands for: one on the drive, or one created on this mount and not
/// uploaded yet (known by a local id until its first upload gives it a drive file_id).
enum FileID: Hashable, Sendable, CustomStringConvertible {
    case local(UUID)
    case server(String)

    /// The drive's file_id; nil for a file the drive does not have yet.
    var serverID: String? {
        if case .server(let id) = self { return id }
        return nil
    }

    var isLocal: Bool { serverID == nil }

    var description: String {
        switch self {
        case .local(let id): "local-\(id.uuidString.lowercased())"
        case .server(let id): id
        }
    }
}

/// An entry of a folder: the item and which file it is (a local file's item has no
/// drive file_id).
struct Child: Sendable {
    var id: FileID
    var item: DriveItem

    init(_ item: DriveItem) {
        id = .server(item.fileID)
        self.item = item
    }

    init(local id: UUID, item: DriveItem) {
        self.id = .local(id)
        self.item = item
    }
}
