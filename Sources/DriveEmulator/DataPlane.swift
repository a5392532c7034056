import Crypto
import Foundation

/// The OSS-style data plane: presigned download (GET/HEAD) and part-upload (PUT) URLs.
extension EmulatorState {
    /// Checks signature and expiry of a data URL; nil when valid.
    func checkSignedURL(method: String, path: String, query: [String: String]) -> EmulatorResponse? {
        guard let signature = query["x-oss-signature"], let expires = query["x-oss-expires"].flatMap({ Int64($0) }),
            signature == self.signature(method: method, path: path, query: query)
        else {
            return .ossError(403, code: "SignatureDoesNotMatch", message: "The request signature we calculated does not match the signature you provided.")
        }
        if expires < nowSeconds {
            return .ossError(
                403, code: "AccessDenied", message: "Request has expired.",
                extra: [("Expires", Formats.iso8601(milliseconds: expires * 1000)), ("ServerTime", Formats.iso8601(milliseconds: now))])
        }
        return nil
    }

    /// GET/HEAD of a download URL: a file range to send, or an error document.
    func download(method: String, path: String, query: [String: String], headers requestHeaders: [String: String]) -> EmulatorResponse {
        if let failure = checkSignedURL(method: "GET", path: path, query: query) { return failure }
        if query["x-oss-additional-headers"] == "referer" {
            let referer = requestHeaders["referer"] ?? ""
            guard ["https://www.aliyundrive.com/", "https://www.alipan.com/"].contains(referer) else {
                return .ossError(403, code: "AccessDenied", message: "You are denied by bucket referer policy.")
            }
        }
        guard let keyName = query["k"], let blob = persistent.blobs[keyName] else {
            return .ossError(404, code: "NoSuchKey", message: "The specified key does not exist.")
        }
        let size = blob.key.size
        var headers: [(String, String)] = [
            ("Accept-Ranges", "bytes"), ("ETag", "\"\(blob.key.sha1)\""), ("Content-Type", "application/octet-stream"),
            ("x-oss-request-id", Formats.randomHex(24, uppercase: true)),
        ]
        var status = 200
        var offset: Int64 = 0
        var length = size
        if let value = requestHeaders["range"], !value.contains(",") {
            guard let (first, last) = Self.parseRange(value, size: size) else {
                var error = EmulatorResponse.ossError(416, code: "InvalidRange", message: "The requested range cannot be satisfied.")
                error.headers.append(("Content-Range", "bytes */\(size)"))
                return error
            }
            status = 206
            offset = first
            length = last - first + 1
            headers.append(("Content-Range", "bytes \(first)-\(last)/\(size)"))
        }
        if method == "HEAD" {
            headers.append(("Content-Length", String(length)))
            return EmulatorResponse(status: status, headers: headers)
        }
        return EmulatorResponse(status: status, headers: headers, body: .file(path: blobPath(blob.key), offset: offset, length: length))
    }

    /// The `bytes=` range of a request, parsed against `size`: nil when unsatisfiable.
    /// Supports `a-b`, `a-` and `-n` (suffix), like OSS.
    static func parseRange(_ value: String, size: Int64) -> (Int64, Int64)? {
        guard value.hasPrefix("bytes=") else { return nil }
        let spec = value.dropFirst(6).trimmingCharacters(in: .whitespaces)
        let parts = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2 else { return nil }
        if parts[0].isEmpty {
            guard let suffix = Int64(parts[1]), suffix > 0, size > 0 else { return nil }
            return (max(0, size - suffix), size - 1)
        }
        guard let first = Int64(parts[0]), first >= 0, first < size else { return nil }
        if parts[1].isEmpty { return (first, size - 1) }
        guard let last = Int64(parts[1]), last >= first else { return nil }
        return (first, min(last, size - 1))
    }

    // MARK: - Part upload

    /// Validates a part PUT before its body is read. On success the session is marked as
    /// receiving and a writer is returned; otherwise the error to answer with.
    func beginPart(path: String, query: [String: String], headers: [String: String], viaInternal: Bool) -> Result<PartWriter, EmulatorResponse> {
        if let failure = checkSignedURL(method: "PUT", path: path, query: query) { return .failure(failure) }
        if let contentType = headers["content-type"], !contentType.trimmingCharacters(in: .whitespaces).isEmpty {
            return .failure(.ossError(403, code: "SignatureDoesNotMatch", message: "The request signature we calculated does not match the signature you provided. Content-Type must be empty."))
        }
        guard let ossUploadID = query["uploadId"], let partNumber = query["partNumber"].flatMap({ Int($0) }),
            var session = persistent.uploads.values.first(where: { $0.ossUploadID == ossUploadID }), !session.completed
        else {
            return .failure(.ossError(404, code: "NoSuchUpload", message: "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."))
        }
        if partNumber < session.nextPart {
            return .failure(.ossError(409, code: "PartAlreadyExist", message: "For sequential multipart upload, you can't overwrite uploaded parts."))
        }
        if partNumber > session.nextPart || partNumber > session.partCount || session.receiving {
            return .failure(.ossError(400, code: "PartNotSequential", message: "For sequential multipart upload, you must upload or complete parts with sequential part number."))
        }
        let fd = open(uploadPath(session.uploadID), O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return .failure(.ossError(500, code: "InternalError", message: "cannot open upload data")) }
        // Discard whatever a broken earlier attempt of this part left behind.
        _ = ftruncate(fd, off_t(session.committedLength))
        session.receiving = true
        persistent.uploads[session.uploadID] = session
        var hasher = hashers[session.uploadID]
        if hasher == nil && session.committedLength == 0 { hasher = Insecure.SHA1() }
        return .success(PartWriter(uploadID: session.uploadID, partNumber: partNumber, fd: fd, offset: session.committedLength, hasher: hasher, viaInternal: viaInternal))
    }

    /// Commits (or, when `success` is false, abandons) a part once its body ended.
    func finishPart(_ writer: PartWriter, success: Bool) -> EmulatorResponse {
        close(writer.fd)
        guard var session = persistent.uploads[writer.uploadID] else {
            return .ossError(404, code: "NoSuchUpload", message: "The specified upload does not exist.")
        }
        session.receiving = false
        if success && writer.failed == nil {
            session.committedLength += writer.written
            session.partSizes.append(writer.written)
            session.nextPart = writer.partNumber + 1
            hashers[writer.uploadID] = writer.hasher
            if writer.viaInternal { stats.bytesUploadedInternal += writer.written } else { stats.bytesUploaded += writer.written }
        }
        persistent.uploads[writer.uploadID] = session
        dirty = true
        if let failure = writer.failed { return .ossError(500, code: "InternalError", message: failure) }
        return EmulatorResponse(status: 200, headers: [("ETag", "\"\(Formats.randomHex(32, uppercase: true))\""), ("x-oss-request-id", Formats.randomHex(24, uppercase: true))])
    }
}

/// Streams one part's body to the upload file as it arrives. Used on one event loop only.
/// `@unchecked Sendable`: created under the state lock, then used by one event loop only.
final class PartWriter: @unchecked Sendable {
    let uploadID: String
    let partNumber: Int
    let fd: Int32
    let offset: Int64
    let viaInternal: Bool
    private(set) var written: Int64 = 0
    private(set) var hasher: Insecure.SHA1?
    private(set) var failed: String?

    init(uploadID: String, partNumber: Int, fd: Int32, offset: Int64, hasher: Insecure.SHA1?, viaInternal: Bool) {
        self.uploadID = uploadID
        self.partNumber = partNumber
        self.fd = fd
        self.offset = offset
        self.hasher = hasher
        self.viaInternal = viaInternal
    }

    func write(_ bytes: UnsafeRawBufferPointer) {
        guard failed == nil, let base = bytes.baseAddress else { return }
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, base + done, bytes.count - done, off_t(offset + written + Int64(done)))
            if n <= 0 {
                failed = "write failed: errno \(errno)"
                return
            }
            done += n
        }
        hasher?.update(bufferPointer: bytes)
        written += Int64(bytes.count)
    }
}
