import Foundation

/// How far one of the service's asynchronous tasks (a folder copied, moved or deleted) has
/// come, as its `/async_task/get` answer counts it (aliyun-api.md §7.6).
public struct TaskProgress: Sendable, Equatable {
    public var total: Int
    public var done: Int
    /// Files the service left out because they are blocked (a share's punished files).
    public var punished: Int

    public init(total: Int, done: Int, punished: Int) {
        (self.total, self.done, self.punished) = (total, done, punished)
    }

    init(_ answer: [String: Any]) {
        func count(_ key: String) -> Int { (answer[key] as? NSNumber)?.intValue ?? 0 }
        self.init(total: count("total_process"), done: count("consumed_process") + count("skipped_process"), punished: count("punished_file_count"))
    }
}
