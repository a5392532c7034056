import Crypto
import Foundation

/// Writes `size` pseudo-random bytes to `path` in 1 MiB chunks; returns the uppercase SHA-1.
func writeLargeFile(path: String, size: Int) throws -> String {
    guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
        throw CocoaError(.fileWriteUnknown)
    }
    defer { try? handle.close() }
    var hasher = StreamingSHA1()
    var state: UInt64 = 0x1234_5678_9ABC_DEF1
    var words = [UInt64](repeating: 0, count: (1 << 20) / 8)
    var written = 0
    while written < size {
        for index in words.indices {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            words[index] = state
        }
        let count = min(1 << 20, size - written)
        try words.withUnsafeBytes { raw in
            let chunk = UnsafeRawBufferPointer(rebasing: raw[0..<count])
            hasher.update(chunk)
            try handle.write(contentsOf: Data(chunk))
        }
        written += count
    }
    return hasher.hexDigest
}

struct StreamingSHA1 {
    private var hasher = Insecure.SHA1()
    private(set) var count = 0

    mutating func update(_ chunk: UnsafeRawBufferPointer) {
        hasher.update(bufferPointer: chunk)
        count += chunk.count
    }

    var hexDigest: String { hasher.finalize().map { String(format: "%02X", $0) }.joined() }
}

/// The body sink of one streamed transfer: libcurl calls it serially on its thread, and
/// the test reads it only after the transfer finished.
final class HashingSink: @unchecked Sendable {
    var hasher = StreamingSHA1()
}
