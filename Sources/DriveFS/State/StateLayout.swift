import Foundation

/// Where a mount's recoverable state lives, and whose the state beside it is.
///
///     STATE/pending/<binding>/binding.json             the account, drive and endpoint
///     STATE/pending/<binding>/<mount>/lock             held (flock) while the mount lives
///     STATE/pending/<binding>/<mount>/<entry>.json     one pending upload each
///     CACHE/staging/<binding>/<mount>/.lock            held while the mount lives
///     CACHE/staging/<binding>/<mount>/<staged file>
///     CACHE/staging/<binding>/lost+found/              content kept, never uploaded
///     STATE/pending/*.json, CACHE/staging/<pid>/       before bindings (legacy)
///
/// `<binding>` is `AccountBinding.directoryName`, `<mount>` a fresh id per mount. A mount
/// without a binding (tests of the filesystem alone) uses `unbound`, which no mount
/// recovers from.
public struct StateLayout: Sendable {
    /// STATE/pending.
    public var journalRoot: String
    /// CACHE/staging.
    public var stagingRoot: String
    public var binding: AccountBinding?
    public var mountID: String

    static let unbound = "unbound"
    static let lostAndFound = "lost+found"
    static let bindingFile = "binding.json"
    static let journalLock = "lock"
    static let stagingLock = ".lock"

    /// `mountID`: nil for a fresh one.
    public init(journalRoot: String, stagingRoot: String, binding: AccountBinding?, mountID: String? = nil) {
        self.journalRoot = journalRoot
        self.stagingRoot = stagingRoot
        self.binding = binding
        self.mountID = mountID ?? UUID().uuidString.lowercased()
    }

    var scopeName: String { binding?.directoryName ?? Self.unbound }
    /// This binding's journal folders (one per mount).
    var journalScope: String { journalRoot + "/" + scopeName }
    var stagingScope: String { stagingRoot + "/" + scopeName }
    public var journalDirectory: String { journalScope + "/" + mountID }
    public var stagingDirectory: String { stagingScope + "/" + mountID }
    /// Where content that must not be uploaded is kept (per binding).
    var lostAndFound: String { stagingScope + "/" + Self.lostAndFound }

    /// The folders directly in `path` (names), without `excluding`.
    static func subfolders(of path: String, excluding: Set<String> = []) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.filter { name in
            guard !excluding.contains(name) else { return false }
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: path + "/" + name, isDirectory: &isDirectory) && isDirectory.boolValue
        }.sorted()
    }
}
