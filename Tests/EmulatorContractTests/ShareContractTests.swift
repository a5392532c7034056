import EmulatorTestSupport
import Foundation
import HTTPTransport
import Testing

/// aliyun-api.md §14 "Shares".
@Suite struct ShareContractTests {
    /// Creates a folder with one file and shares it; returns (share id, folder id, file id).
    func makeShare(_ drive: TestDrive, password: String = "abcd") async throws -> (String, String, String) {
        let folder = try await drive.mkdir("shared")
        let sub = try await drive.mkdir("sub", in: folder)
        let file = try #require(try await drive.upload("inside.txt", Array("shared content".utf8), in: sub)["file_id"] as? String)
        let (status, share) = try await drive.post("/adrive/v2/share_link/create", ["drive_id": drive.driveID, "file_id_list": [folder], "share_pwd": password])
        #expect(status == 200)
        return (try #require(share["share_id"] as? String), folder, file)
    }

    func shareToken(_ drive: TestDrive, _ shareID: String, _ password: String) async throws -> (Int, JSON) {
        try await drive.post("/v2/share_link/get_share_token", ["share_id": shareID, "share_pwd": password], auth: false)
    }

    @Test func anonymousInfoTokenAndListing() async throws {
        try await withTestDrive { drive in
            let (shareID, folder, file) = try await makeShare(drive)
            let (infoStatus, info) = try await drive.post("/adrive/v3/share_link/get_share_by_anonymous?share_id=\(shareID)", ["share_id": shareID], auth: false)
            #expect(infoStatus == 200)
            #expect(info["has_pwd"] as? Bool == true)
            #expect(info["expiration"] as? String == "")
            #expect((info["file_infos"] as? [JSON])?.first?["file_id"] as? String == folder)
            #expect(try await drive.post("/adrive/v2/share_link/get_share_by_anonymous", ["share_id": shareID], auth: false).0 == 200)

            let (wrong, wrongBody) = try await shareToken(drive, shareID, "nope")
            #expect(wrong == 400)
            #expect(wrongBody["code"] as? String == "InvalidResource.SharePwd")
            let (status, tokenBody) = try await shareToken(drive, shareID, "abcd")
            #expect(status == 200)
            #expect(tokenBody["expires_in"] as? Int == 7200)
            let token = try #require(tokenBody["share_token"] as? String)

            let headers = ["x-share-token": token]
            let (_, top) = try await drive.post("/adrive/v3/file/list", ["share_id": shareID, "parent_file_id": "root"], auth: false, headers: headers)
            let topItems = try #require(top["items"] as? [JSON])
            #expect(topItems.compactMap { $0["file_id"] as? String } == [folder])
            #expect(topItems.first?["share_id"] as? String == shareID)
            let (_, inner) = try await drive.post("/adrive/v2/file/list_by_share", ["share_id": shareID, "parent_file_id": folder], auth: false, headers: headers)
            let sub = try #require((inner["items"] as? [JSON])?.first?["file_id"] as? String)
            let (_, deeper) = try await drive.post("/adrive/v3/file/list", ["share_id": shareID, "parent_file_id": sub], auth: false, headers: headers)
            #expect((deeper["items"] as? [JSON])?.first?["file_id"] as? String == file)
            let (got, item) = try await drive.post("/v2/file/get", ["share_id": shareID, "file_id": file], auth: false, headers: headers)
            #expect(got == 200 && item["name"] as? String == "inside.txt")
            // Nothing outside the share is reachable with its token.
            let outside = try #require(try await drive.upload("private.txt", Array("p".utf8))["file_id"] as? String)
            #expect(try await drive.post("/v2/file/get", ["share_id": shareID, "file_id": outside], auth: false, headers: headers).0 == 404)
            // Listing without a token fails.
            let (noToken, noTokenBody) = try await drive.post("/adrive/v3/file/list", ["share_id": shareID, "parent_file_id": "root"], auth: false)
            #expect(noToken == 401)
            #expect(noTokenBody["code"] as? String == "ShareLinkTokenInvalid")
        }
    }

    @Test func tokensAreBoundToOneShareAndExpire() async throws {
        try await withTestDrive { drive in
            let (first, _, _) = try await makeShare(drive)
            let other = try await drive.mkdir("other")
            let (_, second) = try await drive.post("/adrive/v2/share_link/create", ["drive_id": drive.driveID, "file_id_list": [other]])
            let secondID = try #require(second["share_id"] as? String)
            let token = try #require(try await shareToken(drive, first, "abcd").1["share_token"] as? String)
            let (mismatch, body) = try await drive.post("/adrive/v3/file/list", ["share_id": secondID, "parent_file_id": "root"], auth: false, headers: ["x-share-token": token])
            #expect(mismatch == 400)
            #expect(body["code"] as? String == "InvalidParameterNotMatch.ShareId")
            try await drive.hook("faults", ["advance_clock": 7201])
            let (expired, expiredBody) = try await drive.post("/adrive/v3/file/list", ["share_id": first, "parent_file_id": "root"], auth: false, headers: ["x-share-token": token])
            #expect(expired == 401)
            #expect(expiredBody["code"] as? String == "ShareLinkTokenInvalid")
        }
    }

    @Test func cancelledExpiredAndUnknownShares() async throws {
        try await withTestDrive { drive in
            let (shareID, _, _) = try await makeShare(drive, password: "")
            // A password for a share without one: ignored, unless strict.
            #expect(try await shareToken(drive, shareID, "zzzz").0 == 200)
            try await drive.hook("faults", ["strict_share_pwd": true])
            #expect(try await shareToken(drive, shareID, "zzzz").1["code"] as? String == "InvalidResource.SharePwd")
            let (unknown, unknownBody) = try await shareToken(drive, "NoSuchShare", "")
            #expect(unknown == 404)
            #expect(unknownBody["code"] as? String == "NotFound.ShareLink")
            try await drive.hook("faults", ["expire_share": shareID])
            #expect(try await shareToken(drive, shareID, "").1["code"] as? String == "ShareLink.Expired")
            let (_, live) = try await drive.post("/adrive/v2/share_link/create", ["drive_id": drive.driveID, "file_id_list": [try await drive.mkdir("x")]])
            let liveID = try #require(live["share_id"] as? String)
            #expect(try await drive.post("/v2/share_link/cancel", ["share_id": liveID]).0 == 200)
            let (cancelled, body) = try await shareToken(drive, liveID, "")
            #expect(cancelled == 400)
            #expect(body["code"] as? String == "ShareLink.Cancelled")
        }
    }

    @Test func shareDownloadURLRedirectsToData() async throws {
        try await withTestDrive { drive in
            let (shareID, _, file) = try await makeShare(drive)
            let token = try #require(try await shareToken(drive, shareID, "abcd").1["share_token"] as? String)
            let headers = ["x-share-token": token]
            // As today's service: ParamFlowException on every call by default; also 410.
            let (limited, limitedBody) = try await drive.post("/v2/file/get_share_link_download_url", ["share_id": shareID, "file_id": file, "expire_sec": 600], device: false, headers: headers)
            #expect(limited == 429 && limitedBody["code"] as? String == "ParamFlowException")
            try await drive.hook("faults", ["share_download_url": "gone"])
            #expect(try await drive.post("/v2/file/get_share_link_download_url", ["share_id": shareID, "file_id": file], device: false, headers: headers).0 == 410)
            try await drive.hook("faults", ["share_download_url": "ok"])
            let (tooLong, tooLongBody) = try await drive.post("/v2/file/get_share_link_download_url", ["share_id": shareID, "file_id": file, "expire_sec": 601], device: false, headers: headers)
            #expect(tooLong == 400)
            #expect(tooLongBody["code"] as? String == "InvalidParameter.ExpireSec")
            let (status, body) = try await drive.post("/v2/file/get_share_link_download_url", ["share_id": shareID, "file_id": file, "expire_sec": 600], device: false, headers: headers)
            #expect(status == 200)
            let redirect = try #require(body["download_url"] as? String)
            #expect(redirect.contains("/v2/redirect?id="))
            // libcurl follows the 302 to the data URL.
            #expect(try await drive.get(redirect).text == "shared content")
            #expect(try await drive.get(try #require(body["url"] as? String)).text == "shared content")
            let (anonymous, _) = try await drive.post("/v2/file/get_share_link_download_url", ["share_id": shareID, "file_id": file], auth: false, headers: headers)
            #expect(anonymous == 401)  // needs the user's token as well
            try await drive.hook("faults", ["share_download_url": false])
            let (disabled, disabledBody) = try await drive.post("/v2/file/get_share_link_download_url", ["share_id": shareID, "file_id": file], device: false, headers: headers)
            #expect(disabled == 400)
            #expect(disabledBody["code"] as? String == "FeatureTemporaryDisabled")
        }
    }

    @Test func copyFromAShareIntoTheOwnDrive() async throws {
        try await withTestDrive { drive in
            let (shareID, _, file) = try await makeShare(drive)
            let token = try #require(try await shareToken(drive, shareID, "abcd").1["share_token"] as? String)
            let target = try await drive.mkdir("saved")
            let (status, result) = try await drive.post("/adrive/v2/batch", ["resource": "file", "requests": [[
                "id": "0", "method": "POST", "url": "/file/copy",
                "body": ["share_id": shareID, "file_id": file, "to_drive_id": drive.driveID, "to_parent_file_id": target, "auto_rename": true],
            ]]], device: false, headers: ["x-share-token": token])
            #expect(status == 200)
            let response = try #require((result["responses"] as? [JSON])?.first)
            #expect(response["status"] as? Int == 201)
            let copied = try #require((response["body"] as? JSON)?["file_id"] as? String)
            #expect(try await drive.get(try await drive.downloadURL(copied)).text == "shared content")
            #expect(try await drive.stats()["share_copies"] as? Int == 1)
            // A blocked file is listed with punish_flag and cannot be copied.
            try await drive.hook("faults", ["punish_file": file])
            let (_, listing) = try await drive.post("/adrive/v3/file/list", ["share_id": shareID, "parent_file_id": "root"], auth: false, headers: ["x-share-token": token])
            #expect(listing["items"] != nil)
            let (_, refused) = try await drive.post("/adrive/v4/batch", ["resource": "file", "requests": [[
                "id": "0", "method": "POST", "url": "/file/copy",
                "body": ["share_id": shareID, "file_id": file, "to_drive_id": drive.driveID, "to_parent_file_id": target, "auto_rename": true],
            ]]], device: false, headers: ["x-share-token": token])
            let item = try #require((refused["responses"] as? [JSON])?.first)
            #expect(item["status"] as? Int == 403 && (item["body"] as? JSON)?["code"] as? String == "ForbiddenNoPermission.File")
            let (_, blocked) = try await drive.post("/adrive/v2/file/get_by_share", ["share_id": shareID, "file_id": file], auth: false, headers: ["x-share-token": token])
            #expect(blocked["punish_flag"] as? Int == 2)
            // Permanent deletion is counted.
            #expect(try await drive.post("/v3/file/delete", ["drive_id": drive.driveID, "file_id": copied]).0 == 204)
            #expect(try await drive.stats()["deletions"] as? Int == 1)
        }
    }
}
