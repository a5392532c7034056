@testable import MountCommand
import Testing

/// The terminal drawing of a QR code: half blocks, quiet zone, explicit black on white.
@Suite struct QRRendererTests {
    @Test func twoModuleRowsPerLineBlackOnWhiteWithAQuietZone() {
        // 2 × 2: dark, light / light, dark.
        let lines = QRRenderer.lines(modules: [true, false, false, true], side: 2)
        let zone = QRRenderer.quietZone
        #expect(lines.count == (2 + 2 * zone + 1) / 2)
        let white = "\u{1B}[97;107m▀"
        let width = 2 + 2 * zone
        #expect(lines[0] == String(repeating: white, count: width) + "\u{1B}[0m")
        // The code's two rows share line zone/2: top dark (30) over light (107), then light over dark (40).
        let row = lines[zone / 2]
        #expect(row == String(repeating: white, count: zone) + "\u{1B}[30;107m▀" + "\u{1B}[97;40m▀" + String(repeating: white, count: zone) + "\u{1B}[0m")
    }

    @Test func aRealCodeHasFinderPatterns() throws {
        let lines = try #require(QRRenderer.lines(for: "https://passport.aliyundrive.com/qrcodeCheck.htm?lgToken=abc"))
        #expect(lines.count > 10)
        #expect(lines.allSatisfy { $0.hasSuffix("\u{1B}[0m") })
        // The top-left finder pattern's first row: seven dark modules after the quiet zone.
        let firstCodeLine = lines[QRRenderer.quietZone / 2]
        #expect(firstCodeLine.components(separatedBy: "\u{1B}[30;").count - 1 >= 14, "two finder patterns' top rows")
    }
}
