// CLinux — Linux calls that glibc declares only under _GNU_SOURCE, which Swift's Glibc
// module does not define: preallocating file space and naming threads.
#ifndef CLINUX_H
#define CLINUX_H

#include <stdint.h>

/// fallocate(2) with FALLOC_FL_KEEP_SIZE: reserves blocks for [offset, offset + length)
/// without changing the file's size. Returns 0, or -1 with errno set.
int clinux_preallocate(int fd, int64_t offset, int64_t length);

/// pthread_setname_np(3) for the calling thread (at most 15 bytes are kept). Returns 0 or an
/// error number.
int clinux_name_thread(const char *_Nonnull name);

#endif
