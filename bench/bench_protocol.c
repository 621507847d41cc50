/*
 * bench/bench_protocol.c - bench-protocol: what the Varlink protocol costs
 * (a report, never a test).
 *
 * Two measurements against a real bitnetd, started here on a temporary
 * socket (the built daemon, with a model from bitnet-mkmodel unless --model
 * names one) or reached at --socket:
 *
 *  - GetCapabilities round trips through libbitnet-client over 1, 16 and 128
 *    connections at once (one thread and one handle per connection, all
 *    started together): calls/s and the latency distribution of every call.
 *  - A streaming Generate against the same generation run in this process
 *    with the engine and batcher (engine/batcher.h) on the same model, thread
 *    count, context and sequence slots as the daemon's: time per token seen
 *    by the client, first text, replies, and the bytes on the wire (counted
 *    on a raw socket for the same call). The two paths alternate run by run
 *    so that a change in the machine's load hits both; medians are reported.
 *    Greedy sampling makes both generate the same text, which is checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bitnet/client.h"
#include "engine/batcher.h"
#include "engine/engine.h"
#include "engine/tokenizer.h"
#include "bench/bench_stats.h"

extern char **environ;

#define MAX_LIST 8
#define MAX_RUNS 64
/* Guards against a daemon that never gets ready; a healthy start takes well
 * under a second. */
#define READY_GUARD_MS 120000

struct opts {
    const char *socket;  /* a running daemon, or NULL to start one */
    const char *bitnetd; /* the daemon to start */
    const char *mkmodel; /* writes the model when --model is not given */
    const char *model;   /* the daemon's model and the in-process one */
    const char *prompt;
    const char *out; /* markdown report */
    const char *tsv; /* the figures as tab-separated values, or NULL */
    int threads;
    int conns[MAX_LIST], n_conns;
    int calls;  /* GetCapabilities calls per connection count */
    int tokens; /* tokens per streamed generation; 0 skips the comparison */
    int runs;
};

/* A daemon started by this program. */
struct daemon {
    pid_t pid;
    char dir[64];
    char socket[128], config[128], notify[128], log[128], model[128];
    bool own_model; /* model written here, removed at the end */
};

/* The daemon's model as ListModels shows it. */
struct model_info {
    char path[1024], name[128], kernel[64], weights[32];
    int threads, n_ctx, n_seq_max;
};

/* The q-quantile of n sorted values (nearest rank). */
static double quantile(const double *sorted, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

static void usage(void)
{
    fprintf(stderr,
            "Usage: bench-protocol [--socket PATH | --bitnetd PATH] [--model FILE] [--threads N]\n"
            "                      [--conns 1,16,128] [--calls N] [--tokens N] [--runs N]\n"
            "                      [--prompt TEXT] [--out REPORT.md] [--tsv FILE]\n"
            "Without --socket, starts the built bitnetd on a temporary socket with --model\n"
            "(default: a tiny random model written by bitnet-mkmodel). --conns 0 skips the\n"
            "round-trip figures, --tokens 0 the streaming comparison. --tsv writes the\n"
            "figures as tab-separated values too (for charts).\n");
}

static int parse_list(const char *s, int *out)
{
    int n = 0;
    while (*s && n < MAX_LIST) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > 4096)
            return -1;
        if (v > 0)
            out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return n;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || *end || end == s || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.bitnetd = BITNETD_PATH,
                       .mkmodel = BITNET_MKMODEL_PATH,
                       .prompt = "The quick brown fox",
                       .threads = 1,
                       .conns = {1, 16, 128},
                       .n_conns = 3,
                       .calls = 2000,
                       .tokens = 128,
                       .runs = 15};
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            exit(0);
        } else if (!strcmp(a, "--socket") && v)
            o->socket = v;
        else if (!strcmp(a, "--bitnetd") && v)
            o->bitnetd = v;
        else if (!strcmp(a, "--model") && v)
            o->model = v;
        else if (!strcmp(a, "--prompt") && v)
            o->prompt = v;
        else if (!strcmp(a, "--out") && v)
            o->out = v;
        else if (!strcmp(a, "--tsv") && v)
            o->tsv = v;
        else if (!strcmp(a, "--threads"))
            bad = parse_int(v, 1, 1024, &o->threads);
        else if (!strcmp(a, "--calls"))
            bad = parse_int(v, 1, 10000000, &o->calls);
        else if (!strcmp(a, "--tokens"))
            bad = parse_int(v, 0, 4096, &o->tokens);
        else if (!strcmp(a, "--runs"))
            bad = parse_int(v, 1, MAX_RUNS, &o->runs);
        else if (!strcmp(a, "--conns") && v)
            bad = (o->n_conns = parse_list(v, o->conns)) < 0;
        else {
            usage();
            return -1;
        }
        if (bad) {
            fprintf(stderr, "bench-protocol: bad value for %s\n", a);
            return -1;
        }
    }
    return 0;
}

/* ---- a daemon of our own ---- */

/* Fills sa with a Unix socket path; -ENAMETOOLONG (and errno) when it does not fit. */
static int unix_address(const char *path, struct sockaddr_un *sa)
{
    *sa = (struct sockaddr_un){.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if (n >= sizeof(sa->sun_path)) {
        errno = ENAMETOOLONG;
        return -ENAMETOOLONG;
    }
    memcpy(sa->sun_path, path, n + 1);
    return 0;
}

/* Runs argv, output to log; returns its exit status or -errno. */
static int run_program(char *const argv[], char *const envp[], const char *log, pid_t *pid_out)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    if (rc)
        return -rc;
    if (pid_out) {
        *pid_out = pid;
        return 0;
    }
    int status;
    if (waitpid(pid, &status, 0) < 0)
        return -errno;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Waits for READY=1 on the notification socket while the daemon lives. */
static int wait_ready(struct daemon *d, int fd, char *err, size_t err_len)
{
    double deadline = bench_now_ms() + READY_GUARD_MS;
    while (bench_now_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 200) > 0) {
            char buf[4096];
            ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
            if (n > 0) {
                buf[n] = 0;
                for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
                    if (!strcmp(line, "READY=1"))
                        return 0;
            }
        }
        int status;
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            d->pid = 0;
            snprintf(err, err_len, "bitnetd exited before it was ready; see %s", d->log);
            return -ECHILD;
        }
    }
    snprintf(err, err_len, "bitnetd was not ready after %d s; see %s", READY_GUARD_MS / 1000,
             d->log);
    return -ETIMEDOUT;
}

static int daemon_start(const struct opts *o, struct daemon *d, char *err, size_t err_len)
{
    *d = (struct daemon){0};
    snprintf(d->dir, sizeof(d->dir), "/tmp/bench-protocol-XXXXXX");
    if (!mkdtemp(d->dir)) {
        snprintf(err, err_len, "mkdtemp: %s", strerror(errno));
        return -errno;
    }
    snprintf(d->socket, sizeof(d->socket), "%s/bitnetd.sock", d->dir);
    snprintf(d->config, sizeof(d->config), "%s/bitnetd.conf", d->dir);
    snprintf(d->notify, sizeof(d->notify), "%s/notify", d->dir);
    snprintf(d->log, sizeof(d->log), "%s/bitnetd.log", d->dir);
    if (o->model) {
        snprintf(d->model, sizeof(d->model), "%s", o->model);
    } else {
        snprintf(d->model, sizeof(d->model), "%s/tiny.gguf", d->dir);
        char *argv[] = {(char *)o->mkmodel, "--arch", "bitnet-b1.58", "--preset", "tiny",
                        "--type",           "i2s",    "--seed",       "1",        "-o",
                        d->model,           NULL};
        int rc = run_program(argv, environ, d->log, NULL);
        if (rc) {
            snprintf(err, err_len, "%s failed (%d); see %s", o->mkmodel, rc, d->log);
            return rc < 0 ? rc : -EIO;
        }
        d->own_model = true;
    }
    FILE *f = fopen(d->config, "w"); /* empty: no system configuration */
    if (!f || fclose(f)) {
        snprintf(err, err_len, "%s: %s", d->config, strerror(errno));
        return -errno;
    }
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || unix_address(d->notify, &sa) < 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        snprintf(err, err_len, "notification socket: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -errno;
    }
    /* The environment without another service manager's variables. */
    size_t n_env = 0;
    while (environ[n_env])
        n_env++;
    char **envp = calloc(n_env + 2, sizeof(*envp));
    char notify_env[160];
    snprintf(notify_env, sizeof(notify_env), "NOTIFY_SOCKET=%s", d->notify);
    size_t k = 0;
    for (size_t i = 0; envp && i < n_env; i++)
        if (strncmp(environ[i], "NOTIFY_SOCKET=", 14) != 0 &&
            strncmp(environ[i], "LISTEN_", 7) != 0 && strncmp(environ[i], "BITNETD_", 8) != 0)
            envp[k++] = environ[i];
    if (!envp) {
        close(fd);
        return -ENOMEM;
    }
    envp[k] = notify_env;
    char threads[16];
    snprintf(threads, sizeof(threads), "%d", o->threads);
    char *argv[] = {(char *)o->bitnetd,
                    "--socket",
                    d->socket,
                    "--config",
                    d->config,
                    "--threads",
                    threads,
                    "--model",
                    d->model,
                    "--max-connections",
                    "1024",
                    "--max-connections-per-uid",
                    "1024",
                    "--log-level",
                    "warning",
                    NULL};
    int rc = run_program(argv, envp, d->log, &d->pid);
    free(envp);
    if (rc) {
        snprintf(err, err_len, "cannot start %s: %s", o->bitnetd, strerror(-rc));
        close(fd);
        return rc;
    }
    rc = wait_ready(d, fd, err, err_len);
    close(fd);
    return rc;
}

/* SIGTERM, wait, and remove what was made here (the log stays when the
 * daemon did not exit cleanly). */
static void daemon_stop(struct daemon *d)
{
    int status = 0;
    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        waitpid(d->pid, &status, 0);
    }
    unlink(d->config);
    unlink(d->notify);
    unlink(d->socket);
    if (d->own_model)
        unlink(d->model);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        unlink(d->log);
        rmdir(d->dir);
    } else {
        fprintf(stderr, "bench-protocol: bitnetd did not exit cleanly; its log is %s\n", d->log);
    }
}

/* ---- GetCapabilities round trips ---- */

/* Holds the callers until all exist, then lets them go at once (or tells
 * them to quit when one could not be started). */
struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int state; /* 0 wait, 1 go, -1 quit */
};

static int gate_wait(struct gate *g)
{
    pthread_mutex_lock(&g->lock);
    while (g->state == 0)
        pthread_cond_wait(&g->cond, &g->lock);
    int state = g->state;
    pthread_mutex_unlock(&g->lock);
    return state;
}

static void gate_open(struct gate *g, int state)
{
    pthread_mutex_lock(&g->lock);
    g->state = state;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

struct caller {
    bitnet_client *c;
    int calls;
    double *lat_ms; /* calls entries */
    int ok;
    char err[200]; /* the first failure */
    struct gate *start;
};

static void *caller_main(void *arg)
{
    struct caller *w = arg;
    if (gate_wait(w->start) < 0)
        return NULL;
    for (int i = 0; i < w->calls; i++) {
        char *reply;
        double t0 = bench_now_ms();
        int rc = bitnet_client_call(w->c, "io.bitnetd.Query.GetCapabilities", NULL, &reply);
        double t1 = bench_now_ms();
        if (rc) {
            if (!w->err[0])
                snprintf(w->err, sizeof(w->err), "%s", bitnet_client_error_message(w->c));
            continue;
        }
        bitnet_client_free(reply);
        w->lat_ms[w->ok++] = t1 - t0;
    }
    return NULL;
}

struct roundtrip {
    int conns, calls, errors;
    double calls_s, p50, p99, max;
    char err[200];
};

static int bench_roundtrips(const char *socket, int conns, int calls, struct roundtrip *r)
{
    *r = (struct roundtrip){.conns = conns};
    int per = (calls + conns - 1) / conns;
    if (per < 10)
        per = 10;
    struct caller *w = calloc((size_t)conns, sizeof(*w));
    pthread_t *tid = calloc((size_t)conns, sizeof(*tid));
    double *all = calloc((size_t)conns * (size_t)per, sizeof(*all));
    if (!w || !tid || !all) {
        free(w);
        free(tid);
        free(all);
        return -ENOMEM;
    }
    struct gate start = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    int rc = 0, started = 0;
    for (int i = 0; i < conns && rc == 0; i++) {
        w[i] = (struct caller){.calls = per, .lat_ms = all + (size_t)i * per, .start = &start};
        rc = bitnet_client_connect(socket, &w[i].c);
        if (rc)
            snprintf(r->err, sizeof(r->err), "connection %d of %d: %s", i + 1, conns,
                     bitnet_client_strerror(rc));
        /* One call each before the clock starts: the daemon has accepted
         * and registered every connection when the measured calls begin. */
        char *reply;
        if (rc == 0 && (rc = bitnet_client_call(w[i].c, "io.bitnetd.Query.GetCapabilities", NULL,
                                                &reply)) == 0)
            bitnet_client_free(reply);
        else if (rc && !r->err[0])
            snprintf(r->err, sizeof(r->err),
                     "connection %d of %d: %s (is it over the daemon's max_connections or "
                     "max_connections_per_uid?)",
                     i + 1, conns, bitnet_client_error_message(w[i].c));
    }
    for (int i = 0; rc == 0 && i < conns; i++) {
        if ((rc = -pthread_create(&tid[i], NULL, caller_main, &w[i])) == 0)
            started++;
        else
            snprintf(r->err, sizeof(r->err), "cannot start thread %d: %s", i + 1, strerror(-rc));
    }
    double t0 = bench_now_ms();
    gate_open(&start, rc == 0 ? 1 : -1);
    for (int i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    double wall = bench_now_ms() - t0;
    if (rc == 0) {
        size_t n = 0;
        for (int i = 0; i < conns; i++) {
            /* Compact each caller's latencies to the front of all. */
            memmove(all + n, w[i].lat_ms, (size_t)w[i].ok * sizeof(*all));
            n += (size_t)w[i].ok;
            r->errors += w[i].calls - w[i].ok;
            if (w[i].err[0] && !r->err[0])
                snprintf(r->err, sizeof(r->err), "%s", w[i].err);
        }
        qsort(all, n, sizeof(*all), bench_cmp_double);
        r->calls = (int)n;
        r->calls_s = wall > 0 ? (double)n / (wall / 1e3) : 0;
        r->p50 = quantile(all, n, 0.50);
        r->p99 = quantile(all, n, 0.99);
        r->max = n ? all[n - 1] : 0;
    }
    for (int i = 0; i < conns; i++)
        bitnet_client_close(w[i].c);
    free(w);
    free(tid);
    free(all);
    return rc;
}

/* ---- streaming Generate, through the daemon and in-process ---- */

struct gen_result {
    double wall_ms;      /* call (or batcher_add) to the last reply (or DONE) */
    double first_ms;     /* to the first text */
    double decode_ms;    /* the engine's decode time as usage reports it */
    double engine_ms;    /* prefill + decode as usage reports them */
    int tokens;          /* generated */
    int replies;         /* messages received (daemon) */
    char *text;          /* the whole text */
    size_t len, cap;     /* of text */
    bool done;           /* saw the final reply or DONE */
    char finish[16];     /* finish reason */
    double t0;           /* when the call started */
    size_t wire_in;      /* bytes received on the wire (raw run) */
    size_t wire_out;     /* bytes of the call */
    size_t text_on_wire; /* text bytes among wire_in */
};

static int append(struct gen_result *r, const char *s, size_t n)
{
    if (r->len + n + 1 > r->cap) {
        size_t cap = (r->len + n + 1) * 2;
        char *t = realloc(r->text, cap);
        if (!t)
            return -ENOMEM;
        r->text = t;
        r->cap = cap;
    }
    memcpy(r->text + r->len, s, n);
    r->len += n;
    r->text[r->len] = 0;
    return 0;
}

/* Takes text, finish reason and usage out of one Generate reply. */
static int take_reply(struct gen_result *r, json_t *p)
{
    json_t *text = json_object_get(p, "text");
    if (json_is_string(text)) {
        if (r->first_ms == 0)
            r->first_ms = bench_now_ms() - r->t0;
        if (append(r, json_string_value(text), json_string_length(text)))
            return -ENOMEM;
    }
    json_t *finish = json_object_get(p, "finish_reason");
    if (json_is_string(finish)) {
        json_t *u = json_object_get(p, "usage");
        r->tokens = (int)json_integer_value(json_object_get(u, "generated_tokens"));
        r->decode_ms = json_number_value(json_object_get(u, "decode_ms"));
        r->engine_ms = r->decode_ms + json_number_value(json_object_get(u, "prefill_ms"));
        snprintf(r->finish, sizeof(r->finish), "%s", json_string_value(finish));
        r->done = true;
    }
    return 0;
}

static int on_reply(const char *parameters, int continues, void *user)
{
    struct gen_result *r = user;
    (void)continues;
    r->replies++;
    json_t *p = json_loads(parameters, 0, NULL);
    int rc = p ? take_reply(r, p) : -EPROTO;
    json_decref(p);
    return rc;
}

static char *generate_parameters(const char *prompt, int n)
{
    json_t *p = json_pack("{s:s, s:i}", "prompt", prompt, "max_tokens", n);
    char *s = p ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    return s;
}

/* One streamed Generate through libbitnet-client. */
static int daemon_generate(bitnet_client *c, const char *params, struct gen_result *r)
{
    r->t0 = bench_now_ms();
    int rc = bitnet_client_call_more(c, "io.bitnetd.Inference.Generate", params, on_reply, r);
    r->wall_ms = bench_now_ms() - r->t0;
    return rc ? rc : r->done ? 0 : -EPROTO;
}

/* The same call on a raw socket, counting the bytes each way. */
static int wire_generate(const char *socket_path, const char *params, struct gen_result *r)
{
    static const char head[] = "{\"method\":\"io.bitnetd.Inference.Generate\",\"parameters\":";
    static const char tail[] = ",\"more\":true}";
    size_t n_call = strlen(head) + strlen(params) + strlen(tail) + 1; /* with its NUL */
    char *call = malloc(n_call);
    if (!call)
        return -ENOMEM;
    snprintf(call, n_call, "%s%s%s", head, params, tail);
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = fd < 0 || unix_address(socket_path, &sa) < 0 ||
                     connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0
                 ? -errno
                 : 0;
    if (rc == 0 && write(fd, call, n_call) != (ssize_t)n_call)
        rc = -EIO;
    r->wire_out = n_call;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    while (rc == 0 && !r->done) {
        if (len + 65536 > cap) {
            char *b = realloc(buf, cap = (len + 65536) * 2);
            if (!b) {
                rc = -ENOMEM;
                break;
            }
            buf = b;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n <= 0) {
            rc = n < 0 ? -errno : -EPIPE;
            break;
        }
        r->wire_in += (size_t)n;
        len += (size_t)n;
        char *nul;
        while (rc == 0 && (nul = memchr(buf, 0, len)) != NULL) {
            json_t *m = json_loadb(buf, (size_t)(nul - buf), 0, NULL);
            json_t *p = json_object_get(m, "parameters");
            if (!m || json_object_get(m, "error"))
                rc = -EPROTO;
            else {
                r->replies++;
                size_t before = r->len;
                rc = take_reply(r, p);
                r->text_on_wire += r->len - before;
            }
            json_decref(m);
            len -= (size_t)(nul + 1 - buf);
            memmove(buf, nul + 1, len);
        }
    }
    free(buf);
    free(call);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* The in-process path: the daemon's model through engine and batcher. */
struct local {
    engine *e;
    tokenizer *tok;
    batcher *b;
    int32_t *prompt;
    size_t n_prompt;
};

static void local_close(struct local *l)
{
    batcher_free(l->b);
    tokenizer_free(l->tok);
    engine_free(l->e);
    free(l->prompt);
    *l = (struct local){0};
}

static int local_open(const struct model_info *m, const char *path, const char *prompt,
                      struct local *l, char *err, size_t err_len)
{
    *l = (struct local){0};
    engine_opts eo = {.n_threads = m->threads, .n_seq_max = m->n_seq_max, .n_ctx = m->n_ctx};
    int rc = engine_new(path, &eo, &l->e, err, err_len);
    if (rc == 0)
        rc = tokenizer_load(engine_gguf(l->e), NULL, &l->tok, err, err_len);
    /* As the daemon encodes a prompt: BOS as the vocabulary asks, control
     * token text left as text. */
    size_t need = 0;
    if (rc == 0) {
        rc = tokenizer_encode(l->tok, prompt, strlen(prompt), true, false, NULL, 0, &need);
        if (rc == -ENOSPC || rc == 0)
            rc = (l->prompt = malloc(sizeof(int32_t) * (need + 1))) ? 0 : -ENOMEM;
        if (rc == 0)
            rc = tokenizer_encode(l->tok, prompt, strlen(prompt), true, false, l->prompt, need + 1,
                                  &l->n_prompt);
        if (rc)
            snprintf(err, err_len, "cannot tokenize the prompt (%d)", rc);
    }
    if (rc == 0 && batcher_new(l->e, l->tok, 512, &l->b)) {
        snprintf(err, err_len, "out of memory");
        rc = -ENOMEM;
    }
    if (rc)
        local_close(l);
    return rc;
}

static void on_local_event(void *user, const gen_event *ev)
{
    struct gen_result *r = user;
    if (ev->type == GEN_EVENT_TEXT && ev->text_len > 0) {
        if (r->first_ms == 0)
            r->first_ms = bench_now_ms() - r->t0;
        append(r, ev->text, ev->text_len);
    } else if (ev->type == GEN_EVENT_DONE) {
        r->tokens = ev->usage->generated_tokens;
        r->decode_ms = ev->usage->decode_ms;
        r->engine_ms = ev->usage->prefill_ms + ev->usage->decode_ms;
        snprintf(r->finish, sizeof(r->finish), "%s", gen_finish_name(ev->finish));
        r->done = true;
    }
}

static int local_generate(struct local *l, int n, struct gen_result *r)
{
    gen_request req = {.prompt = l->prompt,
                       .n_prompt = l->n_prompt,
                       .sampling = sampler_params_default(),
                       .max_tokens = n};
    char err[256];
    int id;
    r->t0 = bench_now_ms();
    int rc = batcher_add(l->b, &req, on_local_event, r, &id, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "bench-protocol: %s\n", err);
        return rc;
    }
    while (batcher_step(l->b) > 0)
        ;
    r->wall_ms = bench_now_ms() - r->t0;
    return r->done ? 0 : -EPROTO;
}

static int model_info_get(bitnet_client *c, struct model_info *m)
{
    char *reply;
    int rc = bitnet_client_call(c, "io.bitnetd.Query.ListModels", NULL, &reply);
    if (rc)
        return rc;
    json_t *root = json_loads(reply, 0, NULL);
    bitnet_client_free(reply);
    json_t *first = json_array_get(json_object_get(root, "models"), 0);
    const char *path = json_string_value(json_object_get(first, "path"));
    rc = path ? 0 : -ENOENT;
    if (rc == 0) {
        snprintf(m->path, sizeof(m->path), "%s", path);
        const char *s = json_string_value(json_object_get(first, "name"));
        snprintf(m->name, sizeof(m->name), "%s", s ? s : "?");
        s = json_string_value(json_object_get(first, "kernel"));
        snprintf(m->kernel, sizeof(m->kernel), "%s", s ? s : "?");
        s = json_string_value(json_object_get(first, "weights"));
        snprintf(m->weights, sizeof(m->weights), "%s", s ? s : "?");
        m->threads = (int)json_integer_value(json_object_get(first, "threads"));
        m->n_ctx = (int)json_integer_value(json_object_get(first, "n_ctx"));
        m->n_seq_max = (int)json_integer_value(json_object_get(first, "n_seq_max"));
    }
    json_decref(root);
    return rc;
}

struct streaming {
    int runs, tokens;
    /* Medians: per token (wall, decode, wall outside the engine), first text. */
    double d_wall, d_decode, d_outside, d_first;
    double l_wall, l_decode, l_outside, l_first;
    int replies; /* of the raw run */
    size_t wire_in, wire_out, text_bytes;
    bool same_text;
    char kernel_local[64];
};

static void gen_reset(struct gen_result *r)
{
    free(r->text);
    *r = (struct gen_result){0};
}

static int bench_streaming(const struct opts *o, const char *socket, const struct model_info *m,
                           const char *model_path, struct streaming *s, char *err, size_t err_len)
{
    *s = (struct streaming){.runs = o->runs, .same_text = true};
    struct local l;
    int rc = local_open(m, model_path, o->prompt, &l, err, err_len);
    if (rc)
        return rc;
    snprintf(s->kernel_local, sizeof(s->kernel_local), "%s", engine_get_info(l.e)->kernel);
    bitnet_client *c = NULL;
    char *params = generate_parameters(o->prompt, o->tokens);
    rc = params ? bitnet_client_connect(socket, &c) : -ENOMEM;
    double dw[MAX_RUNS], dd[MAX_RUNS], dout[MAX_RUNS], df[MAX_RUNS];
    double lw[MAX_RUNS], ld[MAX_RUNS], lout[MAX_RUNS], lf[MAX_RUNS];
    struct gen_result d = {0}, loc = {0}, wire = {0};
    /* A warm-up of each path, then the measured runs, alternating. */
    for (int run = -1; rc == 0 && run < o->runs; run++) {
        gen_reset(&d);
        gen_reset(&loc);
        rc = daemon_generate(c, params, &d);
        if (rc) {
            snprintf(err, err_len, "Generate: %s",
                     c ? bitnet_client_error_message(c) : "cannot connect");
            break;
        }
        rc = local_generate(&l, o->tokens, &loc);
        if (rc) {
            snprintf(err, err_len, "in-process generation failed (%d)", rc);
            break;
        }
        if (d.tokens != loc.tokens || d.len != loc.len ||
            (d.len && memcmp(d.text, loc.text, d.len) != 0))
            s->same_text = false;
        if (run < 0)
            continue;
        int t = d.tokens > 0 ? d.tokens : 1;
        dw[run] = d.wall_ms / t;
        dd[run] = d.tokens > 1 ? d.decode_ms / (d.tokens - 1) : 0;
        dout[run] = (d.wall_ms - d.engine_ms) / t;
        df[run] = d.first_ms;
        t = loc.tokens > 0 ? loc.tokens : 1;
        lw[run] = loc.wall_ms / t;
        ld[run] = loc.tokens > 1 ? loc.decode_ms / (loc.tokens - 1) : 0;
        lout[run] = (loc.wall_ms - loc.engine_ms) / t;
        lf[run] = loc.first_ms;
        s->tokens = d.tokens;
    }
    if (rc == 0) {
        rc = wire_generate(socket, params, &wire);
        if (rc)
            snprintf(err, err_len, "raw Generate: %s", strerror(-rc));
        else if (wire.len != d.len || (d.len && memcmp(wire.text, d.text, d.len) != 0))
            s->same_text = false;
    }
    if (rc == 0) {
        s->d_wall = bench_median(dw, o->runs);
        s->d_decode = bench_median(dd, o->runs);
        s->d_first = bench_median(df, o->runs);
        s->d_outside = bench_median(dout, o->runs);
        s->l_outside = bench_median(lout, o->runs);
        s->l_wall = bench_median(lw, o->runs);
        s->l_decode = bench_median(ld, o->runs);
        s->l_first = bench_median(lf, o->runs);
        s->replies = wire.replies;
        s->wire_in = wire.wire_in;
        s->wire_out = wire.wire_out;
        s->text_bytes = wire.text_on_wire;
    }
    gen_reset(&d);
    gen_reset(&loc);
    gen_reset(&wire);
    free(params);
    bitnet_client_close(c);
    local_close(&l);
    return rc;
}

/* ---- the report ---- */

static void cpu_brand(char *out, size_t len)
{
    snprintf(out, len, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof(line), f)) {
        char *colon = strchr(line, ':');
        if (!strncmp(line, "model name", 10) && colon) {
            snprintf(out, len, "%s", colon + 2);
            out[strcspn(out, "\n")] = 0;
            break;
        }
    }
    if (f)
        fclose(f);
}

static void report(FILE *f, const struct opts *o, const char *how, const struct model_info *m,
                   const struct roundtrip *rt, int n_rt, const struct streaming *s)
{
    char cpu[256];
    cpu_brand(cpu, sizeof(cpu));
    fprintf(f, "# bitnetd protocol benchmark\n\n");
    fprintf(f, "Daemon: %s; model `%s` (%s, kernel %s), compute threads %d, n_ctx %d.\n", how,
            m->name, m->weights, m->kernel, m->threads, m->n_ctx);
    fprintf(f, "Machine: %s, %ld CPUs. Client: libbitnet-client, in this process.\n\n", cpu,
            sysconf(_SC_NPROCESSORS_ONLN));
    if (n_rt > 0) {
        fprintf(f, "## GetCapabilities round trips\n\n");
        fprintf(f, "Each connection is a thread with its own handle calling in a loop; all start "
                   "together.\n\n");
        fprintf(f, "| connections | calls | calls/s | p50 ms | p99 ms | max ms | errors |\n");
        fprintf(f, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        for (int i = 0; i < n_rt; i++)
            fprintf(f, "| %d | %d | %.0f | %.3f | %.3f | %.3f | %d%s%s |\n", rt[i].conns,
                    rt[i].calls, rt[i].calls_s, rt[i].p50, rt[i].p99, rt[i].max, rt[i].errors,
                    rt[i].err[0] ? ": " : "", rt[i].err);
        fprintf(f, "\n");
    }
    if (s) {
        double over = s->d_wall - s->l_wall, outside = s->d_outside - s->l_outside;
        fprintf(f, "## Streaming Generate against the engine in-process\n\n");
        fprintf(f,
                "`%s`, %d tokens, greedy; medians of %d runs each, the two paths alternating. "
                "Per token: wall time from the call to the last reply / tokens. Decode: the "
                "engine's own decode time / (tokens - 1). Outside the engine: wall time less "
                "the engine's prefill and decode time, / tokens: what the daemon, the "
                "protocol and the client add, free of the engine's own run-to-run noise.\n\n",
                o->prompt, s->tokens, s->runs);
        fprintf(f, "| path | ms/token | decode ms/token | outside the engine ms/token | first "
                   "text ms |\n");
        fprintf(f, "| --- | ---: | ---: | ---: | ---: |\n");
        fprintf(f, "| bitnetd, streamed over Varlink | %.4f | %.4f | %.4f | %.3f |\n", s->d_wall,
                s->d_decode, s->d_outside, s->d_first);
        fprintf(f, "| engine + batcher in-process (%s) | %.4f | %.4f | %.4f | %.3f |\n",
                s->kernel_local, s->l_wall, s->l_decode, s->l_outside, s->l_first);
        fprintf(f,
                "\nDaemon and protocol overhead: %+.4f ms per token outside the engine "
                "(%+.1f%% of the in-process time per token); wall time per token differs by "
                "%+.4f ms (%+.1f%%).\n",
                outside, s->l_wall > 0 ? 100.0 * outside / s->l_wall : 0.0, over,
                s->l_wall > 0 ? 100.0 * over / s->l_wall : 0.0);
        int t = s->tokens > 0 ? s->tokens : 1;
        fprintf(f,
                "On the wire (one raw-socket run of the same call): %zu bytes sent, %zu bytes "
                "received in %d replies = %.1f bytes per token, of which %zu bytes of text "
                "(%.1f%% framing and JSON).\n",
                s->wire_out, s->wire_in, s->replies, (double)s->wire_in / t, s->text_bytes,
                s->wire_in ? 100.0 * (double)(s->wire_in - s->text_bytes) / (double)s->wire_in
                           : 0.0);
        fprintf(f, "Same text from both paths and the raw run: %s.\n",
                s->same_text ? "yes" : "NO (the comparison is not like for like)");
    }
}

/* The figures as tab-separated values with a header line, one figure a row.
 * section roundtrip: n connections, metrics calls_s, p50_ms, p99_ms, max_ms,
 * errors (runs: calls). Sections daemon and in_process (streaming): n tokens,
 * metrics ms_token, decode_ms_token, outside_ms_token, first_text_ms. */
static int write_tsv(const struct opts *o, const struct model_info *m, const struct roundtrip *rt,
                     int n_rt, const struct streaming *s)
{
    FILE *f = fopen(o->tsv, "w");
    if (!f) {
        fprintf(stderr, "bench-protocol: %s: %s\n", o->tsv, strerror(errno));
        return -1;
    }
    fprintf(f, "model\tthreads\tsection\tn\tmetric\tvalue\truns\n");
    for (int i = 0; i < n_rt; i++) {
        const char *names[] = {"calls_s", "p50_ms", "p99_ms", "max_ms", "errors"};
        double values[] = {rt[i].calls_s, rt[i].p50, rt[i].p99, rt[i].max, rt[i].errors};
        for (int j = 0; j < 5; j++)
            fprintf(f, "%s\t%d\troundtrip\t%d\t%s\t%.4f\t%d\n", m->name, m->threads, rt[i].conns,
                    names[j], values[j], rt[i].calls);
    }
    if (s) {
        const char *names[] = {"ms_token", "decode_ms_token", "outside_ms_token", "first_text_ms"};
        double d[] = {s->d_wall, s->d_decode, s->d_outside, s->d_first};
        double l[] = {s->l_wall, s->l_decode, s->l_outside, s->l_first};
        for (int j = 0; j < 4; j++) {
            fprintf(f, "%s\t%d\tdaemon\t%d\t%s\t%.4f\t%d\n", m->name, m->threads, s->tokens,
                    names[j], d[j], s->runs);
            fprintf(f, "%s\t%d\tin_process\t%d\t%s\t%.4f\t%d\n", m->name, m->threads, s->tokens,
                    names[j], l[j], s->runs);
        }
    }
    if (fclose(f)) {
        fprintf(stderr, "bench-protocol: %s: %s\n", o->tsv, strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    if (parse(argc, argv, &o))
        return 2;
    signal(SIGPIPE, SIG_IGN);
    char err[512];
    struct daemon d = {0};
    const char *socket_path = o.socket;
    char how[1200];
    if (!socket_path) {
        if (daemon_start(&o, &d, err, sizeof(err))) {
            fprintf(stderr, "bench-protocol: %s\n", err);
            daemon_stop(&d);
            return 1;
        }
        socket_path = d.socket;
        snprintf(how, sizeof(how), "`%s` started on a temporary socket", o.bitnetd);
    } else {
        snprintf(how, sizeof(how), "the one at `%s`", socket_path);
    }
    int rc = 0;
    struct model_info m = {0};
    bitnet_client *c;
    if ((rc = bitnet_client_connect(socket_path, &c)) == 0) {
        rc = model_info_get(c, &m);
        bitnet_client_close(c);
    }
    if (rc)
        fprintf(stderr, "bench-protocol: cannot list the daemon's models at %s: %s\n", socket_path,
                bitnet_client_strerror(rc));
    struct roundtrip rt[MAX_LIST];
    int n_rt = 0;
    for (int i = 0; rc == 0 && i < o.n_conns; i++) {
        fprintf(stderr, "bench-protocol: GetCapabilities over %d connection(s)\n", o.conns[i]);
        rc = bench_roundtrips(socket_path, o.conns[i], o.calls, &rt[n_rt]);
        if (rc)
            fprintf(stderr, "bench-protocol: %s\n", rt[n_rt].err);
        else
            n_rt++;
    }
    struct streaming s;
    bool have_streaming = false;
    if (rc == 0 && o.tokens > 0) {
        fprintf(stderr, "bench-protocol: streaming Generate vs in-process, %d runs\n", o.runs);
        rc = bench_streaming(&o, socket_path, &m, o.model ? o.model : m.path, &s, err, sizeof(err));
        if (rc)
            fprintf(stderr, "bench-protocol: %s\n", err);
        have_streaming = rc == 0;
    }
    if (!o.socket)
        daemon_stop(&d);
    if (rc)
        return 1;
    report(stdout, &o, how, &m, rt, n_rt, have_streaming ? &s : NULL);
    if (o.out) {
        FILE *f = fopen(o.out, "w");
        if (!f) {
            fprintf(stderr, "bench-protocol: %s: %s\n", o.out, strerror(errno));
            return 1;
        }
        report(f, &o, how, &m, rt, n_rt, have_streaming ? &s : NULL);
        if (fclose(f)) {
            fprintf(stderr, "bench-protocol: %s: %s\n", o.out, strerror(errno));
            return 1;
        }
    }
    if (o.tsv && write_tsv(&o, &m, rt, n_rt, have_streaming ? &s : NULL))
        return 1;
    return 0;
}
