// CFuse — how libfuse3 is called from Swift. Nothing else lives here.
//
// Pins FUSE_USE_VERSION and wraps what Swift cannot call directly: macros that
// select versioned symbols (fuse_parse_cmdline, fuse_session_loop_mt) and
// functions that became macros in later libfuse releases (fuse_session_new
// since 3.17), so a libfuse upgrade cannot break the Swift build.
#ifndef CFUSE_H
#define CFUSE_H

#define FUSE_USE_VERSION 312
#include <fuse3/fuse_lowlevel.h>
#include <stddef.h>

/// Version of the libfuse3 library linked at run time (e.g. 314 for 3.14).
int cfuse_library_version(void);

/// The FUSE API version this shim was compiled against (FUSE_USE_VERSION).
int cfuse_api_version(void);

/// Wraps the `fuse_parse_cmdline` macro. Returns 0 on success, -1 on error.
/// `mountpoint` in `opts` is malloc'd by libfuse; free it with `free`.
int cfuse_parse_cmdline(struct fuse_args *_Nonnull args, struct fuse_cmdline_opts *_Nonnull opts);

/// Wraps `fuse_session_new` (a macro over a versioned symbol since libfuse 3.17).
struct fuse_session *_Nullable cfuse_session_new(struct fuse_args *_Nonnull args,
                                                 const struct fuse_lowlevel_ops *_Nonnull ops,
                                                 size_t op_size, void *_Nullable userdata);

/// Wraps the `fuse_session_loop_mt` macro with a config built from plain values.
int cfuse_session_loop_mt(struct fuse_session *_Nonnull se, int clone_fd, unsigned int max_idle_threads);

#endif
