import AliyunDrive
import Foundation
@testable import DriveFS
import Glibc
import Testing

/// Pending uploads belong to one account, drive and endpoint, and to one mount while it
/// lives: a mount finishes only a dead mount's uploads of its own binding.
@Suite struct StateIsolationTests {
    typealias Scene = RecoveryTests.Scene
    static let content = [UInt8]("account A private\n".utf8)

    @Test func aBindingNamesOneSafeFolderPerAccountDriveAndEndpoint() {
        let a = AccountBinding(userID: "u1", driveID: "d1", endpoint: "HTTP://Host:8080/")
        #expect(a.endpoint == "http://host:8080")
        #expect(a == AccountBinding(userID: "u1", driveID: "d1", endpoint: "http://host:8080"))
        let names = Set([
            a, AccountBinding(userID: "u2", driveID: "d1", endpoint: "http://host:8080"),
            AccountBinding(userID: "u1", driveID: "d2", endpoint: "http://host:8080"),
            AccountBinding(userID: "u1", driveID: "d1", endpoint: "http://host:8081"),
        ].map(\.directoryName))
        #expect(names.count == 4)
        let odd = AccountBinding(userID: "../x", driveID: "a/b", endpoint: "e").directoryName
        #expect(!odd.contains("/") && odd != ".." && !odd.hasPrefix("."))
        // The same on every run (it names folders across mounts).
        #expect(a.directoryName == AccountBinding(userID: "u1", driveID: "d1", endpoint: "http://host:8080").directoryName)
    }

    @Test func aLockIsHeldUntilItsHolderLetsGo() throws {
        let path = NSTemporaryDirectory() + "lock-\(UUID().uuidString)"
        defer { unlink(path) }
        #expect(!MountLock.isHeld(path))
        var first: MountLock? = nil
        if case .acquired(let lock) = MountLock.acquire(path) { first = lock }
        #expect(first != nil)
        #expect(MountLock.isHeld(path))
        guard case .held = MountLock.acquire(path) else {
            Issue.record("a second holder got the lock")
            return
        }
        first = nil
        #expect(!MountLock.isHeld(path))
        guard case .acquired = MountLock.acquire(path) else {
            Issue.record("the lock was not free after its holder let go")
            return
        }
    }

    @Test func uploadsOfAnotherAccountDriveOrEndpointAreLeftAlone() async throws {
        let scene = Scene()
        defer { try? FileManager.default.removeItem(atPath: scene.root) }
        let others = [
            AccountBinding(userID: "u2", driveID: "d1", endpoint: "http://127.0.0.1:1"),
            AccountBinding(userID: "u1", driveID: "d2", endpoint: "http://127.0.0.1:1"),
            AccountBinding(userID: "u1", driveID: "d1", endpoint: "http://127.0.0.1:2"),
        ]
        var left: [StateLayout] = []
        for other in others {
            let state = StateLayout(journalRoot: scene.layout.journalRoot, stagingRoot: scene.stagingRoot, binding: other, mountID: "gone")
            try scene.leave("secret.txt", content: Self.content, journaled: Self.content, boot: UploadJournal.bootID, in: state)
            left.append(state)
        }
        // Planted in this binding's folder but bound to another account: not uploaded either.
        try scene.leave("planted.txt", content: Self.content, journaled: Self.content, boot: UploadJournal.bootID, binding: others[0])
        let fs = try scene.mount()
        fs.recoverPendingUploads()
        try await Task.sleep(for: .milliseconds(400))
        #expect(scene.drive.uploads.withLock { $0 }.isEmpty)
        for state in left {
            #expect(UploadJournal(directory: state.journalDirectory).entries().count == 1)
            #expect(((try? FileManager.default.contentsOfDirectory(atPath: state.stagingDirectory)) ?? []).count == 1)
        }
        #expect(scene.journal.entries().map(\.name) == ["planted.txt"])

        // The account the first one belongs to finishes it at its next mount.
        let owner = Scene(binding: others[0])
        let ownMount = try DriveFileSystem(
            service: owner.drive,
            configuration: DriveFSConfiguration(
                uid: 1, gid: 1, state: StateLayout(journalRoot: scene.layout.journalRoot, stagingRoot: scene.stagingRoot, binding: others[0]),
                uploadRetryDelay: 0.05))
        ownMount.recoverPendingUploads()
        try await eventuallyTrue { !owner.drive.uploads.withLock { $0 }.isEmpty }
        #expect(owner.drive.uploads.withLock { $0 }.map(\.name) == ["secret.txt"])
        #expect(owner.drive.uploads.withLock { $0 }.first?.content == Self.content)
        _ = fs
    }

    @Test func aLiveMountsUploadsAreNotTakenAndADeadOnesAre() async throws {
        let scene = Scene()
        defer { try? FileManager.default.removeItem(atPath: scene.root) }
        try scene.leave("busy.txt", content: Self.content, journaled: Self.content, boot: UploadJournal.bootID)
        var alive: MountLock? = nil
        if case .acquired(let lock) = MountLock.acquire(scene.dead.journalDirectory + "/lock") { alive = lock }
        #expect(alive != nil)
        let first = try scene.mount()
        first.recoverPendingUploads()
        try await Task.sleep(for: .milliseconds(400))
        #expect(scene.drive.uploads.withLock { $0 }.isEmpty)
        #expect(scene.journal.entries().count == 1)
        // Its staging folder is not swept either while its lock is held.
        var stagingLock: MountLock? = nil
        if case .acquired(let lock) = MountLock.acquire(scene.dead.stagingDirectory + "/.lock") { stagingLock = lock }
        #expect(stagingLock != nil)
        alive = nil
        stagingLock = nil
        let second = try scene.mount()
        second.recoverPendingUploads()
        try await scene.settled()
        #expect(scene.drive.uploads.withLock { $0 }.map(\.name) == ["busy.txt"])
        _ = (first, alive, stagingLock)
    }

    @Test func aZombieOwnerCountsAsGone() async throws {
        let scene = Scene()
        defer { try? FileManager.default.removeItem(atPath: scene.root) }
        try scene.leave("zombie.txt", content: Self.content, journaled: Self.content, boot: UploadJournal.bootID)
        // A process holds the dead mount's lock, is killed, and is never reaped: a zombie.
        let lockPath = scene.dead.journalDirectory + "/lock"
        let ready = NSTemporaryDirectory() + "zombie-ready-\(UUID().uuidString)"
        defer { unlink(ready) }
        let script = "import fcntl,time; f=open('\(lockPath)','a'); fcntl.flock(f, fcntl.LOCK_EX); open('\(ready)','w').close(); time.sleep(300)"
        let pid = try spawn(["/usr/bin/env", "python3", "-c", script])
        try await eventuallyTrue { FileManager.default.fileExists(atPath: ready) }
        #expect(MountLock.isHeld(lockPath))
        kill(pid, SIGKILL)
        try await eventuallyTrue { Self.state(of: pid) == "Z" }
        #expect(Self.state(of: pid) == "Z")
        #expect(kill(pid, 0) == 0, "a zombie answers kill(pid, 0): what the old check trusted")
        let fs = try scene.mount()
        fs.recoverPendingUploads()
        try await scene.settled()
        #expect(scene.drive.uploads.withLock { $0 }.map(\.name) == ["zombie.txt"])
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }

    @Test func legacyEntriesAreKeptAsideNotUploaded() async throws {
        let scene = Scene()
        defer { try? FileManager.default.removeItem(atPath: scene.root) }
        // Written by the release before bindings: pending/*.json, staging/<pid>/. One owner
        // pid is this test's own (alive, but no adrivefs: a reused pid), one cannot exist.
        for (name, owner) in [("reused.txt", getpid()), ("dead.txt", Int32.max - 1)] {
            let directory = scene.stagingRoot + "/\(owner)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let id = UUID().uuidString
            try Data(Self.content).write(to: URL(fileURLWithPath: directory + "/" + id))
            let json = #"{"id":"\#(id)","stagingPath":"\#(directory)/\#(id)","parentID":"root","name":"\#(name)","displayPath":"\#(name)","owner":\#(owner)}"#
            try FileManager.default.createDirectory(atPath: scene.layout.journalRoot, withIntermediateDirectories: true)
            try Data(json.utf8).write(to: URL(fileURLWithPath: scene.layout.journalRoot + "/" + id + ".json"))
        }
        let fs = try scene.mount()
        fs.recoverPendingUploads()
        try await Task.sleep(for: .milliseconds(400))
        #expect(scene.drive.uploads.withLock { $0 }.isEmpty)
        #expect(UploadJournal(directory: scene.layout.journalRoot).entries().isEmpty)
        let kept = try FileManager.default.contentsOfDirectory(atPath: scene.stagingRoot + "/lost+found").sorted()
        #expect(kept.filter { !$0.hasSuffix(".json") }.map { String($0.prefix { $0 != "." }) }.sorted() == ["dead", "reused"])
        #expect(kept.filter { $0.hasSuffix(".json") }.count == 2, "each kept file has its entry beside it")
        let keptFile = try #require(kept.first { $0.hasPrefix("dead.txt.") && !$0.hasSuffix(".json") })
        #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: scene.stagingRoot + "/lost+found/" + keptFile))) == Self.content)
        #expect(!FileManager.default.fileExists(atPath: scene.stagingRoot + "/\(Int32.max - 1)"))
    }

    @Test func aReadOnlyMountUploadsNothingAndKeepsTheEntries() async throws {
        let scene = Scene()
        defer { try? FileManager.default.removeItem(atPath: scene.root) }
        try scene.leave("waiting.txt", content: Self.content, journaled: Self.content, boot: UploadJournal.bootID)
        let fs = try scene.mount(readOnly: true)
        fs.recoverPendingUploads()
        try await Task.sleep(for: .milliseconds(400))
        #expect(scene.drive.uploads.withLock { $0 }.isEmpty)
        #expect(scene.journal.entries().map(\.name) == ["waiting.txt"])
        #expect(FileManager.default.fileExists(atPath: scene.dead.stagingDirectory))
        // The journal folder is free for the next read-write mount.
        #expect(!MountLock.isHeld(scene.dead.journalDirectory + "/lock"))
        let rw = try scene.mount()
        rw.recoverPendingUploads()
        try await scene.settled()
        #expect(scene.drive.uploads.withLock { $0 }.map(\.name) == ["waiting.txt"])
    }

    @Test func aMountsOwnFoldersAreLockedAndRetiredAtACleanUnmount() throws {
        let scene = Scene()
        defer { try? FileManager.default.removeItem(atPath: scene.root) }
        let fs = try scene.mount()
        _ = try fs.own.journal()
        _ = try fs.own.staging()
        #expect(MountLock.isHeld(scene.layout.journalDirectory + "/lock"))
        #expect(MountLock.isHeld(scene.layout.stagingDirectory + "/.lock"))
        let binding = try JSONDecoder().decode(
            AccountBinding.self, from: try Data(contentsOf: URL(fileURLWithPath: scene.layout.journalScope + "/binding.json")))
        #expect(binding == RecoveryTests.binding)
        // Another mount's sweep leaves a live mount's folders alone.
        let other = try scene.mount(layout: StateLayout(journalRoot: scene.layout.journalRoot, stagingRoot: scene.stagingRoot, binding: RecoveryTests.binding))
        other.recoverPendingUploads()
        #expect(FileManager.default.fileExists(atPath: scene.layout.stagingDirectory + "/.lock"))
        fs.removeStagingDirectory()
        #expect(!FileManager.default.fileExists(atPath: scene.layout.journalDirectory))
        #expect(!FileManager.default.fileExists(atPath: scene.layout.stagingDirectory))
    }

    /// The process state letter from /proc (R, S, Z, …), nil when it is gone.
    static func state(of pid: pid_t) -> Character? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
    }

    /// Starts a process that nobody reaps until the test does (posix_spawn: Foundation's
    /// Process would reap it).
    func spawn(_ arguments: [String]) throws -> pid_t {
        var pid: pid_t = 0
        var argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let result = posix_spawn(&pid, arguments[0], nil, nil, &argv, environ)
        guard result == 0 else { throw DriveFSError(errno: result, "posix_spawn failed") }
        return pid
    }
}
