import Crypto
import Foundation
import Glibc
import HTTPTransport

extension AliyunDriveClient {
    /// The part size for `size` bytes: 10 MiB, grown in whole MiB so there are never more
    /// than 10,000 parts.
    public static func partSize(for size: Int64) -> Int64 {
        let minimum: Int64 = 10 << 20
        let needed = (size + 9_999) / 10_000
        return max(minimum, ((needed + (1 << 20) - 1) >> 20) << 20)
    }

    /// How many parts `size` bytes are sent in (one at least: an empty file has one).
    static func partCount(for size: Int64) -> Int {
        let partSize = partSize(for: size)
        return max(1, Int((size + partSize - 1) / partSize))
    }

    /// The create call's fields common to every way of making a file: a new entry beside
    /// any same-named one (`check_name_mode: ignore`), its size and part list.
    private func createBody(parentID: String, name: String, size: Int64) -> [String: any Sendable] {
        [
            "drive_id": driveID, "parent_file_id": parentID, "name": name, "type": "file", "check_name_mode": "ignore",
            "size": size, "part_info_list": (1...Self.partCount(for: size)).map { ["part_number": $0] as [String: any Sendable] },
        ]
    }

    /// Uploads the file at `path` (which must not change meanwhile) as `name` in
    /// `parentID`. A same-named entry is left alone (`check_name_mode: ignore`): replacing
    /// it is the caller's business once this new file is complete.
    /// `contentHash` says what the caller knows of the file's SHA-1: a known one saves
    /// hashing the file and the pre-hash probe; a pending one is awaited only when the
    /// hash is needed (a rapid upload after the probe matched, the final check), so the
    /// parts go out while it is still being computed.
    public func upload(
        path: String, parentID: String, name: String, options: UploadOptions = UploadOptions(), contentHash: ContentHashSource = .unknown
    ) async throws -> UploadResult {
        let file = try LocalFile(path: path)
        defer { file.close() }
        // One hash for everything that needs it, started now: it runs while the session is
        // created and the parts go out.
        let hashing = Task { () async throws -> String in
            switch contentHash {
            case .known(let hash): return hash
            case .pending(let pending): if let hash = await pending() { return hash }
            case .unknown: break
            }
            // Reading a whole file is long blocking work: off the cooperative pool.
            let stop = Blocking.Stop()
            return try await withTaskCancellationHandler {
                try await Blocking.run { try file.sha1(prefix: nil, stop: stop) }
            } onCancel: {
                stop.set()
            }
        }
        do {
            return try await upload(file: file, path: path, parentID: parentID, name: name, options: options, hashKnown: contentHash.isKnown) {
                try await hashing.value
            }
        } catch {
            // The hash must not outlive the descriptor it reads.
            hashing.cancel()
            _ = await hashing.result
            throw error
        }
    }

    private func upload(
        file: LocalFile, path: String, parentID: String, name: String, options: UploadOptions, hashKnown: Bool,
        hash: @Sendable () async throws -> String
    ) async throws -> UploadResult {
        let size = file.size
        let partSize = Self.partSize(for: size)
        let partCount = Self.partCount(for: size)
        var body = createBody(parentID: parentID, name: name, size: size)
        var session: [String: Any]
        if options.rapid {
            if size > options.probeThreshold && !hashKnown {
                var probe = body
                probe["pre_hash"] = try file.sha1(prefix: RapidUpload.preHashPrefix)
                do {
                    session = try await call("/adrive/v2/file/createWithFolders", probe)
                } catch let error as DriveError where error.code == "PreHashMatched" {
                    session = try await createWithProof(&body, file: file, hash: try await hash())
                }
            } else {
                session = try await createWithProof(&body, file: file, hash: try await hash())
            }
        } else {
            body["content_hash_name"] = "none"
            body["proof_version"] = "v1"
            session = try await call("/adrive/v2/file/createWithFolders", body)
        }
        guard let fileID = session["file_id"] as? String, let uploadID = session["upload_id"] as? String else {
            throw DriveError(.protocolViolation, "create returned no upload session")
        }
        if session["rapid_upload"] as? Bool == true {
            let item = try await complete(fileID: fileID, uploadID: uploadID, name: name, size: size, hash: hash)
            try await verify(item, size: size, hash: try await hash())
            return UploadResult(item: item, rapid: true, bytesSent: 0)
        }
        var urls = Self.partURLs(session["part_info_list"], internalURLs: options.internalURLs)
        var sent: Int64 = 0
        for part in 1...partCount {
            let offset = Int64(part - 1) * partSize
            let length = min(partSize, size - offset)
            sent += try await putPart(
                part, of: (fileID, uploadID, partCount), path: path, offset: offset, length: length, urls: &urls, options: options)
            options.progress?(offset + length)
        }
        let item = try await complete(fileID: fileID, uploadID: uploadID, name: name, size: size, hash: hash)
        try await verify(item, size: size, hash: try await hash())
        return UploadResult(item: item, rapid: false, bytesSent: sent)
    }

    /// A new file `name` in `parentID` with the content of the drive's file `source`, made
    /// by hash (a rapid upload): nothing is downloaded but the few bytes the proof code
    /// needs, nothing is uploaded. nil when the server does not take the content by hash
    /// (nothing is left behind then); the caller copies the bytes instead.
    public func copyByHash(of source: DriveItem, parentID: String, name: String) async throws -> UploadResult? {
        guard !source.isFolder, source.size > 0, let hash = source.contentHash?.uppercased(), hash.count == 40 else { return nil }
        var body = createBody(parentID: parentID, name: name, size: source.size)
        body["content_hash"] = hash
        body["content_hash_name"] = "sha1"
        body["proof_version"] = "v1"
        var session: [String: Any] = [:]
        for attempt in 1...2 {
            // The proof depends on the token the call goes out with: fetched right before it.
            let token = try await tokens.access().token
            guard let offset = RapidUpload.proofOffset(accessToken: token, size: source.size) else { return nil }
            let window = try await read(fileID: source.fileID, offset: offset, length: Int(min(8, source.size - offset)))
            body["proof_code"] = RapidUpload.proofCode(window: window)
            do {
                session = try await call("/adrive/v2/file/createWithFolders", body)
                break
            } catch let error as DriveError where error.code == "InvalidRapidProof" {
                // Once more with the current token; a second refusal means the file's bytes
                // are no longer the ones its listed hash names (changed elsewhere).
                logger.info("rapid copy proof of \(name) refused (InvalidRapidProof)")
                if attempt == 2 { return nil }
            }
        }
        guard let fileID = session["file_id"] as? String, let uploadID = session["upload_id"] as? String else {
            throw DriveError(.protocolViolation, "create returned no file")
        }
        guard session["rapid_upload"] as? Bool == true else {
            // An upload session for bytes that will not come: the new entry goes.
            try? await trash(fileID: fileID)
            return nil
        }
        let item = try await complete(fileID: fileID, uploadID: uploadID, name: name, size: source.size) { hash }
        try await verify(item, size: source.size, hash: hash)
        return UploadResult(item: item, rapid: true, bytesSent: 0)
    }

    /// Sends the full hash and proof; on `InvalidRapidProof` recomputes once with the
    /// current token (it may have rotated), then falls back to a plain upload.
    private func createWithProof(_ body: inout [String: any Sendable], file: LocalFile, hash sha1: String) async throws -> [String: Any] {
        body["content_hash"] = sha1
        body["content_hash_name"] = "sha1"
        body["proof_version"] = "v1"
        for _ in 0..<2 {
            body["proof_code"] = try file.proofCode(accessToken: try await tokens.access().token)
            do {
                return try await call("/adrive/v2/file/createWithFolders", body)
            } catch let error as DriveError where error.code == "InvalidRapidProof" {
                logger.info("rapid upload proof of \(body["name"] ?? "") refused (InvalidRapidProof)")
            }
        }
        body["content_hash"] = nil
        body["proof_code"] = nil
        body["content_hash_name"] = "none"
        return try await call("/adrive/v2/file/createWithFolders", body)
    }

    /// PUTs one part, renewing its URL before it expires and on 403, retrying throttling
    /// and broken connections; `PartAlreadyExist` (an earlier attempt landed) is success.
    private func putPart(
        _ part: Int, of upload: (fileID: String, uploadID: String, parts: Int), path: String, offset: Int64, length: Int64,
        urls: inout [Int: String], options: UploadOptions
    ) async throws -> Int64 {
        var attempt = 0
        // A URL can expire between its renewal and its use on a slow or loaded machine: a
        // few renewals per part, not one.
        var renewals = 0
        while true {
            attempt += 1
            if urls[part].map(expiresSoon) ?? true {
                urls = try await renewPartURLs(upload, from: part, internalURLs: options.internalURLs, existing: urls)
            }
            guard let url = urls[part] else { throw DriveError(.protocolViolation, "no upload URL for part \(part)") }
            // No Content-Type: the URL is signed with an empty one (aliyun-api.md §8.5).
            let request = HTTPRequest(
                method: "PUT", url: url, headers: ["Content-Type": ""], body: .file(path: path, offset: offset, length: length),
                timeouts: .init(connect: .seconds(10), stallTime: configuration.stallTimeout))
            let response: HTTPResponse
            do {
                response = try await http.execute(request, maxBodyBytes: 64 << 10)
            } catch let error as HTTPTransportError where error.isTransient && attempt < configuration.maxAttempts {
                logger.debug("part \(part) upload failed (\(error.code)); retrying")
                try await backoff(attempt: attempt, retryAfter: nil)
                continue
            } catch let error as HTTPTransportError {
                if error.isCancelled { throw DriveError(.cancelled, "upload cancelled") }
                if error.isTransient { throw DriveError(.unreachable, "upload server unreachable: \(error)") }
                throw DriveError(.invalidState, "part \(part) could not be sent: \(error)")
            }
            let code = Self.ossCode(response)
            switch response.status {
            case 200..<300:
                return length
            case 409 where code == "PartAlreadyExist":
                return 0
            case 403 where renewals < 3:
                renewals += 1
                logger.debug("part URL refused (\(code)); renewing")
                urls = try await renewPartURLs(upload, from: part, internalURLs: options.internalURLs, existing: urls)
            case 429 where attempt < configuration.maxAttempts, 500...599 where attempt < configuration.maxAttempts:
                try await backoff(attempt: attempt, retryAfter: Self.retryAfter(response))
            default:
                throw DriveError(.service, "part \(part) upload answered HTTP \(response.status) \(code)", status: response.status, code: code)
            }
        }
    }

    /// Fresh URLs for `part` and the parts after it (up to 100 per call).
    private func renewPartURLs(
        _ upload: (fileID: String, uploadID: String, parts: Int), from part: Int, internalURLs: Bool, existing: [Int: String]
    ) async throws -> [Int: String] {
        let wanted = (part...min(upload.parts, part + 99)).map { ["part_number": $0] as [String: any Sendable] }
        let object = try await call(
            "/v2/file/get_upload_url",
            ["drive_id": driveID, "file_id": upload.fileID, "upload_id": upload.uploadID, "part_info_list": wanted])
        var urls = existing
        for (number, url) in Self.partURLs(object["part_info_list"], internalURLs: internalURLs) { urls[number] = url }
        return urls
    }

    /// `complete`, and — when the service refuses it or its answer is lost — the file read
    /// back: the call's effect is what counts. Servers differ after a rapid upload (some have
    /// closed the session and answer 404 `NotFound.UploadId`; the file exists from the create
    /// call on), and a `complete` whose answer was lost may be refused when sent again. The
    /// upload succeeded if the drive lists the file with the expected size and SHA-1.
    private func complete(
        fileID: String, uploadID: String, name: String, size: Int64, hash: @Sendable () async throws -> String
    ) async throws -> DriveItem {
        let refusal: DriveError
        do {
            let object = try await call("/v2/file/complete", ["drive_id": driveID, "file_id": fileID, "upload_id": uploadID])
            guard let item = DriveItem(json: object) else { throw DriveError(.protocolViolation, "complete returned no file object") }
            return item
        } catch let error as DriveError where error.kind == .service && (400..<500).contains(error.status) || error.kind == .unreachable {
            refusal = error
        }
        guard let item = try? await item(fileID: fileID), !item.isFolder, item.size == size,
            let stored = item.contentHash, stored.uppercased() == (try await hash()).uppercased()
        else { throw refusal }
        logger.info("complete of \(name) answered \(refusal.description); the drive holds the file with its size and SHA-1, so it is done")
        return item
    }

    /// Checks the server's size and SHA-1 against the local ones; a mismatching new file
    /// goes to the recycle bin (it must not pass for the user's content).
    private func verify(_ item: DriveItem, size: Int64, hash: String?) async throws {
        var problem: String?
        if item.size != size {
            problem = "the server stored \(item.size) bytes of \(item.name), expected \(size)"
        } else if let hash, let stored = item.contentHash, stored != hash.uppercased() {
            problem = "the server's SHA-1 of \(item.name) differs from the local one"
        }
        guard let problem else { return }
        try? await trash(fileID: item.fileID)
        throw DriveError(.protocolViolation, problem, code: "UploadMismatch")
    }

    static func partURLs(_ list: Any?, internalURLs: Bool) -> [Int: String] {
        var urls: [Int: String] = [:]
        for part in list as? [[String: Any]] ?? [] {
            guard let number = (part["part_number"] as? NSNumber)?.intValue else { continue }
            let url = internalURLs ? (part["internal_upload_url"] as? String ?? "") : (part["upload_url"] as? String ?? "")
            if !url.isEmpty { urls[number] = url }
        }
        return urls
    }

    /// True when a presigned URL expires within two minutes (its `x-oss-expires`).
    func expiresSoon(_ url: String) -> Bool {
        guard let expires = URLComponents(string: url)?.queryItems?.first(where: { $0.name == "x-oss-expires" })?.value.flatMap(Double.init)
        else { return false }
        return expires - configuration.now() < 120
    }
}

/// A local file read for hashing (pread; never changes the file).
final class LocalFile: Sendable {
    let descriptor: Int32
    let size: Int64

    init(path: String) throws {
        descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw DriveError(.invalidState, "cannot open \(path): \(String(cString: strerror(errno)))") }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            Glibc.close(descriptor)
            throw DriveError(.invalidState, "cannot stat \(path)")
        }
        size = Int64(info.st_size)
    }

    func close() { Glibc.close(descriptor) }

    /// Uppercase SHA-1 of the first `prefix` bytes (nil: all of them); `stop` ends it early
    /// (for a caller off the cooperative pool, where task cancellation does not reach).
    func sha1(prefix: Int?, stop: Blocking.Stop? = nil) throws -> String {
        var hasher = Insecure.SHA1()
        let limit = prefix.map { min(Int64($0), size) } ?? size
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset: Int64 = 0
        while offset < limit {
            try Task.checkCancellation()
            if stop?.isSet == true { throw CancellationError() }
            let wanted = Int(min(Int64(buffer.count), limit - offset))
            let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, wanted, off_t(offset)) }
            guard count > 0 else { throw DriveError(.invalidState, "short read while hashing") }
            buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            offset += Int64(count)
        }
        return hasher.finalize().hexUppercased
    }

    /// The proof code (aliyun-api.md §8.4) for this content and token.
    func proofCode(accessToken: String) throws -> String {
        guard let offset = RapidUpload.proofOffset(accessToken: accessToken, size: size) else { return "" }
        let count = Int(min(8, size - offset))
        var window = [UInt8](repeating: 0, count: count)
        let read = window.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, count, off_t(offset)) }
        guard read == count else { throw DriveError(.invalidState, "short read for the proof code") }
        return RapidUpload.proofCode(window: window)
    }
}
