import EmulatorTestSupport
import Testing

/// The scenario suite (`FileSystemScenarios`) on `DriveFileSystem` called directly: no
/// kernel mount. `MountedScenarioTests` runs the same list through a real mount.
@Suite struct DirectScenarioTests {
    @Test(arguments: FileSystemScenarios.all.map(\.name))
    func scenario(_ name: String) async throws {
        guard let scenario = FileSystemScenarios.all.first(where: { $0.name == name }) else {
            Issue.record("no scenario \(name)")
            return
        }
        let driver = try await DirectDriver()
        do {
            try await scenario.run(driver)
        } catch {
            await driver.finish()
            throw error
        }
        await driver.finish()
    }
}
