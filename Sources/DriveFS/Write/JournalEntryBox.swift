import Synchronization

/// The journal entry of an upload in progress, completed by the hash follower's result.
final class JournalEntryBox: Sendable {
    private let entry: Mutex<UploadJournal.Entry>

    init(_ entry: UploadJournal.Entry) { self.entry = Mutex(entry) }

    var value: UploadJournal.Entry { entry.withLock { $0 } }

    func set(_ value: UploadJournal.Entry) { entry.withLock { $0 = value } }

    /// Changes the entry and returns the result.
    func update(_ change: (inout UploadJournal.Entry) -> Void) -> UploadJournal.Entry {
        entry.withLock { entry in
            change(&entry)
            return entry
        }
    }
}
