import Crypto
import Foundation

/// Lifetimes and switches of the emulated service. Faults may change them at run time.
/// The legacy share link's answers: `param_flow` (429 `ParamFlowException` on every call, as
/// since 2024), `gone` (HTTP 410), `disabled` (400 `FeatureTemporaryDisabled`), `ok`.
enum ShareDownloadURLMode: String, Codable {
    case paramFlow = "param_flow", gone, disabled, ok
}

struct Lifetimes: Codable {
    var accessTokenSeconds: Int64 = 7200
    var refreshTokenSeconds: Int64 = 30 * 86_400
    var downloadURLDefaultSeconds: Int64 = 900
    var downloadURLMaxSeconds: Int64 = 14_400
    /// When set, download URLs never live longer than this (a fault: "shorten URL lifetimes").
    var downloadURLCapSeconds: Int64?
    var uploadURLSeconds: Int64 = 3600
    var shareTokenSeconds: Int64 = 7200
    var qrSeconds: Int64 = 180
    /// How `get_share_link_download_url` answers (aliyun-api.md §10.5): as today's service
    /// by default.
    var shareDownloadURL = ShareDownloadURLMode.paramFlow
    var includeURLInListings = false
    var strictCompleteParts = true
    /// Verify `x-signature` as ECDSA over SHA-256("appId:deviceId:userId:0") against the
    /// registered public key, instead of only checking its shape.
    var strictSignatures = false
    /// Whether `complete` still finds the session of a rapid upload. Some servers close it
    /// at once (the file exists from the create call on) and answer `complete` with 404
    /// `NotFound.UploadId`; clients must not take that for a failed upload.
    var rapidUploadSessionsKept = true
    /// Refuse a password sent for a share that has none (aliyun-api.md §15: lenient by default).
    var strictSharePassword = false
}

/// All mutable emulator state. Not thread-safe: `DriveEmulator` keeps it inside a Mutex and
/// every handler runs with that lock held (handlers never block on the network).
final class EmulatorState {
    var persistent: PersistentState { didSet { generation &+= 1 } }
    /// Changes with every change of `persistent` or of the folder index: derived views
    /// (sorted listings) are valid while it stays the same.
    private(set) var generation: UInt64 = 0
    /// Listing order of a folder → (generation, visible child ids in that order).
    var sortedListings: [String: (generation: UInt64, ids: [String])] = [:]
    var lifetimes = Lifetimes()
    let dataDirectory: URL
    var faults = FaultPlan()
    var stats = Stats()
    var requestLog: [JSONObject] = []
    var dirty = false
    var baseURL = ""
    var internalBaseURL: String?
    /// Running SHA-1 of each upload in progress (not persisted: recomputed after a restart).
    var hashers: [String: Insecure.SHA1] = [:]
    /// Share download redirect ids → (file id, expiry seconds); short-lived, not persisted.
    var redirects: [String: (fileID: String, expiresAt: Int64)] = [:]

    /// (driveID + "/" + parentID) → child ids, derived from `persistent.nodes`.
    private(set) var children: [String: [String]] = [:] { didSet { generation &+= 1 } }
    /// (size + "/" + pre-hash) → blob key, derived from `persistent.blobs`.
    private(set) var preHashIndex: [String: String] = [:]

    init(dataDirectory: URL) {
        self.dataDirectory = dataDirectory
        persistent = PersistentState()
    }

    // MARK: - Clock

    /// The emulator's clock in epoch milliseconds: real time plus the test-controlled offset.
    var now: Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000 + persistent.clockOffsetMilliseconds
    }

    var nowSeconds: Int64 { now / 1000 }

    // MARK: - Persistence

    var stateFile: URL { dataDirectory.appendingPathComponent("state.json") }
    var blobDirectory: URL { dataDirectory.appendingPathComponent("blobs") }
    var uploadDirectory: URL { dataDirectory.appendingPathComponent("uploads") }

    func blobPath(_ key: ContentKey) -> String { blobDirectory.appendingPathComponent(key.fileName).path }
    func uploadPath(_ uploadID: String) -> String { uploadDirectory.appendingPathComponent(uploadID).path }

    /// Loads state.json when present. Returns false for a fresh data directory.
    func load() throws -> Bool {
        try FileManager.default.createDirectory(at: blobDirectory, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: uploadDirectory, withIntermediateDirectories: true)
        guard let data = try? Data(contentsOf: stateFile) else { return false }
        persistent = try JSONDecoder().decode(PersistentState.self, from: data)
        if let lifetimeData = try? Data(contentsOf: dataDirectory.appendingPathComponent("lifetimes.json")),
            let saved = try? JSONDecoder().decode(Lifetimes.self, from: lifetimeData)
        {
            lifetimes = saved
        }
        rebuildIndexes()
        return true
    }

    /// What a save writes: taken under the emulator's lock (copy-on-write, so O(1)) and
    /// encoded and written outside it, so requests never wait for a save.
    struct Snapshot: Sendable {
        let persistent: PersistentState
        let lifetimes: Lifetimes
        let dataDirectory: URL

        /// Writes state.json and lifetimes.json atomically.
        func write() throws {
            try JSONEncoder().encode(persistent).write(to: dataDirectory.appendingPathComponent("state.json"), options: .atomic)
            try JSONEncoder().encode(lifetimes).write(to: dataDirectory.appendingPathComponent("lifetimes.json"), options: .atomic)
        }
    }

    /// The state to save now; clears `dirty`.
    func snapshot() -> Snapshot {
        dirty = false
        return Snapshot(persistent: persistent, lifetimes: lifetimes, dataDirectory: dataDirectory)
    }

    /// Writes state.json atomically (startup, before anything else runs).
    func save() throws { try snapshot().write() }

    func rebuildIndexes() {
        children = [:]
        for node in persistent.nodes.values { children[childKey(node.driveID, node.parentID), default: []].append(node.id) }
        preHashIndex = [:]
        for (name, blob) in persistent.blobs { preHashIndex["\(blob.key.size)/\(blob.preHash)"] = name }
    }

    // MARK: - Tree helpers

    func childKey(_ driveID: String, _ parentID: String) -> String { driveID + "/" + parentID }

    func insert(_ node: Node) {
        persistent.nodes[node.id] = node
        children[childKey(node.driveID, node.parentID), default: []].append(node.id)
        if let key = node.contentKey { persistent.blobs[key.fileName]?.references += 1 }
        dirty = true
    }

    func detach(_ id: String) {
        guard let node = persistent.nodes[id] else { return }
        children[childKey(node.driveID, node.parentID)]?.removeAll { $0 == id }
    }

    func attach(_ id: String) {
        guard let node = persistent.nodes[id] else { return }
        children[childKey(node.driveID, node.parentID), default: []].append(id)
    }

    /// Permanently removes a node and its subtree; drops unreferenced blobs.
    func removeTree(_ id: String) {
        guard let node = persistent.nodes[id] else { return }
        for child in children[childKey(node.driveID, id)] ?? [] { removeTree(child) }
        children[childKey(node.driveID, id)] = nil
        detach(id)
        persistent.nodes[id] = nil
        if let key = node.contentKey, var blob = persistent.blobs[key.fileName] {
            blob.references -= 1
            persistent.blobs[key.fileName] = blob
            if blob.references <= 0 && key.size > 0 { dropBlob(blob) }
        }
        dirty = true
    }

    /// Forgets content no file refers to any more and frees its disk space (downloads
    /// already reading it finish from the open file). Empty content is always kept.
    private func dropBlob(_ blob: Blob) {
        persistent.blobs[blob.key.fileName] = nil
        if preHashIndex["\(blob.key.size)/\(blob.preHash)"] == blob.key.fileName { preHashIndex["\(blob.key.size)/\(blob.preHash)"] = nil }
        unlink(blobPath(blob.key))
    }

    /// Visible children: not trashed, upload complete.
    func visibleChildren(driveID: String, parentID: String) -> [Node] {
        (children[childKey(driveID, parentID)] ?? []).compactMap { persistent.nodes[$0] }.filter { !$0.trashed && $0.available }
    }

    /// A node that exists, is in that drive, is not trashed and not inside a trashed folder.
    func liveNode(_ id: String, driveID: String?) throws -> Node {
        guard let node = persistent.nodes[id], driveID == nil || node.driveID == driveID, node.available else {
            throw APIError.notFound()
        }
        if isTrashed(node) { throw APIError.notFound() }
        return node
    }

    func isTrashed(_ node: Node) -> Bool {
        var current: Node? = node
        var hops = 0
        while let item = current, hops < 10_000 {
            if item.trashed { return true }
            current = item.parentID == "root" ? nil : persistent.nodes[item.parentID]
            hops += 1
        }
        return false
    }

    /// True when `ancestor` is `id` or one of its ancestors.
    func isAncestor(_ ancestor: String, of id: String) -> Bool {
        var current: String? = id
        var hops = 0
        while let value = current, hops < 10_000 {
            if value == ancestor { return true }
            current = value == "root" ? nil : persistent.nodes[value]?.parentID
            hops += 1
        }
        return false
    }

    func checkFolder(_ id: String, driveID: String) throws {
        if id == "root" { return }
        let node = try liveNode(id, driveID: driveID)
        guard node.kind == .folder else { throw APIError(400, "InvalidParameter.ParentFileId", "parent_file_id is not a folder") }
    }

    func newFileID() -> String {
        var id = Formats.randomHex(40)
        while persistent.nodes[id] != nil { id = Formats.randomHex(40) }
        return id
    }

    func usedSize(userID: String) -> Int64 {
        guard let account = persistent.accounts[userID] else { return 0 }
        let drives: Set = [account.backupDriveID, account.resourceDriveID, account.sboxDriveID]
        return persistent.nodes.values.reduce(0) { $0 + (drives.contains($1.driveID) && $1.kind == .file ? $1.size : 0) }
    }

    func account(ownerOf driveID: String) -> Account? {
        persistent.accounts.values.first { [$0.backupDriveID, $0.resourceDriveID, $0.sboxDriveID].contains(driveID) }
    }

    // MARK: - Content store

    /// Registers a finished file at `path` (moved into the store) and returns its key.
    func registerBlob(movingFrom path: String, sha1: String, size: Int64, preHash: String) throws -> ContentKey {
        let key = ContentKey(sha1: sha1, size: size)
        let destination = blobPath(key)
        if persistent.blobs[key.fileName] != nil, FileManager.default.fileExists(atPath: destination) {
            try? FileManager.default.removeItem(atPath: path)
        } else {
            if rename(path, destination) != 0 {
                throw APIError(500, "InternalError", "could not store content (errno \(errno))")
            }
            persistent.blobs[key.fileName] = Blob(key: key, preHash: preHash)
            preHashIndex["\(size)/\(preHash)"] = key.fileName
        }
        dirty = true
        return key
    }

    /// Stores bytes held in memory (seeding).
    func storeBytes(_ bytes: [UInt8]) throws -> ContentKey {
        let temporary = uploadDirectory.appendingPathComponent("seed-" + Formats.randomHex(16)).path
        guard FileManager.default.createFile(atPath: temporary, contents: Data(bytes)) else {
            throw APIError(500, "InternalError", "could not write seed content")
        }
        let sha1 = Formats.hex(Insecure.SHA1.hash(data: bytes), uppercase: true)
        let preHash = Formats.hex(Insecure.SHA1.hash(data: bytes.prefix(1024)), uppercase: true)
        return try registerBlob(movingFrom: temporary, sha1: sha1, size: Int64(bytes.count), preHash: preHash)
    }

    func blob(preHash: String, size: Int64) -> Blob? {
        preHashIndex["\(size)/\(preHash.uppercased())"].flatMap { persistent.blobs[$0] }
    }

    /// Empty content is always known (SHA-1 DA39A3EE…).
    func ensureEmptyBlob() throws {
        if persistent.blobs.values.contains(where: { $0.key.size == 0 }) { return }
        _ = try storeBytes([])
    }

    // MARK: - JSON views

    func fileObject(_ node: Node, shareID: String? = nil) -> JSONObject {
        var object: JSONObject = [
            "drive_id": node.driveID, "domain_id": "bj29", "file_id": node.id, "name": node.name,
            "type": node.kind.rawValue, "parent_file_id": node.parentID,
            "created_at": Formats.iso8601(milliseconds: node.createdAt),
            "updated_at": Formats.iso8601(milliseconds: node.updatedAt),
            "hidden": false, "starred": node.starred, "status": node.available ? "available" : "uploading",
            "encrypt_mode": "none", "revision_id": "", "user_meta": "{}", "punish_flag": node.punished == true ? 2 : 0, "trashed": node.trashed,
        ]
        if let shareID { object["share_id"] = shareID }
        if node.kind == .file {
            let ext = Self.fileExtension(node.name)
            object["size"] = node.size
            object["file_extension"] = ext
            object["content_hash_name"] = "sha1"
            object["content_hash"] = node.contentKey?.sha1 ?? ""
            object["category"] = Self.category(ext)
            object["mime_type"] = Self.mimeType(ext)
            object["content_type"] = "application/oct-stream"
            if let uploadID = node.uploadID { object["upload_id"] = uploadID }
            if lifetimes.includeURLInListings, shareID == nil,
                let url = downloadURL(for: node, expiresAt: nowSeconds + lifetimes.downloadURLDefaultSeconds, web: false)
            {
                object["url"] = url
                object["download_url"] = url
            }
        }
        if node.trashed, let trashedAt = node.trashedAt { object["trashed_at"] = Formats.iso8601(milliseconds: trashedAt) }
        return object
    }

    /// What follows the last dot of a name (not a leading one), lowercased: `file_extension`.
    static func fileExtension(_ name: String) -> String {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return "" }
        return name[name.index(after: dot)...].lowercased()
    }

    static func category(_ ext: String) -> String {
        switch ext {
        case "mp4", "mkv", "avi", "mov", "webm", "flv", "ts": "video"
        case "jpg", "jpeg", "png", "gif", "webp", "heic", "bmp": "image"
        case "mp3", "flac", "wav", "aac", "ogg", "m4a": "audio"
        case "txt", "md", "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "csv": "doc"
        case "zip", "rar", "7z", "tar", "gz", "xz": "zip"
        case "apk", "exe", "dmg", "deb": "app"
        default: "others"
        }
    }

    static func mimeType(_ ext: String) -> String {
        switch ext {
        case "txt", "md": "text/plain"
        case "mp4": "video/mp4"
        case "jpg", "jpeg": "image/jpeg"
        case "png": "image/png"
        case "pdf": "application/pdf"
        default: "application/octet-stream"
        }
    }

    // MARK: - Data-plane URLs

    /// Signs a data-plane URL: HMAC-SHA256 over method, path and the sorted query.
    func signature(method: String, path: String, query: [String: String]) -> String {
        let canonical = query.filter { $0.key != "x-oss-signature" }.sorted { $0.key < $1.key }
            .map { "\($0.key)=\($0.value)" }.joined(separator: "&")
        let key = SymmetricKey(data: Array(persistent.urlSecret.utf8))
        let mac = HMAC<SHA256>.authenticationCode(for: Array("\(method)\n\(path)\n\(canonical)".utf8), using: key)
        return Formats.base64URL(Array(mac))
    }

    func signedURL(base: String, method: String, path: String, query: [String: String]) -> String {
        var query = query
        query["x-oss-access-key-id"] = "LTAI5tEmulatorKey"
        query["x-oss-signature"] = signature(method: method, path: path, query: query)
        let encoded = query.sorted { $0.key < $1.key }.map { "\($0.key)=\(Self.percentEncode($0.value))" }
        return base + path + "?" + encoded.joined(separator: "&")
    }

    func downloadURL(for node: Node, expiresAt: Int64, web: Bool) -> String? {
        guard let key = node.contentKey else { return nil }
        var query = ["x-oss-expires": String(expiresAt), "di": node.driveID, "f": node.id, "k": key.fileName]
        if web { query["x-oss-additional-headers"] = "referer" }
        let path = "/oss/d/\(node.driveID)/\(node.id)"
        return signedURL(base: baseURL, method: "GET", path: path, query: query)
    }

    func partURLs(_ session: UploadSession, parts: [Int]) -> [JSONObject] {
        let expires = nowSeconds + lifetimes.uploadURLSeconds
        return parts.map { number in
            let path = "/oss/u/\(session.driveID)/\(session.fileID)"
            let query = ["partNumber": String(number), "uploadId": session.ossUploadID, "x-oss-expires": String(expires)]
            let url = signedURL(base: baseURL, method: "PUT", path: path, query: query)
            let internalURL = signedURL(base: internalBaseURL ?? baseURL, method: "PUT", path: path, query: query)
            var size: Int64 = 0
            if session.partCount > 0 {
                let nominal = (session.declaredSize + Int64(session.partCount) - 1) / Int64(session.partCount)
                size = number < session.partCount ? nominal : max(0, session.declaredSize - nominal * Int64(session.partCount - 1))
            }
            return [
                "part_number": number, "part_size": size, "upload_url": url, "internal_upload_url": internalURL,
                "content_type": "",
            ]
        }
    }

    static func percentEncode(_ value: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }
}

/// Counters exposed at GET /__emulator/stats.
struct Stats {
    var requests: [String: Int] = [:]
    var bytesDownloaded: Int64 = 0
    /// Bytes served per content (uppercase SHA-1), for bytes fetched per file.
    var downloadedByContent: [String: Int64] = [:]
    var bytesUploaded: Int64 = 0
    var bytesUploadedInternal: Int64 = 0
    var connections = 0
    var refreshes = 0
    var rapidUploads = 0
    /// Files and folders copied out of shares (save from share, copy-mode reads).
    var shareCopies = 0
    /// Permanent deletions (`/v3/file/delete`, `/file/delete`).
    var deletions = 0
    /// Download URLs handed out, directly or in batches.
    var downloadURLs = 0

    var json: JSONObject {
        [
            "requests": requests, "bytes_downloaded": bytesDownloaded, "bytes_uploaded": bytesUploaded,
            "bytes_uploaded_internal": bytesUploadedInternal, "connections": connections, "refreshes": refreshes,
            "rapid_uploads": rapidUploads, "total_requests": requests.values.reduce(0, +), "share_copies": shareCopies,
            "deletions": deletions, "download_urls": downloadURLs,
            "bytes_downloaded_by_content": downloadedByContent as JSONObject,
        ]
    }
}
