import AliyunDrive
import DriveFS
import Foundation
import Glibc
import HTTPTransport

/// Mounting a share: always read-only; lists with the share token alone, reads with the
/// user's own login (the same token file as `adrive`) when there is one.
extension Mounter {
    static func prepareShare(_ request: MountRequest, _ source: ShareSource) throws -> Prepared {
        let options = request.options
        var notes: [String] = []
        let mountpoint = try checkMountpoint(request.mountpoint)
        let password = try sharePassword(source.shareID, options)
        let http = try CurlHTTPClient(configuration: .init(caFile: options.caFile))
        var owner: AliyunDriveClient?
        let (token, tokenFile) = refreshToken(options)
        if let token {
            let client = AliyunDriveClient(
                configuration: .init(endpoint: options.endpoint, tokenFile: tokenFile, stateDirectory: stateDirectory), http: http, refreshToken: token)
            if case .failure(let error) = blocking({ try await client.start() }) {
                http.shutdown()
                throw UsageError(describe(error, endpoint: options.endpoint, rootID: options.rootID))
            }
            owner = client
        } else {
            notes.append("no refresh token (\(tokenFile)): the share lists, but reading its files needs a logged-in account")
        }
        let share = ShareClient(shareID: source.shareID, password: password ?? "", endpoint: options.endpoint, http: http, owner: owner)
        switch blocking({ try await share.start() }) {
        case .failure(let error):
            http.shutdown()
            throw UsageError(describeShare(error, source.shareID, passwordGiven: password != nil, endpoint: options.endpoint))
        case .success(let info):
            notes.append("share \(source.shareID): \(info.title) by \(info.creator.isEmpty ? "?" : info.creator)")
        }
        let lockDirectory = stateDirectory + "/share-copies/" + (owner.map { $0.userID + "-" + $0.driveID } ?? "none")
        let drive = ShareDrive(share: share, copyTTL: options.shareCopyTTL ?? 900, lockDirectory: lockDirectory)
        let cacheRoot = options.cacheDirectory ?? cacheDirectory
        var configuration = DriveFSConfiguration(
            rootID: options.rootID, uid: options.uid ?? getuid(), gid: options.gid ?? getgid(), umask: options.umask,
            directoryCacheTTL: options.directoryCacheTTL, cacheSize: options.cacheSize, readAhead: options.readAhead, readOnly: true,
            state: StateLayout(journalRoot: stateDirectory + "/pending", stagingRoot: cacheRoot + "/staging", binding: nil),
            diskCacheDirectory: cacheRoot + "/chunks", diskCacheSize: options.diskCacheSize, timesDirectory: nil)
        configuration.shareID = source.shareID
        configuration.maxStreams = options.maxStreams
        let fileSystem = try makeFileSystem(service: drive, configuration: configuration, http: http)
        if case .failure(let error) = blocking({ try await fileSystem.validateRoot() }) {
            http.shutdown()
            let what = options.rootID == "root" ? "share \(source.shareID)" : "folder \(options.rootID) of share \(source.shareID)"
            throw UsageError(
                (error as? DriveFSError)?.errno == ENOTDIR ? "\(what) is not a folder" : describeShare(error, source.shareID, passwordGiven: true, endpoint: options.endpoint, what: what))
        }
        let session = try mount(fileSystem, request, at: mountpoint, http: http)
        return Prepared(
            session: session, http: http, fileSystem: fileSystem, started: { await drive.start() }, stopping: { await drive.shutdown() },
            notes: notes, account: owner)
    }

    /// The shares of `share=` on an own-drive mount, each started (info, token: a wrong
    /// password or a gone share fails the mount with its line), under `.shares`.
    static func sharesInDrive(_ options: MountOptions, owner: AliyunDriveClient, http: CurlHTTPClient) throws -> DriveWithShares? {
        guard !options.shares.isEmpty else { return nil }
        var started: [(source: ShareSource, client: ShareClient, info: ShareClient.Info)] = []
        for source in options.shares {
            let password = try sharePassword(source.shareID, options, required: false)
            let client = ShareClient(shareID: source.shareID, password: password ?? "", endpoint: options.endpoint, http: http, owner: owner)
            switch blocking({ try await client.start() }) {
            case .failure(let error):
                throw UsageError("share=\(source.shareID): " + describeShare(error, source.shareID, passwordGiven: password != nil, endpoint: options.endpoint))
            case .success(let info): started.append((source, client, info))
            }
        }
        let names = DriveWithShares.folderNames(started.map { ($0.source.shareID, $0.info.title) })
        let lockDirectory = stateDirectory + "/share-copies/" + owner.userID + "-" + owner.driveID
        let shares = zip(started, names).map { share, name in
            DriveWithShares.Share(
                name: name, drive: ShareDrive(share: share.client, copyTTL: options.shareCopyTTL ?? 900, lockDirectory: lockDirectory),
                rootID: share.source.folderID ?? "root")
        }
        return DriveWithShares(own: owner, mountRootID: options.rootID, shares: shares)
    }

    /// The password: `ADRIVEFS_SHARE_PWD`, else `share_pwd_file` (the password alone, or
    /// lines of `SHARE_ID PASSWORD`); nil when neither gives one. `required`: a file
    /// without this share's line is an error (a share mount), else it means no password.
    static func sharePassword(_ shareID: String, _ options: MountOptions, required: Bool = true) throws -> String? {
        if let value = ProcessInfo.processInfo.environment["ADRIVEFS_SHARE_PWD"], !value.isEmpty { return value }
        guard let path = options.sharePasswordFile else { return nil }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw UsageError("cannot read share_pwd_file \(path)")
        }
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
        for line in lines {
            let fields = line.split(whereSeparator: \.isWhitespace).map(String.init)
            if fields.count == 2, fields[0] == shareID { return fields[1] }
        }
        if lines.count == 1, !lines[0].contains(where: \.isWhitespace) { return lines[0] }
        if !required { return nil }
        throw UsageError("share_pwd_file \(path) has no password for share \(shareID) (one line: the password, or SHARE_ID PASSWORD)")
    }

    /// One line for a share that cannot be mounted.
    static func describeShare(_ error: any Error, _ shareID: String, passwordGiven: Bool, endpoint: String, what: String? = nil) -> String {
        let what = what ?? "share \(shareID)"
        guard let error = error as? DriveError else { return "\(what): \(error)" }
        switch error.code {
        case "NotFound.ShareLink": return "no share with id \(shareID)"
        case "ShareLink.Cancelled": return "share \(shareID) was cancelled by its creator"
        case "ShareLink.Expired": return "share \(shareID) has expired"
        case "ShareLink.Forbidden": return "share \(shareID) is blocked by the service"
        case let code where code.hasSuffix(".SharePwd"):
            return passwordGiven
                ? "wrong password for share \(shareID)"
                : "share \(shareID) needs a password: set ADRIVEFS_SHARE_PWD or share_pwd_file=PATH"
        default: break
        }
        if error.kind == .unreachable { return "cannot reach \(endpoint): \(error.message)" }
        if error.isNotFound { return "\(what) does not exist" }
        return "\(what): \(error)"
    }
}
