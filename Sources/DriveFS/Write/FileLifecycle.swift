/// The write lifecycle of one file with local content, as a pure value: state + event →
/// actions, no I/O (`FileWriter` holds one and carries the actions out). A table test
/// covers every state × event (`FileLifecycleTests`).
///
/// `version` counts changes to the local content; an upload sends one version and, once
/// the drive has it, the file is clean only if nothing changed meanwhile. `leases` counts
/// the writers (open handles that may write, or an operation writing for a moment).
///
/// With write-back (`deferred`), a flush or the last release does not upload: it makes the
/// content durable here and queues its upload (`uploadLater`); fsync still uploads.
struct FileLifecycle: Sendable, Equatable {
    enum State: Sendable, Equatable, CaseIterable {
        /// The drive's content is being copied in before the first change (or the content
        /// is being emptied instead: a change).
        /// fetched → clean, or dirty after a change; fetchFailed → unlinked + drop;
        /// unlinked → unlinked.
        case fetching
        /// The drive has exactly this content.
        /// changed → dirty; unlinked → unlinked; last released → drop.
        case clean
        /// Changed since the drive got it.
        /// uploadStarted → uploading (send); fsynced, retryDue → upload; flushed, last
        /// released → upload (deferred: uploadLater); unlinked → unlinked.
        case dirty
        /// `sending` is on its way to the drive (one upload at a time: the file's queue).
        /// uploadSucceeded → clean (drop if no writer), or dirty if changed meanwhile
        /// (upload, or uploadLater, if no writer will); uploadFailed → failed (retry later),
        /// or refused; flushed, fsynced → upload (waits behind this one; deferred flush:
        /// uploadLater); changed → stays, version grows.
        case uploading
        /// The last upload failed; `WriteBack` tries again.
        /// retryDue, fsynced, flushed, last released → upload (deferred flush and release:
        /// uploadLater); uploadStarted → uploading; changed → dirty; unlinked → unlinked.
        case failed
        /// The drive refused this version for good (over its per-file size limit): not
        /// retried nor waited for until the content changes.
        /// changed → dirty; flushed, fsynced, uploadStarted → refuse (EFBIG, without asking);
        /// unlinked → unlinked.
        case refused
        /// The name is gone: the content is never uploaded again. Terminal.
        /// last released → drop.
        case unlinked
    }

    enum Event: Sendable, Equatable {
        case fetched
        case fetchFailed
        /// A writer took a lease.
        case leased
        /// A write or a truncate.
        case changed
        /// flush (close): the drive should have the content when this returns — or, with
        /// write-back, this mount's disk.
        case flushed
        /// fsync: the drive should have the content when this returns.
        case fsynced
        /// A writer's lease ended.
        case released
        /// The file's queue is about to send the content.
        case uploadStarted
        case uploadSucceeded(version: UInt64)
        /// `refused`: the drive will not take this content however often it is asked.
        case uploadFailed(version: UInt64, refused: Bool)
        /// `WriteBack`'s delay for a failed upload is over.
        case retryDue
        case unlinked
    }

    enum Action: Sendable, Equatable {
        /// Run an upload on the file's queue (the caller waits for it).
        case upload
        /// Write-back: make the content and its journal entry durable, and queue the upload.
        case uploadLater
        /// Send this version now (on the queue, to the event `uploadStarted`).
        case send(version: UInt64)
        /// Answer EFBIG without asking the drive.
        case refuse
        /// Hand the file to `WriteBack` for a later try.
        case retryLater
        /// Forget the pending upload (journal entry, status, retry): the name is gone.
        case forgetUpload
        /// Forget the local content (nobody writes it and the drive has it, or it is gone).
        case drop
    }

    private(set) var state: State
    /// Write-back: flushes and releases queue the upload instead of making it.
    let deferred: Bool
    private(set) var version: UInt64
    private(set) var leases = 0
    /// The version being sent (state `uploading`).
    private(set) var sending: UInt64?

    /// A file created on this mount starts dirty (it is uploaded even when it stays empty);
    /// one with drive content starts fetching it.
    init(new: Bool, deferred: Bool = false) {
        state = new ? .dirty : .fetching
        version = new ? 1 : 0
        self.deferred = deferred
    }

    /// For tests: any state with any number of writers.
    init(state: State, version: UInt64 = 1, leases: Int = 0, sending: UInt64? = nil, deferred: Bool = false) {
        self.deferred = deferred
        self.state = state
        self.version = version
        self.leases = leases
        self.sending = sending ?? (state == .uploading ? version : nil)
    }

    /// The drive does not have this content yet (and its name is still there).
    var isDirty: Bool { [.dirty, .uploading, .failed, .refused].contains(state) }

    /// Dirty, and worth trying again without a change.
    var isRetryable: Bool { isDirty && state != .refused }

    /// Nothing would be lost by forgetting the local content now.
    var canDrop: Bool { leases == 0 && (state == .clean || state == .unlinked) }

    mutating func handle(_ event: Event) -> [Action] {
        switch event {
        case .fetched:
            guard state == .fetching else { return [] }
            // Version 0 is the drive's content.
            state = version == 0 ? .clean : .dirty
            return []
        case .fetchFailed:
            guard state == .fetching else { return [] }
            state = .unlinked
            return leases == 0 ? [.drop] : []
        case .leased:
            leases += 1
            return []
        case .changed:
            version += 1
            if [.clean, .failed, .refused].contains(state) { state = .dirty }
            return []
        case .flushed, .fsynced:
            switch state {
            case .dirty, .uploading, .failed: return event == .flushed && deferred ? [.uploadLater] : [.upload]
            case .refused: return [.refuse]
            case .fetching, .clean, .unlinked: return []
            }
        case .released:
            leases = max(0, leases - 1)
            guard leases == 0 else { return [] }
            switch state {
            case .dirty, .failed: return [deferred ? .uploadLater : .upload]
            case .clean, .unlinked: return [.drop]
            case .fetching, .uploading, .refused: return []
            }
        case .uploadStarted:
            switch state {
            case .dirty, .failed:
                state = .uploading
                sending = version
                return [.send(version: version)]
            case .refused: return [.refuse]
            case .fetching, .clean, .uploading, .unlinked: return []
            }
        case .uploadSucceeded(let sent):
            guard state == .uploading, sending == sent else { return state == .unlinked && leases == 0 ? [.drop] : [] }
            sending = nil
            if version == sent {
                state = .clean
                return leases == 0 ? [.drop] : []
            }
            state = .dirty
            return leases == 0 ? [deferred ? .uploadLater : .upload] : []
        case .uploadFailed(let sent, let refused):
            guard state == .uploading, sending == sent else { return [] }
            sending = nil
            if refused && version == sent {
                state = .refused
                return []
            }
            state = .failed
            return [.retryLater]
        case .retryDue:
            switch state {
            case .dirty, .failed: return [.upload]
            case .fetching, .clean, .uploading, .refused, .unlinked: return []
            }
        case .unlinked:
            let wasUploading = state == .uploading
            state = .unlinked
            sending = nil
            return leases == 0 && !wasUploading ? [.forgetUpload, .drop] : [.forgetUpload]
        }
    }
}
