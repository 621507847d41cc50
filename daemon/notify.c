/* daemon/notify.c - sd_notify over the $NOTIFY_SOCKET datagram socket. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemon/notify.h"

/* Seconds a state change (READY=1, RELOADING=1, ...) waits for room. */
#define NOTIFY_SEND_TIMEOUT_S 2

static int send_flags(const char *state, int flags)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return 0;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || n >= sizeof(sa.sun_path))
        return -EINVAL;
    memcpy(sa.sun_path, path, n);
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; /* an abstract socket */
    socklen_t sa_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* A receiver that stopped reading must not hang the loop: a state change
     * waits at most this long for room in its queue. */
    struct timeval tv = {.tv_sec = NOTIFY_SEND_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    ssize_t w =
        sendto(fd, state, strlen(state), MSG_NOSIGNAL | flags, (struct sockaddr *)&sa, sa_len);
    int rc = w < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int notify_send(const char *state)
{
    return send_flags(state, 0);
}

int notify_send_nowait(const char *state)
{
    return send_flags(state, MSG_DONTWAIT);
}

int notify_reloading(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char msg[96];
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
    return notify_send(msg);
}
