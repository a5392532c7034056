import AliyunDrive
@testable import DriveFS
import Foundation
import FUSE
import Testing

/// Times set on this machine: kept per file_id on disk, reported only while the file's
/// content is the one they were set for.
@Suite struct FileTimesTests {
    static func item(_ id: String, size: Int64 = 10, hash: String? = "AB", folder: Bool = false) -> DriveItem {
        DriveItem(fileID: id, parentID: "root", name: id, isFolder: folder, size: size, contentHash: hash, createdAt: 1, updatedAt: 2)
    }

    @Test func timesPersistAndLapseWhenTheContentChanges() throws {
        let directory = NSTemporaryDirectory() + "adrivefs-times-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let times = FileTimes(directory: directory)
        times.set(1000, for: Self.item("f1"))
        times.set(2000, for: Self.item("f2", hash: nil))
        times.set(3000, for: Self.item("folder", folder: true))
        times.set(4000, for: Self.item("../escape"))
        #expect(times.modified(for: Self.item("f1")) == 1000)

        let reloaded = FileTimes(directory: directory)
        #expect(reloaded.modified(for: Self.item("f1")) == 1000)
        #expect(reloaded.modified(for: Self.item("f1", hash: "ab")) == 1000)  // case of the hex does not matter
        #expect(reloaded.modified(for: Self.item("f1", size: 11)) == nil)
        #expect(reloaded.modified(for: Self.item("f1", hash: "CD")) == nil)
        // No hash recorded: the size decides.
        #expect(reloaded.modified(for: Self.item("f2", hash: "EF")) == 2000)
        // Folders and ids that are no plain file name are not kept.
        #expect(reloaded.modified(for: Self.item("folder", folder: true)) == nil)
        #expect(reloaded.modified(for: Self.item("../escape")) == nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == ["f1.json", "f2.json"])

        reloaded.remove(fileID: "f1")
        #expect(reloaded.modified(for: Self.item("f1")) == nil)
        #expect(FileTimes(directory: directory).modified(for: Self.item("f1")) == nil)
    }

    @Test func timesAreKeptToTheNanosecondAndOldEntriesStillRead() throws {
        let directory = NSTemporaryDirectory() + "adrivefs-times-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let exact = [FileTime(seconds: 200_000_000, nanoseconds: 200_000_000), FileTime(seconds: 1_700_000_000, nanoseconds: 999_999_999)]
        for (index, time) in exact.enumerated() { FileTimes(directory: directory).set(time, for: Self.item("t\(index)")) }
        for (index, time) in exact.enumerated() { #expect(FileTimes(directory: directory).modified(for: Self.item("t\(index)")) == time) }
        // What a Double of seconds would have made of them: the reason for integers.
        #expect(FileTime(1_700_000_000.999999999) != exact[1])
        // An entry written by the release that kept a Double.
        try Data(#"{"modified":1500000000.25,"size":10,"contentHash":"AB"}"#.utf8).write(to: URL(fileURLWithPath: directory + "/old.json"))
        #expect(FileTimes(directory: directory).modified(for: Self.item("old")) == FileTime(seconds: 1_500_000_000, nanoseconds: 250_000_000))
        #expect(FileTime(seconds: 5, nanoseconds: -1) == FileTime(seconds: 4, nanoseconds: 999_999_999))
    }
}
