import Foundation

/// What the command line asks for. The mount form accepts the shapes mount(8) and
/// mount.fuse3 produce: `adrivefs SOURCE MOUNTPOINT [-o OPTS]… [-f] [-d]`, options in any
/// position.
public enum Invocation: Equatable, Sendable {
    case mount(MountRequest)
    case authImport(tokenFile: String?)
    case authStatus(LoginCommand.Options)
    case login(LoginCommand.Options)
    case status(StatusCommand.Options)
    case refresh(path: String?)
    case shareSave(ShareSaveCommand.Options)
    case help
    case version
}

public struct MountRequest: Equatable, Sendable {
    public var source: String
    /// Set when SOURCE is a share (then the mount is read-only).
    public var share: ShareSource? = nil
    public var mountpoint: String
    public var options: MountOptions
    public var foreground: Bool
    public var debug: Bool
}

public struct UsageError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public enum ArgumentParser {
    /// `viaMountHelper`: started by mount(8), which adds `rw` on its own (see `MountHelper`).
    public static func parse(_ arguments: [String], viaMountHelper: Bool = false) throws(UsageError) -> Invocation {
        if arguments.first == "auth" {
            return try parseAuth(Array(arguments.dropFirst()))
        }
        if arguments.first == "status" {
            var options = StatusCommand.Options()
            for argument in arguments.dropFirst() {
                switch argument {
                case "--json": options.json = true
                case "--watch": options.watch = true
                case let path where !path.hasPrefix("-") && options.path == nil: options.path = path
                default: throw UsageError("usage: adrivefs status [MOUNTPOINT] [--json] [--watch]")
                }
            }
            if options.json && options.watch { throw UsageError("--json and --watch do not go together") }
            return .status(options)
        }
        if arguments.first == "share" {
            guard arguments.dropFirst().first == "save" else { throw UsageError(ShareSaveCommand.usage) }
            return .shareSave(try ShareSaveCommand.parse(Array(arguments.dropFirst(2))))
        }
        if arguments.first == "refresh" {
            guard arguments.count <= 2, !(arguments.dropFirst().first?.hasPrefix("-") ?? false) else { throw UsageError("usage: adrivefs refresh [PATH]") }
            return .refresh(path: arguments.dropFirst().first)
        }
        if arguments.first == "login" {
            return .login(try loginOptions(Array(arguments.dropFirst()), usage: "usage: adrivefs login [--token-file PATH] [--endpoint URL] [--passport URL]"))
        }
        var positional: [String] = []
        var optionLists: [String] = []
        var foreground = false
        var debug = false
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            switch argument {
            case "-h", "--help": return .help
            case "-V", "--version": return .version
            case "-f", "--foreground": foreground = true
            case "-d", "--debug":
                debug = true
                foreground = true
            case "-o":
                index += 1
                guard index < arguments.count else { throw UsageError("-o needs a list of options") }
                optionLists.append(arguments[index])
            default:
                if argument.hasPrefix("-o"), argument.count > 2 {
                    optionLists.append(String(argument.dropFirst(2)))
                } else if argument.hasPrefix("-") {
                    throw UsageError("unknown flag '\(argument)'")
                } else {
                    positional.append(argument)
                }
            }
            index += 1
        }
        guard positional.count == 2 else {
            throw UsageError(positional.count < 2 ? "expected SOURCE and MOUNTPOINT" : "unexpected argument '\(positional[2])'")
        }
        let source = positional[0]
        let share = try ShareSource.parse(source)
        guard share != nil || source == "adrive" || source.hasPrefix("adrive:") else {
            throw UsageError("unknown source '\(source)': use 'adrive' for your own drive, or share:SHARE_ID or a share link for a share")
        }
        var options: MountOptions
        do {
            options = try MountOptions.parse(optionLists)
        } catch {
            throw UsageError(error.description)
        }
        if let share {
            if !options.shares.isEmpty { throw UsageError("share= shows shares inside your own drive's mount: mount 'adrive' with it") }
            if options.readWriteAsked && !viaMountHelper { throw UsageError("shares are read-only: drop the rw option") }
            if share.folderID != nil, options.rootID != "root" {
                throw UsageError("the share link names a folder already: drop root_id or use share:\(share.shareID)")
            }
            if let folder = share.folderID { options.rootID = folder }
            if !options.readOnly {
                options.readOnly = true
                options.fuseOptions.append("ro")
            }
            if !options.directoryCacheTTLSet { options.directoryCacheTTL = 300 }
        } else if options.shares.isEmpty && (options.sharePasswordFile != nil || options.shareCopyTTL != nil) {
            throw UsageError("share_pwd_file and share_copy_ttl are for shares (share:SHARE_ID, or share= on your own drive)")
        }
        return .mount(
            MountRequest(
                source: share?.fsname ?? source, share: share, mountpoint: Self.absolute(positional[1]), options: options, foreground: foreground,
                debug: debug))
    }

    /// A mount point as the kernel and `adrivefs status` name it: absolute, symlinks
    /// resolved (a relative one named the mount's control socket and status after
    /// itself, so `adrivefs status /full/path` did not find it).
    static func absolute(_ path: String) -> String { URL(fileURLWithPath: path).resolvingSymlinksInPath().path }

    /// `--token-file PATH`, `--endpoint URL`, `--passport URL`.
    static func loginOptions(_ arguments: [String], usage: String) throws(UsageError) -> LoginCommand.Options {
        var values: [String: String] = [:]
        var index = 0
        while index < arguments.count {
            let flag = arguments[index]
            guard ["--token-file", "--endpoint", "--passport"].contains(flag), index + 1 < arguments.count else { throw UsageError(usage) }
            let value = arguments[index + 1]
            if flag != "--token-file", !(value.hasPrefix("http://") || value.hasPrefix("https://")) {
                throw UsageError("\(flag): '\(value)' is not an http(s) URL")
            }
            values[flag] = value
            index += 2
        }
        return LoginCommand.Options(tokenFile: values["--token-file"], endpoint: values["--endpoint"], passport: values["--passport"])
    }

    static func parseAuth(_ arguments: [String]) throws(UsageError) -> Invocation {
        if arguments.first == "status" {
            return .authStatus(try loginOptions(Array(arguments.dropFirst()), usage: "usage: adrivefs auth status [--token-file PATH] [--endpoint URL]"))
        }
        guard arguments.first == "import" else { throw UsageError("usage: adrivefs auth import|status [--token-file PATH]") }
        var tokenFile: String?
        var index = 1
        while index < arguments.count {
            if arguments[index] == "--token-file", index + 1 < arguments.count {
                tokenFile = arguments[index + 1]
                index += 2
            } else {
                throw UsageError("usage: adrivefs auth import [--token-file PATH]")
            }
        }
        return .authImport(tokenFile: tokenFile)
    }

    /// True when mount(8) started this process (and, for the daemon child, its parent);
    /// marks the environment so the child inherits the answer.
    public static var startedByMountHelper: Bool {
        guard MountHelper.isParent else { return false }
        MountHelper.markEnvironment()
        return true
    }

    public static let usage = """
        usage: adrivefs SOURCE MOUNTPOINT [-o OPTION[,OPTION...]] [-f] [-d]
               adrivefs login [--token-file PATH] [--endpoint URL] [--passport URL]
               adrivefs auth status [--token-file PATH] [--endpoint URL]
               adrivefs status [MOUNTPOINT] [--json] [--watch]
               adrivefs refresh [PATH]              (drop cached listings; also SIGHUP)
               adrivefs share save SHARE[/PATH] DEST_PATH [--password-file F]
                                                    (save from a share into your drive, server-side)
               adrivefs auth import [--token-file PATH]   (reads a refresh token on stdin)

        SOURCE is 'adrive' (your own drive, read-write), or a share — share:SHARE_ID or
        its link https://www.alipan.com/s/SHARE_ID[/folder/FILE_ID] — read-only. The
        refresh token comes from the ADRIVEFS_REFRESH_TOKEN environment variable or the
        token file, never from argv; a share's password from ADRIVEFS_SHARE_PWD or
        share_pwd_file=PATH. Reading a share's files needs a refresh token too.

          -f, --foreground   stay in the foreground
          -d, --debug        log debug information (implies -f)
          -h, --help         show this help
          -V, --version      show the version

        options (-o):
        """
}
