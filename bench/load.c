/*
 * bench/load.c - bitnet-load: holds many connections to a running bitnetd,
 * each issuing a mix of calls for a bounded time, and reports what came
 * back (a report; run by `make bench`, never a timed test).
 *
 * One thread and one libbitnet-client handle per connection. The first
 * --generations connections stream generations (short ones, long ones, and
 * long ones that the worker cancels from a second connection once text has
 * arrived); the others call GetCapabilities and Tokenize. Each connection
 * issues its next call as soon as the last one ended (a closed loop).
 *
 * When the time is up no new call starts, and every generation still queued
 * or running is cancelled (Cancel from a connection of the main thread), so
 * the run ends within a decode step. Every call must end with exactly one
 * final reply or a documented error; a call that ends any other way (the
 * connection closed, a reply that is not Varlink, no answer by the end of
 * the grace period) is lost, and a lost call makes the exit status 1. So
 * does a QueueFull that came while fewer jobs were outstanding than the
 * daemon's configured depth (n_seq_max + max_queued_jobs): the bound is
 * computed from this program's own counts, so another client of the same
 * daemon may trigger a false report (run it alone).
 *
 * The daemon's resident memory, threads and file descriptors are sampled
 * from /proc while the run lasts, when the daemon (GetStatus's pid) runs on
 * this machine and /proc lets us read it.
 */
#include <errno.h>
#include <dirent.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bitnet/client.h"
#include "bench/bench_stats.h"

#define MAX_CONNECTIONS 1000
#define MAX_ERROR_KINDS 24
#define MAX_RSS_SAMPLES 4096
#define WORKER_STACK    (256 * 1024)

/* The kinds of calls, in report order. */
enum call_kind {
    CALL_CAPABILITIES,
    CALL_TOKENIZE,
    CALL_GEN_SHORT,
    CALL_GEN_LONG,
    CALL_GEN_CANCEL, /* a long generation the worker cancels after some text */
    CALL_CANCEL,     /* the worker's own Cancel, from a new connection */
    CALL_DRAIN,      /* Cancel of generations still running when the time is up */
    CALL_KINDS
};

static const char *const call_kind_names[CALL_KINDS] = {
    "GetCapabilities",   "Tokenize", "Generate (short)",   "Generate (long)",
    "Generate + Cancel", "Cancel",   "Cancel (at the end)"};

static bool call_kind_generates(enum call_kind k)
{
    return k == CALL_GEN_SHORT || k == CALL_GEN_LONG || k == CALL_GEN_CANCEL;
}

struct opts {
    const char *socket;
    const char *model; /* NULL: the daemon's default model */
    const char *out;   /* markdown report */
    const char *label; /* a title for the report */
    const char *tsv;   /* the figures as tab-separated values, or NULL */
    int connections;
    int generations;
    double seconds;
    double grace;   /* seconds after the end before unanswered calls count as lost */
    double backoff; /* milliseconds a connection waits after QueueFull or TooManyJobs */
    double pause;   /* milliseconds a query connection waits between its calls */
    int short_tokens, long_tokens;
    unsigned seed;
};

/* A growing array of latencies in milliseconds. */
struct samples {
    double *v;
    size_t n, cap;
};

/* One error kind ("io.bitnetd.Inference.QueueFull", "disconnected") and its count. */
struct error_count {
    char name[96];
    long count;
    bool lost; /* the call got no final reply */
};

/* What one connection saw; merged by the main thread at the end. */
struct tally {
    struct samples latency[CALL_KINDS]; /* calls that ended with a final reply, not an error */
    struct samples ttft[CALL_KINDS];    /* send to the first text, generations */
    long ok[CALL_KINDS];                /* final replies that are not errors */
    long errors[CALL_KINDS];            /* documented errors */
    long lost[CALL_KINDS];              /* calls without a final reply */
    long cut[CALL_KINDS];               /* generations cancelled at the end of the run */
    long tokens;                        /* generated tokens, from the final replies' usage */
    long refused;                       /* connections closed before any reply */
    struct error_count kinds[MAX_ERROR_KINDS];
    int n_kinds;
    long queue_full_violations; /* QueueFull while fewer jobs than the depth were out */
    long queue_full_bound_min;  /* the smallest bound on outstanding jobs at a QueueFull */
};

struct worker {
    bool generates;
    pthread_t thread;
    bool started;
    unsigned rng;
    struct tally t;
    _Atomic long job;  /* the job of the generation in progress, 0 when none */
    _Atomic int state; /* 0 running, 1 done */
    _Atomic int busy;  /* a call is in progress (for the lost-call count at a hang) */
};

/* State every worker reads. */
static struct opts O;
static atomic_int stop_flag;
static _Atomic long gen_sent;   /* Generate calls sent */
static _Atomic long gen_closed; /* Generate calls that ended (any way) */
static long queue_depth = -1;   /* n_seq_max + max_queued_jobs, -1 when unknown */
static long jobs_per_uid = -1;

static const char *const prompts[] = {"Once upon a time", "The quick brown fox jumps over",
                                      "In the beginning", "Ternary weights are", "A daemon serves"};

static void sleep_ms(double ms)
{
    struct timespec ts = {(time_t)(ms / 1e3), (long)(ms * 1e6) % 1000000000L};
    nanosleep(&ts, NULL);
}

static unsigned next_rand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 16) & 0x7fff;
}

static void samples_add(struct samples *s, double v)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        double *p = realloc(s->v, cap * sizeof(*p));
        if (!p)
            return; /* a figure less; the counts stay exact */
        s->v = p;
        s->cap = cap;
    }
    s->v[s->n++] = v;
}

static void samples_merge(struct samples *into, const struct samples *from)
{
    for (size_t i = 0; i < from->n; i++)
        samples_add(into, from->v[i]);
}

/* The q-quantile of sorted values (nearest rank); 0 when empty. */
static double quantile(const struct samples *s, double q)
{
    if (s->n == 0)
        return 0;
    size_t i = (size_t)(q * (double)(s->n - 1) + 0.5);
    return s->v[i < s->n ? i : s->n - 1];
}

static void tally_error(struct tally *t, const char *name, bool lost)
{
    for (int i = 0; i < t->n_kinds; i++)
        if (!strcmp(t->kinds[i].name, name)) {
            t->kinds[i].count++;
            return;
        }
    if (t->n_kinds == MAX_ERROR_KINDS - 1 && strcmp(name, "(other)")) {
        tally_error(t, "(other)", lost); /* the last slot collects the rest */
        return;
    }
    struct error_count *e = &t->kinds[t->n_kinds++];
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->count++;
    e->lost = lost;
}

/* Varlink errors that a correct daemon may answer under this load. */
static bool documented_error(enum call_kind k, const char *name)
{
    if (call_kind_generates(k))
        return !strcmp(name, "io.bitnetd.Inference.QueueFull") ||
               !strcmp(name, "io.bitnetd.Inference.TooManyJobs");
    if (k == CALL_CANCEL || k == CALL_DRAIN) /* the job ended before the Cancel came */
        return !strcmp(name, "io.bitnetd.Inference.JobNotFound");
    return false;
}

/*
 * Sorts out how a call ended. rc is the client library's result; first: the
 * call was the first on its connection and got no reply at all. Returns true
 * when the connection is still usable.
 */
static bool tally_result(struct tally *t, enum call_kind k, int rc, const bitnet_client *c,
                         double ms, bool first)
{
    if (rc == 0) {
        t->ok[k]++;
        samples_add(&t->latency[k], ms);
        return true;
    }
    if (rc == BITNET_CLIENT_EVARLINK) {
        const char *name = bitnet_client_error_name(c);
        name = name ? name : "(unnamed Varlink error)";
        if (documented_error(k, name)) {
            t->errors[k]++; /* not in the latency figures, which are of final replies */
            tally_error(t, name, false);
        } else {
            /* A final reply, but not one this load should get: counted as a failure. */
            t->lost[k]++;
            char what[96];
            snprintf(what, sizeof(what), "unexpected %s", name);
            tally_error(t, what, true);
        }
        return true;
    }
    if (first && (rc == BITNET_CLIENT_ECLOSED || rc == -ECONNRESET || rc == -EPIPE)) {
        /* Closed before any reply: the daemon refused the connection
         * (max_connections, accepted and closed at once, as documented). */
        t->refused++;
        tally_error(t, "connection refused (closed before any reply)", false);
        return false;
    }
    t->lost[k]++;
    if (rc == BITNET_CLIENT_ECLOSED)
        tally_error(t, "disconnected (no final reply)", true);
    else if (rc == BITNET_CLIENT_EPROTOCOL)
        tally_error(t, "not a Varlink reply", true);
    else {
        char what[96];
        snprintf(what, sizeof(what), "%s", bitnet_client_strerror(rc));
        tally_error(t, what, true);
    }
    return false;
}

/* ---- calls ---- */

/* Cancels job from a connection of its own; times it as kind. */
static void cancel_job(struct tally *t, enum call_kind kind, long job)
{
    char params[64];
    snprintf(params, sizeof(params), "{\"job\":%ld}", job);
    double t0 = bench_now_ms();
    bitnet_client *c;
    int rc = bitnet_client_connect(O.socket, &c);
    if (rc) {
        t->lost[kind]++;
        tally_error(t, "Cancel: cannot connect", true);
        return;
    }
    char *reply = NULL;
    rc = bitnet_client_call(c, "io.bitnetd.Inference.Cancel", params, &reply);
    tally_result(t, kind, rc, c, bench_now_ms() - t0, true);
    bitnet_client_free(reply);
    bitnet_client_close(c);
}

/* The state of one streaming Generate, seen by its reply callback. */
struct gen {
    struct worker *w;
    enum call_kind kind;
    double t0, t_text;
    int replies;
    int cancel_after; /* text replies before the worker cancels, 0: never */
    bool cancel_sent;
    bool final;
    long job, tokens;
    char finish[32];
    bool bad; /* a reply without the fields the protocol promises */
};

static int gen_reply(const char *parameters, int continues, void *user)
{
    struct gen *g = user;
    json_t *p = json_loads(parameters, 0, NULL);
    if (!p) {
        g->bad = true;
        return 0;
    }
    if (g->replies++ == 0) {
        json_t *job = json_object_get(p, "job");
        if (!json_is_integer(job) || !continues)
            g->bad = true;
        else {
            g->job = (long)json_integer_value(job);
            atomic_store(&g->w->job, g->job);
        }
    } else if (continues) {
        if (json_is_string(json_object_get(p, "text")) && g->t_text == 0)
            g->t_text = bench_now_ms();
        if (g->cancel_after && !g->cancel_sent && g->replies - 1 >= g->cancel_after) {
            g->cancel_sent = true;
            cancel_job(&g->w->t, CALL_CANCEL, g->job);
        }
    }
    if (!continues) {
        json_t *usage = json_object_get(p, "usage");
        json_t *gen = json_object_get(usage, "generated_tokens");
        const char *fin = json_string_value(json_object_get(p, "finish_reason"));
        if (!fin || !json_is_integer(gen))
            g->bad = true;
        else {
            snprintf(g->finish, sizeof(g->finish), "%s", fin);
            g->tokens = (long)json_integer_value(gen);
        }
        if (json_is_string(json_object_get(p, "text")) && g->t_text == 0)
            g->t_text = bench_now_ms();
        g->final = true;
    }
    json_decref(p);
    return 0;
}

/*
 * Returns true when the error was QueueFull or TooManyJobs. Such an error is
 * legitimate only when at least the limit's
 * worth of jobs were queued or running when the daemon took the call. Every
 * such job was sent by now and had not ended when the call was sent, so
 * (sent now - 1) - (ended when this call was sent) bounds them from above.
 */
static bool check_limit(struct tally *t, const bitnet_client *c, long closed_at_send)
{
    const char *name = bitnet_client_error_name(c);
    if (!name)
        return false;
    bool queue = !strcmp(name, "io.bitnetd.Inference.QueueFull");
    if (!queue && strcmp(name, "io.bitnetd.Inference.TooManyJobs"))
        return false;
    long limit = queue ? queue_depth : jobs_per_uid;
    long bound = atomic_load(&gen_sent) - 1 - closed_at_send;
    if (queue && (t->queue_full_bound_min < 0 || bound < t->queue_full_bound_min))
        t->queue_full_bound_min = bound;
    if (bound < limit) {
        t->queue_full_violations++;
        tally_error(t,
                    queue ? "QueueFull below the configured depth"
                          : "TooManyJobs below max_jobs_per_uid",
                    true);
    }
    return true;
}

/* One streaming Generate. Returns true when the connection is still usable. */
static bool run_generate(struct worker *w, bitnet_client *c, enum call_kind kind, bool first)
{
    struct tally *t = &w->t;
    json_t *params = json_object();
    json_object_set_new(
        params, "prompt",
        json_string(prompts[next_rand(&w->rng) % (sizeof(prompts) / sizeof(prompts[0]))]));
    json_object_set_new(params, "max_tokens",
                        json_integer(kind == CALL_GEN_SHORT ? O.short_tokens : O.long_tokens));
    if (O.model)
        json_object_set_new(params, "model", json_string(O.model));
    char *text = json_dumps(params, JSON_COMPACT);
    json_decref(params);
    if (!text)
        return true;

    struct gen g = {.w = w, .kind = kind};
    if (kind == CALL_GEN_CANCEL)
        g.cancel_after = 1 + (int)(next_rand(&w->rng) % 4);
    long closed_at_send = atomic_load(&gen_closed);
    atomic_fetch_add(&gen_sent, 1);
    g.t0 = bench_now_ms();
    int rc = bitnet_client_call_more(c, "io.bitnetd.Inference.Generate", text, gen_reply, &g);
    double ms = bench_now_ms() - g.t0;
    atomic_fetch_add(&gen_closed, 1);
    atomic_store(&w->job, 0);
    free(text);

    if (rc == 0 && (g.bad || !g.final)) {
        t->lost[kind]++;
        tally_error(t, "Generate: reply without job, finish_reason or usage", true);
        return true;
    }
    if (rc == 0 && !strcmp(g.finish, "error")) {
        t->lost[kind]++;
        tally_error(t, "Generate: finish_reason error", true);
        return true;
    }
    if (rc == 0 && !strcmp(g.finish, "cancelled") && kind != CALL_GEN_CANCEL) {
        /* Cut by the end of the run: counted, but not in the latency figures. */
        t->cut[kind]++;
        t->tokens += g.tokens;
        return true;
    }
    bool refused = false;
    if (rc == BITNET_CLIENT_EVARLINK)
        refused = check_limit(t, c, closed_at_send);
    bool usable = tally_result(t, kind, rc, c, ms, first && g.replies == 0);
    if (refused && O.backoff > 0)
        sleep_ms(O.backoff); /* as a real client would: retrying at once only spins */
    if (rc == 0) {
        t->tokens += g.tokens;
        if (g.t_text > 0)
            samples_add(&t->ttft[kind], g.t_text - g.t0);
    }
    return usable;
}

/* GetCapabilities or Tokenize. Returns true when the connection is still usable. */
static bool run_query(struct worker *w, bitnet_client *c, enum call_kind kind, bool first)
{
    const char *method = "io.bitnetd.Query.GetCapabilities";
    char params[256] = "{}";
    if (kind == CALL_TOKENIZE) {
        method = "io.bitnetd.Inference.Tokenize";
        json_t *p = json_object();
        json_object_set_new(
            p, "text",
            json_string(prompts[next_rand(&w->rng) % (sizeof(prompts) / sizeof(prompts[0]))]));
        if (O.model)
            json_object_set_new(p, "model", json_string(O.model));
        char *s = json_dumps(p, JSON_COMPACT);
        json_decref(p);
        if (!s)
            return true;
        snprintf(params, sizeof(params), "%s", s);
        free(s);
    }
    char *reply = NULL;
    double t0 = bench_now_ms();
    int rc = bitnet_client_call(c, method, params, &reply);
    bool usable = tally_result(&w->t, kind, rc, c, bench_now_ms() - t0, first);
    bitnet_client_free(reply);
    return usable;
}

static enum call_kind pick_call(struct worker *w)
{
    unsigned r = next_rand(&w->rng) % 100;
    if (w->generates)
        return r < 50 ? CALL_GEN_SHORT : r < 85 ? CALL_GEN_LONG : CALL_GEN_CANCEL;
    return r < 70 ? CALL_TOKENIZE : CALL_CAPABILITIES;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    bitnet_client *c = NULL;
    bool fresh = true; /* no reply yet on this connection */
    while (!atomic_load(&stop_flag)) {
        if (!c) {
            int rc = bitnet_client_connect(O.socket, &c);
            if (rc) {
                char what[96];
                snprintf(what, sizeof(what), "connect: %s", bitnet_client_strerror(rc));
                tally_error(&w->t, what, false);
                break;
            }
            fresh = true;
        }
        enum call_kind k = pick_call(w);
        atomic_store(&w->busy, 1);
        long refused = w->t.refused;
        bool usable =
            call_kind_generates(k) ? run_generate(w, c, k, fresh) : run_query(w, c, k, fresh);
        atomic_store(&w->busy, 0);
        if (w->t.refused != refused)
            break; /* a refused connection: this one stops */
        fresh = false;
        if (!w->generates && O.pause > 0)
            sleep_ms(O.pause);
        if (!usable) {
            bitnet_client_close(c);
            c = NULL;
        }
    }
    bitnet_client_close(c);
    atomic_store(&w->state, 1);
    return NULL;
}

/* ---- the daemon's side ---- */

struct proc_sample {
    double t; /* seconds since the start */
    long rss_kib, threads, fds;
};

static int proc_sample(long pid, struct proc_sample *s)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    char line[256];
    long rss = -1, threads = -1;
    while (fgets(line, sizeof(line), f)) {
        if (!strncmp(line, "VmRSS:", 6))
            rss = strtol(line + 6, NULL, 10);
        else if (!strncmp(line, "Threads:", 8))
            threads = strtol(line + 8, NULL, 10);
    }
    fclose(f);
    snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
    DIR *d = opendir(path);
    long fds = -1;
    if (d) {
        fds = 0;
        struct dirent *e;
        while ((e = readdir(d)))
            fds += e->d_name[0] != '.';
        closedir(d);
    }
    if (rss < 0)
        return -EIO;
    s->rss_kib = rss;
    s->threads = threads;
    s->fds = fds;
    return 0;
}

/* What GetStatus says about the daemon and the model under load. */
struct daemon_info {
    long pid;
    char model[128], kernel[64], backend[32];
    long n_seq_max, max_queued_jobs, max_jobs_per_uid, max_connections, threads;
};

/* Reads GetStatus once. Returns 0, 1 while the model is still loading, or
 * a negative error with err. */
static int daemon_info_once(struct daemon_info *d, char *err, size_t err_len)
{
    bitnet_client *c;
    int rc = bitnet_client_connect(O.socket, &c);
    if (rc) {
        snprintf(err, err_len, "cannot connect to %s: %s", O.socket, bitnet_client_strerror(rc));
        return rc;
    }
    char *reply = NULL;
    rc = bitnet_client_call(c, "io.bitnetd.Query.GetStatus", NULL, &reply);
    if (rc) {
        snprintf(err, err_len, "GetStatus: %s", bitnet_client_error_message(c));
        bitnet_client_close(c);
        return rc;
    }
    bitnet_client_close(c);
    json_t *st = json_loads(reply, 0, NULL);
    bitnet_client_free(reply);
    if (!st) {
        snprintf(err, err_len, "GetStatus: the reply is not JSON");
        return -EPROTO;
    }
    json_t *lim = json_object_get(st, "limits");
    *d = (struct daemon_info){
        .pid = (long)json_integer_value(json_object_get(st, "pid")),
        .threads = (long)json_integer_value(json_object_get(st, "threads")),
        .max_queued_jobs = (long)json_integer_value(json_object_get(lim, "max_queued_jobs")),
        .max_jobs_per_uid = (long)json_integer_value(json_object_get(lim, "max_jobs_per_uid")),
        .max_connections = (long)json_integer_value(json_object_get(lim, "max_connections")),
        .n_seq_max = -1};
    json_t *models = json_object_get(st, "models");
    bool loading = false;
    size_t i;
    json_t *m;
    json_array_foreach(models, i, m)
    {
        const char *name = json_string_value(json_object_get(m, "name"));
        if (!name || (O.model && strcmp(name, O.model)) || (!O.model && i > 0))
            continue;
        snprintf(d->model, sizeof(d->model), "%s", name);
        const char *state = json_string_value(json_object_get(m, "state"));
        loading = !state || strcmp(state, "ready") != 0;
        const char *k = json_string_value(json_object_get(m, "kernel"));
        const char *b = json_string_value(json_object_get(m, "backend"));
        snprintf(d->kernel, sizeof(d->kernel), "%s", k ? k : "?");
        snprintf(d->backend, sizeof(d->backend), "%s", b ? b : "?");
        d->n_seq_max = (long)json_integer_value(json_object_get(m, "n_seq_max"));
    }
    json_decref(st);
    if (d->n_seq_max < 0) {
        snprintf(err, err_len, "the daemon has no model %s", O.model ? O.model : "loaded");
        return -ENOENT;
    }
    return loading ? 1 : 0;
}

/* Waits (at most --grace seconds) until the model under load is ready. */
static int daemon_info(struct daemon_info *d, char *err, size_t err_len)
{
    double give_up = bench_now_ms() + O.grace * 1e3;
    for (;;) {
        int rc = daemon_info_once(d, err, err_len);
        if (rc <= 0)
            return rc;
        if (bench_now_ms() > give_up) {
            snprintf(err, err_len, "model %s still loading after %.0f s", d->model, O.grace);
            return -ETIMEDOUT;
        }
        sleep_ms(200);
    }
}

/* Cancels every generation still in progress; returns how many it tried. */
static int drain(struct worker *ws, int n, long *last_cancelled, struct tally *t)
{
    int tried = 0;
    for (int i = 0; i < n; i++) {
        long job = atomic_load(&ws[i].job);
        if (job && job != last_cancelled[i]) {
            last_cancelled[i] = job;
            cancel_job(t, CALL_DRAIN, job);
            tried++;
        }
    }
    return tried;
}

/* ---- options and report ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: bitnet-load --socket PATH [--connections N] [--generations G]\n"
            "                   [--seconds S] [--grace S] [--pause MS] [--backoff MS]\n"
            "                   [--short-tokens N] [--long-tokens N] [--model NAME]\n"
            "                   [--seed N] [--label TEXT] [--out REPORT.md] [--tsv FILE]\n"
            "Holds N connections (1 to %d, default G + 4) to a running bitnetd for S seconds\n"
            "(default 30), once the model is ready. G of them (default 1) stream generations:\n"
            "short (--short-tokens, default 8), long (--long-tokens, default 64) and long ones\n"
            "cancelled after some text; the others call GetCapabilities and Tokenize, --pause\n"
            "ms apart (default 20). After QueueFull or TooManyJobs a connection waits\n"
            "--backoff ms (default 50). Reports calls/s, tokens/s, latency and time to first\n"
            "text per call type, errors by type and the daemon's memory. Calls unanswered\n"
            "--grace s (default 120) after the end count as lost. Exit status: 0; 1 when a\n"
            "call was lost or a QueueFull came below the configured depth; 2 for bad usage\n"
            "or no daemon. --tsv writes the figures as tab-separated values too (charts).\n",
            MAX_CONNECTIONS);
}

static int parse_num(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v = s ? strtod(s, &end) : 0;
    if (!s || end == s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static int parse(int argc, char **argv)
{
    O = (struct opts){.connections = 0,
                      .generations = 1,
                      .seconds = 30,
                      .grace = 120,
                      .backoff = 50,
                      .pause = 20,
                      .short_tokens = 8,
                      .long_tokens = 64,
                      .seed = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        const char *v = i + 1 < argc ? argv[++i] : NULL;
        double x = 0;
        int bad = 0;
        if (!strcmp(a, "--socket") && v)
            O.socket = v;
        else if (!strcmp(a, "--model") && v)
            O.model = v;
        else if (!strcmp(a, "--out") && v)
            O.out = v;
        else if (!strcmp(a, "--label") && v)
            O.label = v;
        else if (!strcmp(a, "--tsv") && v)
            O.tsv = v;
        else if (!strcmp(a, "--connections"))
            bad = parse_num(v, 1, MAX_CONNECTIONS, &x), O.connections = (int)x;
        else if (!strcmp(a, "--generations"))
            bad = parse_num(v, 0, MAX_CONNECTIONS, &x), O.generations = (int)x;
        else if (!strcmp(a, "--seconds"))
            bad = parse_num(v, 0.1, 86400, &O.seconds);
        else if (!strcmp(a, "--pause"))
            bad = parse_num(v, 0, 60000, &O.pause);
        else if (!strcmp(a, "--backoff"))
            bad = parse_num(v, 0, 60000, &O.backoff);
        else if (!strcmp(a, "--grace"))
            bad = parse_num(v, 1, 86400, &O.grace);
        else if (!strcmp(a, "--short-tokens"))
            bad = parse_num(v, 1, 1048576, &x), O.short_tokens = (int)x;
        else if (!strcmp(a, "--long-tokens"))
            bad = parse_num(v, 1, 1048576, &x), O.long_tokens = (int)x;
        else if (!strcmp(a, "--seed"))
            bad = parse_num(v, 0, 4294967295.0, &x), O.seed = (unsigned)x;
        else {
            usage(stderr);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "bitnet-load: bad value for %s\n", a);
            return -1;
        }
    }
    if (!O.socket) {
        fprintf(stderr, "bitnet-load: --socket PATH is required\n");
        return -1;
    }
    if (O.connections == 0)
        O.connections = O.generations + 4 > MAX_CONNECTIONS ? MAX_CONNECTIONS : O.generations + 4;
    if (O.generations > O.connections) {
        fprintf(stderr, "bitnet-load: --generations %d is more than --connections %d\n",
                O.generations, O.connections);
        return -1;
    }
    return 0;
}

static void tally_merge(struct tally *into, const struct tally *from)
{
    for (int k = 0; k < CALL_KINDS; k++) {
        samples_merge(&into->latency[k], &from->latency[k]);
        samples_merge(&into->ttft[k], &from->ttft[k]);
        into->ok[k] += from->ok[k];
        into->errors[k] += from->errors[k];
        into->lost[k] += from->lost[k];
        into->cut[k] += from->cut[k];
    }
    into->tokens += from->tokens;
    into->refused += from->refused;
    for (int i = 0; i < from->n_kinds; i++)
        for (long j = 0; j < from->kinds[i].count; j++)
            tally_error(into, from->kinds[i].name, from->kinds[i].lost);
    into->queue_full_violations += from->queue_full_violations;
    if (from->queue_full_bound_min >= 0 &&
        (into->queue_full_bound_min < 0 || from->queue_full_bound_min < into->queue_full_bound_min))
        into->queue_full_bound_min = from->queue_full_bound_min;
}

static void tally_free(struct tally *t)
{
    for (int k = 0; k < CALL_KINDS; k++) {
        free(t->latency[k].v);
        free(t->ttft[k].v);
    }
}

struct run {
    struct daemon_info d;
    double elapsed_s;
    long hung; /* calls still unanswered at the end of the grace period */
    struct proc_sample rss[MAX_RSS_SAMPLES];
    int n_rss;
    struct proc_sample idle_before, idle_after;
    bool have_proc;
};

static long error_count(const struct tally *t, const char *name)
{
    for (int i = 0; i < t->n_kinds; i++)
        if (!strcmp(t->kinds[i].name, name))
            return t->kinds[i].count;
    return 0;
}

static void report(FILE *f, struct tally *t, const struct run *r)
{
    long calls = 0, lost = r->hung;
    for (int k = 0; k < CALL_KINDS; k++) {
        calls += t->ok[k] + t->errors[k];
        lost += t->lost[k];
        /* qsort wants a valid pointer even for no elements. */
        if (t->latency[k].n)
            qsort(t->latency[k].v, t->latency[k].n, sizeof(double), bench_cmp_double);
        if (t->ttft[k].n)
            qsort(t->ttft[k].v, t->ttft[k].n, sizeof(double), bench_cmp_double);
    }
    fprintf(f, "# bitnet-load%s%s\n\n", O.label ? ": " : "", O.label ? O.label : "");
    fprintf(f,
            "%d connections, %d of them streaming generations (short %d tokens, long %d), "
            "%.0f s; model `%s` (%s, %s), %ld compute threads, n_seq_max %ld, "
            "max_queued_jobs %ld, max_jobs_per_uid %ld.\n\n",
            O.connections, O.generations, O.short_tokens, O.long_tokens, O.seconds, r->d.model,
            r->d.backend, r->d.kernel, r->d.threads, r->d.n_seq_max, r->d.max_queued_jobs,
            r->d.max_jobs_per_uid);
    fprintf(f,
            "Wall time %.1f s: %.1f calls/s (final replies and documented errors), "
            "%.1f generated tokens/s.\n\n",
            r->elapsed_s, (double)calls / r->elapsed_s, (double)t->tokens / r->elapsed_s);
    fprintf(f, "| call | ok | documented errors | lost | cut at the end | p50 ms | p99 ms | max ms "
               "| first text p50 ms | p99 ms | max ms |\n");
    fprintf(f, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (int k = 0; k < CALL_KINDS; k++) {
        const struct samples *l = &t->latency[k], *x = &t->ttft[k];
        if (!t->ok[k] && !t->errors[k] && !t->lost[k] && !t->cut[k])
            continue;
        fprintf(f, "| %s | %ld | %ld | %ld | %ld | %.1f | %.1f | %.1f |", call_kind_names[k],
                t->ok[k], t->errors[k], t->lost[k], t->cut[k], quantile(l, 0.5), quantile(l, 0.99),
                quantile(l, 1.0));
        if (call_kind_generates(k) && x->n)
            fprintf(f, " %.1f | %.1f | %.1f |\n", quantile(x, 0.5), quantile(x, 0.99),
                    quantile(x, 1.0));
        else
            fprintf(f, " | | |\n");
    }
    fprintf(f, "\nLatency is from sending the call to its final reply (a Generate's whole "
               "stream, queueing included); first text is from sending a Generate to its first "
               "text. Generations cancelled at the end of the run are left out of both.\n\n");
    fprintf(f, "| error | count | counts as lost |\n| --- | ---: | --- |\n");
    if (r->hung)
        fprintf(f, "| no final reply by the end of the grace period | %ld | yes |\n", r->hung);
    for (int i = 0; i < t->n_kinds; i++)
        fprintf(f, "| %s | %ld | %s |\n", t->kinds[i].name, t->kinds[i].count,
                t->kinds[i].lost ? "yes" : "no");
    if (!t->n_kinds && !r->hung)
        fprintf(f, "| (none) | 0 | |\n");
    long qf = error_count(t, "io.bitnetd.Inference.QueueFull");
    fprintf(f, "\nQueue: depth n_seq_max + max_queued_jobs = %ld; %ld QueueFull", queue_depth, qf);
    if (qf)
        fprintf(f,
                ", with at least as many jobs outstanding as the depth every time "
                "(smallest upper bound on outstanding jobs at a QueueFull: %ld)%s",
                t->queue_full_bound_min, t->queue_full_violations ? " - **VIOLATED**" : "");
    fprintf(f, ".\n\n");
    if (r->have_proc && r->n_rss > 0) {
        /* Warm-up: the first quarter of the run. */
        long warm = -1, peak = 0, last = r->rss[r->n_rss - 1].rss_kib, peak_all = 0;
        for (int i = 0; i < r->n_rss; i++) {
            if (r->rss[i].rss_kib > peak_all)
                peak_all = r->rss[i].rss_kib;
            if (r->rss[i].t < O.seconds / 4)
                continue;
            if (warm < 0)
                warm = r->rss[i].rss_kib;
            if (r->rss[i].rss_kib > peak)
                peak = r->rss[i].rss_kib;
        }
        fprintf(f,
                "Daemon (pid %ld), sampled every 0.5 s: RSS %ld KiB idle before, %ld KiB after "
                "warm-up (%.0f s), peak %ld KiB after warm-up (%ld overall), %ld KiB at the end, "
                "%ld KiB idle after; threads %ld -> %ld, file descriptors %ld -> %ld (idle "
                "before -> idle after).\n",
                r->d.pid, r->idle_before.rss_kib, warm, O.seconds / 4, peak, peak_all, last,
                r->idle_after.rss_kib, r->idle_before.threads, r->idle_after.threads,
                r->idle_before.fds, r->idle_after.fds);
    } else {
        fprintf(f, "The daemon's /proc entry could not be read: no memory figures.\n");
    }
    fprintf(f, "\n%s: %ld calls, %ld lost.\n",
            lost || t->queue_full_violations ? "**FAILED**" : "Every call got its final reply",
            calls + lost, lost);
}

static void tsv_figure(FILE *f, const char *call, const char *metric, double value)
{
    fprintf(f, "%d\t%d\t%.1f\t%s\t%s\t%.4f\n", O.generations, O.connections, O.seconds, call,
            metric, value);
}

/* Latency and first-text quantiles of one set of calls. */
static void tsv_quantiles(FILE *f, const char *call, const struct samples *l,
                          const struct samples *x)
{
    static const double qs[] = {0.5, 0.99, 1.0};
    static const char *const lnames[] = {"p50_ms", "p99_ms", "max_ms"};
    static const char *const xnames[] = {"ttft_p50_ms", "ttft_p99_ms", "ttft_max_ms"};
    for (int i = 0; i < 3; i++)
        if (l->n)
            tsv_figure(f, call, lnames[i], quantile(l, qs[i]));
    for (int i = 0; i < 3; i++)
        if (x && x->n)
            tsv_figure(f, call, xnames[i], quantile(x, qs[i]));
}

/* The figures as tab-separated values with a header line, one figure a row;
 * call after report(), which sorts the samples. Call "run": calls_s,
 * tokens_s, elapsed_s, lost; each call kind: ok, errors, lost, cut and the
 * quantiles; "Generate (all)": the quantiles of every generation together. */
static int write_tsv(const char *path, const struct tally *t, const struct run *r)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "bitnet-load: %s: %s\n", path, strerror(errno));
        return -1;
    }
    long calls = 0, lost = r->hung;
    struct samples gl = {0}, gx = {0};
    for (int k = 0; k < CALL_KINDS; k++) {
        calls += t->ok[k] + t->errors[k];
        lost += t->lost[k];
        if (call_kind_generates(k)) {
            samples_merge(&gl, &t->latency[k]);
            samples_merge(&gx, &t->ttft[k]);
        }
    }
    fprintf(f, "generations\tconnections\tseconds\tcall\tmetric\tvalue\n");
    tsv_figure(f, "run", "calls_s", (double)calls / r->elapsed_s);
    tsv_figure(f, "run", "tokens_s", (double)t->tokens / r->elapsed_s);
    tsv_figure(f, "run", "elapsed_s", r->elapsed_s);
    tsv_figure(f, "run", "lost", (double)lost);
    for (int k = 0; k < CALL_KINDS; k++) {
        if (!t->ok[k] && !t->errors[k] && !t->lost[k] && !t->cut[k])
            continue;
        const char *name = call_kind_names[k];
        tsv_figure(f, name, "ok", (double)t->ok[k]);
        tsv_figure(f, name, "errors", (double)t->errors[k]);
        tsv_figure(f, name, "lost", (double)t->lost[k]);
        tsv_figure(f, name, "cut", (double)t->cut[k]);
        tsv_quantiles(f, name, &t->latency[k], call_kind_generates(k) ? &t->ttft[k] : NULL);
    }
    if (gl.n)
        qsort(gl.v, gl.n, sizeof(double), bench_cmp_double);
    if (gx.n)
        qsort(gx.v, gx.n, sizeof(double), bench_cmp_double);
    tsv_quantiles(f, "Generate (all)", &gl, &gx);
    free(gl.v);
    free(gx.v);
    if (fclose(f)) {
        fprintf(stderr, "bitnet-load: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (parse(argc, argv))
        return 2;
    signal(SIGPIPE, SIG_IGN);
    /* A thousand connections, and the Cancel connections beside them, need
     * more descriptors than the usual soft limit of 1024. */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    static struct run r;
    char err[256];
    if (daemon_info(&r.d, err, sizeof(err))) {
        fprintf(stderr, "bitnet-load: %s\n", err);
        return 2;
    }
    queue_depth = r.d.n_seq_max + r.d.max_queued_jobs;
    jobs_per_uid = r.d.max_jobs_per_uid;
    r.have_proc = proc_sample(r.d.pid, &r.idle_before) == 0;

    struct worker *ws = calloc((size_t)O.connections, sizeof(*ws));
    long *last_cancelled = calloc((size_t)O.connections, sizeof(*last_cancelled));
    if (!ws || !last_cancelled) {
        fprintf(stderr, "bitnet-load: out of memory\n");
        return 2;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, WORKER_STACK);
    double t0 = bench_now_ms();
    for (int i = 0; i < O.connections; i++) {
        struct worker *w = &ws[i];
        w->generates = i < O.generations;
        w->rng = O.seed * 7919u + (unsigned)i;
        w->t.queue_full_bound_min = -1;
        int rc = pthread_create(&w->thread, &attr, worker_main, w);
        if (rc) {
            fprintf(stderr, "bitnet-load: thread %d: %s\n", i, strerror(rc));
            atomic_store(&w->state, 1);
            continue;
        }
        w->started = true;
    }
    pthread_attr_destroy(&attr);

    /* Sample the daemon while the run lasts. */
    struct tally main_t = {.queue_full_bound_min = -1};
    double end = t0 + O.seconds * 1e3;
    while (bench_now_ms() < end) {
        if (r.have_proc && r.n_rss < MAX_RSS_SAMPLES && proc_sample(r.d.pid, &r.rss[r.n_rss]) == 0)
            r.rss[r.n_rss++].t = (bench_now_ms() - t0) / 1e3;
        double left = end - bench_now_ms();
        struct timespec ts = {0, (long)((left < 500 ? (left > 0 ? left : 0) : 500) * 1e6)};
        nanosleep(&ts, NULL);
    }
    atomic_store(&stop_flag, 1);

    /* Cancel what still runs, until every worker is done or the grace ends. */
    double give_up = bench_now_ms() + O.grace * 1e3;
    for (;;) {
        int running = 0;
        for (int i = 0; i < O.connections; i++)
            running += !atomic_load(&ws[i].state);
        if (!running || bench_now_ms() > give_up)
            break;
        drain(ws, O.connections, last_cancelled, &main_t);
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    r.elapsed_s = (bench_now_ms() - t0) / 1e3;

    struct tally all = {.queue_full_bound_min = -1};
    for (int i = 0; i < O.connections; i++) {
        struct worker *w = &ws[i];
        if (!atomic_load(&w->state)) {
            /* Still waiting for a reply: lost. Its tally is in use; leave it. */
            r.hung += atomic_load(&w->busy);
            continue;
        }
        if (w->started)
            pthread_join(w->thread, NULL);
        tally_merge(&all, &w->t);
        tally_free(&w->t);
    }
    tally_merge(&all, &main_t);
    tally_free(&main_t);
    if (r.have_proc)
        r.have_proc = proc_sample(r.d.pid, &r.idle_after) == 0;

    report(stdout, &all, &r);
    if (O.out) {
        FILE *f = fopen(O.out, "w");
        if (!f) {
            fprintf(stderr, "bitnet-load: %s: %s\n", O.out, strerror(errno));
            return 2;
        }
        report(f, &all, &r);
        fclose(f);
    }
    bool tsv_failed = O.tsv && write_tsv(O.tsv, &all, &r) != 0;
    long lost = r.hung;
    for (int k = 0; k < CALL_KINDS; k++)
        lost += all.lost[k];
    int status = lost || all.queue_full_violations ? 1 : 0;
    if (tsv_failed && status == 0)
        status = 2;
    tally_free(&all);
    if (r.hung) {
        /* Threads still blocked in a call: do not wait for them. */
        fflush(stdout);
        _exit(status);
    }
    free(ws);
    free(last_cancelled);
    return status;
}
