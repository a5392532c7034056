import Foundation
import HTTPTransport

/// Folders, rename, move and trash (aliyun-api.md §7).
extension AliyunDriveClient {
    /// Creates a folder; `AlreadyExist.File` (409) when an entry of that name exists.
    public func createFolder(parentID: String, name: String) async throws -> DriveItem {
        let object = try await call(
            "/adrive/v2/file/createWithFolders",
            ["drive_id": driveID, "parent_file_id": parentID, "name": name, "type": "folder", "check_name_mode": "refuse"])
        if object["exist"] as? Bool == true {
            throw DriveError(.service, "an entry named \(name) already exists", status: 409, code: "AlreadyExist.File")
        }
        guard let fileID = object["file_id"] as? String else { throw DriveError(.protocolViolation, "create returned no file_id") }
        let now = configuration.now()
        return DriveItem(
            fileID: fileID, parentID: parentID, name: object["file_name"] as? String ?? name, isFolder: true, size: 0,
            contentHash: nil, createdAt: now, updatedAt: now)
    }

    /// Renames in place; `AlreadyExist.File` (409) when the name is taken.
    public func rename(fileID: String, to name: String) async throws -> DriveItem {
        try await rename(fileID: fileID, to: name, beside: false)
    }

    /// Renames in place; `beside`: an entry of that name may stay (the service allows
    /// duplicates), as an upload's new version stands beside the one it replaces until
    /// that one goes to the trash.
    public func rename(fileID: String, to name: String, beside: Bool) async throws -> DriveItem {
        do {
            let object = try await call(
                "/v3/file/update", ["drive_id": driveID, "file_id": fileID, "name": name, "check_name_mode": beside ? "ignore" : "refuse"])
            guard let item = DriveItem(json: object) else { throw DriveError(.protocolViolation, "malformed file object") }
            return item
        } catch let error as DriveError where error.kind == .unreachable {
            // Every answer was lost: the rename may have happened all the same.
            guard let item = try? await item(fileID: fileID), item.name == name else { throw error }
            return item
        }
    }

    /// Moves into another folder, optionally under a new name; refuses to overwrite.
    public func move(fileID: String, toParentID: String, newName: String?) async throws {
        var body: [String: any Sendable] = [
            "drive_id": driveID, "file_id": fileID, "to_drive_id": driveID, "to_parent_file_id": toParentID, "check_name_mode": "refuse",
        ]
        if let newName { body["new_name"] = newName }
        let object: [String: Any]
        do {
            object = try await call("/v3/file/move", body)
        } catch let error as DriveError where error.kind == .unreachable {
            // Every answer was lost: the move may have happened all the same.
            guard let item = try? await item(fileID: fileID), item.parentID == toParentID, newName.map({ item.name == $0 }) ?? true else {
                throw error
            }
            return
        }
        if object["exist"] as? Bool == true {
            throw DriveError(.service, "the target folder already has an entry of that name", status: 409, code: "AlreadyExist.File")
        }
        try await waitForTask(object["async_task_id"] as? String)
    }

    /// Moves to the recycle bin. Already gone counts as done.
    public func trash(fileID: String) async throws {
        do {
            let object = try await call("/v2/recyclebin/trash", ["drive_id": driveID, "file_id": fileID])
            try await waitForTask(object["async_task_id"] as? String)
        } catch let error as DriveError where error.isNotFound {
            return
        }
    }

    /// Deletes for good (not to the recycle bin, where it would still count against the
    /// quota). Already gone counts as done.
    public func deletePermanently(fileID: String) async throws {
        do {
            let object = try await call("/v3/file/delete", ["drive_id": driveID, "file_id": fileID])
            try await waitForTask(object["async_task_id"] as? String)
        } catch let error as DriveError where error.isNotFound {
            return
        }
    }

    /// The folder `name` in `parentID`: the existing one, or a new one.
    public func ensureFolder(parentID: String, name: String) async throws -> String {
        let object = try await call(
            "/adrive/v2/file/createWithFolders",
            ["drive_id": driveID, "parent_file_id": parentID, "name": name, "type": "folder", "check_name_mode": "refuse"])
        guard let fileID = object["file_id"] as? String, !fileID.isEmpty else { throw DriveError(.protocolViolation, "create returned no file_id") }
        if object["exist"] as? Bool == true, object["type"] as? String == "file" {
            throw DriveError(.service, "\(name) exists and is not a folder", status: 409, code: "AlreadyExist.File")
        }
        return fileID
    }

    /// Polls an asynchronous task (folders) until it leaves `Running`; `progress` hears
    /// each poll's counts.
    func waitForTask(_ taskID: String?, extraHeaders: HTTPHeaders = [:], progress: (@Sendable (TaskProgress) -> Void)? = nil) async throws {
        guard let taskID, !taskID.isEmpty else { return }
        var delay = Duration.milliseconds(100)
        while true {
            let status = try await call("/v2/async_task/get", ["async_task_id": taskID], extraHeaders: extraHeaders)
            let state = status["state"] as? String ?? status["status"] as? String ?? ""
            progress?(TaskProgress(status))
            if state == "Succeed" || state == "Success" { return }
            if state != "Running" && state != "PartialSucceed" {
                throw DriveError(.service, "task \(taskID) ended \(state)", status: 500, code: "AsyncTaskFailed")
            }
            do { try await Task.sleep(for: delay) } catch { throw DriveError(.cancelled, "cancelled waiting for a task") }
            delay = min(delay * 2, .seconds(2))
        }
    }
}
