/* daemon/listen.c - socket activation and binding with stale-socket handling. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/listen.h"

/* The first descriptor systemd passes (SD_LISTEN_FDS_START). */
#define LISTEN_FDS_START 3

static int fail(char *err, size_t err_len, int rc, const char *fmt, const char *arg)
{
    char what[512];
    snprintf(what, sizeof(what), fmt, arg);
    snprintf(err, err_len, "%s: %s", what, strerror(-rc));
    return rc;
}

int listen_activated(int *fd, char *err, size_t err_len)
{
    const char *pid_s = getenv("LISTEN_PID");
    const char *fds_s = getenv("LISTEN_FDS");
    if (!pid_s || !fds_s)
        return 0;
    char *end;
    errno = 0;
    long pid = strtol(pid_s, &end, 10);
    if (errno || *end || pid != (long)getpid())
        return 0; /* meant for another process */
    long n = strtol(fds_s, &end, 10);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (*end || n < 1 || n > INT_MAX - LISTEN_FDS_START)
        return fail(err, err_len, -EINVAL, "LISTEN_FDS=%s is not a socket count", fds_s);
    if (n > 1)
        return fail(err, err_len, -EINVAL, "LISTEN_FDS=%s: bitnetd takes exactly one socket",
                    fds_s);
    int s = LISTEN_FDS_START;
    int type = 0, domain = 0, listening = 0;
    socklen_t len = sizeof(int);
    if (getsockopt(s, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        return fail(err, err_len, -errno, "passed descriptor %s", "3");
    len = sizeof(int);
    if (getsockopt(s, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
        return fail(err, err_len, -errno, "passed descriptor %s", "3");
    len = sizeof(int);
    if (getsockopt(s, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
        return fail(err, err_len, -errno, "passed descriptor %s", "3");
    if (type != SOCK_STREAM || domain != AF_UNIX || !listening)
        return fail(err, err_len, -ENOTSOCK, "passed descriptor %s",
                    "3 is not a listening Unix stream socket");
    int flags = fcntl(s, F_GETFD);
    if (flags < 0 || fcntl(s, F_SETFD, flags | FD_CLOEXEC) < 0)
        return fail(err, err_len, -errno, "passed descriptor %s", "3");
    flags = fcntl(s, F_GETFL);
    if (flags < 0 || fcntl(s, F_SETFL, flags | O_NONBLOCK) < 0)
        return fail(err, err_len, -errno, "passed descriptor %s", "3");
    *fd = s;
    return 1;
}

/* Creates dir and its missing parents with mode 0755. */
static int make_dirs(const char *dir)
{
    char buf[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(buf))
        return n ? -ENAMETOOLONG : 0;
    memcpy(buf, dir, n + 1);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                return -errno;
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    return 0;
}

/* Removes a socket file nobody listens on. Returns 0 when path is free now. */
static int clear_stale(const char *path, const struct sockaddr_un *sa)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode))
        return -EEXIST;
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0)
        return -errno;
    int rc = connect(probe, (const struct sockaddr *)sa, sizeof(*sa));
    int e = errno;
    close(probe);
    if (rc == 0)
        return -EADDRINUSE;
    if (e != ECONNREFUSED)
        return -e;
    return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

int listen_bind(const char *path, mode_t mode, int *fd, char *err, size_t err_len)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(sa.sun_path))
        return fail(err, err_len, -ENAMETOOLONG, "socket path '%s'", path);
    memcpy(sa.sun_path, path, n + 1);

    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        int rc = make_dirs(dir);
        if (rc)
            return fail(err, err_len, rc, "cannot create the socket directory '%s'", dir);
    }
    int rc = clear_stale(path, &sa);
    if (rc == -EADDRINUSE)
        return fail(err, err_len, rc, "another daemon is listening on '%s'", path);
    if (rc == -EEXIST)
        return fail(err, err_len, rc, "'%s' exists and is not a socket", path);
    if (rc)
        return fail(err, err_len, rc, "cannot check the old socket '%s'", path);

    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0)
        return fail(err, err_len, -errno, "socket for '%s'", path);
    /* Nobody may connect between bind and chmod with a wider mode than asked. */
    mode_t old = umask(0177);
    rc = bind(s, (struct sockaddr *)&sa, sizeof(sa));
    int e = errno;
    umask(old);
    if (rc < 0) {
        close(s);
        return fail(err, err_len, -e, "cannot bind '%s'", path);
    }
    if (chmod(path, mode) < 0 || listen(s, SOMAXCONN) < 0) {
        e = errno;
        close(s);
        unlink(path);
        return fail(err, err_len, -e, "cannot listen on '%s'", path);
    }
    *fd = s;
    return 0;
}
