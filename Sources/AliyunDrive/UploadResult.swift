/// What an upload did.
public struct UploadResult: Sendable {
    /// The new file (its `file_id` is new; size and hash checked against the local file).
    public var item: DriveItem
    /// The server already had the content: no part bytes were sent.
    public var rapid: Bool
    public var bytesSent: Int64

    public init(item: DriveItem, rapid: Bool, bytesSent: Int64) {
        self.item = item
        self.rapid = rapid
        self.bytesSent = bytesSent
    }
}

/// Uploads (aliyun-api.md §8): pre-hash probe → full SHA-1 + proof → rapid upload, else a
/// sequential multipart upload, then `complete` and a check of the server's size and SHA-1.
