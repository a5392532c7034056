import AliyunDrive
import DriveFS
import Foundation

/// `adrivefs status`: the JSON a mount answers on its control socket, and how it is shown.
enum StatusReport {
    static func json(_ request: MountRequest, _ prepared: Mounter.Prepared, since started: Date) -> [String: Any] {
        let status = prepared.fileSystem.status
        let now = Date().timeIntervalSince1970
        var object: [String: Any] = [
            "source": request.source, "mountpoint": request.mountpoint, "pid": Int(getpid()), "uptime_seconds": Int(Date().timeIntervalSince(started)),
            "uploads_in_progress": status.uploading.map { upload -> [String: Any] in
                let eta = upload.rate > 0 ? Double(upload.size - upload.sent) / upload.rate : -1
                return ["path": upload.path, "size": upload.size, "sent": upload.sent, "rate": Int(upload.rate), "eta_seconds": Int(eta.rounded())]
            },
            "uploads_pending": status.waiting.map { ["path": $0.path, "since_seconds": Int(now - $0.since), "error": $0.error] as [String: Any] },
            "uploads_queued": status.queued.map { ["path": $0.path, "due_in_seconds": Int($0.dueIn.rounded(.up))] as [String: Any] },
            "shares": status.shares.map { share -> [String: Any] in
                var entry: [String: Any] = ["share_id": share.shareID, "available": !share.gone]
                if let folder = share.folder { entry["folder"] = folder }
                return entry
            },
            "reads_in_flight": status.readsInFlight,
            "memory_cache": [
                "used": status.memoryCache.used, "capacity": status.memoryCache.capacity, "hits": status.memoryCache.hits,
                "misses": status.memoryCache.misses,
            ],
            "service_unreachable": status.serviceUnreachable,
        ]
        if let disk = status.diskCache { object["disk_cache"] = ["used": disk.used, "capacity": disk.capacity] }
        if let client = prepared.account {
            let counts = client.callCounts
            object["api"] = ["calls": counts.calls, "throttled": counts.throttled]
            if let account = client.account {
                object["account"] = ["user_id": account.userID, "nick_name": account.nickName, "drive_id": client.driveID]
            }
        }
        return object
    }

    /// The human form of one mount's answer; `bars`: progress bars (for --watch).
    static func text(_ object: [String: Any], bars: Bool) -> [String] {
        let account = object["account"] as? [String: Any]
        var lines = [
            "\(object["source"] as? String ?? "?") on \(object["mountpoint"] as? String ?? "?")"
                + (account.map { " — \($0["nick_name"] as? String ?? "?") (user \($0["user_id"] as? String ?? "?"))" } ?? "")
                + ", up \(duration(object["uptime_seconds"] as? Int ?? 0))"
        ]
        let running = object["uploads_in_progress"] as? [[String: Any]] ?? []
        let pending = object["uploads_pending"] as? [[String: Any]] ?? []
        let queued = object["uploads_queued"] as? [[String: Any]] ?? []
        if running.isEmpty && pending.isEmpty && queued.isEmpty { lines.append("  no uploads pending") }
        for upload in running {
            let size = upload["size"] as? Int ?? 0
            let sent = upload["sent"] as? Int ?? 0
            let fraction = size > 0 ? Double(sent) / Double(size) : 0
            let bar = bars ? " [" + String(repeating: "#", count: Int(fraction * 20)) + String(repeating: ".", count: 20 - Int(fraction * 20)) + "]" : ""
            let eta = upload["eta_seconds"] as? Int ?? -1
            lines.append(
                "  uploading \(upload["path"] as? String ?? "?")\(bar) \(bytes(sent)) of \(bytes(size)), \(bytes(upload["rate"] as? Int ?? 0))/s"
                    + (eta >= 0 ? ", \(duration(eta)) left" : ""))
        }
        for upload in pending {
            lines.append("  waiting to retry \(upload["path"] as? String ?? "?") (since \(duration(upload["since_seconds"] as? Int ?? 0))): \(upload["error"] as? String ?? "")")
        }
        for upload in queued {
            let due = upload["due_in_seconds"] as? Int ?? 0
            lines.append("  written back \(upload["path"] as? String ?? "?"): " + (due > 0 ? "uploads in \(duration(due))" : "uploads now"))
        }
        for share in object["shares"] as? [[String: Any]] ?? [] {
            let id = "share:" + (share["share_id"] as? String ?? "?")
            let place = (share["folder"] as? String).map { "\($0) (\(id))" } ?? id
            lines.append("  share \(place)" + ((share["available"] as? Bool ?? true) ? "" : ": no longer available"))
        }
        let memory = object["memory_cache"] as? [String: Int] ?? [:]
        let lookups = (memory["hits"] ?? 0) + (memory["misses"] ?? 0)
        var cache = "  memory cache \(bytes(memory["used"] ?? 0)) of \(bytes(memory["capacity"] ?? 0))"
        if lookups > 0 { cache += String(format: ", hit rate %.0f %%", Double(memory["hits"] ?? 0) * 100 / Double(lookups)) }
        if let disk = object["disk_cache"] as? [String: Int] { cache += "; disk cache \(bytes(disk["used"] ?? 0)) of \(bytes(disk["capacity"] ?? 0))" }
        lines.append(cache)
        let api = object["api"] as? [String: Int] ?? [:]
        lines.append(
            "  reads in flight \(object["reads_in_flight"] as? Int ?? 0); API calls \(api["calls"] ?? 0) (throttled \(api["throttled"] ?? 0)); service "
                + ((object["service_unreachable"] as? Bool ?? false) ? "UNREACHABLE" : "reachable"))
        return lines
    }

    static func bytes(_ count: Int) -> String { DriveFileSystem.formatSize(Int64(count)) }

    static func duration(_ seconds: Int) -> String {
        seconds < 60 ? "\(seconds) s" : seconds < 3600 ? "\(seconds / 60) min \(seconds % 60) s" : "\(seconds / 3600) h \(seconds / 60 % 60) min"
    }
}

/// `adrivefs status [MOUNTPOINT] [--json] [--watch]` and `adrivefs refresh [PATH]`.
public enum StatusCommand {
    public struct Options: Equatable, Sendable {
        public var path: String?
        public var json = false
        public var watch = false
    }

    /// The mounts' answers (those at or containing `path`, when given).
    static func answers(_ request: String, path: String?) -> [[String: Any]] {
        let resolved = path.map { URL(fileURLWithPath: $0).resolvingSymlinksInPath().path }
        var found = ControlSocket.all().compactMap { ControlSocket.ask($0, request) }
        if let resolved {
            found = found.filter { answer in
                let mountpoint = answer["mountpoint"] as? String ?? ""
                return resolved == mountpoint || resolved.hasPrefix(mountpoint + "/")
            }
        }
        return found
    }

    public static func status(_ options: Options) -> Int32 {
        repeat {
            let found = answers("status", path: options.path)
            if found.isEmpty {
                Daemon.fail(options.path.map { "no adrivefs mount at \($0)" } ?? "no adrivefs mount is running (for this user)")
                return 1
            }
            if options.json {
                let data = (try? JSONSerialization.data(withJSONObject: found, options: [.sortedKeys, .prettyPrinted])) ?? Data()
                print(String(decoding: data, as: UTF8.self))
            } else {
                if options.watch { print("\u{1B}[H\u{1B}[2J", terminator: "") }
                print(found.flatMap { StatusReport.text($0, bars: options.watch) }.joined(separator: "\n"))
            }
            if options.watch { Thread.sleep(forTimeInterval: 1) }
        } while options.watch
        return 0
    }

    public static func refresh(path: String?) -> Int32 {
        let found = answers("refresh", path: path)
        guard !found.isEmpty else {
            Daemon.fail(path.map { "no adrivefs mount at \($0)" } ?? "no adrivefs mount is running (for this user)")
            return 1
        }
        return 0
    }
}
