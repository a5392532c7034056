import Crypto
import Foundation

/// Public share links (aliyun-api.md §10).
extension EmulatorState {
    func createShare(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        let caller = try authenticate(request)
        guard let driveID = body.string("drive_id"), caller.drives.contains(driveID) else { throw APIError.invalid("drive_id") }
        let ids = (body["file_id_list"] as? [String]) ?? []
        guard !ids.isEmpty else { throw APIError.invalid("file_id_list", "file_id_list is required") }
        let nodes = try ids.map { try liveNode($0, driveID: driveID) }
        var expiresAt: Int64?
        if let expiration = body.string("expiration"), !expiration.isEmpty {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            guard let date = formatter.date(from: expiration) ?? ISO8601DateFormatter().date(from: expiration) else {
                throw APIError.invalid("expiration")
            }
            expiresAt = Int64(date.timeIntervalSince1970 * 1000)
        }
        let share = Share(
            shareID: Formats.randomBase62(11), userID: caller.account.userID, driveID: driveID, fileIDs: ids,
            password: body.string("share_pwd") ?? "", expiresAt: expiresAt, name: nodes[0].name, createdAt: now)
        persistent.shares[share.shareID] = share
        dirty = true
        return .json(200, shareObject(share))
    }

    func shareObject(_ share: Share) -> JSONObject {
        [
            "share_id": share.shareID, "share_pwd": share.password, "share_url": "https://www.aliyundrive.com/s/\(share.shareID)",
            "share_name": share.name, "file_id_list": share.fileIDs, "drive_id": share.driveID,
            "expiration": share.expiresAt.map { Formats.iso8601(milliseconds: $0) } ?? "", "status": share.cancelled ? "cancelled" : "enabled",
            "created_at": Formats.iso8601(milliseconds: share.createdAt), "creator": share.userID,
        ]
    }

    func cancelShare(_ caller: Caller, _ body: JSONObject) throws -> (Int, JSONObject?) {
        guard let shareID = body.string("share_id"), var share = persistent.shares[shareID], share.userID == caller.account.userID else {
            throw APIError(404, "NotFound.ShareLink", "The resource share_link cannot be found.")
        }
        share.cancelled = true
        persistent.shares[shareID] = share
        dirty = true
        return (200, ["share_id": shareID])
    }

    /// A share that exists and is usable, or the service's error for it.
    func usableShare(_ shareID: String) throws -> Share {
        guard let share = persistent.shares[shareID] else {
            throw APIError(404, "NotFound.ShareLink", "The resource share_link cannot be found.")
        }
        if share.cancelled { throw APIError(400, "ShareLink.Cancelled", "share_link is cancelled by the creator") }
        if share.forbidden { throw APIError(400, "ShareLink.Forbidden", "share_link is forbidden") }
        if let expiresAt = share.expiresAt, expiresAt < now { throw APIError(400, "ShareLink.Expired", "share_link is expired") }
        return share
    }

    func shareByAnonymous(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        guard let shareID = body.string("share_id") ?? request.query["share_id"] else { throw APIError.invalid("share_id") }
        let share = try usableShare(shareID)
        let account = persistent.accounts[share.userID]
        let infos: [JSONObject] = share.fileIDs.compactMap { try? liveNode($0, driveID: share.driveID) }.map {
            ["type": $0.kind.rawValue, "file_id": $0.id, "file_name": $0.name]
        }
        return .json(200, [
            "share_name": share.name, "display_name": share.name, "share_title": share.name, "file_count": infos.count,
            "file_infos": infos, "creator_id": share.userID, "creator_name": account?.nickName ?? "", "creator_phone": "135***736",
            "expiration": share.expiresAt.map { Formats.iso8601(milliseconds: $0) } ?? "",
            "updated_at": Formats.iso8601(milliseconds: share.createdAt), "has_pwd": !share.password.isEmpty, "vip": "non-vip",
            "avatar": "",
        ])
    }

    func shareToken(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        guard let shareID = body.string("share_id") else { throw APIError.invalid("share_id") }
        let share = try usableShare(shareID)
        // A password sent for a share without one is ignored (strict_share_pwd refuses it).
        let given = body.string("share_pwd") ?? ""
        guard given == share.password || (share.password.isEmpty && !lifetimes.strictSharePassword) else {
            throw APIError(400, "InvalidResource.SharePwd", "The resource share_pwd is not valid.")
        }
        let expiresAt = now + lifetimes.shareTokenSeconds * 1000
        let claims: JSONObject = [
            "customType": "share_link", "exp": expiresAt / 1000, "iat": nowSeconds,
            "customJson": "{\"domain_id\":\"bj29\",\"share_id\":\"\(shareID)\",\"creator\":\"\(share.userID)\",\"user_id\":\"anonymous\"}",
        ]
        let token = [
            Formats.base64URL(Array(#"{"alg":"RS256","typ":"JWT"}"#.utf8)), Formats.base64URL(JSON.encode(claims)),
            Formats.base64URL(Array(SHA256.hash(data: Array((Formats.randomHex(16) + shareID).utf8)))),
        ].joined(separator: ".")
        persistent.shareTokens[token] = ShareToken(shareID: shareID, expiresAt: expiresAt)
        dirty = true
        return .json(200, [
            "share_token": token, "expire_time": Formats.iso8601(milliseconds: expiresAt), "expires_in": lifetimes.shareTokenSeconds,
        ])
    }

    /// Checks `x-share-token` for `shareID`.
    func authenticateShare(_ request: APIRequest, shareID: String) throws -> Share {
        guard let token = request.headers["x-share-token"], let record = persistent.shareTokens[token], record.expiresAt > now else {
            throw APIError(401, "ShareLinkTokenInvalid", "ShareLinkToken is invalid. expired")
        }
        guard record.shareID == shareID else {
            throw APIError(400, "InvalidParameterNotMatch.ShareId", "The input parameter share_id does not match the share token.")
        }
        return try usableShare(shareID)
    }

    /// A node inside a share (one of its roots or below one).
    func sharedNode(_ id: String, in share: Share) throws -> Node {
        let node = try liveNode(id, driveID: share.driveID)
        guard share.fileIDs.contains(where: { isAncestor($0, of: id) }) else { throw APIError.notFound() }
        return node
    }

    func shareDownloadURL(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        _ = try authenticate(request, device: false)
        guard let shareID = body.string("share_id") else { throw APIError.invalid("share_id") }
        let share = try authenticateShare(request, shareID: shareID)
        switch lifetimes.shareDownloadURL {
        case .paramFlow: throw APIError(429, "ParamFlowException", "127.0.0.1")
        case .gone: throw APIError(410, "Gone", "")
        case .disabled: throw APIError(400, "FeatureTemporaryDisabled", "The feature is temporarily disabled.")
        case .ok: break
        }
        let seconds = body.int("expire_sec") ?? 600
        guard seconds <= 600 else {
            throw APIError(400, "InvalidParameter.ExpireSec", "The input parameter expire_sec is not valid. should be less or equal than 600")
        }
        guard let fileID = body.string("file_id") else { throw APIError.invalid("file_id") }
        let node = try sharedNode(fileID, in: share)
        guard node.kind == .file else {
            throw APIError(400, "InvalidResource.FileTypeFolder", "The resource is a folder. file type is folder")
        }
        if node.punished == true { throw APIError(403, "ForbiddenNoPermission.File", "The file is blocked.") }
        let expiresAt = nowSeconds + max(1, seconds)
        let redirectID = Formats.randomHex(40)
        redirects[redirectID] = (node.id, expiresAt)
        let url = downloadURL(for: node, expiresAt: expiresAt, web: false) ?? ""
        return .json(200, [
            "download_url": "\(baseURL)/v2/redirect?id=\(redirectID)", "url": url, "thumbnail": "",
            "expiration": Formats.iso8601(milliseconds: expiresAt * 1000),
        ])
    }

    /// The pdsapi redirector: 302 to a fresh OSS URL.
    func shareRedirect(_ request: APIRequest) -> EmulatorResponse {
        guard let id = request.query["id"], let entry = redirects[id], entry.expiresAt >= nowSeconds,
            let node = persistent.nodes[entry.fileID], let url = downloadURL(for: node, expiresAt: entry.expiresAt, web: false)
        else {
            return .ossError(404, code: "NoSuchKey", message: "The specified key does not exist.")
        }
        return EmulatorResponse(status: 302, headers: [("Location", url)])
    }
}
