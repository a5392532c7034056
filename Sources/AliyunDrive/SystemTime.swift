import Foundation

/// Wall-clock time in seconds since 1970: the default clock of the clients (tests inject
/// their own for token and link expiry).
public enum SystemTime {
    @Sendable public static func now() -> Double { Date().timeIntervalSince1970 }
}
