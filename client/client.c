/* client/client.c - libbitnet-client: blocking Varlink calls over a Unix socket. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "bitnet/client.h"
#include "bitnet/error.h"
#include "protocol/varlink.h"

/* Largest reply accepted; GetCapabilities is tens of kilobytes. */
#define CLIENT_MAX_REPLY (256u << 20)

struct bitnet_client {
    int fd; /* -1 once closed */
    struct varlink_reader reader;
    char *error_name;       /* Varlink error of the last call, or NULL */
    char *error_parameters; /* its parameters as JSON text, or NULL */
    char message[512];      /* the last failure, for humans */
};

static void clear_error(bitnet_client *c)
{
    free(c->error_name);
    free(c->error_parameters);
    c->error_name = c->error_parameters = NULL;
    c->message[0] = '\0';
}

static int fail(bitnet_client *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(bitnet_client *c, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->message, sizeof(c->message), fmt, ap);
    va_end(ap);
    return rc;
}

/* Drops the connection: after a broken or abandoned stream nothing on it can
 * be trusted to line up with the next call. */
static void disconnect(bitnet_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

int bitnet_client_connect(const char *path, bitnet_client **out)
{
    if (!out)
        return BITNET_CLIENT_EINVAL;
    if (!path)
        path = getenv("BITNETD_SOCKET");
    if (!path || !*path)
        path = BITNET_CLIENT_DEFAULT_SOCKET;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if (n >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, n + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (errno == EINTR)
            continue;
        int e = errno;
        close(fd);
        return -e;
    }
    bitnet_client *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return -ENOMEM;
    }
    c->fd = fd;
    varlink_reader_init(&c->reader, CLIENT_MAX_REPLY);
    *out = c;
    return 0;
}

void bitnet_client_close(bitnet_client *c)
{
    if (!c)
        return;
    disconnect(c);
    varlink_reader_free(&c->reader);
    clear_error(c);
    free(c);
}

/* Builds and writes one call. */
static int send_call(bitnet_client *c, const char *method, const char *parameters, bool more,
                     bool oneway)
{
    clear_error(c);
    if (!method || !*method)
        return fail(c, BITNET_CLIENT_EINVAL, "no method given");
    if (c->fd < 0)
        return fail(c, BITNET_CLIENT_ECLOSED, "the connection is closed");
    json_t *params = NULL;
    if (parameters) {
        json_error_t jerr;
        params = json_loads(parameters, JSON_REJECT_DUPLICATES, &jerr);
        if (!params || !json_is_object(params)) {
            json_decref(params);
            return fail(c, BITNET_CLIENT_EINVAL, "parameters must be a JSON object: %s",
                        params ? "not an object" : jerr.text);
        }
    }
    char *msg;
    size_t len;
    int rc = varlink_call_build(method, params, more, oneway, &msg, &len);
    json_decref(params);
    if (rc)
        return fail(c, rc == -ENOMEM ? -ENOMEM : BITNET_CLIENT_EINVAL,
                    "cannot encode the call to %s", method);
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(c->fd, msg + off, len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = -errno;
            free(msg);
            disconnect(c);
            return fail(c, rc == -EPIPE ? BITNET_CLIENT_ECLOSED : rc, "sending the call: %s",
                        strerror(-rc));
        }
        off += (size_t)w;
    }
    free(msg);
    return 0;
}

/* Reads the next reply into *out. */
static int read_reply(bitnet_client *c, struct varlink_reply *out)
{
    for (;;) {
        const char *msg;
        size_t len;
        int rc = varlink_reader_next(&c->reader, &msg, &len);
        if (rc == 1) {
            char err[256];
            rc = varlink_reply_parse(msg, len, out, err, sizeof(err));
            if (rc) {
                disconnect(c);
                return fail(c, BITNET_CLIENT_EPROTOCOL, "bad reply from the daemon: %s", err);
            }
            return 0;
        }
        if (rc < 0) {
            disconnect(c);
            return fail(c, BITNET_CLIENT_ELIMIT, "reply larger than %u bytes", CLIENT_MAX_REPLY);
        }
        if (c->fd < 0)
            return fail(c, BITNET_CLIENT_ECLOSED, "the connection is closed");
        char buf[65536];
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            disconnect(c);
            return fail(c, rc, "reading the reply: %s", strerror(-rc));
        }
        if (n == 0) {
            disconnect(c);
            return fail(c, BITNET_CLIENT_ECLOSED, "the daemon closed the connection");
        }
        if (varlink_reader_feed(&c->reader, buf, (size_t)n) < 0)
            return fail(c, -ENOMEM, "out of memory");
    }
}

/* Records a Varlink error reply on the handle. */
static int take_error(bitnet_client *c, struct varlink_reply *r)
{
    c->error_name = r->error;
    r->error = NULL;
    c->error_parameters = json_dumps(r->parameters, JSON_COMPACT | JSON_PRESERVE_ORDER);
    snprintf(c->message, sizeof(c->message), "%s %s", c->error_name,
             c->error_parameters ? c->error_parameters : "");
    varlink_reply_free(r);
    return BITNET_CLIENT_EVARLINK;
}

int bitnet_client_call(bitnet_client *c, const char *method, const char *parameters, char **reply)
{
    if (!c || !reply)
        return BITNET_CLIENT_EINVAL;
    int rc = send_call(c, method, parameters, false, false);
    if (rc)
        return rc;
    struct varlink_reply r;
    if ((rc = read_reply(c, &r)))
        return rc;
    if (r.error)
        return take_error(c, &r);
    if (r.continues) {
        varlink_reply_free(&r);
        disconnect(c);
        return fail(c, BITNET_CLIENT_EPROTOCOL, "the daemon streamed a reply to a plain call");
    }
    char *s = json_dumps(r.parameters, JSON_COMPACT | JSON_PRESERVE_ORDER);
    varlink_reply_free(&r);
    if (!s)
        return fail(c, -ENOMEM, "out of memory");
    *reply = s;
    return 0;
}

int bitnet_client_call_more(bitnet_client *c, const char *method, const char *parameters,
                            bitnet_client_reply_fn fn, void *user)
{
    if (!c || !fn)
        return BITNET_CLIENT_EINVAL;
    int rc = send_call(c, method, parameters, true, false);
    if (rc)
        return rc;
    for (;;) {
        struct varlink_reply r = {0};
        if ((rc = read_reply(c, &r)))
            return rc;
        if (r.error)
            return take_error(c, &r);
        char *s = json_dumps(r.parameters, JSON_COMPACT | JSON_PRESERVE_ORDER);
        bool continues = r.continues;
        varlink_reply_free(&r);
        if (!s) {
            disconnect(c);
            return fail(c, -ENOMEM, "out of memory");
        }
        rc = fn(s, continues ? 1 : 0, user);
        free(s);
        if (rc) {
            if (continues)
                disconnect(c);
            fail(c, rc, "stopped by the reply callback");
            return rc;
        }
        if (!continues)
            return 0;
    }
}

int bitnet_client_call_oneway(bitnet_client *c, const char *method, const char *parameters)
{
    if (!c)
        return BITNET_CLIENT_EINVAL;
    return send_call(c, method, parameters, false, true);
}

const char *bitnet_client_error_name(const bitnet_client *c)
{
    return c ? c->error_name : NULL;
}

const char *bitnet_client_error_parameters(const bitnet_client *c)
{
    return c ? c->error_parameters : NULL;
}

const char *bitnet_client_error_message(const bitnet_client *c)
{
    return c ? c->message : "";
}

const char *bitnet_client_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case BITNET_CLIENT_EVARLINK:
        return "the daemon answered with an error";
    case BITNET_CLIENT_EPROTOCOL:
        return "the daemon's reply is not valid Varlink";
    case BITNET_CLIENT_ECLOSED:
        return "the connection is closed";
    case BITNET_CLIENT_ELIMIT:
        return "the reply is too large";
    case BITNET_CLIENT_EINVAL:
        return "invalid arguments";
    default:
        return err < 0 && err > -4096 ? strerror(-err) : "unknown error";
    }
}

void bitnet_client_free(char *s)
{
    free(s);
}
