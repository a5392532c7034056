/// The `-o` option table: one definition of every option (name, what it takes, where it
/// goes). It drives parsing, `--help` and the man-page check.
public struct MountOptionSpec: Sendable {
    public enum Kind: Sendable {
        /// Ours, with a value (`name=value`).
        case value(String)
        /// Ours, a flag.
        case flag
        /// Handed to libfuse / the kernel unchanged.
        case fuse
        /// Ours and also handed to libfuse (e.g. `ro`).
        case flagAndFuse
        /// Meaningful to mount(8), systemd or fstab only: accepted and ignored.
        case ignored
    }

    public let name: String
    public let kind: Kind
    public let help: String

    public static let all: [MountOptionSpec] = [
        .init(name: "token_file", kind: .value("PATH"), help: "refresh-token file (default: ~/.config/adrivefs/refresh_token)"),
        .init(name: "endpoint", kind: .value("URL"), help: "API base URL (default: https://api.aliyundrive.com)"),
        .init(name: "root_id", kind: .value("FILE_ID"), help: "mount this folder instead of the drive's root"),
        .init(name: "drive", kind: .value("default|resource|backup"), help: "which drive of the account to mount"),
        .init(name: "ca_file", kind: .value("PATH"), help: "PEM bundle of trusted CAs instead of the system store"),
        .init(name: "uid", kind: .value("UID"), help: "owner of every file (default: the mounting user)"),
        .init(name: "gid", kind: .value("GID"), help: "group of every file (default: the mounting user's group)"),
        .init(name: "umask", kind: .value("OCTAL"), help: "permission bits to clear (default: 022)"),
        .init(name: "dir_cache_ttl", kind: .value("SECONDS"), help: "how long folder listings are trusted (default: 60)"),
        .init(name: "cache_size", kind: .value("SIZE"), help: "memory for cached file content, e.g. 64M (default: 48M)"),
        .init(name: "read_ahead", kind: .value("SIZE"), help: "initial read-ahead of sequential readers (default: 24M); grows while it pays"),
        .init(name: "max_streams", kind: .value("N"), help: "most chunk downloads one sequential reader keeps in flight (default: 16)"),
        .init(name: "cache_dir", kind: .value("PATH"), help: "where files being written are staged and the disk cache lives (default: ~/.cache/adrivefs)"),
        .init(name: "disk_cache_size", kind: .value("SIZE"), help: "keep downloaded content on disk under cache_dir, up to SIZE, e.g. 10G (default: 0, off)"),
        .init(name: "upload_wait", kind: .value("SECONDS"), help: "how long unmount waits for pending uploads (default: 600)"),
        .init(name: "write_back", kind: .value("SECONDS"), help: "close() returns once the file is safe on local disk; upload SECONDS later (default: 0, upload at close)"),
        .init(name: "internal_upload", kind: .flag, help: "send upload bytes to the internal (in-region) upload URLs"),
        .init(name: "no_rapid_upload", kind: .flag, help: "never try rapid upload (always send the bytes)"),
        .init(name: "share", kind: .value("SHARE_ID|LINK"), help: "own drive: show this share read-only under .shares/ (repeatable); cp from it saves server-side"),
        .init(name: "share_pwd_file", kind: .value("PATH"), help: "shares: file holding the password, or lines of SHARE_ID PASSWORD (or ADRIVEFS_SHARE_PWD)"),
        .init(name: "share_copy_ttl", kind: .value("SECONDS"), help: "shares: how long a temporary copy outlives its last reader (default: 900)"),
        .init(name: "ro", kind: .flagAndFuse, help: "mount read-only"),
        .init(name: "allow_other", kind: .fuse, help: "let other users access the mount"),
        .init(name: "default_permissions", kind: .fuse, help: "let the kernel check permissions against the mode bits"),
        .init(name: "rw", kind: .ignored, help: "read-write (the default)"),
        .init(name: "nosuid", kind: .fuse, help: "passed to the kernel"),
        .init(name: "nodev", kind: .fuse, help: "passed to the kernel"),
        .init(name: "noexec", kind: .fuse, help: "passed to the kernel"),
        .init(name: "suid", kind: .fuse, help: "passed to the kernel"),
        .init(name: "dev", kind: .fuse, help: "passed to the kernel"),
        .init(name: "exec", kind: .fuse, help: "passed to the kernel"),
        .init(name: "noatime", kind: .fuse, help: "passed to the kernel"),
        .init(name: "_netdev", kind: .ignored, help: "fstab: needs the network"),
        .init(name: "nofail", kind: .ignored, help: "fstab: do not fail the boot"),
        .init(name: "auto", kind: .ignored, help: "fstab"),
        .init(name: "noauto", kind: .ignored, help: "fstab"),
        .init(name: "user", kind: .ignored, help: "fstab"),
        .init(name: "users", kind: .ignored, help: "fstab"),
        .init(name: "nouser", kind: .ignored, help: "fstab"),
        .init(name: "defaults", kind: .ignored, help: "fstab"),
        .init(name: "comment", kind: .ignored, help: "fstab/systemd: comment=…"),
    ]

    /// Options whose name starts with `x-systemd.` or `x-` are ignored as well.
    static func spec(for name: String) -> MountOptionSpec? {
        if name.hasPrefix("x-") { return MountOptionSpec(name: name, kind: .ignored, help: "") }
        return all.first { $0.name == name }
    }
}

/// The parsed `-o` options.
public struct MountOptions: Sendable, Equatable {
    public var tokenFile: String?
    public var endpoint = "https://api.aliyundrive.com"
    public var rootID = "root"
    public var drive = "default"
    public var caFile: String?
    public var uid: UInt32?
    public var gid: UInt32?
    public var umask: UInt32 = 0o022
    public var directoryCacheTTL: Double = 60
    public var cacheSize = 48 << 20
    public var readAhead = 24 << 20
    public var maxStreams = 16
    public var readOnly = false
    public var cacheDirectory: String?
    public var diskCacheSize = 0
    public var uploadWait: Double = 600
    public var writeBack: Double = 0
    public var internalUpload = false
    public var rapidUpload = true
    public var sharePasswordFile: String?
    /// `share=`: shares shown under `.shares` of an own-drive mount, in the order given.
    public var shares: [ShareSource] = []
    public var shareCopyTTL: Double?
    /// `rw` was given (refused for shares).
    public var readWriteAsked = false
    public var directoryCacheTTLSet = false
    /// Handed to libfuse.
    public var fuseOptions: [String] = []

    public init() {}

    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    /// Parses comma-separated `-o` lists (several `-o` are merged in order).
    public static func parse(_ lists: [String]) throws(ParseError) -> MountOptions {
        var options = MountOptions()
        for list in lists {
            for item in list.split(separator: ",", omittingEmptySubsequences: true) {
                try options.apply(String(item))
            }
        }
        return options
    }

    mutating func apply(_ item: String) throws(ParseError) {
        let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let name = parts[0]
        let value = parts.count > 1 ? parts[1] : nil
        guard let spec = MountOptionSpec.spec(for: name) else {
            throw ParseError(description: "unknown mount option '\(name)' (see adrivefs --help)")
        }
        switch spec.kind {
        case .ignored:
            if name == "rw" { readWriteAsked = true }
            return
        case .fuse:
            guard value == nil else { throw ParseError(description: "mount option '\(name)' takes no value") }
            fuseOptions.append(name)
        case .flag, .flagAndFuse:
            guard value == nil else { throw ParseError(description: "mount option '\(name)' takes no value") }
            switch name {
            case "ro":
                readOnly = true
                fuseOptions.append("ro")
            case "internal_upload": internalUpload = true
            case "no_rapid_upload": rapidUpload = false
            default: break
            }
        case .value:
            guard let value, !value.isEmpty else { throw ParseError(description: "mount option '\(name)' needs a value: \(name)=…") }
            try set(name, value)
        }
    }

    private mutating func set(_ name: String, _ value: String) throws(ParseError) {
        func bad(_ expected: String) -> ParseError { ParseError(description: "mount option '\(name)': '\(value)' is not \(expected)") }
        switch name {
        case "token_file": tokenFile = value
        case "endpoint":
            guard value.hasPrefix("http://") || value.hasPrefix("https://") else { throw bad("an http(s) URL") }
            endpoint = value
        case "root_id": rootID = value
        case "drive":
            guard ["default", "resource", "backup"].contains(value) else { throw bad("default, resource or backup") }
            drive = value
        case "ca_file": caFile = value
        case "uid":
            guard let number = UInt32(value) else { throw bad("a numeric uid") }
            uid = number
        case "gid":
            guard let number = UInt32(value) else { throw bad("a numeric gid") }
            gid = number
        case "umask":
            guard let number = UInt32(value, radix: 8), number <= 0o777 else { throw bad("an octal mask like 022") }
            umask = number
        case "dir_cache_ttl":
            guard let number = Double(value), number >= 0 else { throw bad("a number of seconds") }
            directoryCacheTTL = number
            directoryCacheTTLSet = true
        case "cache_size":
            guard let bytes = Self.size(value), bytes >= 0 else { throw bad("a size like 64M") }
            cacheSize = bytes
        case "cache_dir": cacheDirectory = value
        case "disk_cache_size":
            guard let bytes = Self.size(value), bytes >= 0 else { throw bad("a size like 10G") }
            diskCacheSize = bytes
        case "upload_wait":
            guard let number = Double(value), number >= 0 else { throw bad("a number of seconds") }
            uploadWait = number
        case "write_back":
            guard let number = Double(value), number >= 0, number <= 86_400 else { throw bad("a number of seconds up to 86400") }
            writeBack = number
        case "share_pwd_file": sharePasswordFile = value
        case "share":
            let source: ShareSource?
            do {
                source = try ShareSource.parse(value) ?? (ShareSource.isValidID(value) ? ShareSource(shareID: value) : nil)
            } catch {
                throw ParseError(description: "mount option 'share': \(error.description)")
            }
            guard let source else { throw bad("a share id or link (https://www.alipan.com/s/SHARE_ID)") }
            if !shares.contains(where: { $0.shareID == source.shareID }) { shares.append(source) }
        case "share_copy_ttl":
            guard let number = Double(value), number >= 0 else { throw bad("a number of seconds") }
            shareCopyTTL = number
        case "read_ahead":
            guard let bytes = Self.size(value), bytes >= 0 else { throw bad("a size like 32M") }
            readAhead = bytes
        case "max_streams":
            guard let number = Int(value), (1...64).contains(number) else { throw bad("a number from 1 to 64") }
            maxStreams = number
        default:
            throw ParseError(description: "unknown mount option '\(name)'")
        }
    }

    /// `123`, `64K`, `64M`, `1G` (powers of 1024).
    static func size(_ text: String) -> Int? {
        let units: [Character: Int] = ["K": 1 << 10, "k": 1 << 10, "M": 1 << 20, "m": 1 << 20, "G": 1 << 30, "g": 1 << 30]
        if let last = text.last, let unit = units[last] { return Int(text.dropLast()).map { $0 * unit } }
        return Int(text)
    }
}
