@testable import DriveEmulator
import Foundation
import Testing

/// The emulator writes its answers itself: whatever it writes must parse back, with the
/// same values, as Foundation reads them (which is how clients read them).
@Suite struct JSONWriterTests {
    @Test func answersParseBackWithTheirValues() throws {
        let object: [String: Any] = [
            "name": "a \"quoted\" \\ name/with\tcontrol\u{01} and 中文", "size": 64 << 20, "big": Int64(1) << 40, "flag": true, "off": false,
            "ratio": 0.25, "whole": 3.0, "none": NSNull(), "list": [1, "two", ["three": 3]] as [Any], "empty": [String: Any](),
            "items": [["file_id": "f1", "size": 0], ["file_id": "f2", "punish_flag": 1]] as [[String: Any]], "small": Int32(-7),
        ]
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(JSON.encode(object))) as? [String: Any])
        #expect(parsed["name"] as? String == object["name"] as? String)
        #expect(parsed["size"] as? Int == 64 << 20 && parsed["big"] as? Int64 == 1 << 40 && parsed["small"] as? Int == -7)
        #expect(parsed["flag"] as? Bool == true && parsed["off"] as? Bool == false)
        #expect(parsed["ratio"] as? Double == 0.25 && parsed["whole"] as? Int == 3)
        #expect(parsed["none"] is NSNull && (parsed["empty"] as? [String: Any])?.isEmpty == true)
        let list = try #require(parsed["list"] as? [Any])
        #expect(list.count == 3 && list[1] as? String == "two" && (list[2] as? [String: Any])?["three"] as? Int == 3)
        let items = try #require(parsed["items"] as? [[String: Any]])
        #expect(items.map { $0["file_id"] as? String } == ["f1", "f2"] && items[1]["punish_flag"] as? Int == 1)
        // A number as a request's JSON brought it (an NSNumber) is written as it came.
        let echoed = try #require(try JSONSerialization.jsonObject(with: Data(#"{"n": 12, "b": true}"#.utf8)) as? [String: Any])
        let again = try #require(try JSONSerialization.jsonObject(with: Data(JSON.encode(echoed))) as? [String: Any])
        #expect(again["n"] as? Int == 12 && again["b"] as? Bool == true)
    }

    @Test func whatJSONCannotHoldIsAnEmptyObject() {
        #expect(JSON.encode(["x": Double.nan]) == Array("{}".utf8))
        #expect(JSON.encode(["x": Date()]) == Array("{}".utf8))
    }
}
