@testable import AliyunDrive
import EmulatorTestSupport
import Foundation
import Testing

/// Listings: pages decoded into items, the next page asked for before a page is decoded,
/// and every entry of a large folder exactly once.
@Suite struct ListingTests {
    @Test(arguments: [
        (#"{"items":[],"next_marker":"abc="}"#, "abc="),
        (#"{"next_marker" :  "m1", "items":[{"name":"\"next_marker\":\"fake\""}]}"#, "m1"),
        (#"{"items":[{"name":"x \"next_marker\": \"fake\""}],"next_marker":"real"}"#, "real"),
        (#"{"items":[],"next_marker":""}"#, ""),
        (#"{"items":[],"next_marker":"a\"b"}"#, nil),
        (#"{"items":[]}"#, nil),
        (#"{"items":[],"next_marker":null}"#, nil),
    ] as [(String, String?)])
    func theNextMarkerIsFoundWithoutDecoding(page: String, marker: String?) {
        #expect(ListingPage.nextMarker(in: Array(page.utf8)) == marker)
    }

    @Test func pagesDecodeLenientlyIntoItems() throws {
        let page = #"""
            {"items":[
              {"file_id":"f1","name":"a.txt","parent_file_id":"p","type":"file","size":12,"content_hash":"abc","created_at":"2024-01-02T03:04:05.000Z","updated_at":"2024-01-03T03:04:05.000Z","punish_flag":2,"extra":{"x":[1,2]}},
              {"file_id":"d1","name":"dir","type":"folder","size":"not a number","created_at":"2024-01-02T03:04:05.000Z"},
              {"name":"no id"}
            ],"next_marker":"n"}
            """#
        let decoded = try JSONDecoder().decode(ListingPage.self, from: Data(page.utf8))
        let items = decoded.items.compactMap(\.item)
        #expect(items.count == 2 && decoded.nextMarker == "n")
        #expect(items[0] == DriveItem(json: try #require(try JSONSerialization.jsonObject(with: Data(#"{"file_id":"f1","name":"a.txt","parent_file_id":"p","type":"file","size":12,"content_hash":"abc","created_at":"2024-01-02T03:04:05.000Z","updated_at":"2024-01-03T03:04:05.000Z","punish_flag":2}"#.utf8)) as? [String: Any])))
        #expect(items[0].blocked && items[0].contentHash == "ABC")
        #expect(items[1].isFolder && items[1].size == 0 && items[1].updatedAt == items[1].createdAt)
    }

    @Test func aLargeFolderListsEveryEntryOnceWithPagesAskedAhead() async throws {
        try await withTestDrive { drive in
            let client = try await UploadClientTests.client(drive)
            let folder = try await drive.mkdir("many")
            for index in 0..<450 { _ = try await drive.upload(String(format: "f%04d.txt", index), Array("\(index)".utf8), in: folder) }
            let pages = try await drive.requestCount("/adrive/v3/file/list")
            let items = try await client.list(folderID: folder)
            #expect(items.map(\.name) == (0..<450).map { String(format: "f%04d.txt", $0) })
            #expect(try await drive.requestCount("/adrive/v3/file/list") - pages == 3, "3 pages of 200, none asked twice")
        }
    }
}
