import Foundation
import MountCommand
import Testing

@Suite struct OptionParsingTests {
    @Test func aRelativeMountPointIsMadeAbsolute() throws {
        guard case .mount(let request) = try ArgumentParser.parse(["adrive", "relative/mnt"]) else {
            Issue.record("expected a mount")
            return
        }
        let here = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).resolvingSymlinksInPath().path
        #expect(request.mountpoint == here + "/relative/mnt")
        guard case .mount(let dotted) = try ArgumentParser.parse(["adrive", "./relative/../mnt/"]) else { return }
        #expect(dotted.mountpoint == here + "/mnt")
    }

    @Test func mountHelperShapesParse() throws {
        let invocation = try ArgumentParser.parse(["adrive", "/mnt/a", "-o", "rw,_netdev,noauto,x-systemd.automount,uid=1000,dir_cache_ttl=5", "-o", "cache_size=16M,ro"])
        guard case .mount(let request) = invocation else {
            Issue.record("expected a mount")
            return
        }
        #expect(request.source == "adrive")
        #expect(request.mountpoint == "/mnt/a")
        #expect(request.options.uid == 1000)
        #expect(request.options.directoryCacheTTL == 5)
        #expect(request.options.cacheSize == 16 << 20)
        #expect(request.options.readOnly)
        #expect(request.options.fuseOptions == ["ro"])
        #expect(!request.foreground)
        let glued = try ArgumentParser.parse(["-oallow_other", "adrive", "/m", "-d"])
        guard case .mount(let second) = glued else { return }
        #expect(second.options.fuseOptions == ["allow_other"])
        #expect(second.foreground && second.debug)
    }

    @Test(arguments: [
        (["adrive"], "expected SOURCE and MOUNTPOINT"),
        (["gdrive", "/m"], "unknown source"),
        (["share:", "/m"], "expected share:SHARE_ID"),
        (["share:a/b", "/m"], "expected share:SHARE_ID"),
        (["https://example.com/s/abc", "/m"], "is not a share link"),
        (["https://www.alipan.com/t/abc", "/m"], "is not a share link"),
        (["https://www.alipan.com/s/abc/file/x", "/m"], "…/s/SHARE_ID/folder/FILE_ID"),
        (["share:abc", "/m", "-o", "rw"], "shares are read-only"),
        (["https://www.alipan.com/s/abc/folder/f1", "/m", "-o", "root_id=f2"], "drop root_id"),
        (["adrive", "/m", "-o", "share_copy_ttl=5"], "are for shares"),
        (["adrive", "/m", "-o", "share=a/b"], "mount option 'share'"),
        (["adrive", "/m", "-o", "share=https://example.com/s/abc"], "is not a share link"),
        (["share:abc", "/m", "-o", "share=def"], "mount 'adrive' with it"),
        (["share", "copy", "abc", "/"], "usage: adrivefs share save"),
        (["share", "save", "abc"], "usage: adrivefs share save"),
        (["share", "save", "abc", "Movies"], "DEST_PATH is a path in your drive"),
        (["share", "save", "a-b", "/"], "is not a share"),
        (["share", "save", "abc", "/", "--password"], "unknown flag '--password'"),
        (["share", "save", "abc", "/", "--endpoint", "ftp://x"], "http(s) URL"),
        (["share:abc", "/m", "-o", "share_copy_ttl=soon"], "a number of seconds"),
        (["adrive", "/m", "-o", "bogus"], "unknown mount option 'bogus'"),
        (["adrive", "/m", "-o", "umask=999"], "umask"),
        (["adrive", "/m", "-o", "drive=nope"], "default, resource or backup"),
        (["adrive", "/m", "-o", "uid"], "needs a value"),
        (["adrive", "/m", "-x"], "unknown flag '-x'"),
        (["adrive", "/m", "-o", "endpoint=ftp://x"], "http(s) URL"),
    ])
    func badArgumentsNameTheProblem(arguments: [String], message: String) {
        #expect {
            _ = try ArgumentParser.parse(arguments)
        } throws: { error in
            "\(error)".contains(message)
        }
    }

    @Test(arguments: [
        ("share:Abc123", "Abc123", "root"),
        ("https://www.alipan.com/s/Abc123", "Abc123", "root"),
        ("https://www.alipan.com/s/Abc123/", "Abc123", "root"),
        ("https://alipan.com/s/Abc123?x=1", "Abc123", "root"),
        ("https://www.aliyundrive.com/s/Abc123/folder/65f0c0ffee", "Abc123", "65f0c0ffee"),
        ("http://www.alipan.com/s/Abc123/folder/f1", "Abc123", "f1"),
    ])
    func shareSourcesParse(source: String, shareID: String, root: String) throws {
        guard case .mount(let request) = try ArgumentParser.parse([source, "/m"]) else {
            Issue.record("not a mount request")
            return
        }
        #expect(request.share?.shareID == shareID)
        #expect(request.source == "share:" + shareID, "/proc/mounts shows share:ID")
        #expect(request.options.rootID == root)
        // Always read-only, listings trusted longer than on the own drive.
        #expect(request.options.readOnly && request.options.fuseOptions == ["ro"])
        #expect(request.options.directoryCacheTTL == 300)
    }

    @Test func shareOptionsAndMountsRw() throws {
        guard case .mount(let request) = try ArgumentParser.parse(["share:abc", "/m", "-o", "share_copy_ttl=60,share_pwd_file=/p,dir_cache_ttl=7,root_id=f"]) else {
            Issue.record("not a mount request")
            return
        }
        #expect(request.options.shareCopyTTL == 60 && request.options.sharePasswordFile == "/p")
        #expect(request.options.directoryCacheTTL == 7 && request.options.rootID == "f")
        // mount(8) adds rw whenever ro is absent: that is not a request for writing.
        guard case .mount(let helped) = try ArgumentParser.parse(["share:abc", "/m", "-o", "rw,nosuid"], viaMountHelper: true) else {
            Issue.record("not a mount request")
            return
        }
        #expect(helped.options.readOnly)
    }

    @Test func sharesInTheOwnDriveParse() throws {
        guard case .mount(let request) = try ArgumentParser.parse(
            ["adrive", "/m", "-o", "share=Abc1,share=https://www.alipan.com/s/Def2/folder/f00d,share=share:Abc1,share_pwd_file=/p"])
        else {
            Issue.record("not a mount request")
            return
        }
        #expect(request.options.shares.map(\.shareID) == ["Abc1", "Def2"], "in order, each once")
        #expect(request.options.shares.last?.folderID == "f00d")
        #expect(!request.options.readOnly && request.options.sharePasswordFile == "/p")
    }

    @Test(arguments: [
        (["Abc1/Videos/a.mkv", "/Movies"], "Abc1", nil, ["Videos", "a.mkv"]),
        (["share:Abc1", "/"], "Abc1", nil, []),
        (["https://www.alipan.com/s/Abc1/folder/f00d", "/x"], "Abc1", "f00d", []),
    ] as [([String], String, String?, [String])])
    func shareSaveParses(arguments: [String], shareID: String, folder: String?, path: [String]) throws {
        guard case .shareSave(let options) = try ArgumentParser.parse(["share", "save"] + arguments + ["--password-file", "/p"]) else {
            Issue.record("not a share save")
            return
        }
        #expect(options.share.shareID == shareID && options.share.folderID == folder && options.path == path)
        #expect(options.destination == arguments[1] && options.passwordFile == "/p")
    }

    @Test func everyOptionIsDocumentedInTheManPage() throws {
        let page = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../man/adrivefs.1").standardized
        let text = try String(contentsOf: page, encoding: .utf8)
        for spec in MountOptionSpec.all {
            #expect(text.contains(spec.name.replacingOccurrences(of: "_", with: "_")), "man page lacks \(spec.name)")
        }
    }

    @Test func sizesAcceptUnits() throws {
        guard case .mount(let request) = try ArgumentParser.parse(["adrive", "/m", "-o", "read_ahead=1G,cache_size=512K,disk_cache_size=20G"])
        else {
            Issue.record("not a mount request")
            return
        }
        #expect(request.options.readAhead == 1 << 30)
        #expect(request.options.cacheSize == 512 << 10)
        #expect(request.options.diskCacheSize == 20 << 30)
        #expect(MountOptions().diskCacheSize == 0)
        #expect {
            try MountOptions.parse(["disk_cache_size=lots"])
        } throws: { error in
            "\(error)" == "mount option 'disk_cache_size': 'lots' is not a size like 10G"
        }
    }
}

@Suite struct LoginParsingTests {
    @Test func loginAndAuthStatusTakeTheirFlags() throws {
        #expect(try ArgumentParser.parse(["login"]) == .login(.init()))
        #expect(try ArgumentParser.parse(["login", "--endpoint", "http://127.0.0.1:1", "--token-file", "/t"])
            == .login(.init(tokenFile: "/t", endpoint: "http://127.0.0.1:1")))
        guard case .login(let options) = try ArgumentParser.parse(["login", "--endpoint", "http://e"]) else { return }
        #expect(options.passport == "http://e", "the emulator answers the passport paths on its one base URL")
        #expect(LoginCommand.Options().passport == "https://passport.aliyundrive.com")
        #expect(try ArgumentParser.parse(["auth", "status", "--token-file", "/t"]) == .authStatus(.init(tokenFile: "/t")))
        #expect(throws: UsageError.self) { try ArgumentParser.parse(["login", "--endpoint", "ftp://x"]) }
        #expect(throws: UsageError.self) { try ArgumentParser.parse(["login", "--bogus"]) }
    }
}
