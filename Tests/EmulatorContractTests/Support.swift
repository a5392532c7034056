import AliyunDrive

/// Hashes computed by the client library, used to check what the emulator reports.
enum RapidHash {
    static func sha1(_ bytes: [UInt8]) -> String { RapidUpload.sha1Hex(bytes) }
}
