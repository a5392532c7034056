import Foundation
import Glibc

/// Daemonizing with readiness (gcsfuse style): the parent re-executes itself as a child
/// with `ADRIVEFS_DAEMON_CHILD=1`, and exits 0 only when the child reports the mount is
/// live on its standard output ("ok"), or 1 with the child's one-line reason. The child
/// then detaches (setsid) and sends its log to the state directory.
public enum Daemon {
    static let childVariable = "ADRIVEFS_DAEMON_CHILD"

    public static var isChild: Bool { ProcessInfo.processInfo.environment[childVariable] == "1" }

    /// Parent side: starts the child and waits for its verdict. Returns the exit status.
    public static func spawnAndWait(arguments: [String]) -> Int32 {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        child.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment[childVariable] = "1"
        child.environment = environment
        let pipe = Pipe()
        child.standardOutput = pipe
        child.standardInput = FileHandle.nullDevice
        do {
            try child.run()
        } catch {
            fail("cannot start the mount process: \(error)")
            return 1
        }
        var text = ""
        let reader = pipe.fileHandleForReading
        while !text.contains("\n") {
            let data = reader.availableData
            if data.isEmpty { break }
            text += String(decoding: data, as: UTF8.self)
        }
        let line = text.split(separator: "\n").first.map(String.init) ?? ""
        if line == "ok" { return 0 }
        if line.hasPrefix("error: ") {
            fail(String(line.dropFirst("error: ".count)))
        } else {
            child.waitUntilExit()
            fail("the mount process exited before the mount was ready (status \(child.terminationStatus))")
        }
        return 1
    }

    /// Child side: reports readiness to the parent, then detaches.
    public static func report(_ error: String?, logFile: String) {
        let message = error.map { "error: \($0.replacingOccurrences(of: "\n", with: " "))\n" } ?? "ok\n"
        FileHandle.standardOutput.write(Data(message.utf8))
        guard error == nil else { return }
        setsid()
        let null = open("/dev/null", O_RDWR)
        if null >= 0 {
            dup2(null, STDIN_FILENO)
            dup2(null, STDOUT_FILENO)
            close(null)
        }
        let log = open(logFile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        if log >= 0 {
            dup2(log, STDERR_FILENO)
            close(log)
        }
    }

    public static func fail(_ message: String) {
        FileHandle.standardError.write(Data("adrivefs: \(message)\n".utf8))
    }
}
