public import AliyunDrive

/// Tunables of the filesystem (the `-o` options that reach this layer).
public struct DriveFSConfiguration: Sendable {
    /// The folder mounted as the root (`root_id`); "root" is the drive's root.
    public var rootID: String
    public var uid: UInt32
    public var gid: UInt32
    public var umask: UInt32
    /// Seconds a folder listing is trusted (`dir_cache_ttl`).
    public var directoryCacheTTL: Double
    /// Bytes of file content kept in memory (`cache_size`).
    public var cacheSize: Int
    /// Bytes fetched ahead of a sequential reader at most (`read_ahead`).
    public var readAhead: Int
    /// Size of one cached chunk / one ranged GET for sequential reads.
    public var chunkSize: Int
    /// Smallest ranged GET for random reads.
    public var randomReadSize: Int
    public var readOnly: Bool
    /// Where this mount stages files being written and journals their uploads, bound to
    /// its account, drive and endpoint (see `StateLayout`).
    public var state: StateLayout
    public var stagingDirectory: String { state.stagingDirectory }
    public var journalDirectory: String { state.journalDirectory }
    /// Where downloaded chunks are kept on disk (`cache_dir`/chunks), and how many bytes at
    /// most (`disk_cache_size`; 0 keeps content in memory only).
    public var diskCacheDirectory: String
    public var diskCacheSize: Int
    /// Where modification times set on this machine are kept (state directory/times); nil:
    /// in memory only.
    public var timesDirectory: String?
    public var uploadOptions: UploadOptions
    /// The share mounted, when the drive is one (shown as `user.adrive.share_id`).
    public var shareID: String? = nil
    /// First delay of the background retry of a failed upload; doubles up to 60 s.
    public var uploadRetryDelay: Double
    /// The most chunks a sequential reader keeps in flight (read-ahead grows to this while
    /// the rate keeps rising, within `cacheSize`).
    public var maxStreams: Int
    /// Write-back: seconds a closed file waits before its upload (0: uploaded at close).
    public var writeBackDelay: Double

    public init(
        rootID: String = "root", uid: UInt32, gid: UInt32, umask: UInt32 = 0o022, directoryCacheTTL: Double = 60,
        cacheSize: Int = 48 << 20, readAhead: Int = 24 << 20, chunkSize: Int = 4 << 20, randomReadSize: Int = 64 << 10,
        readOnly: Bool = false, state: StateLayout = StateLayout(journalRoot: "/tmp/adrivefs-pending", stagingRoot: "/tmp/adrivefs-staging", binding: nil),
        diskCacheDirectory: String = "/tmp/adrivefs-chunks", diskCacheSize: Int = 0,
        timesDirectory: String? = nil, uploadOptions: UploadOptions = UploadOptions(), uploadRetryDelay: Double = 2,
        writeBackDelay: Double = 0, maxStreams: Int = 16
    ) {
        self.maxStreams = maxStreams
        self.writeBackDelay = writeBackDelay
        self.rootID = rootID
        self.uid = uid
        self.gid = gid
        self.umask = umask
        self.directoryCacheTTL = directoryCacheTTL
        self.cacheSize = cacheSize
        self.readAhead = readAhead
        self.chunkSize = chunkSize
        self.randomReadSize = randomReadSize
        self.readOnly = readOnly
        self.state = state
        self.diskCacheDirectory = diskCacheDirectory
        self.diskCacheSize = diskCacheSize
        self.timesDirectory = timesDirectory
        self.uploadOptions = uploadOptions
        self.uploadRetryDelay = uploadRetryDelay
    }
}
