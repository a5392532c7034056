/// What the caller of an upload knows of the content's SHA-1 (uppercase hex).
public enum ContentHashSource: Sendable {
    /// Nothing: the upload hashes the file itself, while its parts go out.
    case unknown
    case known(String)
    /// Being computed elsewhere (a hasher following the writes); nil from it means it
    /// gave up, and the upload hashes the file itself.
    case pending(@Sendable () async -> String?)

    var isKnown: Bool {
        if case .known = self { return true }
        return false
    }
}
