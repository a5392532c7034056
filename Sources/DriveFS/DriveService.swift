public import AliyunDrive

/// What the filesystem needs from the drive. `AliyunDriveClient` is the real one; tests
/// may script their own.
public protocol DriveService: Sendable {
    func list(folderID: String) async throws -> [DriveItem]
    func item(fileID: String) async throws -> DriveItem
    func read(fileID: String, offset: Int64, length: Int) async throws -> [UInt8]
    func space() async throws -> SpaceInfo
}

extension AliyunDriveClient: DriveService {}
