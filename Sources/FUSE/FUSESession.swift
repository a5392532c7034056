internal import CFuse
import Dispatch
import Glibc
import Logging
import Synchronization

/// A FUSE session: creates the libfuse session over a `FileSystem`, mounts it, runs the
/// multi-threaded request loop, and unmounts.
///
/// Lifecycle: `init` → `mount(at:)` → `run()` (blocks until unmounted or `exit()`/a
/// signal) → deinit. `exit()` may be called from any thread.
public final class FUSESession: @unchecked Sendable {
    public struct Error: Swift.Error, CustomStringConvertible {
        public let description: String
    }

    private let session: OpaquePointer
    private let context: Unmanaged<SessionContext>
    private let mounted = Mutex(false)
    private let logger = Logger(label: "adrivefs.fuse")

    /// - Parameters:
    ///   - options: `-o` options for libfuse (e.g. `fsname=adrive`, `subtype=adrivefs`,
    ///     `allow_other`, `default_permissions`, `ro`, `max_read=…`).
    ///   - debug: libfuse's own request tracing (`-d`).
    public init(fileSystem: any FileSystem, options: [String], debug: Bool = false, maxReadahead: UInt32 = 4 << 20) throws {
        let context = Unmanaged.passRetained(SessionContext(fileSystem: fileSystem, maxReadahead: maxReadahead))
        var arguments = ["adrivefs"]
        if debug { arguments.append("-d") }
        if !options.isEmpty { arguments += ["-o", options.map(Self.escapeCommas).joined(separator: ",")] }
        var cStrings = arguments.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        var ops = Operations.table()
        let created = cStrings.withUnsafeMutableBufferPointer { argv -> OpaquePointer? in
            var args = fuse_args(argc: Int32(argv.count), argv: argv.baseAddress, allocated: 0)
            defer { fuse_opt_free_args(&args) }
            return cfuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size, context.toOpaque())
        }
        guard let created else {
            context.release()
            throw Error(description: "libfuse rejected the options: \(options.joined(separator: ","))")
        }
        session = created
        self.context = context
    }

    /// libfuse splits `-o` values at commas; a literal comma is written `\,`.
    static func escapeCommas(_ option: String) -> String {
        var out = ""
        for character in option {
            if character == "," || character == "\\" { out.append("\\") }
            out.append(character)
        }
        return out
    }

    /// The kernel caps FUSE read-ahead at its 128 KiB default, which splits sequential
    /// reads into 128 KiB requests. Root may raise it through the mount's backing device
    /// (`/sys/class/bdi/MAJOR:MINOR/read_ahead_kb`), as rclone documents. Blocks until the
    /// mount answers `stat` (call it once the session runs, or from another thread);
    /// false without the rights.
    @discardableResult
    public static func raiseKernelReadahead(mountpoint: String, kilobytes: Int) -> Bool {
        var info = stat()
        guard stat(mountpoint, &info) == 0 else { return false }
        let device = UInt64(info.st_dev)
        let major = (device >> 8) & 0xfff | (device >> 32) & ~0xfff
        let minor = device & 0xff | (device >> 12) & ~0xff
        let fd = open("/sys/class/bdi/\(major):\(minor)/read_ahead_kb", O_WRONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let text = "\(kilobytes)\n"
        return text.withCString { write(fd, $0, strlen($0)) } > 0
    }

    /// Mounts at `mountpoint` (`fuse_session_mount`).
    public func mount(at mountpoint: String) throws {
        guard fuse_session_mount(session, mountpoint) == 0 else {
            throw Error(description: "cannot mount on \(mountpoint)")
        }
        mounted.withLock { $0 = true }
    }

    /// Serves requests until the filesystem is unmounted or the session is told to exit,
    /// then unmounts. With `handlingSignals`, SIGINT, SIGTERM and SIGHUP end the session:
    /// they are taken by a dispatch source (whichever thread the kernel picks), which
    /// unmounts, so the worker threads blocked on /dev/fuse wake up and the loop returns
    /// (without, the caller takes the signals and calls `exit()` and `unmount()`). Returns
    /// libfuse's status (0 for a clean end).
    @discardableResult
    public func run(threads: UInt32 = 16, handlingSignals: Bool = true) -> Int32 {
        let sources = (handlingSignals ? [SIGINT, SIGTERM, SIGHUP] : []).map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in
                logger.info("signal \(number): unmounting")
                exit()
                unmount()
            }
            source.resume()
            return source
        }
        let status = cfuse_session_loop_mt(session, 0, threads)
        sources.forEach { $0.cancel() }
        unmount()
        return status
    }

    /// Asks the loop to stop (`fuse_session_exit`).
    public func exit() { fuse_session_exit(session) }

    /// Unmounts once (`fuse_session_unmount`); later calls do nothing.
    public func unmount() {
        let wasMounted = mounted.withLock { value in
            defer { value = false }
            return value
        }
        if wasMounted { fuse_session_unmount(session) }
    }

    deinit {
        unmount()
        fuse_session_destroy(session)
        context.release()
    }
}
