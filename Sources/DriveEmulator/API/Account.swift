import Foundation

/// User, drive and quota information (aliyun-api.md §4).
extension EmulatorState {
    func userInfo(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        let account = try authenticate(request).account
        return .json(200, [
            "user_id": account.userID, "user_name": account.userName, "nick_name": account.nickName,
            "default_drive_id": account.backupDriveID, "backup_drive_id": account.backupDriveID,
            "resource_drive_id": account.resourceDriveID, "sbox_drive_id": account.sboxDriveID, "domain_id": "bj29",
            "role": "user", "status": "enabled", "created_at": account.createdAt, "updated_at": account.createdAt,
            "vip_identity": "member", "avatar": "", "email": "", "phone": "",
        ])
    }

    func personalInfo(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        let account = try authenticate(request).account
        return .json(200, [
            "personal_rights_info": [
                "spu_id": "non-vip", "name": "普通用户", "is_expires": false,
                "privileges": [
                    ["feature_id": "upload", "feature_attr_id": "size_limit", "quota": account.fileSizeLimit],
                    ["feature_id": "drive", "feature_attr_id": "size_limit", "quota": account.totalSize],
                ],
            ] as JSONObject,
            "personal_space_info": ["used_size": usedSize(userID: account.userID), "total_size": account.totalSize],
        ])
    }

    func capacityInfo(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        let account = try authenticate(request).account
        let used = usedSize(userID: account.userID)
        return .json(200, [
            "drive_capacity_details": [
                "drive_used_size": used, "drive_total_size": account.totalSize, "default_drive_used_size": used,
                "resource_drive_used_size": 0, "backup_drive_used_size": used, "album_drive_used_size": 0,
                "note_drive_used_size": 0, "sbox_drive_used_size": 0, "share_album_drive_used_size": 0,
            ],
            "user_capacity_limit_details": ["limit_consume": false, "limit_download": false],
        ])
    }

    func driveObject(_ driveID: String, account: Account) -> JSONObject {
        let name = driveID == account.resourceDriveID ? "resource" : driveID == account.sboxDriveID ? "sbox" : "Default"
        return [
            "domain_id": "bj29", "drive_id": driveID, "drive_name": name, "description": "", "creator": "System",
            "owner": account.userID, "owner_type": "user", "drive_type": "normal", "status": "enabled",
            "used_size": usedSize(userID: account.userID), "total_size": account.totalSize, "store_id": Formats.randomHex(32),
            "encrypt_mode": "none", "relative_path": "", "permission": NSNull(), "subdomain_id": "", "category": "",
        ]
    }

    func driveInfo(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        let caller = try authenticate(request)
        let driveID = body.string("drive_id") ?? caller.account.backupDriveID
        guard caller.drives.contains(driveID) else { throw APIError(404, "NotFound.Drive", "The resource drive cannot be found.") }
        return .json(200, driveObject(driveID, account: caller.account))
    }

    func listDrives(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        let caller = try authenticate(request)
        let account = caller.account
        let items = [account.backupDriveID, account.resourceDriveID].map { driveObject($0, account: account) }
        return .json(200, ["items": items, "next_marker": ""])
    }

    func defaultDrive(_ request: APIRequest, _ body: JSONObject) throws -> EmulatorResponse {
        let caller = try authenticate(request)
        return .json(200, driveObject(caller.account.backupDriveID, account: caller.account))
    }
}
