// CSystemd — the service manager's notification protocol from Debian's libsystemd
// (sd_notify is variadic-free but lives behind a header Swift should not see whole).
#ifndef CSYSTEMD_H
#define CSYSTEMD_H

/// sd_notify(0, state): > 0 sent, 0 when not run by a service manager (no NOTIFY_SOCKET),
/// < 0 a negative errno.
int csystemd_notify(const char *_Nonnull state);

#endif
