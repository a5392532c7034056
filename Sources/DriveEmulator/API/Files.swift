import Foundation

/// Where a listing or lookup reads from: the caller's own drive, or a public share.
enum Scope {
    case drive(Caller, driveID: String)
    case share(Share)
}

/// Listing and metadata (aliyun-api.md §5) and download URLs (§6).
extension EmulatorState {
    /// Resolves `drive_id` (own drive) or `share_id` + `x-share-token` (share).
    func scope(_ request: APIRequest, _ body: JSONObject) throws -> Scope {
        if let shareID = body.string("share_id"), !shareID.isEmpty {
            return .share(try authenticateShare(request, shareID: shareID))
        }
        let caller = try authenticate(request)
        guard let driveID = body.string("drive_id"), !driveID.isEmpty else {
            throw APIError.invalid("drive_id", "drive_id is required")
        }
        guard caller.drives.contains(driveID) else {
            throw APIError(403, "ForbiddenNoPermission.Drive", "No Permission to access resource Drive")
        }
        return .drive(caller, driveID: driveID)
    }

    func list(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        let limit = body.int("limit") ?? 50
        guard limit <= 200 else {
            throw APIError.invalid("limit", "limit should be less than 200")
        }
        guard limit >= 1 else { throw APIError.invalid("limit", "limit should be greater than 0") }
        let parentID = body.string("parent_file_id") ?? "root"
        let scope = try scope(request, body)
        let type = body.string("type") ?? ""
        let orderBy = body.string("order_by") ?? "name"
        let descending = (body.string("order_direction") ?? "ASC").uppercased() == "DESC"
        var shareID: String?
        let ids: [String]
        switch scope {
        case .drive(_, let driveID):
            if parentID != "root" {
                let parent = try liveNode(parentID, driveID: driveID)
                guard parent.kind == .folder else { throw APIError.notFound() }
            }
            ids = sortedChildren(driveID: driveID, parentID: parentID, type: type, orderBy: orderBy, descending: descending)
        case .share(let share):
            shareID = share.shareID
            if parentID == "root" {
                let items = share.fileIDs.compactMap { try? liveNode($0, driveID: share.driveID) }
                ids = Self.sorted(items, type: type, orderBy: orderBy, descending: descending)
            } else {
                let parent = try sharedNode(parentID, in: share)
                guard parent.kind == .folder else { throw APIError.notFound() }
                ids = sortedChildren(driveID: share.driveID, parentID: parentID, type: type, orderBy: orderBy, descending: descending)
            }
        }
        var start = 0
        if let marker = body.string("marker"), !marker.isEmpty {
            guard let position = decodeMarker(marker, parentID: parentID) else {
                throw APIError.invalid("marker", "marker is invalid")
            }
            // Continue after the last item handed out if it is still there.
            if position.offset > 0, position.offset <= ids.count, ids[position.offset - 1] == position.lastID {
                start = position.offset
            } else {
                start = ids.firstIndex(of: position.lastID).map { $0 + 1 } ?? min(position.offset, ids.count)
            }
        }
        let end = min(ids.count, start + Int(limit))
        let page = start < end ? ids[start..<end].compactMap { persistent.nodes[$0] } : []
        let nextMarker = end < ids.count ? encodeMarker(parentID: parentID, orderBy: orderBy, offset: end, lastID: page.last?.id ?? "") : ""
        return .json(200, [
            "items": page.map { fileObject($0, shareID: shareID) }, "next_marker": nextMarker, "punished_file_count": 0,
        ])
    }

    /// The visible children of a folder in listing order; sorted once per state generation,
    /// not once per page (a 10,000-entry folder is listed in 50 pages).
    private func sortedChildren(driveID: String, parentID: String, type: String, orderBy: String, descending: Bool) -> [String] {
        let key = [driveID, parentID, type, orderBy, descending ? "DESC" : "ASC"].joined(separator: "/")
        if let cached = sortedListings[key], cached.generation == generation { return cached.ids }
        let ids = Self.sorted(visibleChildren(driveID: driveID, parentID: parentID), type: type, orderBy: orderBy, descending: descending)
        if sortedListings.count >= 64 { sortedListings.removeAll() }
        sortedListings[key] = (generation, ids)
        return ids
    }

    /// Ids of `items` of `type` (all if empty) in the order asked for; ties broken by id.
    private static func sorted(_ items: [Node], type: String, orderBy: String, descending: Bool) -> [String] {
        var items = items
        if !type.isEmpty { items = items.filter { $0.kind.rawValue == type } }
        items.sort { a, b in
            let ordered: Bool? =
                switch orderBy {
                case "created_at": a.createdAt == b.createdAt ? nil : a.createdAt < b.createdAt
                case "updated_at": a.updatedAt == b.updatedAt ? nil : a.updatedAt < b.updatedAt
                case "size": a.size == b.size ? nil : a.size < b.size
                default: a.name == b.name ? nil : a.name < b.name
                }
            if let ordered { return descending ? !ordered : ordered }
            return a.id < b.id
        }
        return items.map(\.id)
    }

    /// Opaque marker: base64 of a JSON array (parent, order, position, last id, time).
    func encodeMarker(parentID: String, orderBy: String, offset: Int, lastID: String) -> String {
        Data(JSON.encode([parentID, orderBy, offset, lastID, now])).base64EncodedString()
    }

    func decodeMarker(_ marker: String, parentID: String) -> (offset: Int, lastID: String)? {
        guard let data = Data(base64Encoded: marker),
            let array = (try? JSONSerialization.jsonObject(with: data)) as? [Any], array.count == 5,
            let parent = array[0] as? String, parent == parentID,
            let offset = (array[2] as? NSNumber)?.intValue, let lastID = array[3] as? String
        else { return nil }
        return (offset, lastID)
    }

    func get(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        guard let fileID = body.string("file_id"), !fileID.isEmpty else { throw APIError.invalid("file_id", "file_id is required") }
        switch try scope(request, body) {
        case .drive(_, let driveID):
            guard let node = persistent.nodes[fileID], node.driveID == driveID, node.available else { throw APIError.notFound() }
            var object = fileObject(node)
            if node.kind == .folder { object["ex_fields_info"] = ["image_count": 0] }
            return .json(200, object)
        case .share(let share):
            return .json(200, fileObject(try sharedNode(fileID, in: share), shareID: share.shareID))
        }
    }

    func getByPath(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        guard case .drive(_, let driveID) = try scope(request, body) else { throw APIError.notFound() }
        guard let path = body.string("file_path"), path.hasPrefix("/") else {
            throw APIError.invalid("file_path", "file_path must be absolute")
        }
        var parentID = "root"
        var found: Node?
        for component in path.split(separator: "/") where !component.isEmpty {
            guard let next = visibleChildren(driveID: driveID, parentID: parentID).first(where: { $0.name == component }) else {
                throw APIError.notFound()
            }
            found = next
            parentID = next.id
        }
        guard let found else { throw APIError.notFound() }
        return .json(200, fileObject(found))
    }

    func getPath(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        guard case .drive(_, let driveID) = try scope(request, body) else { throw APIError.notFound() }
        guard let fileID = body.string("file_id") else { throw APIError.invalid("file_id") }
        var items: [JSONObject] = []
        var current = try liveNode(fileID, driveID: driveID)
        items.append(fileObject(current))
        while current.parentID != "root", let parent = persistent.nodes[current.parentID], items.count < 10_000 {
            items.append(fileObject(parent))
            current = parent
        }
        return .json(200, ["items": items])
    }

    func getDownloadURL(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        let caller = try authenticate(request)
        return .json(200, try downloadURLOperation(caller, body))
    }

    /// `get_download_url`, direct or as a batch sub-request (aligo's `batch_download_url`).
    func downloadURLOperation(_ caller: Caller, _ body: JSONObject) throws -> JSONObject {
        guard let driveID = body.string("drive_id"), caller.drives.contains(driveID) else {
            throw APIError(403, "ForbiddenNoPermission.File", "No Permission to access resource File")
        }
        guard let fileID = body.string("file_id"), let node = persistent.nodes[fileID], node.driveID == driveID, node.available else {
            throw APIError.notFound()
        }
        if isTrashed(node) {
            throw APIError(400, "ForbiddenFileInTheRecycleBin", "This operation is forbidden for file in the recycle bin")
        }
        guard node.kind == .file else {
            throw APIError(400, "InvalidResource.FileTypeFolder", "The resource is a folder. file type is folder")
        }
        stats.downloadURLs += 1
        return downloadURLObject(node, requested: body.int("expire_sec"), web: caller.web)
    }

    func downloadURLObject(_ node: Node, requested: Int64?, web: Bool) -> JSONObject {
        var seconds = min(max(requested ?? lifetimes.downloadURLDefaultSeconds, 1), lifetimes.downloadURLMaxSeconds)
        if let cap = lifetimes.downloadURLCapSeconds { seconds = min(seconds, cap) }
        let expiresAt = nowSeconds + seconds
        let url = downloadURL(for: node, expiresAt: expiresAt, web: web) ?? ""
        return [
            "method": "GET", "url": url, "internal_url": url, "cdn_url": "",
            "expiration": Formats.iso8601(milliseconds: expiresAt * 1000), "size": node.size,
            "ratelimit": ["part_speed": -1, "part_size": -1], "crc64_hash": "",
            "content_hash": node.contentKey?.sha1 ?? "", "content_hash_name": "sha1",
        ]
    }
}
