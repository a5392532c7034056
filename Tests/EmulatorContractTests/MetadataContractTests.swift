import EmulatorTestSupport
import Foundation
import HTTPTransport
import Testing

/// aliyun-api.md §14 "Metadata": account, listing, lookups.
@Suite struct MetadataContractTests {
    @Test func accountAndQuotaEndpoints() async throws {
        try await withTestDrive { drive in
            try await drive.upload("one.bin", testBytes(1000))
            let (_, user) = try await drive.post("/v2/user/get", [:])
            #expect(user["user_id"] as? String == drive.userID)
            #expect(user["default_drive_id"] as? String == drive.driveID)
            #expect((user["resource_drive_id"] as? String)?.isEmpty == false)
            #expect(user["created_at"] is Int)  // epoch milliseconds, a number

            let (_, personal) = try await drive.post("/v2/databox/get_personal_info", [:])
            let space = try #require(personal["personal_space_info"] as? JSON)
            #expect(space["used_size"] as? Int == 1000)
            #expect((space["total_size"] as? Int ?? 0) > 1000)
            let privileges = try #require((personal["personal_rights_info"] as? JSON)?["privileges"] as? [JSON])
            #expect(privileges.contains { $0["feature_id"] as? String == "upload" && $0["feature_attr_id"] as? String == "size_limit" })

            let (_, capacity) = try await drive.post("/adrive/v1/user/getUserCapacityInfo", [:])
            #expect((capacity["drive_capacity_details"] as? JSON)?["drive_used_size"] as? Int == 1000)
            let (_, driveInfo) = try await drive.post("/v2/drive/get", ["drive_id": drive.driveID])
            #expect(driveInfo["drive_id"] as? String == drive.driveID)
            #expect(try await drive.post("/v2/drive/get", ["drive_id": "1"]).0 == 404)
        }
    }

    @Test func listingPagesWithOpaqueMarkersAndRejectsLargeLimits() async throws {
        try await withTestDrive { drive in
            let folder = try await drive.mkdir("many")
            for index in 0..<130 { _ = try await drive.mkdir(String(format: "d%03d", index), in: folder) }
            let (tooLarge, error) = try await drive.post("/adrive/v3/file/list", ["drive_id": drive.driveID, "parent_file_id": folder, "limit": 201])
            #expect(tooLarge == 400)
            #expect(error["code"] as? String == "InvalidParameter.Limit")
            #expect((error["message"] as? String)?.contains("limit should be less than 200") == true)

            let (status, firstPage) = try await drive.post("/adrive/v3/file/list", ["drive_id": drive.driveID, "parent_file_id": folder])
            #expect(status == 200)
            #expect((firstPage["items"] as? [JSON])?.count == 50)  // default page size
            let marker = try #require(firstPage["next_marker"] as? String)
            #expect(!marker.isEmpty)
            #expect(Data(base64Encoded: marker) != nil)  // opaque, base64

            let (all, pages) = try await drive.listAll(folder, limit: 60)
            #expect(pages == 3)
            #expect(Set(all.compactMap { $0["file_id"] as? String }).count == 130)
            let names = all.compactMap { $0["name"] as? String }
            #expect(names == names.sorted())
            let (_, single) = try await drive.listAll(folder, limit: 200)
            #expect(single == 1)

            let (descending, _) = try await drive.listAll(folder, extra: ["order_by": "name", "order_direction": "DESC"])
            #expect(descending.compactMap { $0["name"] as? String } == names.reversed())

            let (badMarker, _) = try await drive.post(
                "/adrive/v3/file/list", ["drive_id": drive.driveID, "parent_file_id": "root", "marker": marker])
            #expect(badMarker == 400)  // a marker belongs to its folder
            // The legacy path answers the same way.
            let (legacy, legacyPage) = try await drive.post("/v2/file/list", ["drive_id": drive.driveID, "parent_file_id": folder, "limit": 10])
            #expect(legacy == 200)
            #expect((legacyPage["items"] as? [JSON])?.count == 10)

            // Every change shows in the next listing (the sorted order is cached between pages).
            let first = try #require(names.first)
            let firstID = try #require(all.first?["file_id"] as? String)
            #expect(try await drive.post("/v3/file/update", ["drive_id": drive.driveID, "file_id": firstID, "name": "z-renamed"]).0 == 200)
            _ = try await drive.mkdir("a-new", in: folder)
            let (again, _) = try await drive.listAll(folder, limit: 60)
            let renamed = again.compactMap { $0["name"] as? String }
            #expect(renamed.first == "a-new" && renamed.last == "z-renamed" && !renamed.contains(first) && renamed.count == 131)
            // A page boundary moved by a change still hands every entry out once.
            let (page, firstHalf) = try await drive.post("/adrive/v3/file/list", ["drive_id": drive.driveID, "parent_file_id": folder, "limit": 100])
            #expect(page == 200)
            _ = try await drive.mkdir("0-before-everything", in: folder)
            let (_, rest) = try await drive.post(
                "/adrive/v3/file/list", ["drive_id": drive.driveID, "parent_file_id": folder, "limit": 100, "marker": firstHalf["next_marker"] as? String ?? ""])
            let handedOut = ((firstHalf["items"] as? [JSON]) ?? []) + ((rest["items"] as? [JSON]) ?? [])
            #expect(Set(handedOut.compactMap { $0["name"] as? String }) == Set(renamed))
        }
    }

    @Test func fileObjectsHaveTheServiceShape() async throws {
        try await withTestDrive { drive in
            let folder = try await drive.mkdir("docs")
            try await drive.upload("a.txt", Array("hello".utf8), in: folder)
            let (items, _) = try await drive.listAll("root")
            let folderItem = try #require(items.first { $0["name"] as? String == "docs" })
            #expect(folderItem["type"] as? String == "folder")
            #expect(folderItem["size"] == nil)
            #expect(folderItem["content_hash"] == nil)
            let (files, _) = try await drive.listAll(folder)
            let file = try #require(files.first)
            #expect(file["content_hash"] as? String == "AAF4C61DDCC5E8A2DABEDE0F3B482CD9AEA9434D")  // uppercase SHA-1
            #expect(file["content_hash_name"] as? String == "sha1")
            #expect(file["size"] as? Int == 5)
            #expect((file["file_id"] as? String)?.count == 40)
            #expect(file["parent_file_id"] as? String == folder)
            #expect(file["file_extension"] as? String == "txt")
            let created = try #require(file["created_at"] as? String)
            #expect(created.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#, options: .regularExpression) != nil)
            #expect(file["url"] == nil)  // not included unless switched on
            try await drive.hook("faults", ["include_url": true])
            let (withURL, _) = try await drive.listAll(folder)
            #expect((withURL.first?["url"] as? String)?.contains("/oss/d/") == true)
        }
    }

    @Test func duplicateNamesAreAllowedAndListed() async throws {
        try await withTestDrive { drive in
            try await drive.upload("same.txt", Array("one".utf8))
            try await drive.upload("same.txt", Array("two".utf8))
            let (items, _) = try await drive.listAll("root")
            let same = items.filter { $0["name"] as? String == "same.txt" }
            #expect(same.count == 2)
            #expect(Set(same.compactMap { $0["file_id"] as? String }).count == 2)
        }
    }

    @Test func trashedAndUnfinishedUploadsAreHidden() async throws {
        try await withTestDrive { drive in
            let kept = try await drive.upload("kept.txt", Array("k".utf8))
            let gone = try await drive.upload("gone.txt", Array("g".utf8))
            #expect(try await drive.post("/v2/recyclebin/trash", ["drive_id": drive.driveID, "file_id": gone["file_id"] ?? ""]).0 == 204)
            _ = try await drive.post(
                "/adrive/v2/file/createWithFolders",
                ["drive_id": drive.driveID, "parent_file_id": "root", "name": "pending.bin", "type": "file", "size": 10])
            let names = try await drive.listAll("root").0.compactMap { $0["name"] as? String }
            #expect(names == ["kept.txt"])
            #expect(kept["status"] as? String == "available")
        }
    }

    @Test func lookupsByIdPathAndAncestry() async throws {
        try await withTestDrive { drive in
            let a = try await drive.mkdir("a")
            let b = try await drive.mkdir("b", in: a)
            let file = try await drive.upload("c.txt", Array("c".utf8), in: b)
            let fileID = try #require(file["file_id"] as? String)

            let (status, got) = try await drive.post("/v2/file/get", ["drive_id": drive.driveID, "file_id": fileID])
            #expect(status == 200)
            #expect(got["name"] as? String == "c.txt")
            let (byPath, found) = try await drive.post("/v2/file/get_by_path", ["drive_id": drive.driveID, "file_path": "/a/b/c.txt"])
            #expect(byPath == 200)
            #expect(found["file_id"] as? String == fileID)
            let (_, path) = try await drive.post("/adrive/v1/file/get_path", ["drive_id": drive.driveID, "file_id": fileID])
            #expect((path["items"] as? [JSON])?.compactMap { $0["file_id"] as? String } == [fileID, b, a])

            let missing = String(repeating: "0", count: 40)
            let (notFound, body) = try await drive.post("/v2/file/get", ["drive_id": drive.driveID, "file_id": missing])
            #expect(notFound == 404)
            #expect(body["code"] as? String == "NotFound.File")
            #expect((body["message"] as? String)?.contains("cannot be found") == true)
            #expect(try await drive.post("/v2/file/get_by_path", ["drive_id": drive.driveID, "file_path": "/a/nope"]).0 == 404)
            let (listMissing, listBody) = try await drive.post("/adrive/v3/file/list", ["drive_id": drive.driveID, "parent_file_id": missing])
            #expect(listMissing == 404)
            #expect(listBody["code"] as? String == "NotFound.File")
        }
    }

    @Test func demoSeedHasTheDocumentedContent() async throws {
        try await withTestDrive(seed: .demo) { drive in
            let (root, _) = try await drive.listAll("root")
            let names = Set(root.compactMap { $0["name"] as? String })
            #expect(names.isSuperset(of: ["README.txt", "Documents", "Pictures", "Videos", "Projects", "Music"]))
            let (_, video) = try await drive.post("/v2/file/get_by_path", ["drive_id": drive.driveID, "file_path": "/Videos/sample.mp4"])
            #expect(video["size"] as? Int == 64 << 20)
            let documents = try #require(root.first { $0["name"] as? String == "Documents" }?["file_id"] as? String)
            let docs = try await drive.listAll(documents).0.compactMap { $0["name"] as? String }
            #expect(docs.filter { $0 == "report.txt" }.count == 2)
            #expect(docs.contains("empty.txt"))
            #expect(try await drive.post("/v2/file/get_by_path", ["drive_id": drive.driveID, "file_path": "/Projects/adrivefs/docs/a/b/c/deep.txt"]).0 == 200)
            let account = TestDrive.object(try await drive.get("/__emulator/account").body)
            // A password-protected share and a public one.
            let shares = account["shares"] as? [JSON] ?? []
            #expect(shares.count == 2)
            #expect(Set(shares.compactMap { $0["share_pwd"] as? String }) == ["demo", ""])
        }
    }
}
