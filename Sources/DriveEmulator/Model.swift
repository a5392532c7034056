import Crypto

/// One entry of a drive's tree (file or folder).
struct Node: Codable {
    enum Kind: String, Codable { case file, folder }
    var id: String
    var driveID: String
    var parentID: String
    var name: String
    var kind: Kind
    var size: Int64
    /// Key into the content store (files only, once content exists).
    var contentKey: ContentKey?
    var createdAt: Int64
    var updatedAt: Int64
    var trashed: Bool = false
    var trashedAt: Int64?
    /// False while an upload is in progress: such entries are hidden from listings.
    var available: Bool = true
    var uploadID: String?
    var starred: Bool = false
    var description: String = ""
    /// Blocked by the service (违规): listed with `punish_flag`, not copied or served.
    var punished: Bool?
}

/// Content identity for rapid upload: (SHA-1, size).
struct ContentKey: Codable, Hashable {
    var sha1: String  // uppercase hex
    var size: Int64
    var fileName: String { "\(sha1)-\(size)" }
}

/// A content blob on disk, registered for rapid upload.
struct Blob: Codable {
    var key: ContentKey
    /// Uppercase SHA-1 of the first min(1024, size) bytes.
    var preHash: String
    var references: Int = 0
}

struct Account: Codable {
    var userID: String
    var userName: String
    var nickName: String
    var backupDriveID: String
    var resourceDriveID: String
    var sboxDriveID: String
    var totalSize: Int64
    var fileSizeLimit: Int64
    var createdAt: Int64
}

/// A refresh token; each login starts a chain that rotates on every refresh.
struct RefreshToken: Codable {
    var userID: String
    var chain: String
    /// Web tokens mint access tokens whose download URLs are bound to a Referer.
    var web: Bool
    var expiresAt: Int64
}

struct AccessToken: Codable {
    var userID: String
    var web: Bool
    var expiresAt: Int64
    var revoked: Bool = false
}

struct DeviceSession: Codable {
    var userID: String
    var deviceID: String
    var publicKey: String
    var createdAt: Int64
    var expired: Bool = false
}

struct UploadSession: Codable {
    var uploadID: String
    /// The OSS-level upload id in part URLs (differs from `uploadID`, as on the real service).
    var ossUploadID: String
    var fileID: String
    var driveID: String
    var userID: String
    var partCount: Int
    var declaredSize: Int64
    var nextPart: Int = 1
    var committedLength: Int64 = 0
    var partSizes: [Int64] = []
    var completed: Bool = false
    var receiving: Bool = false
    /// Set when the create call carried a full hash (checked again at complete).
    var declaredHash: String?
    var createdAt: Int64
}

struct Share: Codable {
    var shareID: String
    var userID: String
    var driveID: String
    var fileIDs: [String]
    var password: String
    var expiresAt: Int64?  // nil: never
    var cancelled: Bool = false
    var forbidden: Bool = false
    var name: String
    var createdAt: Int64
}

struct ShareToken: Codable {
    var shareID: String
    var expiresAt: Int64
}

struct AsyncTask: Codable {
    var id: String
    var polls: Int = 0
    /// Items the task handles, and how many polls see it `Running` (a folder copy of many
    /// items takes several; the work itself is done at once).
    var total: Int? = nil
    var runningPolls: Int? = nil
    var punished: Int? = nil
}

enum QRStatus: String, Codable { case new = "NEW", scanned = "SCANED", confirmed = "CONFIRMED", expired = "EXPIRED", canceled = "CANCELED" }

struct QRLogin: Codable {
    var t: Int64
    var ck: String
    var status: QRStatus
    var createdAt: Int64
    var refreshToken: String?
}

/// Everything the emulator persists (state.json in the data directory).
struct PersistentState: Codable {
    var accounts: [String: Account] = [:]
    var primaryChain: String = ""
    var refreshTokens: [String: RefreshToken] = [:]
    var accessTokens: [String: AccessToken] = [:]
    var deviceSessions: [String: DeviceSession] = [:]  // key: userID + "/" + deviceID
    var nodes: [String: Node] = [:]
    var blobs: [String: Blob] = [:]  // key: ContentKey.fileName
    var uploads: [String: UploadSession] = [:]  // key: uploadID
    var shares: [String: Share] = [:]
    var shareTokens: [String: ShareToken] = [:]
    var tasks: [String: AsyncTask] = [:]
    var qrLogins: [QRLogin] = []
    var clockOffsetMilliseconds: Int64 = 0
    var urlSecret: String = Formats.randomHex(32)
}
