import Crypto
import Foundation

/// Folder and file creation, rapid upload and multipart sessions (aliyun-api.md §7.1, §8).
extension EmulatorState {
    func create(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        let caller = try authenticate(request)
        guard let driveID = body.string("drive_id"), caller.drives.contains(driveID) else {
            throw APIError(403, "ForbiddenNoPermission.Drive", "No Permission to access resource Drive")
        }
        var parentID = body.string("parent_file_id") ?? "root"
        try checkFolder(parentID, driveID: driveID)
        guard var name = body.string("name"), !name.isEmpty else { throw APIError.invalid("name", "name is required") }
        // createWithFolders: "a/b/c" creates the missing intermediate folders.
        let components = name.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard let last = components.last else { throw APIError.invalid("name", "name is empty") }
        for folder in components.dropLast() {
            try Self.validate(name: folder)
            if let existing = child(named: folder, driveID: driveID, parentID: parentID), existing.kind == .folder {
                parentID = existing.id
            } else {
                parentID = makeNode(.folder, name: folder, driveID: driveID, parentID: parentID).id
            }
        }
        name = last
        try Self.validate(name: name)
        let mode = body.string("check_name_mode") ?? "ignore"
        let type = body.string("type") ?? "file"
        if type == "folder" {
            return try createFolder(name: name, driveID: driveID, parentID: parentID, mode: mode)
        }
        guard type == "file" else { throw APIError.invalid("type", "type must be file or folder") }
        return try createFile(request, caller, body, name: name, driveID: driveID, parentID: parentID, mode: mode)
    }

    @discardableResult
    func makeNode(_ kind: Node.Kind, name: String, driveID: String, parentID: String, size: Int64 = 0, key: ContentKey? = nil, available: Bool = true) -> Node {
        let node = Node(
            id: newFileID(), driveID: driveID, parentID: parentID, name: name, kind: kind, size: size, contentKey: key,
            createdAt: now, updatedAt: now, available: available)
        insert(node)
        return node
    }

    /// `check_name_mode: refuse` met an entry of that name: the existing entry with
    /// `exist: true`, and no upload session.
    private func refusedCreate(_ base: JSONObject, existing: Node) -> EmulatorResponse {
        var result = base
        result["file_id"] = existing.id
        result["file_name"] = existing.name
        result["type"] = existing.kind.rawValue
        result["exist"] = true
        return .json(201, result)
    }

    private func createFolder(name: String, driveID: String, parentID: String, mode: String) throws -> EmulatorResponse {
        var result: JSONObject = ["parent_file_id": parentID, "type": "folder", "domain_id": "bj29", "drive_id": driveID, "encrypt_mode": "none"]
        if mode == "refuse", let existing = child(named: name, driveID: driveID, parentID: parentID) {
            return refusedCreate(result, existing: existing)
        }
        let finalName = try resolveName(name, driveID: driveID, parentID: parentID, mode: mode == "refuse" ? "ignore" : mode)
        let node = makeNode(.folder, name: finalName, driveID: driveID, parentID: parentID)
        result["file_id"] = node.id
        result["file_name"] = node.name
        return .json(201, result)
    }

    private func createFile(
        _ request: APIRequest, _ caller: Caller, _ body: JSONObject, name: String, driveID: String, parentID: String,
        mode: String
    ) throws -> EmulatorResponse {
        guard let size = body.int("size"), size >= 0 else { throw APIError.invalid("size", "size is required for files") }
        let account = caller.account
        if size > account.fileSizeLimit {
            throw APIError(400, "FileSizeExceedLimit", "file size is exceed the limit of \(account.fileSizeLimit) bytes")
        }
        if usedSize(userID: account.userID) + size > account.totalSize {
            throw APIError(400, "QuotaExhausted.Drive", "The drive quota is exhausted.")
        }
        let parts = body.objects("part_info_list") ?? []
        guard parts.count <= 10_000 else { throw APIError(400, "InvalidParameter.PartInfoList", "part count can not over 10000") }
        var result: JSONObject = [
            "parent_file_id": parentID, "type": "file", "domain_id": "bj29", "drive_id": driveID, "encrypt_mode": "none",
            "location": "cn-beijing",
        ]
        if mode == "refuse", let existing = child(named: name, driveID: driveID, parentID: parentID) {
            return refusedCreate(result, existing: existing)
        }
        // Pre-hash probe: answer 409 when some stored content has that size and prefix hash.
        if let preHash = body.string("pre_hash"), !preHash.isEmpty, blob(preHash: preHash, size: size) != nil {
            return .json(409, [
                "code": "PreHashMatched", "message": "Pre hash matched.", "pre_hash": preHash, "file_name": name,
                "parent_file_id": "",
            ])
        }
        let finalName = try resolveName(name, driveID: driveID, parentID: parentID, mode: mode)
        var declaredHash: String?
        if body.string("content_hash_name")?.lowercased() == "sha1", let hash = body.string("content_hash"), !hash.isEmpty {
            let key = ContentKey(sha1: hash.uppercased(), size: size)
            if persistent.blobs[key.fileName] != nil {
                guard try verifyProof(body.string("proof_code") ?? "", key: key, accessToken: caller.accessToken) else {
                    throw APIError(400, "InvalidRapidProof", "The proof code is not valid.")
                }
                let node = makeNode(.file, name: finalName, driveID: driveID, parentID: parentID, size: size, key: key)
                let uploadID = Formats.randomHex(32, uppercase: true)
                persistent.nodes[node.id]?.uploadID = uploadID
                if lifetimes.rapidUploadSessionsKept { persistent.uploads[uploadID] = UploadSession(
                    uploadID: uploadID, ossUploadID: Formats.randomHex(32, uppercase: true), fileID: node.id, driveID: driveID,
                    userID: account.userID, partCount: 0, declaredSize: size, completed: true, createdAt: now) }
                stats.rapidUploads += 1
                result["file_id"] = node.id
                result["file_name"] = node.name
                result["upload_id"] = uploadID
                result["rapid_upload"] = true
                return .json(201, result)
            }
            declaredHash = key.sha1
        }
        let partCount = max(1, parts.count)
        let node = makeNode(.file, name: finalName, driveID: driveID, parentID: parentID, size: size, available: false)
        var session = UploadSession(
            uploadID: Formats.randomHex(32, uppercase: true), ossUploadID: Formats.randomHex(32, uppercase: true),
            fileID: node.id, driveID: driveID, userID: account.userID, partCount: partCount, declaredSize: size,
            createdAt: now)
        session.declaredHash = declaredHash
        persistent.uploads[session.uploadID] = session
        persistent.nodes[node.id]?.uploadID = session.uploadID
        _ = FileManager.default.createFile(atPath: uploadPath(session.uploadID), contents: nil)
        result["file_id"] = node.id
        result["file_name"] = node.name
        result["upload_id"] = session.uploadID
        result["rapid_upload"] = false
        result["part_info_list"] = partURLs(session, parts: Array(1...partCount))
        return .json(201, result)
    }

    /// The emulator's own check of a proof code (aliyun-api.md §8.4): read up to 8 bytes of
    /// the stored content at md5(token)[0..16] as UInt64 mod size; compare base64.
    func verifyProof(_ proof: String, key: ContentKey, accessToken: String) throws -> Bool {
        if key.size == 0 { return proof.isEmpty }
        let md5Hex = Formats.hex(Insecure.MD5.hash(data: Array(accessToken.utf8)), uppercase: false)
        guard let value = UInt64(md5Hex.prefix(16), radix: 16) else { return false }
        let offset = Int64(value % UInt64(key.size))
        let count = Int(min(8, key.size - offset))
        guard let handle = FileHandle(forReadingAtPath: blobPath(key)) else { return false }
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(offset))
        let window = try handle.read(upToCount: count) ?? Data()
        return window.base64EncodedString() == proof
    }

    func session(_ body: JSONObject, _ caller: Caller) throws -> UploadSession {
        guard let uploadID = body.string("upload_id"), let session = persistent.uploads[uploadID] else {
            throw APIError(404, "NotFound.UploadId", "The resource upload_id cannot be found.")
        }
        guard session.userID == caller.account.userID, session.fileID == body.string("file_id") else {
            throw APIError(403, "ForbiddenNoPermission.File", "No Permission to access resource File")
        }
        return session
    }

    func getUploadURL(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        let caller = try authenticate(request)
        let session = try session(body, caller)
        guard let parts = body.objects("part_info_list"), !parts.isEmpty else {
            throw APIError(400, "InvalidParameter.PartInfoList", "part_info_list is required")
        }
        guard !session.completed else { throw APIError(403, "ForbiddenNoPermission.File", "No Permission to access resource File") }
        let numbers = parts.compactMap { $0.int("part_number").map(Int.init) }
        guard numbers.allSatisfy({ (1...max(1, session.partCount)).contains($0) }) else {
            throw APIError(400, "InvalidParameter.PartNumber", "part_number is out of range")
        }
        return .json(200, [
            "domain_id": "bj29", "drive_id": session.driveID, "file_id": session.fileID, "upload_id": session.uploadID,
            "create_at": Formats.iso8601(milliseconds: session.createdAt), "part_info_list": partURLs(session, parts: numbers),
        ])
    }

    func listUploadedParts(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        let caller = try authenticate(request)
        let session = try session(body, caller)
        let parts: [JSONObject] = session.partSizes.enumerated().map {
            ["part_number": $0.offset + 1, "part_size": $0.element, "etag": "\"\(Formats.randomHex(32, uppercase: true))\""]
        }
        return .json(200, [
            "drive_id": session.driveID, "upload_id": session.uploadID, "parallelUpload": false,
            "uploaded_parts": parts, "next_part_number_marker": "",
        ])
    }

    func complete(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        let caller = try authenticate(request)
        var session = try session(body, caller)
        if session.completed, let node = persistent.nodes[session.fileID] { return .json(200, fileObject(node)) }
        guard !session.receiving else { throw APIError(400, "InvalidParameter.UploadId", "a part upload is still in progress") }
        let uploaded = session.partSizes.count
        if lifetimes.strictCompleteParts && uploaded < session.partCount {
            throw APIError(400, "InvalidPart", "One or more of the specified parts could not be found: \(uploaded)/\(session.partCount)")
        }
        if session.partSizes.dropLast().contains(where: { $0 < 100 * 1024 }) {
            throw APIError(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size (100 KB per part)")
        }
        guard persistent.nodes[session.fileID] != nil else { throw APIError.notFound() }
        let path = uploadPath(session.uploadID)
        let (sha1, preHash) = try hashFile(path: path, partial: hashers[session.uploadID], length: session.committedLength)
        let key = try registerBlob(movingFrom: path, sha1: sha1, size: session.committedLength, preHash: preHash)
        hashers[session.uploadID] = nil
        session.completed = true
        persistent.uploads[session.uploadID] = session
        guard var node = persistent.nodes[session.fileID] else { throw APIError.notFound() }
        node.contentKey = key
        node.size = key.size
        node.available = true
        node.updatedAt = now
        persistent.nodes[node.id] = node
        persistent.blobs[key.fileName]?.references += 1
        dirty = true
        return .json(200, fileObject(node))
    }

    /// SHA-1 and pre-hash of a finished upload file; uses the running hash when it covers it.
    private func hashFile(path: String, partial: Insecure.SHA1?, length: Int64) throws -> (String, String) {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw APIError(500, "InternalError", "upload data missing") }
        defer { try? handle.close() }
        let prefix = try handle.read(upToCount: 1024) ?? Data()
        let preHash = Formats.hex(Insecure.SHA1.hash(data: prefix), uppercase: true)
        if let partial { return (Formats.hex(partial.finalize(), uppercase: true), preHash) }
        try handle.seek(toOffset: 0)
        var hasher = Insecure.SHA1()
        while let chunk = try handle.read(upToCount: 4 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return (Formats.hex(hasher.finalize(), uppercase: true), preHash)
    }
}
