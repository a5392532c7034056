/// The file ids of what `DriveWithShares` shows under `.shares/`: the folder itself, and
/// each share's entries as `share:SHARE_ID:FILE_ID`. The service's file ids are hex (or
/// `root`) and never hold a colon, so none of these can be one of the drive's own.
enum SharedID: Equatable, Sendable {
    /// `.shares/` itself.
    case folder
    /// An entry of share `share` (`fileID` as the share lists it; its top level is the
    /// share's root folder id, `root` or the folder the link names).
    case entry(share: String, fileID: String)

    private static let folderID = "shares:"
    private static let entryPrefix = "share:"

    init?(_ id: String) {
        if id == Self.folderID {
            self = .folder
            return
        }
        guard id.hasPrefix(Self.entryPrefix) else { return nil }
        let rest = id.dropFirst(Self.entryPrefix.count)
        guard let colon = rest.firstIndex(of: ":"), colon != rest.startIndex, rest.index(after: colon) != rest.endIndex else { return nil }
        self = .entry(share: String(rest[..<colon]), fileID: String(rest[rest.index(after: colon)...]))
    }

    var id: String {
        switch self {
        case .folder: Self.folderID
        case .entry(let share, let fileID): Self.entryPrefix + share + ":" + fileID
        }
    }

    /// The id the service knows an entry by (a shared entry's own file_id).
    static func serviceID(_ id: String) -> String {
        if case .entry(_, let fileID)? = SharedID(id) { return fileID }
        return id
    }

    /// Whether `id` is one of these (so read-only).
    static func isShared(_ id: String) -> Bool { SharedID(id) != nil }
}
