import AliyunDrive
import DriveFS
import Foundation
import Glibc
import HTTPTransport
import Synchronization

/// `adrivefs share save SHARE[/PATH] DEST`: saves a shared file or folder into the user's
/// drive server-side (转存: no byte is downloaded or uploaded, whatever the size), with no
/// mount. As `cp -r` would: DEST an existing folder → saved into it under the source's
/// name; DEST not there → saved as DEST (its folder must exist); a file of the same name is
/// replaced (the old one goes to the trash once the new one is complete); a folder of the
/// same name is merged into, entry by entry. No PATH: every entry of the share's top level
/// (or of the folder its link names) is saved into DEST, which is made if missing.
public enum ShareSaveCommand {
    public struct Options: Equatable, Sendable {
        public var share: ShareSource
        /// Names below the share's top level (or its link's folder); empty: all of it.
        public var path: [String]
        public var destination: String
        public var passwordFile: String?
        public var tokenFile: String?
        public var endpoint = "https://api.aliyundrive.com"
    }

    static let usage = "usage: adrivefs share save SHARE_ID|share:SHARE_ID|LINK[/PATH] DEST_PATH [--password-file F] [--token-file F] [--endpoint URL]"

    static func parse(_ arguments: [String]) throws(UsageError) -> Options {
        var positional: [String] = []
        var values: [String: String] = [:]
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if ["--password-file", "--token-file", "--endpoint"].contains(argument) {
                guard index + 1 < arguments.count else { throw UsageError("\(argument) needs a value\n\(usage)") }
                values[argument] = arguments[index + 1]
                index += 2
                continue
            }
            guard !argument.hasPrefix("-") || argument == "-" else { throw UsageError("unknown flag '\(argument)'\n\(usage)") }
            positional.append(argument)
            index += 1
        }
        guard positional.count == 2 else { throw UsageError(usage) }
        let (share, path) = try source(positional[0])
        guard positional[1].hasPrefix("/") else { throw UsageError("DEST_PATH is a path in your drive, from its root: /Movies, /TV/Season1") }
        if let endpoint = values["--endpoint"], !(endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://")) {
            throw UsageError("--endpoint: '\(endpoint)' is not an http(s) URL")
        }
        var options = Options(share: share, path: path, destination: positional[1], passwordFile: values["--password-file"], tokenFile: values["--token-file"])
        if let endpoint = values["--endpoint"] { options.endpoint = endpoint }
        return options
    }

    /// `ID/a/b`, `share:ID/a/b`, or a link (whose folder, if it names one, is the base).
    static func source(_ text: String) throws(UsageError) -> (ShareSource, [String]) {
        if let link = try? ShareSource.parse(text), text.hasPrefix("http") { return (link, []) }
        let bare = text.hasPrefix("share:") ? String(text.dropFirst("share:".count)) : text
        let parts = bare.split(separator: "/").map(String.init)
        guard let id = parts.first, ShareSource.isValidID(id) else {
            if text.hasPrefix("http") { _ = try ShareSource.parse(text) }
            throw UsageError("'\(text)' is not a share: expected SHARE_ID[/PATH], share:SHARE_ID[/PATH] or https://www.alipan.com/s/SHARE_ID")
        }
        return (ShareSource(shareID: id), Array(parts.dropFirst()))
    }

    public static func run(_ options: Options) -> Int32 {
        var mountOptions = MountOptions()
        mountOptions.sharePasswordFile = options.passwordFile
        mountOptions.tokenFile = options.tokenFile
        mountOptions.endpoint = options.endpoint
        let password: String?
        do {
            password = try Mounter.sharePassword(options.share.shareID, mountOptions)
        } catch {
            Daemon.fail("\(error)")
            return 1
        }
        let (found, tokenFile) = Mounter.refreshToken(mountOptions)
        guard let token = found else {
            Daemon.fail("saving from a share needs your login: run adrivefs login (or adrivefs auth import); looked in \(tokenFile)")
            return 1
        }
        let progress = Progress(terminal: isatty(STDERR_FILENO) == 1)
        let result: Result<Void, any Error> = Mounter.blocking {
            let http = try CurlHTTPClient()
            defer { http.shutdown() }
            let owner = AliyunDriveClient(
                configuration: .init(endpoint: options.endpoint, tokenFile: tokenFile, stateDirectory: Mounter.stateDirectory), http: http, refreshToken: token)
            do {
                try await owner.start()
            } catch {
                throw UsageError(Mounter.describe(error, endpoint: options.endpoint, rootID: "root"))
            }
            let share = ShareClient(shareID: options.share.shareID, password: password ?? "", endpoint: options.endpoint, http: http, owner: owner)
            do {
                _ = try await share.start()
            } catch {
                let line = Mounter.describeShare(error, options.share.shareID, passwordGiven: password != nil, endpoint: options.endpoint)
                throw UsageError(line.replacingOccurrences(of: "share_pwd_file=PATH", with: "--password-file F"))
            }
            let saver = Saver(owner: owner, share: share, progress: progress)
            try await saver.save(options)
        }
        progress.clear()
        switch result {
        case .success: return 0
        case .failure(let error):
            Daemon.fail("share save: \(describe(error))")
            return 1
        }
    }

    static func describe(_ error: any Error) -> String {
        guard let error = error as? DriveError else { return "\(error)" }
        switch error.condition {
        case .noSpace: return "your drive is full (\(error.code)): a saved file counts against your quota"
        case .permissionDenied: return "the service refuses to save it (\(error.code)): the file is blocked"
        case .shareGone: return "the share is no longer available (\(error.code))"
        default: return error.kind == .unreachable ? "cannot reach the service: \(error.message)" : "\(error)"
        }
    }

    /// The walk: the source in the share, the destination in the drive, one save per entry
    /// (a folder in one save, unless a folder of its name is there to merge into).
    struct Saver: Sendable {
        let owner: AliyunDriveClient
        let share: ShareClient
        let progress: Progress

        func save(_ options: Options) async throws {
            let base = options.share.folderID ?? "root"
            let (destinationParent, destinationName) = split(options.destination)
            let destination = try await find(path: options.destination)
            if options.path.isEmpty {
                // All of the share (or its link's folder) into DEST, made if missing.
                let folder: String
                if let destination {
                    guard destination.isFolder else { throw UsageError("\(options.destination) is a file: saving a whole share needs a folder") }
                    folder = destination.fileID
                } else {
                    guard let parent = try await find(path: destinationParent), parent.isFolder else {
                        throw UsageError("\(destinationParent) is not a folder in your drive")
                    }
                    folder = try await owner.ensureFolder(parentID: parent.fileID, name: destinationName)
                }
                try await saveAll(try await share.list(folderID: base), into: folder, under: options.destination)
                return
            }
            let source = try await resolve(options.path, from: base)
            if let destination, destination.isFolder {
                try await saveAll([source], into: destination.fileID, under: options.destination)
            } else {
                guard let parent = try await find(path: destinationParent), parent.isFolder else {
                    throw UsageError("\(destinationParent) is not a folder in your drive")
                }
                if destination != nil, source.isFolder { throw UsageError("\(options.destination) is a file; \(source.name) is a folder") }
                let there = try await owner.list(folderID: parent.fileID)
                try await saveEntry(source, into: parent.fileID, holding: there, as: destinationName, shownAs: options.destination)
            }
        }

        /// Shared entries into `folderID` under their own names (the folder listed once).
        private func saveAll(_ entries: [DriveItem], into folderID: String, under path: String) async throws {
            let there = try await owner.list(folderID: folderID)
            for entry in entries { try await saveEntry(entry, into: folderID, holding: there, as: entry.name, shownAs: join(path, entry.name)) }
        }

        /// One shared entry into `folderID` (whose entries are `there`) under `name`: a file
        /// replaces a file of that name (trashed once the copy is complete); a folder merges
        /// into a folder of that name, else is saved whole (the service's folder copy,
        /// polled to its end).
        private func saveEntry(_ entry: DriveItem, into folderID: String, holding there: [DriveItem], as name: String, shownAs path: String) async throws {
            if entry.blocked {
                progress.line("skipped \(path): blocked by the service")
                return
            }
            let existing = there.filter { $0.name == name }
            if entry.isFolder, let folder = existing.first(where: \.isFolder) {
                try await saveAll(try await share.list(folderID: entry.fileID), into: folder.fileID, under: path)
                return
            }
            if !entry.isFolder, existing.contains(where: \.isFolder) { throw UsageError("\(path) is a folder in your drive; \(entry.name) is a file") }
            let started = Date()
            let punished = PunishedCount()
            _ = try await share.save(fileID: entry.fileID, toParentID: folderID, name: name) { task in
                punished.set(task.punished)
                progress.status("saving \(path): \(task.done) of \(task.total) items")
            }
            for old in existing where !old.isFolder { try await owner.trash(fileID: old.fileID) }
            let what = entry.isFolder ? "folder" : DriveFileSystem.formatSize(entry.size)
            let left = punished.value > 0 ? "; \(punished.value) blocked file(s) left out" : ""
            let replaced = existing.isEmpty ? "" : "; the old one is in the trash"
            progress.line(
                "saved \(path) (\(what)) in \(String(format: "%.1f", Date().timeIntervalSince(started))) s — 0 bytes moved\(replaced)\(left)")
        }

        /// A shared entry by its names below `base`.
        private func resolve(_ names: [String], from base: String) async throws -> DriveItem {
            var folder = base
            var found: DriveItem?
            for (index, name) in names.enumerated() {
                guard found?.isFolder ?? true else { throw UsageError("\(names[..<index].joined(separator: "/")) is a file") }
                guard let entry = try await share.list(folderID: folder).first(where: { $0.name == name }) else {
                    throw UsageError("the share has no \(names[...index].joined(separator: "/"))")
                }
                found = entry
                folder = entry.fileID
            }
            guard let found else { throw UsageError("nothing to save") }
            return found
        }

        /// An entry of the drive by path (`/` is the root), nil if there is none.
        private func find(path: String) async throws -> DriveItem? {
            var item = DriveItem(fileID: "root", parentID: "", name: "", isFolder: true, size: 0, contentHash: nil, createdAt: 0, updatedAt: 0)
            for name in path.split(separator: "/").map(String.init) {
                guard item.isFolder, let next = try await owner.list(folderID: item.fileID).first(where: { $0.name == name }) else { return nil }
                item = next
            }
            return item
        }

        private func split(_ path: String) -> (parent: String, name: String) {
            let parts = path.split(separator: "/").map(String.init)
            return ("/" + parts.dropLast().joined(separator: "/"), parts.last ?? "")
        }

        private func join(_ folder: String, _ name: String) -> String { folder.hasSuffix("/") ? folder + name : folder + "/" + name }
    }

    /// Lines on stdout; on a terminal also a status line on stderr, redrawn in place.
    final class Progress: Sendable {
        let terminal: Bool

        init(terminal: Bool) { self.terminal = terminal }

        func status(_ text: String) {
            guard terminal else { return }
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + text).utf8))
        }

        func line(_ text: String) {
            clear()
            print(text)
            fflush(nil)
        }

        func clear() {
            if terminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        }
    }

    private final class PunishedCount: Sendable {
        private let count = Mutex(0)
        func set(_ value: Int) { count.withLock { $0 = max($0, value) } }
        var value: Int { count.withLock { $0 } }
    }
}
