/*
 * bench/bench_e2e.c - bench-e2e: end-to-end speed of the native engine, and
 * of llama.cpp on the same machine in the same run (a report, never a test).
 *
 * For each model and thread count: load time, prefill (ppN: N prompt tokens
 * in one batch) and decode (tgN: N tokens one at a time) tokens/s, the
 * aggregate decode rate of S sequences stepping together, and the
 * bandwidth-bound ceiling: bytes of weights read per decoded token divided
 * by the read bandwidth measured in this run. Medians of --runs repeats.
 * llama.cpp runs through its C API with its defaults (what llama-bench
 * measures), on the file given with --llama-model.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bandwidth.h"
#include "bitnet/config.h"
#include "engine/engine.h"

#include "bench/bench_stats.h"

#ifdef BENCH_HAVE_LLAMA
#include "llama.h"
#endif

#define MAX_LIST 8

struct opts {
    const char *model, *llama_model, *backends, *out, *lm_head, *kv_type;
    const char *tsv; /* the figures as tab-separated values, or NULL */
    int agg_runs;    /* runs of the aggregate figures; 0: min(runs, 3) */
    int threads[MAX_LIST], n_threads;
    int ctx_fill; /* positions filled before the decode steps are timed */
    int pp[MAX_LIST], n_pp;
    int tg;
    int seqs[MAX_LIST], n_seqs;
    int runs;
    size_t bw_mib;
};

struct result {
    const char *engine;
    int threads;
    double load_ms;
    double pp_tps[MAX_LIST];
    double tg_tps;
    double agg_tps[MAX_LIST];
    long rss_kb;
};

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static int parse_list(const char *s, int *out)
{
    int n = 0;
    while (*s && n < MAX_LIST) {
        out[n++] = atoi(s);
        const char *c = strchr(s, ',');
        if (!c)
            break;
        s = c + 1;
    }
    return n;
}

static void usage(void)
{
    fprintf(stderr,
            "Usage: bench-e2e --model FILE [--llama-model FILE --backends DIR] [--threads 1,2]\n"
            "                 [--pp 128,512] [--tg 128] [--seqs 1,4,8,16] [--runs 5]\n"
            "                 [--bw-mib 1024] [--lm-head native|q8_0] [--out REPORT.md]\n"
            "                 [--ctx-fill N] [--kv f32|f16] [--agg-runs N] [--tsv FILE]\n"
            "  --ctx-fill N  time the decode steps after N positions of context (bitnetd)\n"
            "  --kv TYPE     the KV cache type of bitnetd's engine\n"
            "  --agg-runs N  runs of each aggregate (S sequences) figure (default min(runs, 3))\n"
            "  --tsv FILE    also write the figures as tab-separated values (for charts)\n");
    exit(2);
}

static void parse(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.tg = 128, .runs = 5, .bw_mib = 1024};
    o->n_threads = parse_list("1,2", o->threads);
    o->n_pp = parse_list("128,512", o->pp);
    o->n_seqs = parse_list("1,4,8,16", o->seqs);
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        if (!strcmp(a, "--model"))
            o->model = v;
        else if (!strcmp(a, "--llama-model"))
            o->llama_model = v;
        else if (!strcmp(a, "--backends"))
            o->backends = v;
        else if (!strcmp(a, "--lm-head"))
            o->lm_head = v;
        else if (!strcmp(a, "--kv"))
            o->kv_type = v;
        else if (!strcmp(a, "--ctx-fill"))
            o->ctx_fill = atoi(v);
        else if (!strcmp(a, "--out"))
            o->out = v;
        else if (!strcmp(a, "--tsv"))
            o->tsv = v;
        else if (!strcmp(a, "--agg-runs"))
            o->agg_runs = atoi(v);
        else if (!strcmp(a, "--threads"))
            o->n_threads = parse_list(v, o->threads);
        else if (!strcmp(a, "--pp"))
            o->n_pp = parse_list(v, o->pp);
        else if (!strcmp(a, "--seqs"))
            o->n_seqs = parse_list(v, o->seqs);
        else if (!strcmp(a, "--tg"))
            o->tg = atoi(v);
        else if (!strcmp(a, "--runs"))
            o->runs = atoi(v);
        else if (!strcmp(a, "--bw-mib"))
            o->bw_mib = (size_t)atol(v);
        else
            usage();
    }
    if (!o->model || o->runs < 1 || o->tg < 1 || o->ctx_fill < 0 || o->agg_runs < 0)
        usage();
    if (o->agg_runs == 0)
        o->agg_runs = o->runs < 3 ? o->runs : 3;
}

/* ---- bitnetd ---------------------------------------------------------- */

static int32_t bench_token(int i, int n_vocab)
{
    return (int32_t)((i * 7919L + 13) % n_vocab);
}

/* Evaluates n tokens of a fresh sequence: as one batch (prefill) or one at
 * a time (decode). Returns the milliseconds taken. */
static double ours_run(engine *e, int n, bool one_at_a_time, float *logits)
{
    int seq;
    char err[256];
    if (engine_seq_new(e, &seq))
        return -1;
    int n_vocab = engine_get_info(e)->n_vocab;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)n);
    int *seqs = malloc(sizeof(int) * (size_t)n);
    bool *want = calloc((size_t)n, sizeof(bool));
    for (int i = 0; i < n; i++) {
        tok[i] = bench_token(i, n_vocab);
        seqs[i] = seq;
    }
    double t0 = bench_now_ms();
    if (one_at_a_time) {
        /* The first token is the prompt; time the n - 1 decode steps after
         * it, as a generation loop would run them. */
        bool yes = true;
        engine_batch b0 = {1, tok, seqs, &yes};
        engine_eval(e, &b0, logits, err, sizeof(err));
        t0 = bench_now_ms();
        for (int i = 1; i < n; i++) {
            engine_batch b = {1, tok + i, seqs, &yes};
            if (engine_eval(e, &b, logits, err, sizeof(err)))
                fprintf(stderr, "bench-e2e: %s\n", err);
        }
    } else {
        want[n - 1] = true;
        engine_batch b = {n, tok, seqs, want};
        if (engine_eval(e, &b, logits, err, sizeof(err)))
            fprintf(stderr, "bench-e2e: %s\n", err);
    }
    double ms = bench_now_ms() - t0;
    engine_seq_free(e, seq);
    free(tok);
    free(seqs);
    free(want);
    return ms;
}

/* Decode tokens/s at a depth: fills `fill` positions of a sequence once (in
 * batches of 256, untimed), then, runs times, drops back to `fill` positions
 * and times n - 1 decode steps after a first one. Returns the median. */
static double ours_decode_at(engine *e, int fill, int n, int runs, float *logits)
{
    int seq;
    char err[256];
    if (engine_seq_new(e, &seq))
        return -1;
    int n_vocab = engine_get_info(e)->n_vocab;
    int total = fill + n;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)total);
    int *seqs = malloc(sizeof(int) * (size_t)total);
    bool *want = calloc((size_t)total, sizeof(bool));
    double *v = malloc(sizeof(double) * (size_t)runs);
    for (int i = 0; i < total; i++) {
        tok[i] = bench_token(i, n_vocab);
        seqs[i] = seq;
    }
    for (int i = 0; i < fill; i += 256) {
        engine_batch b = {fill - i < 256 ? fill - i : 256, tok + i, seqs, want};
        if (engine_eval(e, &b, logits, err, sizeof(err)))
            fprintf(stderr, "bench-e2e: %s\n", err);
    }
    bool yes = true;
    for (int k = 0; k < runs; k++) {
        engine_seq_truncate(e, seq, fill);
        engine_batch b0 = {1, tok + fill, seqs, &yes};
        engine_eval(e, &b0, logits, err, sizeof(err));
        double t0 = bench_now_ms();
        for (int i = fill + 1; i < total; i++) {
            engine_batch b = {1, tok + i, seqs, &yes};
            if (engine_eval(e, &b, logits, err, sizeof(err)))
                fprintf(stderr, "bench-e2e: %s\n", err);
        }
        v[k] = (n - 1) / ((bench_now_ms() - t0) / 1e3);
    }
    double med = bench_median(v, runs);
    engine_seq_free(e, seq);
    free(v);
    free(tok);
    free(seqs);
    free(want);
    return med;
}

/* S sequences each decode `steps` tokens together; returns tokens/s. */
static double ours_aggregate(engine *e, int S, int steps, float *logits)
{
    int seq[64];
    char err[256];
    int n_vocab = engine_get_info(e)->n_vocab;
    for (int s = 0; s < S; s++)
        if (engine_seq_new(e, &seq[s]))
            return -1;
    int32_t tok[64];
    bool want[64];
    for (int s = 0; s < S; s++) {
        tok[s] = bench_token(s, n_vocab);
        want[s] = true;
    }
    engine_batch b = {S, tok, seq, want};
    engine_eval(e, &b, logits, err, sizeof(err)); /* each sequence's prompt */
    double t0 = bench_now_ms();
    for (int i = 0; i < steps; i++) {
        for (int s = 0; s < S; s++)
            tok[s] = bench_token(i * S + s, n_vocab);
        if (engine_eval(e, &b, logits, err, sizeof(err)))
            fprintf(stderr, "bench-e2e: %s\n", err);
    }
    double ms = bench_now_ms() - t0;
    for (int s = 0; s < S; s++)
        engine_seq_free(e, seq[s]);
    return (double)S * steps / (ms / 1e3);
}

static int bench_ours(const struct opts *o, int threads, struct result *r, uint64_t *wbytes,
                      const char **kernel_out)
{
    static char kernel[64];
    char err[512];
    int max_pp = o->tg;
    for (int i = 0; i < o->n_pp; i++)
        max_pp = o->pp[i] > max_pp ? o->pp[i] : max_pp;
    int max_seqs = 1;
    for (int i = 0; i < o->n_seqs; i++)
        max_seqs = o->seqs[i] > max_seqs ? o->seqs[i] : max_seqs;
    if (o->ctx_fill + o->tg > max_pp)
        max_pp = o->ctx_fill + o->tg;
    engine_opts eo = {.n_threads = threads,
                      .n_seq_max = max_seqs,
                      .n_ctx = max_pp + 64,
                      .lm_head = o->lm_head,
                      .kv_type = o->kv_type};
    double t0 = bench_now_ms();
    engine *e;
    if (engine_new(o->model, &eo, &e, err, sizeof(err))) {
        fprintf(stderr, "bench-e2e: %s\n", err);
        return -1;
    }
    r->engine = "bitnetd";
    r->threads = threads;
    r->load_ms = bench_now_ms() - t0;
    const engine_info *in = engine_get_info(e);
    *wbytes = in->weight_bytes;
    snprintf(kernel, sizeof(kernel), "%s", in->kernel);
    *kernel_out = kernel;
    float *logits = malloc(sizeof(float) * (size_t)in->n_vocab * (size_t)max_seqs);
    double *v = malloc(sizeof(double) * (size_t)(o->runs > o->agg_runs ? o->runs : o->agg_runs));
    ours_run(e, 8, true, logits); /* warm the page cache and the pool */
    for (int p = 0; p < o->n_pp; p++) {
        for (int k = 0; k < o->runs; k++)
            v[k] = o->pp[p] / (ours_run(e, o->pp[p], false, logits) / 1e3);
        r->pp_tps[p] = bench_median(v, o->runs);
    }
    if (o->ctx_fill > 0) {
        r->tg_tps = ours_decode_at(e, o->ctx_fill, o->tg, o->runs, logits);
    } else {
        for (int k = 0; k < o->runs; k++)
            v[k] = (o->tg - 1) / (ours_run(e, o->tg, true, logits) / 1e3);
        r->tg_tps = bench_median(v, o->runs);
    }
    for (int s = 0; s < o->n_seqs; s++) {
        int runs = o->agg_runs;
        for (int k = 0; k < runs; k++)
            v[k] = ours_aggregate(e, o->seqs[s], 16, logits);
        r->agg_tps[s] = bench_median(v, runs);
    }
    r->rss_kb = rss_kb();
    printf("bitnetd  t=%d: load %.0f ms, tg%d %.2f tok/s after %d positions, kernel %s, kv %s\n",
           threads, r->load_ms, o->tg, r->tg_tps, o->ctx_fill, in->kernel,
           o->kv_type ? o->kv_type : "f32");
    fflush(stdout);
    free(v);
    free(logits);
    engine_free(e);
    return 0;
}

/* ---- llama.cpp -------------------------------------------------------- */

#ifdef BENCH_HAVE_LLAMA
static void quiet_log(enum ggml_log_level level, const char *text, void *user)
{
    (void)user;
    if (level == GGML_LOG_LEVEL_ERROR)
        fputs(text, stderr);
}

static double llama_run(struct llama_context *ctx, int n, bool one_at_a_time, int n_vocab)
{
    llama_memory_clear(llama_get_memory(ctx), true);
    llama_token *tok = malloc(sizeof(llama_token) * (size_t)n);
    for (int i = 0; i < n; i++)
        tok[i] = bench_token(i, n_vocab);
    double t0 = bench_now_ms();
    if (one_at_a_time) {
        llama_decode(ctx, llama_batch_get_one(tok, 1));
        t0 = bench_now_ms();
        for (int i = 1; i < n; i++)
            llama_decode(ctx, llama_batch_get_one(tok + i, 1));
    } else {
        llama_decode(ctx, llama_batch_get_one(tok, n));
    }
    double ms = bench_now_ms() - t0;
    free(tok);
    return ms;
}

static int bench_llama(const struct opts *o, int threads, struct result *r)
{
    static bool loaded;
    if (!loaded) {
        llama_log_set(quiet_log, NULL);
        ggml_backend_load_all_from_path(o->backends);
        llama_backend_init();
        loaded = true;
    }
    int max_pp = o->tg;
    for (int i = 0; i < o->n_pp; i++)
        max_pp = o->pp[i] > max_pp ? o->pp[i] : max_pp;
    double t0 = bench_now_ms();
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *m = llama_model_load_from_file(o->llama_model, mp);
    if (!m) {
        fprintf(stderr, "bench-e2e: llama.cpp cannot load %s\n", o->llama_model);
        return -1;
    }
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)max_pp + 64;
    cp.n_batch = cp.n_ubatch = (uint32_t)max_pp;
    cp.n_threads = cp.n_threads_batch = threads;
    struct llama_context *ctx = llama_init_from_model(m, cp);
    r->engine = "llama.cpp";
    r->threads = threads;
    r->load_ms = bench_now_ms() - t0;
    int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(m));
    double *v = malloc(sizeof(double) * (size_t)o->runs);
    llama_run(ctx, 8, true, n_vocab);
    for (int p = 0; p < o->n_pp; p++) {
        for (int k = 0; k < o->runs; k++)
            v[k] = o->pp[p] / (llama_run(ctx, o->pp[p], false, n_vocab) / 1e3);
        r->pp_tps[p] = bench_median(v, o->runs);
    }
    for (int k = 0; k < o->runs; k++)
        v[k] = (o->tg - 1) / (llama_run(ctx, o->tg, true, n_vocab) / 1e3);
    r->tg_tps = bench_median(v, o->runs);
    r->rss_kb = rss_kb();
    printf("llama.cpp t=%d: load %.0f ms, tg%d %.2f tok/s\n", threads, r->load_ms, o->tg,
           r->tg_tps);
    fflush(stdout);
    free(v);
    llama_free(ctx);
    llama_model_free(m);
    return 0;
}
#endif

/* ---- report ----------------------------------------------------------- */

static void report(FILE *f, const struct opts *o, const struct result *res, int n_res,
                   const double *bw, uint64_t wbytes, const char *kernel)
{
    fprintf(f,
            "# bench-e2e\n\nbitnetd %s, model `%s` (%.1f MB of weights read per token, kernel "
            "`%s`)",
            BITNET_VERSION, o->model, (double)wbytes / 1e6, kernel);
    if (o->llama_model)
        fprintf(f, "; llama.cpp on `%s`", o->llama_model);
    fprintf(f, ". Medians of %d runs (the S-sequence columns: %d runs of 16 steps).\n\n", o->runs,
            o->agg_runs);
    if (o->ctx_fill > 0 || o->kv_type)
        fprintf(f,
                "bitnetd's tg is timed after %d positions of context, KV cache %s (llama.cpp's "
                "from position 0).\n\n",
                o->ctx_fill, o->kv_type ? o->kv_type : "f32");
    for (int t = 0; t < o->n_threads; t++)
        fprintf(f,
                "Read bandwidth with %d thread%s: %.2f GB/s; decode ceiling %.2f tok/s "
                "(weights per token / bandwidth).\n",
                o->threads[t], o->threads[t] > 1 ? "s" : "", bw[t], bw[t] * 1e9 / (double)wbytes);
    fprintf(f, "\n| engine | threads | load ms |");
    for (int p = 0; p < o->n_pp; p++)
        fprintf(f, " pp%d tok/s |", o->pp[p]);
    fprintf(f, " tg%d tok/s | tg of ceiling |", o->tg);
    for (int s = 0; s < o->n_seqs; s++)
        fprintf(f, " %d seq tok/s |", o->seqs[s]);
    fprintf(f, " RSS MiB |\n|---|---|---|");
    for (int i = 0; i < o->n_pp + 2 + o->n_seqs + 1; i++)
        fprintf(f, "---|");
    fprintf(f, "\n");
    for (int i = 0; i < n_res; i++) {
        const struct result *r = &res[i];
        int ti = 0;
        for (int t = 0; t < o->n_threads; t++)
            if (o->threads[t] == r->threads)
                ti = t;
        double ceiling = bw[ti] * 1e9 / (double)wbytes;
        fprintf(f, "| %s | %d | %.0f |", r->engine, r->threads, r->load_ms);
        for (int p = 0; p < o->n_pp; p++)
            fprintf(f, " %.1f |", r->pp_tps[p]);
        /* Only our engine is known to read exactly wbytes per token. */
        if (strcmp(r->engine, "bitnetd") == 0)
            fprintf(f, " %.2f | %.0f%% |", r->tg_tps, 100.0 * r->tg_tps / ceiling);
        else
            fprintf(f, " %.2f | |", r->tg_tps);
        for (int s = 0; s < o->n_seqs; s++) {
            if (strcmp(r->engine, "bitnetd") == 0)
                fprintf(f, " %.1f |", r->agg_tps[s]);
            else
                fprintf(f, " |");
        }
        fprintf(f, " %ld |\n", r->rss_kb / 1024);
    }
}

/* One row of the tab-separated figures: the run's columns, then the figure. */
struct tsv_row {
    FILE *f;
    const char *model, *lm_head, *kernel;
    const struct result *r;
};

static void tsv_figure(const struct tsv_row *w, const char *metric, int n, double value, int runs)
{
    fprintf(w->f, "%s\t%s\t%s\t%s\t%d\t%s\t%d\t%.4f\t%d\n", w->model, w->lm_head, w->kernel,
            w->r->engine, w->r->threads, metric, n, value, runs);
}

/* The figures as tab-separated values with a header line, one figure a row:
 * what scripts/bench_charts.py reads. metric: load_ms, pp (n prompt tokens,
 * tok/s), tg (n tokens, tok/s), agg (n sequences, tok/s), ceiling (decode
 * tok/s the read bandwidth allows; bitnetd only), bw_gb_s, rss_mib. */
static int write_tsv(const struct opts *o, const struct result *res, int n_res, const double *bw,
                     uint64_t wbytes, const char *kernel)
{
    FILE *f = fopen(o->tsv, "w");
    if (!f) {
        perror(o->tsv);
        return -1;
    }
    const char *slash = strrchr(o->model, '/');
    fprintf(f, "model\tlm_head\tkernel\tengine\tthreads\tmetric\tn\tvalue\truns\n");
    for (int i = 0; i < n_res; i++) {
        const struct result *r = &res[i];
        bool ours = strcmp(r->engine, "bitnetd") == 0;
        struct tsv_row w = {f, slash ? slash + 1 : o->model, o->lm_head ? o->lm_head : "native",
                            ours ? kernel : "llama.cpp", r};
        int ti = 0;
        for (int t = 0; t < o->n_threads; t++)
            if (o->threads[t] == r->threads)
                ti = t;
        tsv_figure(&w, "load_ms", 0, r->load_ms, 1);
        for (int p = 0; p < o->n_pp; p++)
            tsv_figure(&w, "pp", o->pp[p], r->pp_tps[p], o->runs);
        tsv_figure(&w, "tg", o->tg, r->tg_tps, o->runs);
        tsv_figure(&w, "bw_gb_s", 0, bw[ti], 5);
        if (ours) {
            tsv_figure(&w, "ceiling", o->tg, bw[ti] * 1e9 / (double)wbytes, 5);
            for (int s = 0; s < o->n_seqs; s++)
                tsv_figure(&w, "agg", o->seqs[s], r->agg_tps[s], o->agg_runs);
        }
        tsv_figure(&w, "rss_mib", 0, (double)r->rss_kb / 1024.0, 1);
    }
    if (fclose(f)) {
        perror(o->tsv);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    parse(argc, argv, &o);
    double bw[MAX_LIST];
    for (int t = 0; t < o.n_threads; t++) {
        bw[t] = bench_read_bandwidth(o.bw_mib << 20, o.threads[t], 5);
        printf("read bandwidth, %d thread(s): %.2f GB/s\n", o.threads[t], bw[t]);
    }
    struct result res[2 * MAX_LIST];
    memset(res, 0, sizeof(res));
    int n = 0;
    uint64_t wbytes = 0;
    const char *kernel = "";
    for (int t = 0; t < o.n_threads; t++)
        if (bench_ours(&o, o.threads[t], &res[n], &wbytes, &kernel) == 0)
            n++;
#ifdef BENCH_HAVE_LLAMA
    if (o.llama_model)
        for (int t = 0; t < o.n_threads; t++)
            if (bench_llama(&o, o.threads[t], &res[n]) == 0)
                n++;
#else
    if (o.llama_model)
        fprintf(stderr, "bench-e2e: built without llama.cpp; --llama-model ignored\n");
#endif
    report(stdout, &o, res, n, bw, wbytes, kernel);
    if (o.out) {
        FILE *f = fopen(o.out, "w");
        if (!f) {
            perror(o.out);
            return 1;
        }
        report(f, &o, res, n, bw, wbytes, kernel);
        fclose(f);
    }
    if (o.tsv && write_tsv(&o, res, n, bw, wbytes, kernel))
        return 1;
    return 0;
}
