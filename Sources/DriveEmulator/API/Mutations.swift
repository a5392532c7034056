/// Folders, rename, move, copy, trash, delete, async tasks and batch (aliyun-api.md §7).
///
/// Each operation is written once as `(caller, body) → (status, body)` and served both as
/// a direct endpoint and as a batch sub-request.
extension EmulatorState {
    typealias Operation = @Sendable (EmulatorState, APIRequest, Caller, JSONObject) throws -> (Int, JSONObject?)

    static let batchOperations: [String: Operation] = [
        "/file/move": { try $0.move($2, $3) },
        "/file/copy": { try $0.copy($1, $2, $3) },
        "/file/delete": { try $0.delete($2, $3) },
        "/file/get": { try $0.getOperation($2, $3) },
        "/file/update": { try $0.updateOperation($2, $3) },
        "/recyclebin/trash": { try $0.trash($2, $3) },
        "/recyclebin/restore": { try $0.restore($2, $3) },
        "/share_link/cancel": { try $0.cancelShare($2, $3) },
        "/async_task/get": { try $0.asyncTask($2, $3) },
        "/file/get_download_url": { (200, try $0.downloadURLOperation($2, $3)) },
    ]

    private func direct(_ request: APIRequest, _ body: JSONObject, _ operation: Operation) throws -> EmulatorResponse {
        let caller = try authenticate(request)
        let (status, object) = try operation(self, request, caller, body)
        return object.map { .json(status, $0) } ?? .empty(status)
    }

    func update(_ r: APIRequest, _ b: JSONObject) throws -> EmulatorResponse { try direct(r, b) { try $0.updateOperation($2, $3) } }
    func moveDirect(_ r: APIRequest, _ b: JSONObject) throws -> EmulatorResponse { try direct(r, b) { try $0.move($2, $3) } }
    func copyDirect(_ r: APIRequest, _ b: JSONObject) throws -> EmulatorResponse { try direct(r, b) { try $0.copy($1, $2, $3) } }
    func trashDirect(_ r: APIRequest, _ b: JSONObject) throws -> EmulatorResponse { try direct(r, b) { try $0.trash($2, $3) } }
    func restoreDirect(_ r: APIRequest, _ b: JSONObject) throws -> EmulatorResponse { try direct(r, b) { try $0.restore($2, $3) } }
    func deleteDirect(_ r: APIRequest, _ b: JSONObject) throws -> EmulatorResponse { try direct(r, b) { try $0.delete($2, $3) } }
    func asyncTaskDirect(_ r: APIRequest, _ b: JSONObject) throws -> EmulatorResponse { try direct(r, b) { try $0.asyncTask($2, $3) } }
    func cancelShareDirect(_ r: APIRequest, _ b: JSONObject) throws -> EmulatorResponse { try direct(r, b) { try $0.cancelShare($2, $3) } }

    func batch(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        let caller = try authenticate(request, device: request.headers["x-share-token"] == nil)
        guard let requests = body.objects("requests"), !requests.isEmpty else {
            throw APIError.invalid("requests", "requests is required")
        }
        guard requests.count <= 100 else { throw APIError.invalid("requests", "requests count can not over 100") }
        var responses: [JSONObject] = []
        for sub in requests {
            let id = sub.string("id") ?? ""
            let url = sub.string("url") ?? ""
            let subBody = sub["body"] as? JSONObject ?? [:]
            guard let operation = Self.batchOperations[url] else {
                responses.append(["id": id, "status": 404, "body": ["code": "NotFound", "message": "no such API: \(url)"]])
                continue
            }
            do {
                let (status, object) = try operation(self, request, caller, subBody)
                var entry: JSONObject = ["id": id, "status": status]
                if let object { entry["body"] = object }
                responses.append(entry)
            } catch let error as APIError {
                responses.append(["id": id, "status": error.status, "body": ["code": error.code, "message": error.message]])
            }
        }
        return .json(200, ["responses": responses])
    }

    // MARK: - Operations

    func ownedNode(_ caller: Caller, _ body: JSONObject) throws -> Node {
        guard let driveID = body.string("drive_id"), caller.drives.contains(driveID) else {
            throw APIError(403, "ForbiddenNoPermission.File", "No Permission to access resource File")
        }
        guard let fileID = body.string("file_id"), !fileID.isEmpty else { throw APIError.invalid("file_id", "file_id is required") }
        return try liveNode(fileID, driveID: driveID)
    }

    static func validate(name: String) throws {
        guard !name.isEmpty, name != ".", name != "..", name.utf8.count <= 1024, !name.contains("/") else {
            throw APIError.invalid("name", "name is empty, too long or contains a slash")
        }
    }

    func child(named name: String, driveID: String, parentID: String, excluding: String? = nil) -> Node? {
        visibleChildren(driveID: driveID, parentID: parentID).first { $0.name == name && $0.id != excluding }
    }

    /// Applies a `check_name_mode` to a name about to appear in a folder. Returns the name
    /// to use, or throws AlreadyExist.File; `overwrite` trashes the existing entry.
    func resolveName(_ name: String, driveID: String, parentID: String, mode: String, excluding: String? = nil) throws -> String {
        guard let existing = child(named: name, driveID: driveID, parentID: parentID, excluding: excluding) else { return name }
        switch mode {
        case "refuse":
            throw APIError(
                409, "AlreadyExist.File",
                "The resource file has already exists. drive has the same file, can't update, file_id \(existing.id)")
        case "auto_rename":
            return autoRenamed(name, driveID: driveID, parentID: parentID)
        case "overwrite":
            markTrashed(existing.id)
            return name
        default:
            return name
        }
    }

    func autoRenamed(_ name: String, driveID: String, parentID: String) -> String {
        let dot = name.lastIndex(of: ".").flatMap { $0 == name.startIndex ? nil : $0 }
        let base = dot.map { String(name[..<$0]) } ?? name
        let ext = dot.map { String(name[$0...]) } ?? ""
        var candidate = "\(base)_\(Formats.compactTime(milliseconds: now))\(ext)"
        var counter = 1
        while child(named: candidate, driveID: driveID, parentID: parentID) != nil {
            candidate = "\(base)_\(Formats.compactTime(milliseconds: now))(\(counter))\(ext)"
            counter += 1
        }
        return candidate
    }

    func updateOperation(_ caller: Caller, _ body: JSONObject) throws -> (Int, JSONObject?) {
        var node = try ownedNode(caller, body)
        if let name = body.string("name"), name != node.name {
            try Self.validate(name: name)
            node.name = try resolveName(
                name, driveID: node.driveID, parentID: node.parentID, mode: body.string("check_name_mode") ?? "refuse",
                excluding: node.id)
        }
        if let starred = body.bool("starred") { node.starred = starred }
        if let description = body.string("description") { node.description = description }
        node.updatedAt = now
        persistent.nodes[node.id] = node
        dirty = true
        return (200, fileObject(node))
    }

    func move(_ caller: Caller, _ body: JSONObject) throws -> (Int, JSONObject?) {
        var node = try ownedNode(caller, body)
        let toDrive = body.string("to_drive_id") ?? node.driveID
        guard toDrive == node.driveID else {
            throw APIError.invalid("to_drive_id", "use /adrive/v2/file/crossDriveMove to move between drives")
        }
        guard let target = body.string("to_parent_file_id"), !target.isEmpty else {
            throw APIError.invalid("to_parent_file_id", "to_parent_file_id is required")
        }
        try checkFolder(target, driveID: node.driveID)
        if node.kind == .folder && isAncestor(node.id, of: target) {
            throw APIError(400, "InvalidParameter.ToParentFileId", "The input parameter to_parent_file_id is not valid. ")
        }
        let name = body.string("new_name").flatMap { $0.isEmpty ? nil : $0 } ?? node.name
        try Self.validate(name: name)
        var mode = body.string("check_name_mode") ?? "ignore"
        if body.bool("auto_rename") == true { mode = "auto_rename" }
        if body.bool("overwrite") == true { mode = "overwrite" }
        let finalName = try resolveName(name, driveID: node.driveID, parentID: target, mode: mode, excluding: node.id)
        detach(node.id)
        node.parentID = target
        node.name = finalName
        node.updatedAt = now
        persistent.nodes[node.id] = node
        attach(node.id)
        dirty = true
        return (200, ["domain_id": "bj29", "drive_id": node.driveID, "file_id": node.id, "async_task_id": ""])
    }

    func copy(_ request: APIRequest, _ caller: Caller, _ body: JSONObject) throws -> (Int, JSONObject?) {
        let source: Node
        if let shareID = body.string("share_id"), !shareID.isEmpty {
            let share = try authenticateShare(request, shareID: shareID)
            guard let fileID = body.string("file_id") else { throw APIError.invalid("file_id") }
            source = try sharedNode(fileID, in: share)
            if source.punished == true { throw APIError(403, "ForbiddenNoPermission.File", "The file is blocked and cannot be saved.") }
            stats.shareCopies += 1
        } else {
            source = try ownedNode(caller, body)
        }
        let toDrive = body.string("to_drive_id") ?? caller.account.backupDriveID
        guard caller.drives.contains(toDrive) else {
            throw APIError(403, "ForbiddenNoPermission.Drive", "No Permission to access resource Drive")
        }
        guard let target = body.string("to_parent_file_id"), !target.isEmpty else {
            throw APIError.invalid("to_parent_file_id", "to_parent_file_id is required")
        }
        try checkFolder(target, driveID: toDrive)
        if source.kind == .folder && source.driveID == toDrive && isAncestor(source.id, of: target) {
            throw APIError(400, "InvalidParameter.ToParentFileId", "The input parameter to_parent_file_id is not valid. ")
        }
        let name = body.string("new_name").flatMap { $0.isEmpty ? nil : $0 } ?? source.name
        try Self.validate(name: name)
        let mode = body.bool("auto_rename") == true ? "auto_rename" : (body.string("check_name_mode") ?? "ignore")
        let finalName = try resolveName(name, driveID: toDrive, parentID: target, mode: mode)
        if let owner = account(ownerOf: toDrive), usedSize(userID: owner.userID) + treeSize(source) > owner.totalSize {
            throw APIError(400, "QuotaExhausted.Drive", "The drive quota is exhausted.")
        }
        var counts = CopyCounts()
        let newID = copyTree(source, to: toDrive, parentID: target, name: finalName, skippingPunished: body.string("share_id") != nil, counts: &counts)
        var result: JSONObject = ["domain_id": "bj29", "drive_id": toDrive, "file_id": newID]
        if source.kind == .folder {
            // Like the service: a folder copy is a task, Running for a poll per 10 items.
            result["async_task_id"] = newTask(total: counts.copied, runningPolls: 1 + counts.copied / 10, punished: counts.punished)
            return (202, result)
        }
        return (201, result)
    }

    struct CopyCounts {
        var copied = 0
        var punished = 0
    }

    func treeSize(_ node: Node) -> Int64 {
        node.kind == .file
            ? node.size : visibleChildren(driveID: node.driveID, parentID: node.id).reduce(0) { $0 + treeSize($1) }
    }

    /// A share's blocked files are left out of a folder's copy (counted), as the service does.
    private func copyTree(_ source: Node, to driveID: String, parentID: String, name: String, skippingPunished: Bool, counts: inout CopyCounts) -> String {
        var copy = source
        copy.id = newFileID()
        copy.driveID = driveID
        copy.parentID = parentID
        copy.name = name
        copy.createdAt = now
        copy.updatedAt = now
        copy.starred = false
        insert(copy)
        counts.copied += 1
        if source.kind == .folder {
            for child in visibleChildren(driveID: source.driveID, parentID: source.id) {
                if skippingPunished && child.punished == true {
                    counts.punished += 1
                    continue
                }
                _ = copyTree(child, to: driveID, parentID: copy.id, name: child.name, skippingPunished: skippingPunished, counts: &counts)
            }
        }
        return copy.id
    }

    func markTrashed(_ id: String) {
        guard var node = persistent.nodes[id] else { return }
        node.trashed = true
        node.trashedAt = now
        persistent.nodes[id] = node
        dirty = true
    }

    func trash(_ caller: Caller, _ body: JSONObject) throws -> (Int, JSONObject?) {
        let node = try ownedNode(caller, body)
        markTrashed(node.id)
        if node.kind == .folder {
            return (202, ["domain_id": "bj29", "drive_id": node.driveID, "file_id": node.id, "async_task_id": newTask()])
        }
        return (204, nil)
    }

    func restore(_ caller: Caller, _ body: JSONObject) throws -> (Int, JSONObject?) {
        guard let driveID = body.string("drive_id"), caller.drives.contains(driveID),
            let fileID = body.string("file_id"), var node = persistent.nodes[fileID], node.driveID == driveID
        else { throw APIError.notFound() }
        node.trashed = false
        node.trashedAt = nil
        persistent.nodes[fileID] = node
        dirty = true
        return (204, nil)
    }

    func delete(_ caller: Caller, _ body: JSONObject) throws -> (Int, JSONObject?) {
        guard let driveID = body.string("drive_id"), caller.drives.contains(driveID),
            let fileID = body.string("file_id"), let node = persistent.nodes[fileID], node.driveID == driveID
        else { throw APIError.notFound() }
        removeTree(fileID)
        stats.deletions += 1
        if node.kind == .folder {
            return (202, ["domain_id": "bj29", "drive_id": driveID, "file_id": fileID, "async_task_id": newTask()])
        }
        return (204, nil)
    }

    func getOperation(_ caller: Caller, _ body: JSONObject) throws -> (Int, JSONObject?) {
        (200, fileObject(try ownedNode(caller, body)))
    }

    func recycleBinList(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        let caller = try authenticate(request)
        guard let driveID = body.string("drive_id"), caller.drives.contains(driveID) else { throw APIError.invalid("drive_id") }
        let items = persistent.nodes.values.filter { $0.driveID == driveID && $0.trashed }.sorted { $0.id < $1.id }
        return .json(200, ["items": items.map { fileObject($0) }, "next_marker": ""])
    }

    func newTask(total: Int = 1, runningPolls: Int = 1, punished: Int = 0) -> String {
        let id = Formats.randomHex(32)
        persistent.tasks[id] = AsyncTask(id: id, total: total, runningPolls: runningPolls, punished: punished)
        dirty = true
        return id
    }

    /// Tasks report `Running` on their first polls (one, or one per 10 items of a folder
    /// copy) with the share of items done growing, and `Succeed` afterwards (the work
    /// itself was done synchronously), so clients exercise their polling loop.
    func asyncTask(_ caller: Caller, _ body: JSONObject) throws -> (Int, JSONObject?) {
        guard let id = body.string("async_task_id"), var task = persistent.tasks[id] else {
            throw APIError(404, "NotFound.AsyncTask", "The resource async_task cannot be found.")
        }
        task.polls += 1
        persistent.tasks[id] = task
        let (total, runningPolls) = (task.total ?? 1, task.runningPolls ?? 1)
        let running = task.polls <= runningPolls
        let done = running ? total * (task.polls - 1) / runningPolls : total
        return (
            200,
            [
                "async_task_id": id, "state": running ? "Running" : "Succeed", "status": running ? "Running" : "Succeed",
                "message": running ? "task is running" : "", "total_process": total, "consumed_process": done,
                "skipped_process": 0, "failed_process": 0, "punished_file_count": task.punished ?? 0,
            ]
        )
    }
}
