internal import CSecp256k1
import Crypto
import Foundation

/// The device an account's session is bound to (aliyun-api.md §3): a stable device id and a
/// secp256k1 key, kept per account in the state directory so restarts reuse the same
/// device slot (the service allows about ten).
public struct DeviceIdentity: Sendable {
    /// The value of `x-device-id`.
    public let deviceID: String
    private let secretKey: [UInt8]

    /// The `appId` the official clients sign with.
    static let appID = "5dde4e1bdf9e4966b387ba58f4b3fdc3"

    init(deviceID: String, secretKey: [UInt8]) throws(DriveError) {
        guard secretKey.count == 32, csecp256k1_seckey_verify(secretKey) == 1 else {
            throw DriveError(.invalidState, "the stored device key is not a valid secp256k1 key")
        }
        self.deviceID = deviceID
        self.secretKey = secretKey
    }

    /// A new random identity.
    public static func generate() throws(DriveError) -> DeviceIdentity {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<16 {
            let key = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if csecp256k1_seckey_verify(key) == 1 {
                let id = (0..<16).map { _ in UInt8.random(in: 0...255, using: &rng) }
                return try DeviceIdentity(deviceID: hex(id), secretKey: key)
            }
        }
        throw DriveError(.invalidState, "could not generate a device key")
    }

    /// Loads the identity of `userID` from `directory`, creating (0600) it on first use.
    public static func loadOrCreate(directory: String, userID: String) throws(DriveError) -> DeviceIdentity {
        let file = URL(fileURLWithPath: directory).appendingPathComponent("device-\(userID).json")
        if let data = try? Data(contentsOf: file),
            let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: String],
            let id = object["device_id"], let key = object["secret_key"].flatMap(unhex)
        {
            return try DeviceIdentity(deviceID: id, secretKey: key)
        }
        let identity = try generate()
        let object = ["device_id": identity.deviceID, "secret_key": hex(identity.secretKey)]
        guard let data = try? JSONSerialization.data(withJSONObject: object) else {
            throw DriveError(.invalidState, "could not encode the device identity")
        }
        try SecretFile.write(data, to: file.path)
        return identity
    }

    /// `04 || X || Y` as lowercase hex: the `pubKey` of `create_session`.
    public var publicKeyHex: String {
        var out = [UInt8](repeating: 0, count: 65)
        return csecp256k1_pubkey_uncompressed(secretKey, &out) == 1 ? hex(out) : ""
    }

    /// The `x-signature` for `userID`: ECDSA over SHA-256("appId:deviceId:userId:0"),
    /// r ‖ s ‖ recovery id as 130 lowercase hex digits.
    public func signature(userID: String) -> String {
        let digest = Array(SHA256.hash(data: Array("\(Self.appID):\(deviceID):\(userID):0".utf8)))
        var out = [UInt8](repeating: 0, count: 65)
        return csecp256k1_sign_recoverable(secretKey, digest, &out) == 1 ? hex(out) : ""
    }

    /// Checks a signature made by `signature(userID:)` against this identity's public key.
    public func verify(signature: String, userID: String) -> Bool {
        guard let signatureBytes = unhex(signature), signatureBytes.count == 65,
            let publicKey = unhex(publicKeyHex), publicKey.count == 65
        else { return false }
        let digest = Array(SHA256.hash(data: Array("\(Self.appID):\(deviceID):\(userID):0".utf8)))
        return csecp256k1_verify(publicKey, digest, signatureBytes) == 1
    }
}

func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0x0F)])
    }
    return String(decoding: out, as: UTF8.self)
}

func unhex(_ text: String) -> [UInt8]? {
    let chars = Array(text.utf8)
    guard chars.count % 2 == 0 else { return nil }
    var out: [UInt8] = []
    var index = 0
    while index < chars.count {
        guard let high = nibble(chars[index]), let low = nibble(chars[index + 1]) else { return nil }
        out.append(high << 4 | low)
        index += 2
    }
    return out
}

private func nibble(_ c: UInt8) -> UInt8? {
    switch c {
    case 48...57: c - 48
    case 97...102: c - 87
    case 65...70: c - 55
    default: nil
    }
}
