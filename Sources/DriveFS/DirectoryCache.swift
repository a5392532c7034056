import AliyunDrive
import Foundation
import Synchronization

/// Folder listings, trusted for `ttl` seconds. Concurrent requests for the same folder
/// share one listing call (single-flight). Duplicate names (allowed by the service) get
/// a deterministic, distinct display name: the oldest keeps the name, the others get
/// ` (first 8 hex of file_id)` before the extension. Nothing is ever silently dropped.
final class DirectoryCache: Sendable {
    struct Listing: Sendable {
        /// Display name → item, sorted by display name.
        var entries: [(name: String, item: DriveItem)]
        var byName: [String: DriveItem]
        var fetchedAt: Double
    }

    private struct State {
        var listings: [String: Listing] = [:]
        var inFlight: [String: Task<Listing, any Error>] = [:]
    }

    private let service: any DriveService
    private let ttl: Double
    private let now: @Sendable () -> Double
    private let state = Mutex(State())

    init(service: any DriveService, ttl: Double, now: @escaping @Sendable () -> Double) {
        self.service = service
        self.ttl = ttl
        self.now = now
    }

    func listing(_ folderID: String) async throws -> Listing {
        let current = now()
        enum Source { case cached(Listing), running(Task<Listing, any Error>) }
        let source: Source = state.withLock { state in
            if let cached = state.listings[folderID], current - cached.fetchedAt < ttl { return .cached(cached) }
            if let running = state.inFlight[folderID] { return .running(running) }
            let service = self.service
            let running = Task { Self.build(try await service.list(folderID: folderID), fetchedAt: current) }
            state.inFlight[folderID] = running
            return .running(running)
        }
        let task: Task<Listing, any Error>
        switch source {
        case .cached(let listing): return listing
        case .running(let running): task = running
        }
        do {
            let listing = try await task.value
            state.withLock { state in
                state.inFlight[folderID] = nil
                state.listings[folderID] = listing
            }
            return listing
        } catch {
            state.withLock { $0.inFlight[folderID] = nil }
            throw error
        }
    }

    func invalidate(_ folderID: String) { _ = state.withLock { $0.listings.removeValue(forKey: folderID) } }

    static func build(_ items: [DriveItem], fetchedAt: Double) -> Listing {
        var groups: [String: [DriveItem]] = [:]
        for item in items where item.name != "." && item.name != ".." && !item.name.isEmpty {
            groups[item.name.replacingOccurrences(of: "/", with: "∕"), default: []].append(item)
        }
        var byName: [String: DriveItem] = [:]
        for (name, group) in groups {
            let ordered = group.sorted { ($0.createdAt, $0.fileID) < ($1.createdAt, $1.fileID) }
            byName[name] = ordered[0]
            for item in ordered.dropFirst() {
                byName[disambiguated(name, fileID: item.fileID)] = item
            }
        }
        let entries = byName.sorted { $0.key < $1.key }.map { (name: $0.key, item: $0.value) }
        return Listing(entries: entries, byName: byName, fetchedAt: fetchedAt)
    }

    /// `report.txt` → `report (1a2b3c4d).txt`.
    static func disambiguated(_ name: String, fileID: String) -> String {
        let suffix = " (\(fileID.prefix(8)))"
        if let dot = name.lastIndex(of: "."), dot != name.startIndex {
            return String(name[..<dot]) + suffix + String(name[dot...])
        }
        return name + suffix
    }
}
