#include "CFuse.h"

_Static_assert(FUSE_USE_VERSION >= 312, "adrivefs needs the libfuse 3.12 API");

int cfuse_library_version(void) { return fuse_version(); }

int cfuse_api_version(void) { return FUSE_USE_VERSION; }

int cfuse_parse_cmdline(struct fuse_args *args, struct fuse_cmdline_opts *opts) {
    return fuse_parse_cmdline(args, opts);
}

struct fuse_session *cfuse_session_new(struct fuse_args *args, const struct fuse_lowlevel_ops *ops,
                                       size_t op_size, void *userdata) {
    return fuse_session_new(args, ops, op_size, userdata);
}

int cfuse_session_loop_mt(struct fuse_session *se, int clone_fd, unsigned int max_idle_threads) {
    struct fuse_loop_config *config = fuse_loop_cfg_create();
    if (config == NULL) return -1;
    fuse_loop_cfg_set_clone_fd(config, (unsigned int)clone_fd);
    fuse_loop_cfg_set_max_threads(config, max_idle_threads > 0 ? max_idle_threads : 10);
    fuse_loop_cfg_set_idle_threads(config, max_idle_threads);
    int rc = fuse_session_loop_mt(se, config);
    fuse_loop_cfg_destroy(config);
    return rc;
}
