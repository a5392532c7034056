import Crypto
import Foundation

/// The hashes rapid upload (秒传) needs: pre-hash probe, content hash and proof code.
/// Pure functions; see aliyun-api.md §8.2–§8.4.
public enum RapidUpload {
    /// How many leading bytes the pre-hash covers.
    public static let preHashPrefix = 1024

    /// Uppercase hex SHA-1 of `bytes` (the wire form of `content_hash` and `pre_hash`).
    public static func sha1Hex(_ bytes: [UInt8]) -> String {
        Insecure.SHA1.hash(data: bytes).hexUppercased
    }

    /// The byte offset the proof code reads from: the first 16 hex digits of
    /// md5(accessToken), as an unsigned 64-bit integer, modulo the size. Nil for size 0.
    public static func proofOffset(accessToken: String, size: Int64) -> Int64? {
        guard size > 0 else { return nil }
        let digest = Array(Insecure.MD5.hash(data: Array(accessToken.utf8)))
        let value = digest.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return Int64(value % UInt64(size))
    }

    /// The proof code ("v1") for content of `size` bytes whose bytes at
    /// `proofOffset(…)` ..< +8 (clipped at the end) are `window`.
    public static func proofCode(window: some Collection<UInt8>) -> String {
        Data(window).base64EncodedString()
    }

    /// Uppercase hex SHA-1 and size of the file at `path` (read with `pread`, in 1 MiB pieces).
    public static func sha1Hex(ofFile path: String) throws -> (hash: String, size: Int64) {
        let file = try LocalFile(path: path)
        defer { file.close() }
        return (try file.sha1(prefix: nil), file.size)
    }

    /// The proof code for content held in memory.
    public static func proofCode(accessToken: String, content: [UInt8]) -> String {
        guard let offset = proofOffset(accessToken: accessToken, size: Int64(content.count)) else { return "" }
        let start = Int(offset)
        return proofCode(window: content[start..<min(start + 8, content.count)])
    }
}

extension Digest {
    /// Uppercase hexadecimal digits of the digest.
    var hexUppercased: String {
        let digits = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// A running SHA-1 of content written in order (the staging file's follower feeds it),
/// so an upload can start with the content hash already known.
///
/// `@unchecked`: `Insecure.SHA1` is a value type (its digest context is copied on write)
/// that swift-crypto does not mark `Sendable`.
public struct ContentHasher: @unchecked Sendable {
    private var hasher = Insecure.SHA1()

    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) { hasher.update(bufferPointer: bytes) }

    /// Uppercase hex of the digest so far (the hasher itself carries on).
    public var hexDigest: String { hasher.finalize().hexUppercased }
}
