public import AliyunDrive

/// What the filesystem needs from the drive. `AliyunDriveClient` is the real one; tests
/// may script their own.
public protocol DriveService: Sendable {
    func list(folderID: String) async throws -> [DriveItem]
    func item(fileID: String) async throws -> DriveItem
    func read(fileID: String, offset: Int64, length: Int) async throws -> [UInt8]
    /// The same bytes streamed to `sink` in order as they arrive (each byte once).
    func read(fileID: String, offset: Int64, length: Int, into sink: @escaping @Sendable (UnsafeRawBufferPointer) -> Void) async throws
    /// SHA-1 of the content `read` serves for the file, when known (checked before
    /// anything is stored in the content-addressed disk cache).
    func servedContentHash(fileID: String) async throws -> String?
    func space() async throws -> SpaceInfo

    // Writing (own drive only).
    func createFolder(parentID: String, name: String) async throws -> DriveItem
    func rename(fileID: String, to name: String) async throws -> DriveItem
    func move(fileID: String, toParentID: String, newName: String?) async throws
    func trash(fileID: String) async throws
    /// Uploads a local file as a new entry beside any same-named one; `contentHash` is its
    /// SHA-1 when already known.
    func upload(path: String, parentID: String, name: String, options: UploadOptions, contentHash: ContentHashSource) async throws -> UploadResult
    /// A new entry with the content of the drive's file `source`, made by hash without
    /// sending its bytes; nil when the drive does not take it that way.
    func copyByHash(of source: DriveItem, parentID: String, name: String) async throws -> UploadResult?
    /// A new entry in `parentID` under `name` holding shared file `fileID` (a share shown
    /// inside this drive), saved server-side; nil when `fileID` is not a shared file.
    func saveFromShare(fileID: String, parentID: String, name: String) async throws -> DriveItem?

    /// A descriptor reading the file was opened / closed: a drive whose content needs a
    /// resource per file (a share's temporary copies) keeps it while any is open.
    func opened(fileID: String)
    func closed(fileID: String)

    /// A hint: these files are likely to be read next (the rest of a folder read in
    /// order); a drive may fetch what reading them needs in one go.
    func prefetchDownloadLinks(fileIDs: [String]) async
}

extension DriveService {
    public func prefetchDownloadLinks(fileIDs: [String]) async {}
    public func saveFromShare(fileID: String, parentID: String, name: String) async throws -> DriveItem? { nil }
    public func opened(fileID: String) {}
    public func closed(fileID: String) {}
}

extension AliyunDriveClient: DriveService {}
