/*
 * daemon/listen.h - the listening socket: taken from systemd (socket
 * activation, $LISTEN_FDS/$LISTEN_PID) or bound by bitnetd itself.
 */
#ifndef BITNETD_LISTEN_H
#define BITNETD_LISTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * Takes the socket systemd passed, if any. Returns 1 and sets *fd when
 * $LISTEN_PID is this process and $LISTEN_FDS names a listening Unix stream
 * socket; 0 when nothing was passed; a negative error (with err) when what
 * was passed is unusable. Unsets the variables so children do not see them.
 */
int listen_activated(int *fd, char *err, size_t err_len);

/*
 * Binds and listens on the Unix socket path, creating its parent directory
 * (mode 0755) when missing. A socket file left by a dead daemon (connecting
 * to it is refused) is replaced; a live one is -EADDRINUSE, and a path that
 * is not a socket -EEXIST. The socket gets mode (e.g. 0660). Returns 0 and
 * sets *fd (non-blocking, close-on-exec), or a negative error with err.
 */
int listen_bind(const char *path, mode_t mode, int *fd, char *err, size_t err_len);

#endif
