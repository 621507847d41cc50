/*
 * backends/runner.c - a backend library in a child process (runner.h).
 *
 * The wire: each message is a header {op, rc, len} of three 32-bit
 * integers in host order, then len bytes. The daemon sends a request, the
 * child answers with the same op, rc (0 or a negative code) and either the
 * result or, when rc < 0, a message. Both ends are this file, built
 * together, so the format needs no versioning.
 */
#define _GNU_SOURCE
#include "backends/runner.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backends/loader.h"
#include "backends/target.h"
#include "bitnet/error.h"

extern char **environ;

enum runner_op { OP_OPEN = 1, OP_MODEL, OP_SEQ_NEW, OP_SEQ_FREE, OP_EVAL, OP_QUIT };

struct frame {
    uint32_t op;
    int32_t rc;
    uint32_t len;
};

/* Largest message either side accepts: a batch's wanted logits rows. */
#define RUNNER_MAX_MESSAGE (1u << 30)

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EPIPE;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *p, size_t n)
{
    char *c = p;
    while (n > 0) {
        ssize_t r = read(fd, c, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -EPIPE;
        c += r;
        n -= (size_t)r;
    }
    return 0;
}

static int send_msg(int fd, uint32_t op, int32_t rc, const void *a, size_t na, const void *b,
                    size_t nb)
{
    if (na + nb > RUNNER_MAX_MESSAGE)
        return -EMSGSIZE;
    struct frame f = {op, rc, (uint32_t)(na + nb)};
    int e = write_all(fd, &f, sizeof(f));
    if (e == 0 && na)
        e = write_all(fd, a, na);
    if (e == 0 && nb)
        e = write_all(fd, b, nb);
    return e;
}

/* Reads one message; its payload goes to a new buffer in *data (NUL
 * terminated, so text payloads are strings). */
static int recv_msg(int fd, struct frame *f, char **data)
{
    int e = read_all(fd, f, sizeof(*f));
    if (e)
        return e;
    if (f->len > RUNNER_MAX_MESSAGE)
        return -EMSGSIZE;
    char *d = malloc((size_t)f->len + 1);
    if (!d)
        return -ENOMEM;
    e = read_all(fd, d, f->len);
    if (e) {
        free(d);
        return e;
    }
    d[f->len] = '\0';
    *data = d;
    return 0;
}

/* ---- the daemon's side ---- */

struct backend_runner {
    pid_t pid;
    int fd;
    bool dead;
    char death[256]; /* why it is dead */
    bitnet_model_desc desc;
    char arch[64], kernel[64];
    int n_seq_max;
};

pid_t backend_runner_pid(const backend_runner *r)
{
    return r->pid;
}

/* Waits up to ms for the child to exit; returns true and its status when
 * it did. */
static bool reap(pid_t pid, int ms, int *status)
{
    for (int i = 0; i <= ms; i += 10) {
        pid_t w = waitpid(pid, status, WNOHANG);
        if (w == pid || (w < 0 && errno == ECHILD))
            return true;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return false;
}

/* The connection broke: the child died (or is dying). Records why. */
static void mark_dead(backend_runner *r, const char *during)
{
    if (r->dead)
        return;
    r->dead = true;
    int st = 0;
    if (!reap(r->pid, 2000, &st)) {
        kill(r->pid, SIGKILL);
        reap(r->pid, 2000, &st);
        snprintf(r->death, sizeof(r->death),
                 "the backend process %d stopped answering during %s and was killed", (int)r->pid,
                 during);
    } else if (WIFSIGNALED(st)) {
        snprintf(r->death, sizeof(r->death),
                 "the backend process %d died during %s: signal %d (%s)", (int)r->pid, during,
                 WTERMSIG(st), strsignal(WTERMSIG(st)));
    } else {
        snprintf(r->death, sizeof(r->death),
                 "the backend process %d exited during %s with status %d", (int)r->pid, during,
                 WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
    r->pid = -1;
}

static const char *op_name(uint32_t op)
{
    static const char *names[] = {"?",
                                  "loading the library",
                                  "loading the model",
                                  "a new sequence",
                                  "freeing a sequence",
                                  "bitnet_eval",
                                  "quit"};
    return op < sizeof(names) / sizeof(names[0]) ? names[op] : "?";
}

/* One round trip. On success *reply holds the payload (free it), and the
 * child's rc is returned; a message reply (rc < 0) is copied to err. */
static int call(backend_runner *r, uint32_t op, const void *a, size_t na, const void *b, size_t nb,
                char **reply, size_t *reply_len, char *err, size_t err_len)
{
    if (r->dead) {
        snprintf(err, err_len, "%s", r->death);
        return BITNET_EBACKEND;
    }
    struct frame f;
    char *data = NULL;
    int e = send_msg(r->fd, op, 0, a, na, b, nb);
    if (e == 0)
        e = recv_msg(r->fd, &f, &data);
    if (e == -ENOMEM) {
        snprintf(err, err_len, "out of memory");
        return -ENOMEM;
    }
    if (e || f.op != op) {
        free(data);
        mark_dead(r, op_name(op));
        snprintf(err, err_len, "%s", r->death);
        return BITNET_EBACKEND;
    }
    if (f.rc < 0) {
        snprintf(err, err_len, "%s", data);
        free(data);
        return f.rc;
    }
    if (reply) {
        *reply = data;
        *reply_len = f.len;
    } else {
        free(data);
    }
    return f.rc;
}

/* Copies the NUL-terminated string at *p (within end) to dst; advances *p. */
static void take_str(const char **p, const char *end, char *dst, size_t n)
{
    size_t len = strnlen(*p, (size_t)(end - *p));
    snprintf(dst, n, "%.*s", (int)len, *p);
    *p += len + (*p + len < end);
}

int backend_runner_start(const char *exe, const runner_library *lib, backend_runner **out,
                         runner_info *info, char *err, size_t err_len)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        int e = errno;
        snprintf(err, err_len, "cannot make a socket pair: %s", strerror(e));
        return -e;
    }
    char fd_s[16], mem_s[16], size_s[32], uid_s[16];
    snprintf(fd_s, sizeof(fd_s), "%d", sv[1]);
    snprintf(mem_s, sizeof(mem_s), "%d", lib->memfd);
    snprintf(size_s, sizeof(size_s), "%zu", lib->size);
    snprintf(uid_s, sizeof(uid_s), "%u", (unsigned)lib->uid);
    char *argv[] = {
        (char *)exe,           "--backend-runner", fd_s,  mem_s, size_s, (char *)lib->path,
        (char *)lib->resolved, (char *)lib->dirs,  uid_s, NULL};
    /* dup2 onto the same descriptor clears its close-on-exec flag in the
     * child only, so no other process spawned meanwhile inherits them. */
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, sv[1], sv[1]);
    posix_spawn_file_actions_adddup2(&fa, lib->memfd, lib->memfd);
    pid_t pid;
    int rc = posix_spawn(&pid, exe, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(sv[1]);
    if (rc != 0) {
        close(sv[0]);
        snprintf(err, err_len, "cannot start the backend process %s: %s", exe, strerror(rc));
        return -rc;
    }
    backend_runner *r = calloc(1, sizeof(*r));
    if (!r) {
        close(sv[0]);
        kill(pid, SIGKILL);
        int st;
        reap(pid, 2000, &st);
        return -ENOMEM;
    }
    r->pid = pid;
    r->fd = sv[0];
    char *data = NULL;
    size_t n = 0;
    rc = call(r, OP_OPEN, NULL, 0, NULL, 0, &data, &n, err, err_len);
    if (rc < 0) {
        backend_runner_free(r);
        return rc;
    }
    runner_info in = {0};
    if (n >= sizeof(uint32_t)) {
        memcpy(&in.abi_version, data, sizeof(uint32_t));
        const char *p = data + sizeof(uint32_t), *end = data + n;
        take_str(&p, end, in.name, sizeof(in.name));
        take_str(&p, end, in.version, sizeof(in.version));
        take_str(&p, end, in.device, sizeof(in.device));
        take_str(&p, end, in.detail, sizeof(in.detail));
    }
    free(data);
    if (info)
        *info = in;
    *out = r;
    return 0;
}

int backend_runner_model(backend_runner *r, const char *path, const bitnet_model_params *params,
                         bitnet_model_desc *desc, char *err, size_t err_len)
{
    int32_t nums[3] = {params->n_threads, params->n_ctx, params->n_ctx_max};
    const char *kernel = params->kernel ? params->kernel : "";
    size_t kl = strlen(kernel) + 1, pl = strlen(path) + 1;
    char *req = malloc(sizeof(nums) + kl + pl);
    if (!req)
        return -ENOMEM;
    memcpy(req, nums, sizeof(nums));
    memcpy(req + sizeof(nums), kernel, kl);
    memcpy(req + sizeof(nums) + kl, path, pl);
    char *data = NULL;
    size_t n = 0;
    int rc = call(r, OP_MODEL, req, sizeof(nums) + kl + pl, NULL, 0, &data, &n, err, err_len);
    free(req);
    if (rc < 0)
        return rc;
    int32_t d[4] = {0};
    if (n < sizeof(d)) {
        free(data);
        snprintf(err, err_len, "the backend process sent a short model description");
        return BITNET_EBACKEND;
    }
    memcpy(d, data, sizeof(d));
    const char *p = data + sizeof(d), *end = data + n;
    take_str(&p, end, r->arch, sizeof(r->arch));
    take_str(&p, end, r->kernel, sizeof(r->kernel));
    free(data);
    r->n_seq_max = params->n_ctx_max > 0 ? params->n_ctx_max : 1;
    r->desc = (bitnet_model_desc){.struct_size = sizeof(r->desc),
                                  .n_vocab = d[0],
                                  .n_ctx = d[1],
                                  .bos = d[2],
                                  .eos = d[3],
                                  .arch = r->arch,
                                  .kernel = r->kernel};
    *desc = r->desc;
    return 0;
}

static int rt_seq_new(void *impl, int *seq, char *err, size_t err_len)
{
    char *data = NULL;
    size_t n = 0;
    int rc = call(impl, OP_SEQ_NEW, NULL, 0, NULL, 0, &data, &n, err, err_len);
    if (rc < 0)
        return rc;
    int32_t s = -1;
    if (n >= sizeof(s))
        memcpy(&s, data, sizeof(s));
    free(data);
    *seq = s;
    return 0;
}

static void rt_seq_free(void *impl, int seq)
{
    char err[256];
    int32_t s = seq;
    call(impl, OP_SEQ_FREE, &s, sizeof(s), NULL, 0, NULL, NULL, err, sizeof(err));
}

static int rt_eval(void *impl, const engine_batch *batch, float *out, char *err, size_t err_len)
{
    backend_runner *r = impl;
    if (batch->n <= 0 || batch->n > (1 << 20)) {
        snprintf(err, err_len, "a batch of %d tokens", batch->n);
        return BITNET_EPARAM;
    }
    size_t n = (size_t)batch->n;
    size_t len = sizeof(int32_t) + n * (2 * sizeof(int32_t) + 1);
    char *req = malloc(len);
    if (!req)
        return -ENOMEM;
    int32_t nn = batch->n;
    memcpy(req, &nn, sizeof(nn));
    char *p = req + sizeof(nn);
    int n_want = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t t = batch->tokens[i], s = batch->seq[i];
        memcpy(p + i * sizeof(int32_t), &t, sizeof(t));
        memcpy(p + (n + i) * sizeof(int32_t), &s, sizeof(s));
        p[2 * n * sizeof(int32_t) + i] = batch->logits[i] ? 1 : 0;
        n_want += batch->logits[i] ? 1 : 0;
    }
    char *data = NULL;
    size_t got = 0;
    int rc = call(r, OP_EVAL, req, len, NULL, 0, &data, &got, err, err_len);
    free(req);
    if (rc < 0)
        return rc;
    size_t want = (size_t)n_want * (size_t)r->desc.n_vocab * sizeof(float);
    if (got != want) {
        free(data);
        snprintf(err, err_len, "the backend process sent %zu bytes of logits, not %zu", got, want);
        return BITNET_EBACKEND;
    }
    if (out && want)
        memcpy(out, data, want);
    free(data);
    return 0;
}

void backend_runner_target(backend_runner *r, batch_target *out)
{
    *out = (batch_target){.impl = r,
                          .seq_new = rt_seq_new,
                          .seq_free = rt_seq_free,
                          .eval = rt_eval,
                          .n_vocab = r->desc.n_vocab,
                          .n_ctx = r->desc.n_ctx,
                          .n_seq_max = r->n_seq_max};
}

void backend_runner_free(backend_runner *r)
{
    if (!r)
        return;
    if (!r->dead)
        send_msg(r->fd, OP_QUIT, 0, NULL, 0, NULL, 0);
    close(r->fd);
    if (r->pid > 0) {
        int st;
        if (!reap(r->pid, 1000, &st)) {
            kill(r->pid, SIGKILL);
            reap(r->pid, 2000, &st);
        }
    }
    free(r);
}

/* ---- the child's side ---- */

struct child {
    int fd;
    backend_lib *lib;
    bitnet_model *model;
    backend_target *target;
    batch_target bt;
};

static int reply_err(int fd, uint32_t op, int rc, const char *msg)
{
    return send_msg(fd, op, rc < 0 ? rc : BITNET_EBACKEND, msg, strlen(msg) + 1, NULL, 0);
}

static int serve_open(struct child *c, char **argv)
{
    char err[1024] = "";
    const char *dirs[17] = {0};
    char dirbuf[4096];
    snprintf(dirbuf, sizeof(dirbuf), "%s", argv[7]);
    int nd = 0;
    for (char *save = NULL, *d = strtok_r(dirbuf, ":", &save); d && nd < 16;
         d = strtok_r(NULL, ":", &save))
        dirs[nd++] = d;
    validate_opts o = {.dirs = dirs, .uid = (uid_t)strtoul(argv[8], NULL, 10)};
    /* The daemon that started this runner wrote these numbers. */
    /* NOLINTNEXTLINE(cert-err34-c) */
    int rc = backend_lib_open_copy(atoi(argv[3]), (size_t)strtoull(argv[4], NULL, 10), argv[5],
                                   argv[6], &o, &c->lib, err, sizeof(err));
    if (rc)
        return reply_err(c->fd, OP_OPEN, rc, err);
    const bitnet_backend_desc *d = &c->lib->desc;
    char buf[2048];
    uint32_t abi = d->abi_version;
    memcpy(buf, &abi, sizeof(abi));
    size_t n = sizeof(abi);
    const char *strs[] = {d->name, d->version, d->device, d->detail};
    for (size_t i = 0; i < 4; i++) {
        const char *s = strs[i] ? strs[i] : "";
        size_t l = strnlen(s, 1500);
        if (n + l + 1 > sizeof(buf))
            l = sizeof(buf) - n - 1;
        memcpy(buf + n, s, l);
        buf[n + l] = '\0';
        n += l + 1;
    }
    return send_msg(c->fd, OP_OPEN, 0, buf, n, NULL, 0);
}

static int serve_model(struct child *c, const char *data, size_t len)
{
    char err[1024] = "";
    int32_t nums[3];
    if (!c->lib || c->model || len < sizeof(nums) + 2 || data[len - 1] != '\0')
        return reply_err(c->fd, OP_MODEL, BITNET_EPARAM, "runner: bad model request");
    memcpy(nums, data, sizeof(nums));
    const char *kernel = data + sizeof(nums);
    const char *path = kernel + strlen(kernel) + 1;
    if (path >= data + len)
        return reply_err(c->fd, OP_MODEL, BITNET_EPARAM, "runner: bad model request");
    bitnet_model_params mp = {.struct_size = sizeof(mp),
                              .n_threads = nums[0],
                              .n_ctx = nums[1],
                              .n_ctx_max = nums[2],
                              .kernel = kernel[0] ? kernel : NULL};
    const backend_api *api = &c->lib->api;
    int rc = api->model_new_from_file(path, &mp, &c->model, err, sizeof(err));
    if (rc)
        return reply_err(c->fd, OP_MODEL, rc, err[0] ? err : bitnet_strerror(rc));
    rc = backend_target_new(api, c->model, nums[2] > 0 ? nums[2] : 1, &c->target, err, sizeof(err));
    if (rc)
        return reply_err(c->fd, OP_MODEL, rc, err);
    backend_target_get(c->target, &c->bt);
    bitnet_model_desc d = {0};
    api->model_describe(c->model, &d);
    int32_t out[4] = {d.n_vocab, d.n_ctx, d.bos, d.eos};
    char buf[256];
    memcpy(buf, out, sizeof(out));
    int n = snprintf(buf + sizeof(out), sizeof(buf) - sizeof(out), "%.60s%c%.60s",
                     d.arch ? d.arch : "", '\0', d.kernel ? d.kernel : "");
    return send_msg(c->fd, OP_MODEL, 0, buf, sizeof(out) + (size_t)n + 1, NULL, 0);
}

static int serve_eval(struct child *c, const char *data, size_t len)
{
    char err[1024] = "";
    int32_t nn;
    if (!c->target || len < sizeof(nn))
        return reply_err(c->fd, OP_EVAL, BITNET_EPARAM, "runner: no model");
    memcpy(&nn, data, sizeof(nn));
    size_t n = nn > 0 ? (size_t)nn : 0;
    if (n == 0 || len != sizeof(nn) + n * (2 * sizeof(int32_t) + 1))
        return reply_err(c->fd, OP_EVAL, BITNET_EPARAM, "runner: bad eval request");
    int32_t *tok = malloc(n * sizeof(int32_t));
    int *seq = malloc(n * sizeof(int));
    bool *want = malloc(n * sizeof(bool));
    size_t n_want = 0;
    float *logits = NULL;
    int rc = -ENOMEM;
    if (tok && seq && want) {
        const char *p = data + sizeof(nn);
        for (size_t i = 0; i < n; i++) {
            int32_t s;
            memcpy(&tok[i], p + i * sizeof(int32_t), sizeof(int32_t));
            memcpy(&s, p + (n + i) * sizeof(int32_t), sizeof(int32_t));
            seq[i] = s;
            want[i] = p[2 * n * sizeof(int32_t) + i] != 0;
            n_want += want[i];
        }
        size_t bytes = n_want * (size_t)c->bt.n_vocab * sizeof(float);
        logits = malloc(bytes ? bytes : 1);
        if (logits) {
            engine_batch b = {(int)n, tok, seq, want};
            rc = c->bt.eval(c->bt.impl, &b, logits, err, sizeof(err));
        }
    }
    int e = rc == 0 ? send_msg(c->fd, OP_EVAL, 0, logits,
                               n_want * (size_t)c->bt.n_vocab * sizeof(float), NULL, 0)
                    : reply_err(c->fd, OP_EVAL, rc, err[0] ? err : bitnet_strerror(rc));
    free(tok);
    free(seq);
    free(want);
    free(logits);
    return e;
}

int backend_runner_main(int argc, char **argv)
{
    if (argc != 9) {
        fprintf(stderr, "bitnetd --backend-runner: started by bitnetd only (%d arguments)\n", argc);
        return 2;
    }
    /* Die with the daemon: a runner has no one else to serve. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        return 1;
    /* NOLINTNEXTLINE(cert-err34-c): the daemon that started this runner wrote it. */
    struct child c = {.fd = atoi(argv[2])};
    int e = 0;
    while (e == 0) {
        struct frame f;
        char *data = NULL;
        e = recv_msg(c.fd, &f, &data);
        if (e)
            break;
        switch (f.op) {
        case OP_OPEN:
            e = c.lib ? reply_err(c.fd, f.op, BITNET_EPARAM, "runner: opened already")
                      : serve_open(&c, argv);
            break;
        case OP_MODEL:
            e = serve_model(&c, data, f.len);
            break;
        case OP_SEQ_NEW: {
            char err[512] = "";
            int seq = -1;
            int rc = c.target ? c.bt.seq_new(c.bt.impl, &seq, err, sizeof(err)) : BITNET_EPARAM;
            int32_t s = seq;
            e = rc ? reply_err(c.fd, f.op, rc, err[0] ? err : "runner: no model")
                   : send_msg(c.fd, f.op, 0, &s, sizeof(s), NULL, 0);
            break;
        }
        case OP_SEQ_FREE: {
            int32_t s = -1;
            if (f.len == sizeof(s) && c.target) {
                memcpy(&s, data, sizeof(s));
                c.bt.seq_free(c.bt.impl, s);
            }
            e = send_msg(c.fd, f.op, 0, NULL, 0, NULL, 0);
            break;
        }
        case OP_EVAL:
            e = serve_eval(&c, data, f.len);
            break;
        case OP_QUIT:
            e = 1;
            break;
        default:
            e = reply_err(c.fd, f.op, BITNET_EPARAM, "runner: unknown request");
            break;
        }
        free(data);
    }
    backend_target_free(c.target);
    if (c.model)
        c.lib->api.model_free(c.model);
    backend_lib_free(c.lib);
    return 0;
}
