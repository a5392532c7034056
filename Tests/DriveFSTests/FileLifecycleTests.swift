@testable import DriveFS
import Testing

/// Every state × event of `FileLifecycle`, from a file at version 3 with one writer (an
/// upload in flight sends version 3); then the cases that depend on the writer count or on
/// a change during an upload, and whole sequences.
@Suite struct FileLifecycleTests {
    typealias State = FileLifecycle.State
    typealias Event = FileLifecycle.Event
    typealias Action = FileLifecycle.Action

    /// One event of each kind (uploads name the version in flight).
    static let events: [(name: String, event: Event)] = [
        ("fetched", .fetched), ("fetchFailed", .fetchFailed), ("leased", .leased), ("changed", .changed), ("flushed", .flushed), ("fsynced", .fsynced),
        ("released", .released), ("uploadStarted", .uploadStarted), ("uploadSucceeded", .uploadSucceeded(version: 3)),
        ("uploadFailed", .uploadFailed(version: 3, refused: false)), ("uploadRefused", .uploadFailed(version: 3, refused: true)),
        ("retryDue", .retryDue), ("unlinked", .unlinked),
    ]

    /// state → event name → (state after, actions). `nil` state: unchanged.
    static let table: [State: [String: (State?, [Action])]] = [
        .fetching: [
            // (Version 3: changed while fetching, i.e. emptied instead of filled.)
            "fetched": (.dirty, []), "fetchFailed": (.unlinked, [.drop]), "leased": (nil, []), "changed": (nil, []), "flushed": (nil, []), "fsynced": (nil, []),
            "released": (nil, []), "uploadStarted": (nil, []), "uploadSucceeded": (nil, []), "uploadFailed": (nil, []),
            "uploadRefused": (nil, []), "retryDue": (nil, []), "unlinked": (.unlinked, [.forgetUpload, .drop]),
        ],
        .clean: [
            "fetched": (nil, []), "fetchFailed": (nil, []), "leased": (nil, []), "changed": (.dirty, []), "flushed": (nil, []), "fsynced": (nil, []),
            "released": (nil, [.drop]), "uploadStarted": (nil, []), "uploadSucceeded": (nil, []), "uploadFailed": (nil, []),
            "uploadRefused": (nil, []), "retryDue": (nil, []), "unlinked": (.unlinked, [.forgetUpload, .drop]),
        ],
        .dirty: [
            "fetched": (nil, []), "fetchFailed": (nil, []), "leased": (nil, []), "changed": (nil, []), "flushed": (nil, [.upload]), "fsynced": (nil, [.upload]),
            "released": (nil, [.upload]), "uploadStarted": (.uploading, [.send(version: 3)]), "uploadSucceeded": (nil, []),
            "uploadFailed": (nil, []), "uploadRefused": (nil, []), "retryDue": (nil, [.upload]),
            "unlinked": (.unlinked, [.forgetUpload, .drop]),
        ],
        .uploading: [
            "fetched": (nil, []), "fetchFailed": (nil, []), "leased": (nil, []), "changed": (nil, []), "flushed": (nil, [.upload]), "fsynced": (nil, [.upload]),
            "released": (nil, []), "uploadStarted": (nil, []), "uploadSucceeded": (.clean, [.drop]),
            "uploadFailed": (.failed, [.retryLater]), "uploadRefused": (.refused, []), "retryDue": (nil, []),
            // The upload in flight finishes first; its success then drops the content.
            "unlinked": (.unlinked, [.forgetUpload]),
        ],
        .failed: [
            "fetched": (nil, []), "fetchFailed": (nil, []), "leased": (nil, []), "changed": (.dirty, []), "flushed": (nil, [.upload]), "fsynced": (nil, [.upload]),
            "released": (nil, [.upload]), "uploadStarted": (.uploading, [.send(version: 3)]), "uploadSucceeded": (nil, []),
            "uploadFailed": (nil, []), "uploadRefused": (nil, []), "retryDue": (nil, [.upload]),
            "unlinked": (.unlinked, [.forgetUpload, .drop]),
        ],
        .refused: [
            "fetched": (nil, []), "fetchFailed": (nil, []), "leased": (nil, []), "changed": (.dirty, []), "flushed": (nil, [.refuse]), "fsynced": (nil, [.refuse]),
            "released": (nil, []), "uploadStarted": (nil, [.refuse]), "uploadSucceeded": (nil, []), "uploadFailed": (nil, []),
            "uploadRefused": (nil, []), "retryDue": (nil, []), "unlinked": (.unlinked, [.forgetUpload, .drop]),
        ],
        .unlinked: [
            "fetched": (nil, []), "fetchFailed": (nil, []), "leased": (nil, []), "changed": (nil, []), "flushed": (nil, []), "fsynced": (nil, []),
            "released": (nil, [.drop]), "uploadStarted": (nil, []), "uploadSucceeded": (nil, [.drop]), "uploadFailed": (nil, []),
            "uploadRefused": (nil, []), "retryDue": (nil, []), "unlinked": (nil, [.forgetUpload, .drop]),
        ],
    ]

    @Test func theTableCoversEveryStateAndEvent() {
        #expect(Set(Self.table.keys) == Set(State.allCases))
        for (state, row) in Self.table {
            #expect(Set(row.keys) == Set(Self.events.map(\.name)), "\(state)")
        }
    }

    /// With one writer; `released` ends it (the last), and every other event leaves it.
    /// The drop of an `unlinked` or finished file needs no writer: these rows hold it at
    /// zero writers except where a writer is the point (`released`, `leased`).
    @Test(arguments: State.allCases)
    func everyEventFrom(_ state: State) {
        for (name, event) in Self.events {
            guard let (after, actions) = Self.table[state]?[name] else {
                Issue.record("no row for \(state) × \(name)")
                continue
            }
            let writers = name == "released" ? 1 : 0
            var lifecycle = FileLifecycle(state: state, version: 3, leases: writers)
            let got = lifecycle.handle(event)
            #expect(got == actions, "\(state) × \(name)")
            #expect(lifecycle.state == (after ?? state), "\(state) × \(name)")
        }
    }

    @Test func aWriterKeepsTheContentAndItsLastReleaseUploadsOrDrops() {
        var dirty = FileLifecycle(state: .dirty, leases: 2)
        #expect(dirty.handle(.released) == [])
        #expect(dirty.handle(.released) == [.upload])
        var uploading = FileLifecycle(state: .uploading, leases: 1)
        #expect(uploading.handle(.uploadSucceeded(version: 1)) == [])
        #expect(uploading.state == .clean && !uploading.canDrop)
        #expect(uploading.handle(.released) == [.drop])
        var unlinked = FileLifecycle(state: .dirty, leases: 1)
        #expect(unlinked.handle(.unlinked) == [.forgetUpload])
        #expect(unlinked.handle(.released) == [.drop])
        #expect(unlinked.canDrop && !unlinked.isDirty)
    }

    @Test func aChangeDuringAnUploadKeepsTheFileDirty() {
        var lifecycle = FileLifecycle(state: .dirty, version: 1)
        #expect(lifecycle.handle(.uploadStarted) == [.send(version: 1)])
        #expect(lifecycle.handle(.changed) == [])
        #expect(lifecycle.state == .uploading && lifecycle.version == 2)
        // Sent version 1; the drive does not have version 2: with no writer to upload it, upload again.
        #expect(lifecycle.handle(.uploadSucceeded(version: 1)) == [.upload])
        #expect(lifecycle.state == .dirty && lifecycle.isDirty)
        #expect(lifecycle.handle(.uploadStarted) == [.send(version: 2)])
        // A refusal of a version that has changed since is no verdict on the new content.
        #expect(lifecycle.handle(.changed) == [])
        #expect(lifecycle.handle(.uploadFailed(version: 2, refused: true)) == [.retryLater])
        #expect(lifecycle.state == .failed && lifecycle.isRetryable)
        // A stale answer (not the version in flight) changes nothing.
        #expect(lifecycle.handle(.uploadSucceeded(version: 2)) == [])
        #expect(lifecycle.state == .failed)
    }

    @Test func aNewFileLivesFromCreateToDrop() {
        var lifecycle = FileLifecycle(new: true)
        #expect(lifecycle.state == .dirty && lifecycle.version == 1 && lifecycle.isDirty)
        #expect(lifecycle.handle(.leased) == [])
        #expect(lifecycle.handle(.changed) == [])
        #expect(lifecycle.handle(.flushed) == [.upload])
        #expect(lifecycle.handle(.uploadStarted) == [.send(version: 2)])
        #expect(lifecycle.handle(.uploadFailed(version: 2, refused: false)) == [.retryLater])
        #expect(lifecycle.handle(.retryDue) == [.upload])
        #expect(lifecycle.handle(.uploadStarted) == [.send(version: 2)])
        #expect(lifecycle.handle(.uploadSucceeded(version: 2)) == [])
        #expect(lifecycle.handle(.released) == [.drop])
        #expect(lifecycle.canDrop && !lifecycle.isDirty)
    }

    @Test func refusedContentWaitsForAChange() {
        var lifecycle = FileLifecycle(state: .uploading, version: 5)
        #expect(lifecycle.handle(.uploadFailed(version: 5, refused: true)) == [])
        #expect(lifecycle.isDirty && !lifecycle.isRetryable)
        #expect(lifecycle.handle(.retryDue) == [])
        #expect(lifecycle.handle(.flushed) == [.refuse])
        #expect(lifecycle.handle(.changed) == [])
        #expect(lifecycle.handle(.flushed) == [.upload])
    }

    /// Write-back: a flush or the last release queues the upload (after making the content
    /// durable); fsync still uploads; a change during an upload is queued again.
    @Test func writeBackQueuesWhatCloseWouldUpload() {
        for state in [State.dirty, .failed] {
            var flushed = FileLifecycle(state: state, leases: 1, deferred: true)
            #expect(flushed.handle(.flushed) == [.uploadLater], "\(state)")
            #expect(flushed.handle(.fsynced) == [.upload], "\(state)")
            #expect(flushed.handle(.released) == [.uploadLater], "\(state)")
            #expect(flushed.state == state)
        }
        var uploading = FileLifecycle(state: .uploading, version: 1, deferred: true)
        #expect(uploading.handle(.flushed) == [.uploadLater])
        #expect(uploading.handle(.changed) == [])
        #expect(uploading.handle(.uploadSucceeded(version: 1)) == [.uploadLater])
        // A queued upload that comes due uploads, and its success drops the content.
        #expect(uploading.handle(.retryDue) == [.upload])
        #expect(uploading.handle(.uploadStarted) == [.send(version: 2)])
        #expect(uploading.handle(.uploadSucceeded(version: 2)) == [.drop])
        var refused = FileLifecycle(state: .refused, deferred: true)
        #expect(refused.handle(.flushed) == [.refuse])
        var clean = FileLifecycle(state: .clean, leases: 1, deferred: true)
        #expect(clean.handle(.flushed) == [] && clean.handle(.released) == [.drop])
    }

    @Test func aFetchThatFailsLeavesNothing() {
        var lifecycle = FileLifecycle(new: false)
        #expect(lifecycle.state == .fetching && !lifecycle.isDirty)
        #expect(lifecycle.handle(.fetchFailed) == [.drop])
        var fetched = FileLifecycle(new: false)
        #expect(fetched.handle(.fetched) == [])
        #expect(fetched.state == .clean && fetched.canDrop)
        // Emptied instead of filled (O_TRUNC): the drive's content is not this one.
        var emptied = FileLifecycle(new: false)
        #expect(emptied.handle(.changed) == [])
        #expect(emptied.handle(.fetched) == [])
        #expect(emptied.state == .dirty && emptied.isDirty)
    }
}
