import AliyunDrive
import Testing

/// The proof-code test vectors of aliyun-api.md §8.4.
@Suite struct RapidUploadTests {
    static let ascii20 = Array("0123456789abcdefghij".utf8)
    static let bytes1024 = (0..<1024).map { UInt8($0 % 256) }

    @Test(arguments: [
        ([UInt8](), "test-access-token", "", "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709"),
        (ascii20, "test-access-token", "MjM0NTY3ODk=", "7C8E1DC5A4FD22F1311A7A1F3E3401215C0CCAB3"),
        (Array("AAAAA".utf8), "test-access-token", "QUFB", "C1FE3A7B487F66A6AC8C7E4794BC55C31B0EF403"),
        (bytes1024, "test-access-token", "dnd4eXp7fH0=", "5B00669C480D5CFFBDFA8BDBA99561160F2D1B77"),
        (ascii20, "token-4", "aWo=", "7C8E1DC5A4FD22F1311A7A1F3E3401215C0CCAB3"),
    ])
    func proofCodeAndContentHashMatchTheVectors(content: [UInt8], token: String, proof: String, sha1: String) {
        #expect(RapidUpload.proofCode(accessToken: token, content: content) == proof)
        #expect(RapidUpload.sha1Hex(content) == sha1)
    }

    @Test func proofOffsetsMatchTheVectors() {
        #expect(RapidUpload.proofOffset(accessToken: "test-access-token", size: 20) == 2)
        #expect(RapidUpload.proofOffset(accessToken: "test-access-token", size: 5) == 2)
        #expect(RapidUpload.proofOffset(accessToken: "test-access-token", size: 1024) == 630)
        #expect(RapidUpload.proofOffset(accessToken: "token-4", size: 20) == 18)
        #expect(RapidUpload.proofOffset(accessToken: "test-access-token", size: 0) == nil)
    }

    @Test func preHashOfSmallFilesEqualsTheContentHash() {
        let content = Self.bytes1024
        #expect(RapidUpload.sha1Hex(Array(content.prefix(RapidUpload.preHashPrefix))) == RapidUpload.sha1Hex(content))
    }
}
