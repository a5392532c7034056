/// How an upload is made.
public struct UploadOptions: Sendable {
    /// Try rapid upload (秒传): pre-hash probe, then full hash + proof.
    public var rapid: Bool
    /// PUT part bytes to `internal_upload_url` instead of `upload_url`.
    public var internalURLs: Bool
    /// Files up to this size skip the pre-hash probe and send the full hash at once
    /// (hashing them costs less than the extra round trip).
    public var probeThreshold: Int64
    /// Told the bytes sent so far after each part (for `adrivefs status`).
    public var progress: (@Sendable (Int64) -> Void)?

    public init(rapid: Bool = true, internalURLs: Bool = false, probeThreshold: Int64 = 1 << 20, progress: (@Sendable (Int64) -> Void)? = nil) {
        self.rapid = rapid
        self.internalURLs = internalURLs
        self.probeThreshold = probeThreshold
        self.progress = progress
    }
}
