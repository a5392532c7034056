import Crypto
import Foundation

/// Sample content for a fresh data directory.
public enum EmulatorSeed: String, Sendable, CaseIterable {
    /// One account with an empty drive.
    case none
    /// Folders, text files, a duplicate name, an empty file, a 64 MiB "video", a nested
    /// tree, a file in the resource drive and a password-protected share.
    case demo
    /// `demo` plus `/bench/many` (10,000 small files) and `/bench/1GiB.bin`.
    case bench
}

extension EmulatorState {
    /// Creates the account (and its first refresh token) and the seed's tree.
    func seed(_ seed: EmulatorSeed, refreshToken: String?) throws {
        let account = Account(
            userID: Formats.randomHex(32), userName: "138***8000", nickName: "云盘用户emulator",
            backupDriveID: String(Int.random(in: 9_000_000...9_899_999)), resourceDriveID: String(Int.random(in: 9_900_000...9_999_999)),
            sboxDriveID: String(Int.random(in: 8_000_000...8_999_999)), totalSize: 1 << 40, fileSizeLimit: 100 << 30,
            createdAt: now)
        persistent.accounts[account.userID] = account
        persistent.primaryChain = Formats.randomHex(8)
        setPrimaryRefreshToken(refreshToken ?? Formats.randomHex(32))
        try ensureEmptyBlob()
        guard seed != .none else { return }

        let drive = account.backupDriveID
        func folder(_ name: String, in parent: String = "root") -> String {
            makeNode(.folder, name: name, driveID: drive, parentID: parent).id
        }
        func file(_ name: String, _ content: [UInt8], in parent: String = "root", drive: String = drive) throws {
            let key = try storeBytes(content)
            makeNode(.file, name: name, driveID: drive, parentID: parent, size: key.size, key: key)
        }
        try file("README.txt", Array(Self.readme.utf8))
        let documents = folder("Documents")
        try file("notes.md", Array("# Notes\n\n- adrivefs mounts Aliyun Drive.\n- This is the emulator's demo drive.\n".utf8), in: documents)
        try file("report.txt", Array("Quarterly report, first upload.\n".utf8), in: documents)
        try file("report.txt", Array("Quarterly report, second upload with the same name.\n".utf8), in: documents)
        try file("empty.txt", [], in: documents)
        try file("中文文件.txt", Array("你好，阿里云盘。\n".utf8), in: documents)
        let pictures = folder("Pictures")
        try file("sunset.jpg", Self.generated(size: 300 * 1024, seed: 7), in: pictures)
        try file("cat.png", Self.generated(size: 120 * 1024, seed: 8), in: pictures)
        let videos = folder("Videos")
        try storeGenerated(name: "sample.mp4", size: 64 << 20, seed: 1, driveID: drive, parentID: videos)
        let project = folder("adrivefs", in: folder("Projects"))
        try file("main.swift", Array("print(\"hello from the emulator\")\n".utf8), in: folder("src", in: project))
        var deep = folder("docs", in: project)
        for level in ["a", "b", "c"] { deep = folder(level, in: deep) }
        try file("deep.txt", Array("five levels down\n".utf8), in: deep)
        _ = folder("Music")
        try file("welcome.txt", Array("A file in the resource drive.\n".utf8), in: "root", drive: account.resourceDriveID)
        let share = Share(
            shareID: Formats.randomBase62(11), userID: account.userID, driveID: drive, fileIDs: [pictures], password: "demo",
            name: "Pictures", createdAt: now)
        persistent.shares[share.shareID] = share
        // A public one (no password), with the video in it.
        let open = Share(
            shareID: Formats.randomBase62(11), userID: account.userID, driveID: drive, fileIDs: [videos, documents], password: "",
            name: "Videos and documents", createdAt: now)
        persistent.shares[open.shareID] = open

        guard seed == .bench else { return }
        let bench = folder("bench")
        let many = folder("many", in: bench)
        for index in 0..<10_000 {
            let name = "file-" + String(repeating: "0", count: 5 - String(index).count) + String(index) + ".txt"
            try file(name, Array("file \(index)\n".utf8), in: many)
        }
        try storeGenerated(name: "1GiB.bin", size: 1 << 30, seed: 2, driveID: drive, parentID: bench)
    }

    func setPrimaryRefreshToken(_ token: String) {
        for (key, value) in persistent.refreshTokens where value.chain == persistent.primaryChain {
            persistent.refreshTokens[key] = nil
        }
        guard let account = persistent.accounts.values.first else { return }
        persistent.refreshTokens[token] = RefreshToken(
            userID: account.userID, chain: persistent.primaryChain, web: false, expiresAt: now + lifetimes.refreshTokenSeconds * 1000)
        dirty = true
    }

    /// The current refresh token of the seeded account's first login.
    var primaryRefreshToken: String? {
        persistent.refreshTokens.first { $0.value.chain == persistent.primaryChain }?.key
    }

    /// Deterministic pseudo-random content (xorshift), so seeds are reproducible.
    static func generated(size: Int, seed: UInt64) -> [UInt8] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        var out = [UInt8](repeating: 0, count: size)
        out.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return }
            let words = raw.count / 8
            let pointer = base.assumingMemoryBound(to: UInt64.self)
            for index in 0..<words {
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                pointer[index] = state
            }
            for index in words * 8..<raw.count { raw[index] = UInt8(truncatingIfNeeded: index) }
        }
        return out
    }

    /// Writes a large generated file straight to disk, hashing as it goes.
    func storeGenerated(name: String, size: Int64, seed: UInt64, driveID: String, parentID: String) throws {
        let path = uploadDirectory.appendingPathComponent("seed-" + Formats.randomHex(16)).path
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw APIError(500, "InternalError", "cannot write \(path)")
        }
        defer { try? handle.close() }
        var hasher = Insecure.SHA1()
        var preHash = ""
        var written: Int64 = 0
        var chunkSeed = seed
        while written < size {
            let count = Int(min(Int64(4 << 20), size - written))
            let chunk = Self.generated(size: count, seed: chunkSeed)
            chunkSeed &+= 1
            if written == 0 { preHash = Formats.hex(Insecure.SHA1.hash(data: chunk.prefix(1024)), uppercase: true) }
            hasher.update(data: chunk)
            try handle.write(contentsOf: chunk)
            written += Int64(count)
        }
        let key = try registerBlob(movingFrom: path, sha1: Formats.hex(hasher.finalize(), uppercase: true), size: size, preHash: preHash)
        makeNode(.file, name: name, driveID: driveID, parentID: parentID, size: size, key: key)
    }

    static let readme = """
        Welcome to adrivefs!

        This drive is served by adrivefs-emulator, a faithful local stand-in for
        Aliyun Drive (阿里云盘). Everything here lives on your machine.

        Try: ls -l, cat, cp, sha1sum, or play Videos/sample.mp4 with a seeking player.

        """
}
