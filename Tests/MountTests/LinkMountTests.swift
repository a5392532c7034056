import DriveEmulator
import EmulatorTestSupport
import Foundation
import Glibc
import Testing

/// Reads through a mount over an emulated distant link (`home`: 40 ms, 10 MB/s per
/// connection, 100 MB/s in all): no byte is fetched twice.
@Suite(.serialized, .enabled(if: FUSEAvailability.canMount, "\(FUSEAvailability.problem ?? "")"))
struct LinkMountTests {
    @Test func aSequentialReadOverASlowLinkFetchesEachByteOnce() async throws {
        try await withMount { m in
            let local = m.directory.appendingPathComponent("big.bin").path
            try m.shell("sh", "-c", "head -c \(256 << 20) /dev/urandom > '\(local)'")
            try m.shell("cp", local, m.path("big.bin"))
            await m.unmount()
            try await m.mount()  // nothing of it cached
            _ = try await m.drive.hook("faults", ["link_profile": "home"])
            _ = try await m.drive.hook("stats/reset")
            let sum = try m.shell("sh", "-c", "dd if='\(m.path("big.bin"))' bs=1M 2>/dev/null | sha1sum")
            let expected = try m.shell("sha1sum", local)
            #expect(sum.prefix(40) == expected.prefix(40))
            let fetched = try await m.drive.stats()["bytes_downloaded"] as? Int ?? 0
            #expect(Double(fetched) <= Double(256 << 20) * 1.01, "fetched \(fetched) bytes for \(256 << 20)")
            _ = try await m.drive.hook("faults", ["link_profile": "loopback"])
        }
    }
}
