/// Maps API paths to handlers. Every host of the real service (api., auth., user.,
/// passport.) is answered on one base URL; paths are unique across them.
extension EmulatorState {
    typealias Handler = @Sendable (EmulatorState, APIRequest, JSONObject) throws -> EmulatorResponse

    static let routes: [String: Handler] = {
        var table: [String: Handler] = [:]
        // Auth and device sessions (API/Auth.swift)
        for path in ["/v2/account/token", "/token/refresh"] { table[path] = { try $0.refreshToken($1, $2) } }
        table["/users/v1/users/device/create_session"] = { try $0.createSession($1, $2) }
        table["/users/v1/users/device/renew_session"] = { try $0.renewSession($1, $2) }
        table["/users/v1/users/device_logout"] = { try $0.deviceLogout($1, $2) }
        table["/users/v2/users/device_list"] = { try $0.deviceList($1, $2) }
        // Account (API/Account.swift)
        for path in ["/v2/user/get", "/adrive/v2/user/get"] { table[path] = { try $0.userInfo($1, $2) } }
        table["/v2/databox/get_personal_info"] = { try $0.personalInfo($1, $2) }
        table["/adrive/v1/user/getUserCapacityInfo"] = { try $0.capacityInfo($1, $2) }
        table["/v2/drive/get"] = { try $0.driveInfo($1, $2) }
        table["/v2/drive/list_my_drives"] = { try $0.listDrives($1, $2) }
        table["/v2/drive/get_default_drive"] = { try $0.defaultDrive($1, $2) }
        // Listing and metadata (API/Files.swift)
        for path in ["/adrive/v3/file/list", "/v2/file/list", "/adrive/v2/file/list_by_share"] {
            table[path] = { try $0.list($1, $2) }
        }
        for path in ["/v2/file/get", "/adrive/v2/file/get_by_share"] { table[path] = { try $0.get($1, $2) } }
        table["/v2/file/get_by_path"] = { try $0.getByPath($1, $2) }
        table["/adrive/v1/file/get_path"] = { try $0.getPath($1, $2) }
        table["/v2/file/get_download_url"] = { try $0.getDownloadURL($1, $2) }
        // Mutations (API/Mutations.swift)
        for path in ["/v3/file/update", "/adrive/v3/file/update"] { table[path] = { try $0.update($1, $2) } }
        for path in ["/v2/file/move", "/v3/file/move"] { table[path] = { try $0.moveDirect($1, $2) } }
        table["/v2/file/copy"] = { try $0.copyDirect($1, $2) }
        table["/v2/recyclebin/trash"] = { try $0.trashDirect($1, $2) }
        table["/v2/recyclebin/restore"] = { try $0.restoreDirect($1, $2) }
        for path in ["/v2/recyclebin/list", "/adrive/v2/recyclebin/list"] { table[path] = { try $0.recycleBinList($1, $2) } }
        table["/v3/file/delete"] = { try $0.deleteDirect($1, $2) }
        table["/v2/async_task/get"] = { try $0.asyncTaskDirect($1, $2) }
        for path in ["/adrive/v4/batch", "/v3/batch", "/adrive/v2/batch", "/v2/batch"] { table[path] = { try $0.batch($1, $2) } }
        // Upload (API/Upload.swift)
        for path in [
            "/adrive/v2/file/createWithFolders", "/v2/file/create", "/adrive/v2/file/create", "/v2/file/create_with_proof",
        ] {
            table[path] = { try $0.create($1, $2) }
        }
        table["/v2/file/get_upload_url"] = { try $0.getUploadURL($1, $2) }
        table["/v2/file/list_uploaded_parts"] = { try $0.listUploadedParts($1, $2) }
        table["/v2/file/complete"] = { try $0.complete($1, $2) }
        // Shares (API/Shares.swift)
        for path in ["/adrive/v2/share_link/create", "/v2/share_link/create"] { table[path] = { try $0.createShare($1, $2) } }
        table["/v2/share_link/cancel"] = { try $0.cancelShareDirect($1, $2) }
        for path in ["/adrive/v3/share_link/get_share_by_anonymous", "/adrive/v2/share_link/get_share_by_anonymous"] {
            table[path] = { try $0.shareByAnonymous($1, $2) }
        }
        table["/v2/share_link/get_share_token"] = { try $0.shareToken($1, $2) }
        table["/v2/file/get_share_link_download_url"] = { try $0.shareDownloadURL($1, $2) }
        // QR login (API/Login.swift)
        table["/newlogin/qrcode/generate.do"] = { try $0.qrGenerate($1, $2) }
        table["/newlogin/qrcode/query.do"] = { try $0.qrQuery($1, $2) }
        return table
    }()

    /// Handles one API request (not data plane, not test hooks).
    func route(_ request: APIRequest) -> EmulatorResponse {
        if request.path == "/v2/redirect" { return shareRedirect(request) }
        guard let handler = Self.routes[request.path] else {
            return APIError(404, "NotFound", "no such API: \(request.path)").response
        }
        let form = request.path.hasPrefix("/newlogin/")
        guard let body = form ? Self.formBody(request.body) : JSON.decodeObject(request.body) else {
            return APIError(400, "InvalidParameter", "request body is not a JSON object").response
        }
        do {
            return try handler(self, request, body)
        } catch let error as APIError {
            return error.response
        } catch {
            return APIError(500, "InternalError", "\(error)").response
        }
    }

    static func formBody(_ bytes: [UInt8]) -> JSONObject? {
        var object: JSONObject = [:]
        for pair in String(decoding: bytes, as: UTF8.self).split(separator: "&") {
            // Standard form decoding: + is a space, then %XX.
            let parts = pair.split(separator: "=", maxSplits: 1).map { part in
                let spaced = part.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            if parts.count == 2 { object[parts[0]] = parts[1] } else if parts.count == 1 { object[parts[0]] = "" }
        }
        return object
    }
}
