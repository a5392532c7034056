public enum AdrivefsVersion {
    public static let current = "0.1.0"
}
