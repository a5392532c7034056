import AliyunDrive
import EmulatorTestSupport
import Foundation
import HTTPTransport
import Testing

/// aliyun-api.md §14 "Upload": sessions, parts, rapid upload.
@Suite struct UploadContractTests {
    func createFile(_ drive: TestDrive, _ name: String, size: Int, parts: Int = 1, extra: JSON = [:]) async throws -> (Int, JSON) {
        var body: JSON = [
            "drive_id": drive.driveID, "parent_file_id": "root", "name": name, "type": "file", "size": size,
            "check_name_mode": "ignore", "part_info_list": (0..<parts).map { ["part_number": $0 + 1] },
        ]
        for (key, value) in extra { body[key] = value }
        return try await drive.post("/adrive/v2/file/createWithFolders", body)
    }

    @Test func multipartUploadEnforcesSequentialParts() async throws {
        try await withTestDrive { drive in
            let content = testBytes(3 * 150_000)
            let (status, session) = try await createFile(drive, "seq.bin", size: content.count, parts: 3)
            #expect(status == 201)
            #expect(session["rapid_upload"] as? Bool == false)
            #expect((session["upload_id"] as? String)?.count == 32)
            let parts = try #require(session["part_info_list"] as? [JSON])
            #expect(parts.count == 3)
            #expect(parts.allSatisfy { $0["content_type"] as? String == "" && ($0["internal_upload_url"] as? String) != nil })
            let urls = parts.compactMap { $0["upload_url"] as? String }
            let chunk = { (i: Int) in Array(content[(i * 150_000)..<((i + 1) * 150_000)]) }

            let outOfOrder = try await drive.putPart(urls[1], chunk(1))
            #expect(outOfOrder.status == 400 && outOfOrder.text.contains("PartNotSequential"))
            #expect(try await drive.putPart(urls[0], chunk(0)).status == 200)
            let again = try await drive.putPart(urls[0], chunk(0))
            #expect(again.status == 409 && again.text.contains("PartAlreadyExist"))
            #expect(try await drive.putPart(urls[1], chunk(1)).status == 200)

            let (_, listed) = try await drive.post("/v2/file/list_uploaded_parts", ["drive_id": drive.driveID, "file_id": session["file_id"] ?? "", "upload_id": session["upload_id"] ?? ""])
            #expect((listed["uploaded_parts"] as? [JSON])?.count == 2)
            let (early, earlyBody) = try await drive.post("/v2/file/complete", ["drive_id": drive.driveID, "file_id": session["file_id"] ?? "", "upload_id": session["upload_id"] ?? ""])
            #expect(early == 400)  // strict: a part is missing
            #expect(earlyBody["code"] as? String == "InvalidPart")

            #expect(try await drive.putPart(urls[2], chunk(2)).status == 200)
            let (done, file) = try await drive.post("/v2/file/complete", ["drive_id": drive.driveID, "file_id": session["file_id"] ?? "", "upload_id": session["upload_id"] ?? ""])
            #expect(done == 200)
            #expect(file["size"] as? Int == content.count)
            #expect(file["content_hash"] as? String == RapidUpload.sha1Hex(content))
            #expect(file["status"] as? String == "available")
            let url = try await drive.downloadURL(try #require(file["file_id"] as? String))
            #expect(try await drive.get(url).body == content)
            let late = try await drive.putPart(urls[2], chunk(2))
            #expect(late.status == 404 && late.text.contains("NoSuchUpload"))
            let stats = try await drive.stats()
            #expect(stats["bytes_uploaded"] as? Int == content.count)
        }
    }

    @Test func partURLsExpireAndCanBeRenewed() async throws {
        try await withTestDrive { drive in
            try await drive.hook("faults", ["upload_url_ttl": 30])
            let (_, session) = try await createFile(drive, "renew.bin", size: 10)
            let url = try #require((session["part_info_list"] as? [JSON])?.first?["upload_url"] as? String)
            try await drive.hook("faults", ["advance_clock": 31])
            let expired = try await drive.putPart(url, testBytes(10))
            #expect(expired.status == 403 && expired.text.contains("Request has expired."))
            let ids: JSON = ["drive_id": drive.driveID, "file_id": session["file_id"] ?? "", "upload_id": session["upload_id"] ?? ""]
            var renewBody = ids
            renewBody["part_info_list"] = [["part_number": 1]]
            let (status, renewed) = try await drive.post("/v2/file/get_upload_url", renewBody)
            #expect(status == 200)
            #expect(renewed["upload_id"] as? String == session["upload_id"] as? String)
            let fresh = try #require((renewed["part_info_list"] as? [JSON])?.first?["upload_url"] as? String)
            #expect(try await drive.putPart(fresh, testBytes(10)).status == 200)
            var empty = ids
            empty["part_info_list"] = [JSON]()
            #expect(try await drive.post("/v2/file/get_upload_url", empty).0 == 400)
            #expect(try await drive.post("/v2/file/complete", ids).0 == 200)
            let (finished, body) = try await drive.post("/v2/file/get_upload_url", renewBody)
            #expect(finished == 403)
            #expect(body["code"] as? String == "ForbiddenNoPermission.File")
            let (gone, goneBody) = try await drive.post("/v2/file/complete", ["drive_id": drive.driveID, "file_id": session["file_id"] ?? "", "upload_id": "00"])
            #expect(gone == 404)
            #expect(goneBody["code"] as? String == "NotFound.UploadId")
        }
    }

    @Test func preHashProbeThenRapidUploadWithProof() async throws {
        try await withTestDrive { drive in
            let content = testBytes(300_000, seed: 9)
            try await drive.upload("original.bin", content)
            try await drive.hook("stats/reset")
            let preHash = RapidUpload.sha1Hex(Array(content.prefix(1024)))

            let (probe, matched) = try await createFile(drive, "copy.bin", size: content.count, extra: ["pre_hash": preHash.lowercased()])
            #expect(probe == 409)
            #expect(matched["code"] as? String == "PreHashMatched")
            #expect(matched["pre_hash"] as? String == preHash.lowercased())

            let proof = RapidUpload.proofCode(accessToken: drive.accessToken, content: content)
            let full: JSON = ["content_hash": RapidUpload.sha1Hex(content), "content_hash_name": "sha1", "proof_code": proof, "proof_version": "v1"]
            let (status, rapid) = try await createFile(drive, "copy.bin", size: content.count, extra: full)
            #expect(status == 201)
            #expect(rapid["rapid_upload"] as? Bool == true)
            #expect(rapid["part_info_list"] == nil)
            let fileID = try #require(rapid["file_id"] as? String)
            // complete after a rapid upload is accepted, as the official SDK calls it.
            #expect(try await drive.post("/v2/file/complete", ["drive_id": drive.driveID, "file_id": fileID, "upload_id": rapid["upload_id"] ?? ""]).0 == 200)
            #expect(try await drive.get(try await drive.downloadURL(fileID)).body == content)
            let stats = try await drive.stats()
            #expect(stats["bytes_uploaded"] as? Int == 0)
            #expect(stats["rapid_uploads"] as? Int == 1)

            // An unmatched pre-hash starts a plain session.
            let (fresh, session) = try await createFile(drive, "new.bin", size: 5000, extra: ["pre_hash": RapidUpload.sha1Hex(testBytes(1024, seed: 77))])
            #expect(fresh == 201)
            #expect(session["upload_id"] != nil)

            // A server that closes a rapid upload's session at once: the file exists, and
            // complete answers 404 NotFound.UploadId.
            try await drive.hook("faults", ["rapid_upload_sessions": "closed"])
            let (closedStatus, closed) = try await createFile(drive, "closed.bin", size: content.count, extra: full)
            #expect(closedStatus == 201 && closed["rapid_upload"] as? Bool == true)
            let closedID = try #require(closed["file_id"] as? String)
            let (refused, error) = try await drive.post("/v2/file/complete", ["drive_id": drive.driveID, "file_id": closedID, "upload_id": closed["upload_id"] ?? ""])
            #expect(refused == 404 && error["code"] as? String == "NotFound.UploadId")
            let (found, item) = try await drive.post("/v2/file/get", ["drive_id": drive.driveID, "file_id": closedID])
            #expect(found == 200 && item["content_hash"] as? String == RapidUpload.sha1Hex(content))
        }
    }

    @Test func proofIsCheckedAgainstTheTokenPresented() async throws {
        try await withTestDrive { drive in
            let content = testBytes(50_000, seed: 3)
            try await drive.upload("known.bin", content)
            let sha1 = RapidUpload.sha1Hex(content)
            // Offset 0 and offset 8 windows always differ for this content.
            var wrongToken = "another-token"
            while RapidUpload.proofCode(accessToken: wrongToken, content: content) == RapidUpload.proofCode(accessToken: drive.accessToken, content: content) {
                wrongToken += "x"
            }
            let badProof = RapidUpload.proofCode(accessToken: wrongToken, content: content)
            let (status, body) = try await createFile(drive, "dup.bin", size: content.count, extra: ["content_hash": sha1, "content_hash_name": "sha1", "proof_code": badProof, "proof_version": "v1"])
            #expect(status == 400)
            #expect(body["code"] as? String == "InvalidRapidProof")
            // Unknown content with a full hash gets an ordinary session.
            let other = testBytes(1000, seed: 4)
            let (unknown, session) = try await createFile(drive, "other.bin", size: other.count, extra: ["content_hash": RapidUpload.sha1Hex(other), "content_hash_name": "sha1", "proof_code": RapidUpload.proofCode(accessToken: drive.accessToken, content: other), "proof_version": "v1"])
            #expect(unknown == 201)
            #expect(session["rapid_upload"] as? Bool == false)
            #expect(session["part_info_list"] != nil)
        }
    }

    @Test func emptyContentIsAlwaysKnown() async throws {
        try await withTestDrive { drive in
            let (status, body) = try await createFile(drive, "empty.txt", size: 0, parts: 0, extra: ["content_hash": "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709", "content_hash_name": "sha1", "proof_code": "", "proof_version": "v1"])
            #expect(status == 201)
            #expect(body["rapid_upload"] as? Bool == true)
            // And the plain path: one empty part, then complete.
            let file = try await drive.upload("empty2.txt", [])
            #expect(file["size"] as? Int == 0)
            #expect(file["content_hash"] as? String == "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709")
        }
    }

    @Test func limitsQuotaAndNameRules() async throws {
        try await withTestDrive { drive in
            let (tooManyParts, partsBody) = try await createFile(drive, "huge.bin", size: 20_000, parts: 10_001)
            #expect(tooManyParts == 400)
            #expect(partsBody["code"] as? String == "InvalidParameter.PartInfoList")
            try await drive.hook("faults", ["file_size_limit": 1000, "quota_total": 3000])
            let (tooBig, bigBody) = try await createFile(drive, "big.bin", size: 2000)
            #expect(tooBig == 400)
            #expect((bigBody["message"] as? String)?.contains("file size is exceed") == true)
            try await drive.upload("fill.bin", testBytes(900))
            try await drive.upload("fill2.bin", testBytes(900, seed: 2))
            try await drive.upload("fill3.bin", testBytes(900, seed: 3))
            let (full, fullBody) = try await createFile(drive, "more.bin", size: 900)
            #expect(full == 400)
            #expect(fullBody["code"] as? String == "QuotaExhausted.Drive")
            let (refused, refusedBody) = try await drive.post(
                "/adrive/v2/file/createWithFolders",
                ["drive_id": drive.driveID, "parent_file_id": "root", "name": "fill.bin", "type": "file", "size": 1, "check_name_mode": "refuse"])
            #expect(refused == 201)
            #expect(refusedBody["exist"] as? Bool == true)
            #expect(refusedBody["upload_id"] == nil)
            let longName = String(repeating: "n", count: 1025)
            #expect(try await createFile(drive, longName, size: 1).0 == 400)
        }
    }

    @Test func internalUploadURLsWorkAndAreCountedSeparately() async throws {
        try await withTestDrive { drive in
            let content = testBytes(2048)
            let (_, session) = try await createFile(drive, "internal.bin", size: content.count)
            let part = try #require((session["part_info_list"] as? [JSON])?.first)
            let internalURL = try #require(part["internal_upload_url"] as? String)
            let publicURL = try #require(part["upload_url"] as? String)
            #expect(internalURL != publicURL)
            #expect(internalURL.hasPrefix(drive.emulator.internalBaseURL))
            #expect(try await drive.putPart(internalURL, content).status == 200)
            let (done, file) = try await drive.post("/v2/file/complete", ["drive_id": drive.driveID, "file_id": session["file_id"] ?? "", "upload_id": session["upload_id"] ?? ""])
            #expect(done == 200)
            #expect(file["content_hash"] as? String == RapidUpload.sha1Hex(content))
            let stats = try await drive.stats()
            #expect(stats["bytes_uploaded_internal"] as? Int == 2048)
            #expect(stats["bytes_uploaded"] as? Int == 0)
        }
    }

    @Test func droppedPartUploadLeavesNoTraceAndCanBeRetried() async throws {
        try await withTestDrive { drive in
            let content = testBytes(400_000)
            let (_, session) = try await createFile(drive, "drop.bin", size: content.count)
            let url = try #require((session["part_info_list"] as? [JSON])?.first?["upload_url"] as? String)
            // Two drops: libcurl transparently retries once when a reused connection dies
            // before any response (rewinding the body), so the second drop is what the caller sees.
            try await drive.hook("faults", ["rules": [["path": "/oss/u/*", "kind": "drop_after", "bytes": 100_000, "count": 2]]])
            await #expect(throws: HTTPTransportError.self) { try await drive.putPart(url, content) }
            #expect(try await drive.putPart(url, content).status == 200)
            let (_, file) = try await drive.post("/v2/file/complete", ["drive_id": drive.driveID, "file_id": session["file_id"] ?? "", "upload_id": session["upload_id"] ?? ""])
            #expect(file["content_hash"] as? String == RapidUpload.sha1Hex(content))
            #expect(file["size"] as? Int == content.count)
        }
    }

    @Test func completeReportsTheBytesActuallyReceived() async throws {
        try await withTestDrive { drive in
            // The server does not validate the declared size: clients must check it.
            let (_, session) = try await createFile(drive, "short.bin", size: 100)
            let url = try #require((session["part_info_list"] as? [JSON])?.first?["upload_url"] as? String)
            #expect(try await drive.putPart(url, testBytes(60)).status == 200)
            let (_, file) = try await drive.post("/v2/file/complete", ["drive_id": drive.driveID, "file_id": session["file_id"] ?? "", "upload_id": session["upload_id"] ?? ""])
            #expect(file["size"] as? Int == 60)
        }
    }
}
