/*
 * daemon/conn.c - one client connection: reading, framing, ordering of
 * calls, queued replies and the limits that protect the daemon from a
 * client (message size, output buffer, idle time, connection counts).
 */
#define _GNU_SOURCE /* struct ucred, SO_PEERCRED */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>

#include "bitnet/error.h"
#include "daemon/limits.h"
#include "daemon/log.h"
#include "daemon/models.h"
#include "daemon/server.h"

/* The loop is one thread, so one read buffer serves every connection: its
 * bytes are copied into the connection's reader at once. */
static char read_buf[LIMIT_READ_CHUNK];

struct write_req {
    uv_write_t req;
    struct conn *c;
    char *data;
    size_t len;
};

static void process(struct conn *c);

/* ---- per-uid counts ---- */

static struct uid_count *uid_slot(struct server *s, uid_t uid, bool create)
{
    for (int i = 0; i < s->n_uids; i++) {
        if (s->uids[i].uid == uid)
            return &s->uids[i];
    }
    if (!create)
        return NULL;
    if (s->n_uids == s->cap_uids) {
        int cap = s->cap_uids ? s->cap_uids * 2 : 16;
        struct uid_count *n = realloc(s->uids, (size_t)cap * sizeof(*n));
        if (!n)
            return NULL;
        s->uids = n;
        s->cap_uids = cap;
    }
    s->uids[s->n_uids] = (struct uid_count){.uid = uid, .n = 0};
    return &s->uids[s->n_uids++];
}

static void uid_release(struct server *s, uid_t uid)
{
    struct uid_count *u = uid_slot(s, uid, false);
    if (u && --u->n == 0)
        *u = s->uids[--s->n_uids];
}

/* ---- lifetime ---- */

void conn_ref(struct conn *c)
{
    c->refs++;
}

void conn_unref(struct conn *c)
{
    if (--c->refs > 0)
        return;
    varlink_reader_free(&c->reader);
    free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    conn_unref(h->data);
}

void conn_close(struct conn *c, const char *reason)
{
    if (c->closing)
        return;
    struct server *s = c->srv;
    c->closing = true;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    if (c->counted)
        uid_release(s, c->uid);
    jobs_conn_closed(c);
    log_event(LOG_DEBUG, "disconnect", "conn=%llu uid=%u reason=\"%s\"", (unsigned long long)c->id,
              (unsigned)c->uid, reason);
    uv_close((uv_handle_t *)&c->pipe, on_handle_closed);
    uv_close((uv_handle_t *)&c->idle, on_handle_closed);
    if (s->stopping && s->n_conns == 0 && s->on_drained)
        s->on_drained(s);
}

void conn_close_all(struct server *s)
{
    while (s->conns)
        conn_close(s->conns, "daemon stopping");
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    buf->base = read_buf;
    buf->len = sizeof(read_buf);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

/* Reads while the client is within its limits: queued output below
 * max_output_buffer and unprocessed input below one message. */
static void update_reading(struct conn *c)
{
    const struct config *cfg = &c->srv->cfg;
    bool want = !c->closing && !c->eof && !c->close_when_flushed &&
                c->out_bytes <= (size_t)cfg->max_output_buffer &&
                varlink_reader_pending(&c->reader) <= (size_t)cfg->max_message_size;
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) == 0)
            c->reading = true;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->pipe);
        c->reading = false;
    }
}

static void on_idle(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->busy || c->out_bytes > 0) {
        uv_timer_again(t);
        return;
    }
    conn_close(c, "idle timeout");
}

static void touch(struct conn *c)
{
    long long secs = c->srv->cfg.idle_timeout;
    if (c->closing)
        return;
    if (secs > 0)
        uv_timer_start(&c->idle, on_idle, (uint64_t)secs * 1000, (uint64_t)secs * 1000);
    else
        uv_timer_stop(&c->idle);
}

/* True when the peer closed both directions, not only its sending side: a
 * client that half-closes still reads its replies, one that closed does
 * not, and its generation should stop (POLLHUP tells them apart). */
static bool peer_gone(struct conn *c)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0)
        return true;
    struct pollfd p = {.fd = fd, .events = 0};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    if (nread == 0)
        return;
    if (nread == UV_EOF) {
        c->eof = true;
        if (c->job && peer_gone(c)) {
            conn_close(c, "client closed during a generation");
            return;
        }
        update_reading(c);
        process(c);
        return;
    }
    if (nread < 0) {
        char reason[128];
        snprintf(reason, sizeof(reason), "read: %s", uv_strerror((int)nread));
        conn_close(c, reason);
        return;
    }
    if (varlink_reader_feed(&c->reader, buf->base, (size_t)nread) < 0) {
        conn_close(c, "out of memory");
        return;
    }
    touch(c);
    process(c);
}

/* ---- writing ---- */

static void on_write(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct conn *c = w->c;
    c->out_bytes -= w->len;
    free(w->data);
    free(w);
    if (c->closing)
        return;
    if (status < 0) {
        char reason[128];
        snprintf(reason, sizeof(reason), "write: %s", uv_strerror(status));
        conn_close(c, reason);
        return;
    }
    /* A streaming call (Generate) writes while busy: close only after its
     * last reply. */
    if (c->close_when_flushed && !c->busy && c->out_bytes == 0) {
        conn_close(c, c->eof ? "client finished" : "closed by the daemon");
        return;
    }
    /* A slow reader caught up: take its next calls. */
    process(c);
}

/* Queues a built message (taken over) for writing. */
static int send_message(struct conn *c, char *data, size_t len)
{
    struct write_req *w = malloc(sizeof(*w));
    if (!w) {
        free(data);
        return -ENOMEM;
    }
    w->c = c;
    w->data = data;
    w->len = len;
    uv_buf_t b = uv_buf_init(data, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, on_write);
    if (rc < 0) {
        free(data);
        free(w);
        return rc;
    }
    c->out_bytes += len;
    return 0;
}

/* The call in progress has sent its last reply: run the next one. */
static void call_done(struct conn *c)
{
    c->busy = false;
    touch(c);
    if (!c->processing)
        process(c);
}

int conn_reply(struct conn *c, json_t *parameters, bool continues)
{
    if (!c->busy || (continues && !c->call_more))
        return -EINVAL; /* a handler bug: only "more" calls get several replies */
    int rc = 0;
    if (!c->call_oneway && !c->closing) {
        if (continues && c->out_bytes > (size_t)c->srv->cfg.max_output_buffer)
            return BITNET_ELIMIT;
        char *m;
        size_t n;
        rc = varlink_reply_build(parameters, continues, &m, &n);
        if (rc == 0)
            rc = send_message(c, m, n);
        if (rc < 0)
            conn_close(c, "cannot queue a reply");
    }
    if (!continues)
        call_done(c);
    return rc;
}

int conn_error(struct conn *c, const char *error, json_t *parameters)
{
    if (!c->busy)
        return -EINVAL;
    int rc = 0;
    if (!c->call_oneway && !c->closing) {
        char *m;
        size_t n;
        rc = varlink_error_build(error, parameters, &m, &n);
        if (rc == 0)
            rc = send_message(c, m, n);
        if (rc < 0)
            conn_close(c, "cannot queue an error");
    }
    call_done(c);
    return rc;
}

/* Answers a message that is not a valid call, then closes: after a framing
 * or syntax error the stream cannot be trusted to continue. */
static void protocol_error(struct conn *c, const char *reason)
{
    char q[300];
    log_event(LOG_NOTICE, "protocol-error", "conn=%llu uid=%u reason=%s", (unsigned long long)c->id,
              (unsigned)c->uid, log_quote(reason, q, sizeof(q)));
    json_t *p = json_pack("{s:s}", "reason", reason);
    char *m;
    size_t n;
    c->close_when_flushed = true;
    if (p && varlink_error_build("io.bitnetd.Query.ProtocolError", p, &m, &n) == 0 &&
        send_message(c, m, n) == 0) {
        json_decref(p);
        return;
    }
    json_decref(p);
    conn_close(c, "protocol error");
}

/* Takes complete messages from the reader and runs them one at a time, as
 * long as no call is in progress and the client reads its replies. */
static void process(struct conn *c)
{
    const struct config *cfg = &c->srv->cfg;
    c->processing = true;
    while (!c->closing && !c->busy && !c->close_when_flushed &&
           c->out_bytes <= (size_t)cfg->max_output_buffer) {
        const char *msg;
        size_t len;
        int rc = varlink_reader_next(&c->reader, &msg, &len);
        if (rc == 0) {
            if (c->eof) {
                if (varlink_reader_pending(&c->reader) > 0)
                    log_event(LOG_NOTICE, "protocol-error",
                              "conn=%llu uid=%u reason=\"connection closed inside a message "
                              "(no NUL terminator)\"",
                              (unsigned long long)c->id, (unsigned)c->uid);
                c->close_when_flushed = true;
                if (c->out_bytes == 0)
                    conn_close(c, "client finished");
            }
            break;
        }
        if (rc < 0) {
            char reason[128];
            snprintf(reason, sizeof(reason), "message longer than max_message_size (%lld bytes)",
                     cfg->max_message_size);
            protocol_error(c, reason);
            break;
        }
        struct varlink_call call;
        char err[256];
        rc = varlink_call_parse(msg, len, &call, err, sizeof(err));
        if (rc) {
            protocol_error(c, err);
            break;
        }
        if (call.upgrade) {
            varlink_call_free(&call);
            protocol_error(c, "bitnetd has no method that upgrades the connection");
            break;
        }
        c->busy = true;
        c->call_oneway = call.oneway;
        c->call_more = call.more;
        dispatch_call(c, &call);
        varlink_call_free(&call);
    }
    c->processing = false;
    if (c->closing)
        return;
    if (c->close_when_flushed && !c->busy && c->out_bytes == 0) {
        conn_close(c, c->eof ? "client finished" : "closed by the daemon");
        return;
    }
    update_reading(c);
}

void conn_drain(struct conn *c)
{
    c->close_when_flushed = true;
    if (!c->processing)
        process(c);
}

/* ---- accepting ---- */

/* Reads the peer's credentials and, where the kernel reports them, groups. */
static int read_peer(struct conn *c)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0)
        return -EBADF;
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return -errno;
    c->uid = cred.uid;
    c->gid = cred.gid;
    c->pid = cred.pid;
    c->n_groups = 0;
#ifdef SO_PEERGROUPS
    len = sizeof(c->groups);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, c->groups, &len) == 0)
        c->n_groups = (int)(len / sizeof(gid_t));
#endif
    return 0;
}

void conn_accept(struct server *s)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        log_event(LOG_ERR, "accept-failed", "error=\"out of memory\"");
        return;
    }
    c->srv = s;
    c->id = ++s->next_conn_id;
    c->refs = 2; /* the pipe and the timer handles */
    varlink_reader_init(&c->reader, (size_t)s->cfg.max_message_size);
    uv_pipe_init(s->loop, &c->pipe, 0);
    uv_timer_init(s->loop, &c->idle);
    c->pipe.data = c;
    c->idle.data = c;
    /* Link first, so conn_close can unlink whatever happens next. */
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    c->uid = (uid_t)-1;
    int rc = uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)&c->pipe);
    if (rc == 0)
        rc = read_peer(c);
    if (rc < 0) {
        log_event(LOG_WARNING, "accept-failed", "error=\"%s\"", uv_strerror(rc));
        conn_close(c, "accept failed");
        return;
    }
    struct uid_count *u = uid_slot(s, c->uid, true);
    if (!u) {
        conn_close(c, "out of memory");
        return;
    }
    u->n++;
    c->counted = true;
    if (s->stopping) {
        conn_close(c, "daemon stopping");
        return;
    }
    if (s->n_conns > s->cfg.max_connections) {
        log_event(LOG_WARNING, "connection-refused",
                  "uid=%u pid=%d reason=max_connections limit=%lld", (unsigned)c->uid, (int)c->pid,
                  s->cfg.max_connections);
        conn_close(c, "max_connections");
        return;
    }
    if (u->n > s->cfg.max_connections_per_uid) {
        log_event(LOG_WARNING, "connection-refused",
                  "uid=%u pid=%d reason=max_connections_per_uid limit=%lld", (unsigned)c->uid,
                  (int)c->pid, s->cfg.max_connections_per_uid);
        conn_close(c, "max_connections_per_uid");
        return;
    }
    log_event(LOG_DEBUG, "connect", "conn=%llu uid=%u pid=%d", (unsigned long long)c->id,
              (unsigned)c->uid, (int)c->pid);
    touch(c);
    update_reading(c);
}
