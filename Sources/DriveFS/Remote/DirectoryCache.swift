import AliyunDrive
import Foundation
import Glibc
import Synchronization

/// Folder listings, trusted for `ttl` seconds. Concurrent requests for the same folder
/// share one listing call (single-flight). Duplicate names (allowed by the service) get
/// a deterministic, distinct display name: the oldest keeps the name, the others get
/// ` (first 8 hex of file_id)` before the extension. Nothing is ever silently dropped.
final class DirectoryCache: Sendable {
    struct Listing: Sendable {
        /// Display name → entry, sorted by display name.
        var entries: [(name: String, child: Child)]
        var byName: [String: Child]
        var fetchedAt: Double
        /// What the service listed (own mutations applied since), without local files.
        var serverItems: [DriveItem] = []
    }

    private struct State {
        var listings: [String: Listing] = [:]
        var inFlight: [String: Task<Listing, any Error>] = [:]
        /// Files created on this mount and not uploaded yet, by folder then file_id: they
        /// join every listing of their folder, fresh or cached, until uploaded or removed.
        var local: [String: [UUID: DriveItem]] = [:]
        /// Counts own mutations per folder. A listing call that was in flight across one may
        /// predate it, so its result is served to its waiters but not trusted afterwards.
        var generations: [String: UInt64] = [:]

        mutating func mutated(_ folderID: String) { generations[folderID, default: 0] &+= 1 }

        func localItems(_ folderID: String) -> [Child] { (local[folderID] ?? [:]).map { Child(local: $0.key, item: $0.value) } }

        mutating func removeLocal(_ id: UUID, in folderID: String) {
            local[folderID]?[id] = nil
            if local[folderID]?.isEmpty == true { local[folderID] = nil }
        }
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
            let generation = state.generations[folderID, default: 0]
            let running = Task { try await self.fetch(folderID, at: current, generation: generation) }
            state.inFlight[folderID] = running
            return .running(running)
        }
        switch source {
        case .cached(let listing): return listing
        case .running(let task): return try await cancellableValue(of: task)
        }
    }

    /// One listing call; stores the result itself, so a caller that stops waiting (an
    /// interrupted `ls`) leaves nothing half done. If this mount changed the folder while
    /// the call was out, the result may not show the change: it is stored already expired,
    /// so the next access lists again instead of hiding the change for a whole TTL.
    private func fetch(_ folderID: String, at current: Double, generation: UInt64) async throws -> Listing {
        do {
            let items = try await service.list(folderID: folderID)
            return state.withLock { state in
                state.inFlight[folderID] = nil
                let current = state.generations[folderID, default: 0] == generation ? current : -Double.infinity
                let listing = Self.build(items, local: state.localItems(folderID), fetchedAt: current)
                state.listings[folderID] = listing
                return listing
            }
        } catch {
            // Stale beats nothing while the service is unreachable or failing; a folder
            // that is gone is gone.
            let stale = state.withLock { state in
                state.inFlight[folderID] = nil
                return state.listings[folderID]
            }
            if let stale, DriveFSError(error).errno != ENOENT { return stale }
            throw error
        }
    }

    func invalidate(_ folderID: String) {
        state.withLock { state in
            state.mutated(folderID)
            state.listings[folderID] = nil
        }
    }

    /// Drops every cached listing (local entries of files not uploaded yet stay).
    func invalidateAll() {
        state.withLock { state in
            for folderID in Array(state.listings.keys) { state.mutated(folderID) }
            state.listings = [:]
        }
    }

    /// Applies an own mutation to a folder's cached server items (if cached), so the
    /// change shows at once without a new listing call.
    func update(_ folderID: String, _ change: (inout [DriveItem]) -> Void) {
        state.withLock { state in
            state.mutated(folderID)
            guard var listing = state.listings[folderID] else { return }
            change(&listing.serverItems)
            state.listings[folderID] = Self.build(listing.serverItems, local: state.localItems(folderID), fetchedAt: listing.fetchedAt)
        }
    }

    /// Adds, replaces (same id) or, with `remove`, drops a local (not yet uploaded) file
    /// of `folderID`.
    func setLocal(_ id: UUID, _ item: DriveItem, in folderID: String, remove: Bool = false) {
        state.withLock { state in
            if remove {
                state.removeLocal(id, in: folderID)
            } else {
                state.local[folderID, default: [:]][id] = item
            }
            guard let listing = state.listings[folderID] else { return }
            state.listings[folderID] = Self.build(listing.serverItems, local: state.localItems(folderID), fetchedAt: listing.fetchedAt)
        }
    }

    /// A file's new content is on the server as `item`: it takes the place of `oldID`
    /// (the local entry or the previous version) in one step, so the name never vanishes
    /// or shows twice.
    func uploaded(_ item: DriveItem, replacing oldID: FileID) {
        state.withLock { state in
            let folderID = item.parentID
            state.mutated(folderID)
            if case .local(let local) = oldID { state.removeLocal(local, in: folderID) }
            guard var listing = state.listings[folderID] else { return }
            listing.serverItems.removeAll { $0.fileID == oldID.serverID || $0.fileID == item.fileID }
            listing.serverItems.append(item)
            state.listings[folderID] = Self.build(listing.serverItems, local: state.localItems(folderID), fetchedAt: listing.fetchedAt)
        }
    }

    /// Records the listing of a folder this mount just created (empty), saving a call.
    func seedEmpty(_ folderID: String) {
        let current = now()
        state.withLock { $0.listings[folderID] = Self.build([], local: [], fetchedAt: current) }
    }

    static func build(_ items: [DriveItem], local: [Child], fetchedAt: Double) -> Listing {
        var groups: [String: [Child]] = [:]
        for child in items.map(Child.init) + local where child.item.name != "." && child.item.name != ".." && !child.item.name.isEmpty {
            groups[child.item.name.replacingOccurrences(of: "/", with: "∕"), default: []].append(child)
        }
        var byName: [String: Child] = [:]
        for (name, group) in groups {
            let ordered = group.sorted { ($0.item.createdAt, $0.id.description) < ($1.item.createdAt, $1.id.description) }
            byName[name] = ordered[0]
            for child in ordered.dropFirst() {
                byName[disambiguated(name, fileID: SharedID.serviceID(child.id.description))] = child
            }
        }
        let entries = byName.sorted { $0.key < $1.key }.map { (name: $0.key, child: $0.value) }
        return Listing(entries: entries, byName: byName, fetchedAt: fetchedAt, serverItems: items)
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
