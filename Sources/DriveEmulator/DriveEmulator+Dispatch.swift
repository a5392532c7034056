import Foundation

/// Request dispatch: test hooks, fault injection, statistics, then the API router.
extension DriveEmulator {
    /// A download ended `bytes` short of what was counted for it (the client went away
    /// before a paced answer was all sent): the statistics count bytes sent.
    func unsent(_ bytes: Int64, of response: EmulatorResponse) {
        guard bytes > 0 else { return }
        state.withLock { state in
            state.stats.bytesDownloaded -= bytes
            if let sha1 = response.contentSHA1 { state.stats.downloadedByContent[sha1, default: 0] -= bytes }
        }
    }

    /// Handles a fully read request that is not a part upload.
    func handle(_ request: APIRequest) -> EmulatorResponse {
        if request.path.hasPrefix("/__emulator/") { return hook(request) }
        return state.withLock { state in
            let dataPlane = request.path.hasPrefix("/oss/")
            let statsKey = dataPlane ? String(request.path.prefix(6)) : request.path
            state.stats.requests[statsKey, default: 0] += 1
            var response: EmulatorResponse
            var misbehaviour: EmulatorResponse.Misbehaviour?
            switch state.faults.action(for: request.path, dataPlane: dataPlane) {
            case .respond(let faulty)?:
                response = faulty
            case .misbehave(let kind)?:
                misbehaviour = kind
                fallthrough
            case nil:
                if dataPlane {
                    if request.path.hasPrefix("/oss/d/") && (request.method == "GET" || request.method == "HEAD") {
                        response = state.download(method: request.method, path: request.path, query: request.query, headers: request.headers)
                    } else {
                        response = .ossError(405, code: "MethodNotAllowed", message: "The specified method is not allowed against this resource.")
                    }
                } else {
                    response = state.route(request)
                }
            }
            if misbehaviour == .dropResponse {
                // The request took effect; its answer never arrives.
                response.misbehaviour = .dropResponse
            } else if case .file(_, _, let length) = response.body {
                response.misbehaviour = misbehaviour
                let sent: Int64
                switch misbehaviour {
                case .dropAfter(let limit)?, .stallAfter(let limit)?: sent = min(limit, length)
                case .dropResponse?, nil: sent = length
                }
                state.stats.bytesDownloaded += sent
                // By content (SHA-1): what was fetched of each file, for "bytes fetched / bytes read".
                if let key = request.query["k"], let blob = state.persistent.blobs[key] {
                    response.contentSHA1 = blob.key.sha1.uppercased()
                    state.stats.downloadedByContent[blob.key.sha1.uppercased(), default: 0] += sent
                }
            }
            state.log(request, status: response.status)
            return response
        }
    }

    /// Starts a part upload (PUT to a part URL), before its body is read.
    func beginPart(_ request: APIRequest) -> (Result<PartWriter, EmulatorResponse>, EmulatorResponse.Misbehaviour?) {
        state.withLock { state in
            state.stats.requests["/oss/u", default: 0] += 1
            var misbehaviour: EmulatorResponse.Misbehaviour?
            switch state.faults.action(for: request.path, dataPlane: true) {
            case .respond(let faulty)?:
                state.log(request, status: faulty.status)
                return (.failure(faulty), nil)
            case .misbehave(let kind)?: misbehaviour = kind
            case nil: break
            }
            let result = state.beginPart(path: request.path, query: request.query, headers: request.headers, viaInternal: request.internalListener)
            if case .failure(let error) = result { state.log(request, status: error.status) }
            return (result, misbehaviour)
        }
    }

    func finishPart(_ writer: PartWriter, success: Bool, request: APIRequest) -> EmulatorResponse {
        state.withLock { state in
            let response = state.finishPart(writer, success: success)
            state.log(request, status: success ? response.status : 499)
            return response
        }
    }

    func connectionOpened() { state.withLock { $0.stats.connections += 1 } }

    // MARK: - Test hooks

    private func hook(_ request: APIRequest) -> EmulatorResponse {
        return state.withLock { state in
            let body = JSON.decodeObject(request.body) ?? [:]
            do {
                switch (request.method, request.path) {
                case ("GET", "/__emulator/health"):
                    return .json(200, ["ok": true])
                case ("GET", "/__emulator/stats"):
                    return .json(200, state.stats.json)
                case ("POST", "/__emulator/stats/reset"):
                    state.stats = Stats()
                    return .json(200, state.stats.json)
                case ("GET", "/__emulator/requests"):
                    return .json(200, ["requests": state.requestLog])
                case ("GET", "/__emulator/account"):
                    guard let account = state.persistent.accounts.values.first else { throw APIError.notFound("account") }
                    return .json(200, [
                        "user_id": account.userID, "refresh_token": state.primaryRefreshToken ?? "",
                        "default_drive_id": account.backupDriveID, "resource_drive_id": account.resourceDriveID,
                        "used_size": state.usedSize(userID: account.userID), "total_size": account.totalSize,
                        "shares": state.persistent.shares.values.map { ["share_id": $0.shareID, "share_pwd": $0.password] },
                    ])
                case ("POST", "/__emulator/populate"):
                    return .json(200, try state.populate(body))
                case ("POST", "/__emulator/tokens"):
                    return .json(200, ["refresh_token": state.newLogin(web: body.bool("web") ?? false)])
                case ("GET", "/__emulator/faults"):
                    return .json(200, ["rules": state.faults.rules.map { ["path": $0.path, "kind": $0.kind.rawValue, "remaining": $0.remaining ?? -1] }])
                case ("DELETE", "/__emulator/faults"):
                    state.faults.rules.removeAll()
                    return .json(200, ["rules": [Any]()])
                case ("POST", "/__emulator/faults"):
                    try state.applyFaults(body)
                    link.model = try Self.link(body, current: link.model)
                    let model = link.model
                    // The link in force, so a client (the bench) can compare with its limits.
                    let described: JSONObject = [
                        "api_latency_ms": Int(model.apiLatency * 1000), "data_latency_ms": Int(model.dataLatency * 1000),
                        "download_rate": Int(model.downloadRate), "upload_rate": Int(model.uploadRate),
                        "total_download_rate": Int(model.totalDownloadRate), "total_upload_rate": Int(model.totalUploadRate),
                    ]
                    return .json(200, ["ok": true, "rules": state.faults.rules.count, "link": described])
                case ("POST", let path) where path.hasPrefix("/__emulator/qr/"):
                    let action = String(path.dropFirst("/__emulator/qr/".count))
                    return .json(200, try state.driveQR(action: action, t: body.int("t")))
                default:
                    throw APIError(404, "NotFound", "no such hook: \(request.method) \(request.path)")
                }
            } catch let error as APIError {
                return error.response
            } catch {
                return APIError(500, "InternalError", "\(error)").response
            }
        }
    }
}

extension DriveEmulator {
    /// The link after the faults hook's `link_profile` (a name) and single settings
    /// (`api_latency_ms`, `data_latency_ms`, `download_rate`, `upload_rate`,
    /// `total_download_rate`, `total_upload_rate`; bytes per second, 0 = no limit).
    static func link(_ body: JSONObject, current: LinkModel) throws(APIError) -> LinkModel {
        var link = current
        if let name = body.string("link_profile") {
            guard let profile = LinkModel.profile(name) else {
                throw APIError.invalid("link_profile", "one of: " + LinkModel.profiles.map(\.name).joined(separator: ", "))
            }
            link = profile
        }
        if let value = body.int("api_latency_ms") { link.apiLatency = Double(value) / 1000 }
        if let value = body.int("data_latency_ms") { link.dataLatency = Double(value) / 1000 }
        if let value = body.int("download_rate") { link.downloadRate = Double(value) }
        if let value = body.int("upload_rate") { link.uploadRate = Double(value) }
        if let value = body.int("total_download_rate") { link.totalDownloadRate = Double(value) }
        if let value = body.int("total_upload_rate") { link.totalUploadRate = Double(value) }
        return link
    }
}

extension EmulatorState {
    /// Starts a new login chain (as a fresh QR login would) and returns its refresh token.
    func newLogin(web: Bool) -> String {
        guard let account = persistent.accounts.values.first else { return "" }
        let token = Formats.randomHex(32)
        persistent.refreshTokens[token] = RefreshToken(
            userID: account.userID, chain: Formats.randomHex(8), web: web, expiresAt: now + lifetimes.refreshTokenSeconds * 1000)
        dirty = true
        return token
    }

    /// `POST /__emulator/populate {"folder": NAME, "count": N}`: a root folder of N small
    /// files (`file-00000.txt` …, content `file N\n`) for listing tests and benchmarks.
    func populate(_ body: JSONObject) throws -> JSONObject {
        guard let account = persistent.accounts.values.first else { throw APIError.notFound("account") }
        let name = body.string("folder") ?? "many"
        let count = Int(body.int("count") ?? 1000)
        guard (1...100_000).contains(count) else { throw APIError.invalid("count", "count must be 1...100000") }
        let folder = makeNode(.folder, name: name, driveID: account.backupDriveID, parentID: "root")
        for index in 0..<count {
            let key = try storeBytes(Array("file \(index)\n".utf8))
            let digits = String(index)
            makeNode(.file, name: "file-" + String(repeating: "0", count: max(0, 5 - digits.count)) + digits + ".txt",
                     driveID: account.backupDriveID, parentID: folder.id, size: key.size, key: key)
        }
        return ["file_id": folder.id, "count": count]
    }

    /// `POST /__emulator/faults`: rules plus one-shot state changes.
    func applyFaults(_ body: JSONObject) throws {
        if body.bool("clear") == true { faults.rules.removeAll() }
        if let seed = body.int("seed") { faults.reseed(UInt64(bitPattern: seed)) }
        for rule in body.objects("rules") ?? [] { try faults.add(rule) }
        if body.bool("revoke_access_tokens") == true {
            for key in persistent.accessTokens.keys { persistent.accessTokens[key]?.revoked = true }
        }
        if body.bool("expire_device_sessions") == true {
            for key in persistent.deviceSessions.keys { persistent.deviceSessions[key]?.expired = true }
        }
        if body.bool("expire_share_tokens") == true {
            for key in persistent.shareTokens.keys { persistent.shareTokens[key]?.expiresAt = 0 }
        }
        if let seconds = body.int("advance_clock") { persistent.clockOffsetMilliseconds += seconds * 1000 }
        if let seconds = body.int("access_token_ttl") { lifetimes.accessTokenSeconds = seconds }
        if let seconds = body.int("refresh_token_ttl") { lifetimes.refreshTokenSeconds = seconds }
        if let seconds = body.int("download_url_ttl") { lifetimes.downloadURLCapSeconds = seconds > 0 ? seconds : nil }
        if let seconds = body.int("upload_url_ttl") { lifetimes.uploadURLSeconds = seconds }
        if let seconds = body.int("share_token_ttl") { lifetimes.shareTokenSeconds = seconds }
        if let seconds = body.int("qr_ttl") { lifetimes.qrSeconds = seconds }
        if let name = body["share_download_url"] as? String {
            guard let mode = ShareDownloadURLMode(rawValue: name) else {
                throw APIError.invalid("share_download_url", "param_flow, gone, disabled or ok")
            }
            lifetimes.shareDownloadURL = mode
        } else if let enabled = body.bool("share_download_url") {
            lifetimes.shareDownloadURL = enabled ? .ok : .disabled
        }
        if let id = body.string("punish_file") {
            guard persistent.nodes[id] != nil else { throw APIError.notFound() }
            persistent.nodes[id]?.punished = true
        }
        if let include = body.bool("include_url") { lifetimes.includeURLInListings = include }
        if let strict = body.bool("strict_complete") { lifetimes.strictCompleteParts = strict }
        if let strict = body.bool("strict_signatures") { lifetimes.strictSignatures = strict }
        if let strict = body.bool("strict_share_pwd") { lifetimes.strictSharePassword = strict }
        if let kept = body.string("rapid_upload_sessions") {
            guard kept == "kept" || kept == "closed" else { throw APIError.invalid("rapid_upload_sessions", "kept or closed") }
            lifetimes.rapidUploadSessionsKept = kept == "kept"
        }
        for key in persistent.accounts.keys {
            if let total = body.int("quota_total") { persistent.accounts[key]?.totalSize = total }
            if let limit = body.int("file_size_limit") { persistent.accounts[key]?.fileSizeLimit = limit }
        }
        for (field, apply) in [("cancel_share", { (s: inout Share) in s.cancelled = true }), ("forbid_share", { (s: inout Share) in s.forbidden = true })] {
            if let id = body.string(field) {
                guard var share = persistent.shares[id] else { throw APIError(404, "NotFound.ShareLink", "no share \(id)") }
                apply(&share)
                persistent.shares[id] = share
            }
        }
        let current = now
        if let id = body.string("expire_share") { persistent.shares[id]?.expiresAt = current - 1000 }
        dirty = true
    }

    /// Keeps the last 2,000 requests (no header values: tokens stay out of the log).
    func log(_ request: APIRequest, status: Int) {
        requestLog.append([
            "method": request.method, "path": request.path, "status": status,
            "authorization": request.headers["authorization"] != nil, "device": request.headers["x-device-id"] != nil,
            "signature": request.headers["x-signature"] != nil, "share_token": request.headers["x-share-token"] != nil,
            "content_type": request.headers["content-type"] ?? NSNull(), "range": request.headers["range"] ?? NSNull(),
            "internal": request.internalListener,
        ])
        if requestLog.count > 2000 { requestLog.removeFirst(requestLog.count - 2000) }
    }
}
