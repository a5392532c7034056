import AliyunDrive
import EmulatorTestSupport
import Foundation
import HTTPTransport
import Testing

/// aliyun-api.md §14 "Mutations".
@Suite struct MutationContractTests {
    func create(_ drive: TestDrive, _ name: String, mode: String, parent: String = "root") async throws -> (Int, JSON) {
        try await drive.post(
            "/adrive/v2/file/createWithFolders",
            ["drive_id": drive.driveID, "parent_file_id": parent, "name": name, "type": "folder", "check_name_mode": mode])
    }

    @Test func folderCreationHonoursCheckNameMode() async throws {
        try await withTestDrive { drive in
            let (status, first) = try await create(drive, "photos", mode: "refuse")
            #expect(status == 201)
            #expect(first["file_name"] as? String == "photos")
            #expect(first["exist"] == nil)
            let (_, again) = try await create(drive, "photos", mode: "refuse")
            #expect(again["exist"] as? Bool == true)
            #expect(again["file_id"] as? String == first["file_id"] as? String)
            let (_, renamed) = try await create(drive, "photos", mode: "auto_rename")
            let newName = try #require(renamed["file_name"] as? String)
            #expect(newName != "photos" && newName.hasPrefix("photos_"))
            let (_, duplicate) = try await create(drive, "photos", mode: "ignore")
            #expect(duplicate["file_name"] as? String == "photos")
            #expect(duplicate["file_id"] as? String != first["file_id"] as? String)
            let names = try await drive.listAll().0.compactMap { $0["name"] as? String }
            #expect(names.filter { $0 == "photos" }.count == 2)
        }
    }

    @Test func slashesInNamesCreateIntermediateFolders() async throws {
        try await withTestDrive { drive in
            let (status, leaf) = try await create(drive, "x/y/z", mode: "refuse")
            #expect(status == 201)
            let (found, byPath) = try await drive.post("/v2/file/get_by_path", ["drive_id": drive.driveID, "file_path": "/x/y/z"])
            #expect(found == 200)
            #expect(byPath["file_id"] as? String == leaf["file_id"] as? String)
        }
    }

    @Test func renameAndCollision() async throws {
        try await withTestDrive { drive in
            let a = try #require(try await drive.upload("a.txt", Array("a".utf8))["file_id"] as? String)
            try await drive.upload("b.txt", Array("b".utf8))
            let (status, renamed) = try await drive.post("/adrive/v3/file/update", ["drive_id": drive.driveID, "file_id": a, "name": "c.txt", "check_name_mode": "refuse"])
            #expect(status == 200)
            #expect(renamed["name"] as? String == "c.txt")
            let (collision, body) = try await drive.post("/v3/file/update", ["drive_id": drive.driveID, "file_id": a, "name": "b.txt", "check_name_mode": "refuse"])
            #expect(collision == 409)
            #expect(body["code"] as? String == "AlreadyExist.File")
            let (slash, _) = try await drive.post("/v3/file/update", ["drive_id": drive.driveID, "file_id": a, "name": "x/y"])
            #expect(slash == 400)
        }
    }

    @Test func batchMovesCopiesTrashesAndReportsPerItemStatus() async throws {
        try await withTestDrive { drive in
            let target = try await drive.mkdir("target")
            let one = try #require(try await drive.upload("one.txt", Array("1".utf8))["file_id"] as? String)
            let two = try #require(try await drive.upload("two.txt", Array("2".utf8))["file_id"] as? String)
            let missing = String(repeating: "f", count: 40)
            func sub(_ url: String, _ id: String, _ body: JSON) -> JSON {
                ["id": id, "method": "POST", "url": url, "headers": ["Content-Type": "application/json"], "body": body]
            }
            let (status, result) = try await drive.post("/adrive/v4/batch", ["resource": "file", "requests": [
                sub("/file/move", one, ["drive_id": drive.driveID, "file_id": one, "to_drive_id": drive.driveID, "to_parent_file_id": target]),
                sub("/file/copy", two, ["drive_id": drive.driveID, "file_id": two, "to_parent_file_id": target]),
                sub("/recyclebin/trash", two, ["drive_id": drive.driveID, "file_id": two]),
                sub("/file/move", missing, ["drive_id": drive.driveID, "file_id": missing, "to_parent_file_id": target]),
                sub("/file/get", one, ["drive_id": drive.driveID, "file_id": one]),
            ]])
            #expect(status == 200)
            let responses = try #require(result["responses"] as? [JSON])
            #expect(responses.compactMap { $0["status"] as? Int } == [200, 201, 204, 404, 200])
            #expect(((responses[3]["body"] as? JSON)?["code"] as? String) == "NotFound.File")
            #expect(((responses[4]["body"] as? JSON)?["parent_file_id"] as? String) == target)
            let inTarget = try await drive.listAll(target).0.compactMap { $0["name"] as? String }.sorted()
            #expect(inTarget == ["one.txt", "two.txt"])
            #expect(try await drive.listAll("root").0.count == 1)  // only "target"

            let tooMany = (0..<101).map { sub("/file/get", "\($0)", ["drive_id": drive.driveID, "file_id": one]) }
            #expect(try await drive.post("/v3/batch", ["resource": "file", "requests": tooMany]).0 == 400)
        }
    }

    @Test func directMoveRenamesAndRefusesCycles() async throws {
        try await withTestDrive { drive in
            let outer = try await drive.mkdir("outer")
            let inner = try await drive.mkdir("inner", in: outer)
            let file = try #require(try await drive.upload("f.txt", Array("f".utf8))["file_id"] as? String)
            let (status, moved) = try await drive.post("/v3/file/move", ["drive_id": drive.driveID, "file_id": file, "to_parent_file_id": inner, "new_name": "g.txt"])
            #expect(status == 200)
            #expect(moved["file_id"] as? String == file)
            #expect(try await drive.listAll(inner).0.first?["name"] as? String == "g.txt")
            let (cycle, body) = try await drive.post("/v2/file/move", ["drive_id": drive.driveID, "file_id": outer, "to_parent_file_id": inner])
            #expect(cycle == 400)
            #expect(body["code"] as? String == "InvalidParameter.ToParentFileId")
        }
    }

    @Test func copyOfAFolderIsAsynchronous() async throws {
        try await withTestDrive { drive in
            let folder = try await drive.mkdir("src")
            try await drive.upload("a.txt", Array("a".utf8), in: folder)
            let target = try await drive.mkdir("dst")
            let (status, body) = try await drive.post("/v2/file/copy", ["drive_id": drive.driveID, "file_id": folder, "to_parent_file_id": target])
            #expect(status == 202)
            let task = try #require(body["async_task_id"] as? String)
            let (_, first) = try await drive.post("/v2/async_task/get", ["async_task_id": task])
            #expect(first["state"] as? String == "Running")
            let (_, second) = try await drive.post("/v2/async_task/get", ["async_task_id": task])
            #expect(second["state"] as? String == "Succeed")
            let copied = try #require(body["file_id"] as? String)
            #expect(try await drive.listAll(copied).0.first?["name"] as? String == "a.txt")
            let file = try #require(try await drive.listAll(folder).0.first?["file_id"] as? String)
            let (fileCopy, _) = try await drive.post("/v2/file/copy", ["drive_id": drive.driveID, "file_id": file, "to_parent_file_id": target])
            #expect(fileCopy == 201)
        }
    }

    @Test func trashRestoreAndDelete() async throws {
        try await withTestDrive { drive in
            let file = try #require(try await drive.upload("f.txt", Array("f".utf8))["file_id"] as? String)
            let folder = try await drive.mkdir("d")
            #expect(try await drive.post("/v2/recyclebin/trash", ["drive_id": drive.driveID, "file_id": file]).0 == 204)
            let (folderTrash, body) = try await drive.post("/v2/recyclebin/trash", ["drive_id": drive.driveID, "file_id": folder])
            #expect(folderTrash == 202)
            #expect((body["async_task_id"] as? String)?.isEmpty == false)
            #expect(try await drive.listAll().0.isEmpty)
            let (_, bin) = try await drive.post("/adrive/v2/recyclebin/list", ["drive_id": drive.driveID])
            #expect((bin["items"] as? [JSON])?.count == 2)
            #expect(try await drive.post("/v2/recyclebin/restore", ["drive_id": drive.driveID, "file_id": file]).0 == 204)
            #expect(try await drive.listAll().0.count == 1)
            #expect(try await drive.post("/v3/file/delete", ["drive_id": drive.driveID, "file_id": file]).0 == 204)
            #expect(try await drive.post("/v2/file/get", ["drive_id": drive.driveID, "file_id": file]).0 == 404)
            #expect(try await drive.post("/v3/file/delete", ["drive_id": drive.driveID, "file_id": folder]).0 == 202)
        }
    }

    @Test func deletingTheLastFileWithSomeContentFreesItsStorage() async throws {
        let data = NSTemporaryDirectory() + "emulator-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: data) }
        try await withTestDrive(dataDirectory: data) { drive in
            let content = testBytes(300_000, seed: 41)
            let blob = data + "/blobs/\(RapidUpload.sha1Hex(content))-\(content.count)"
            let first = try #require(try await drive.upload("a.bin", content)["file_id"] as? String)
            let folder = try await drive.mkdir("d")
            let second = try #require(try await drive.upload("b.bin", content, in: folder)["file_id"] as? String)
            #expect(FileManager.default.fileExists(atPath: blob))
            // Still referenced by the other file (and trashed files keep theirs).
            #expect(try await drive.post("/v3/file/delete", ["drive_id": drive.driveID, "file_id": first]).0 == 204)
            #expect(FileManager.default.fileExists(atPath: blob))
            #expect(try await drive.post("/v2/recyclebin/trash", ["drive_id": drive.driveID, "file_id": folder]).0 == 202)
            #expect(FileManager.default.fileExists(atPath: blob))
            // Deleting the folder for good drops the last reference: the bytes go.
            #expect(try await drive.post("/v3/file/delete", ["drive_id": drive.driveID, "file_id": folder]).0 == 202)
            #expect(!FileManager.default.fileExists(atPath: blob))
            #expect(try await drive.post("/v2/file/get", ["drive_id": drive.driveID, "file_id": second]).0 == 404)
            // The content is unknown now: a rapid-upload probe for it does not match.
            let (status, _) = try await drive.post(
                "/adrive/v2/file/createWithFolders",
                [
                    "drive_id": drive.driveID, "parent_file_id": "root", "name": "c.bin", "type": "file", "size": content.count,
                    "check_name_mode": "ignore", "part_info_list": [["part_number": 1]],
                    "pre_hash": RapidUpload.sha1Hex(Array(content.prefix(1024))),
                ])
            #expect(status == 201)
            // And uploading it again stores it again.
            try await drive.upload("d.bin", content)
            #expect(FileManager.default.fileExists(atPath: blob))
        }
    }
}
