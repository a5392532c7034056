import CFuse
import Glibc
import Testing

@Suite struct CFuseShimTests {
    @Test func pinsTheAPIVersionAndLinksLibfuse3() {
        #expect(cfuse_api_version() == 312)
        // The runtime library is at least as new as the API we compiled against.
        #expect(cfuse_library_version() >= 312)
    }

    @Test func parseCmdlineWrapperReadsMountpointAndFlags() throws {
        let arguments = ["adrivefs", "-f", "-d", "/tmp"]  // libfuse resolves the mount point: it must exist
        var cStrings = arguments.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        var opts = fuse_cmdline_opts()
        let rc = cStrings.withUnsafeMutableBufferPointer { argv in
            var args = fuse_args(argc: Int32(argv.count), argv: argv.baseAddress, allocated: 0)
            defer { fuse_opt_free_args(&args) }
            return cfuse_parse_cmdline(&args, &opts)
        }
        #expect(rc == 0)
        defer { free(opts.mountpoint) }
        let mountpoint = try #require(opts.mountpoint)
        #expect(String(cString: mountpoint) == "/tmp")
        #expect(opts.foreground == 1)
        #expect(opts.debug == 1)
    }
}
