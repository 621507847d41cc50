/*
 * tests/backends/test_target.c - the batcher driving a backend's model
 * through backends/target.h: over the native backend's ABI table it must
 * give exactly what a batcher over the engine gives (greedy tokens and the
 * logits they were sampled from, bit for bit); over the real llama shim and
 * libllama its greedy tokens must agree with the native engine's, and
 * concurrent generations must not disturb one another; and a batch the
 * target cannot run is refused with the engine's error codes.
 *
 * Models are written by bitnet-mkmodel before the tests fork.
 */
#define _GNU_SOURCE
#include <check.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/loader.h"
#include "backends/target.h"
#include "bitnet/error.h"
#include "engine/batcher.h"
#include "engine/engine.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "support.h"

static char err[1024];
static char tq2_path[PATH_MAX]; /* bitnet arch, TQ2_0, llama.cpp's SPM vocabulary */
static char i2s_path[PATH_MAX]; /* bitnet-b1.58 arch, I2_S, built-in byte vocabulary */

#define N_CTX      128
#define N_SEQ      4
#define N_GEN      12
#define MAX_PROMPT 96

/* Prompts of different lengths; the long one spans several prefill chunks
 * when the batcher's max_batch is small. */
static const char *const texts[] = {
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "In 1492, Columbus sailed the ocean blue",
    "Once upon a time a little model evaluated tokens one batch at a time, proud of its cache.",
    " leading spaces and\ttabs",
    "Ünïcödé: naïve café — ok?",
};
#define N_TEXTS (sizeof(texts) / sizeof(texts[0]))

/* One generation's record: the tokens sampled and the logits each one was
 * sampled from. */
struct rec {
    int32_t tok[N_GEN];
    int n_tok;
    float *logits; /* N_GEN * n_vocab */
    int n_logits;
    int n_vocab;
    gen_finish finish;
    bool done;
};

static void on_event(void *user, const gen_event *ev)
{
    struct rec *r = user;
    ck_assert(!r->done);
    if (ev->type == GEN_EVENT_DONE) {
        r->done = true;
        r->finish = ev->finish;
        return;
    }
    if (ev->token < 0)
        return;
    ck_assert_int_lt(r->n_tok, N_GEN);
    r->tok[r->n_tok++] = ev->token;
    ck_assert_ptr_nonnull(ev->logits);
    memcpy(r->logits + (size_t)r->n_logits * (size_t)r->n_vocab, ev->logits,
           sizeof(float) * (size_t)r->n_vocab);
    r->n_logits++;
}

/* A generation to run: its prompt and the step before which it joins. */
struct job {
    int32_t prompt[MAX_PROMPT];
    size_t n_prompt;
    int start;
};

static void recs_init(struct rec *r, int n, int n_vocab)
{
    for (int i = 0; i < n; i++) {
        memset(&r[i], 0, sizeof(r[i]));
        r[i].n_vocab = n_vocab;
        r[i].logits = malloc(sizeof(float) * (size_t)N_GEN * (size_t)n_vocab);
        ck_assert_ptr_nonnull(r[i].logits);
    }
}

static void recs_free(struct rec *r, int n)
{
    for (int i = 0; i < n; i++)
        free(r[i].logits);
}

/* Runs greedy generations of N_GEN tokens on b, each joining before step
 * jobs[i].start, until all have ended. */
static void run_jobs(batcher *b, const struct job *jobs, int n_jobs, struct rec *recs)
{
    gen_request req = {
        .sampling = sampler_params_default(), .max_tokens = N_GEN, .ignore_eog = true};
    req.sampling.temperature = 0;
    int added = 0;
    for (int step = 0; added < n_jobs || batcher_active(b) > 0; step++) {
        ck_assert_int_lt(step, 10000);
        for (int j = 0; j < n_jobs; j++) {
            if (jobs[j].start != step)
                continue;
            req.prompt = jobs[j].prompt;
            req.n_prompt = jobs[j].n_prompt;
            int id = -1;
            int rc = batcher_add(b, &req, on_event, &recs[j], &id, err, sizeof(err));
            ck_assert_msg(rc == 0, "batcher_add = %d: %s", rc, err);
            added++;
        }
        if (batcher_active(b) > 0)
            batcher_step(b);
    }
    for (int j = 0; j < n_jobs; j++) {
        ck_assert(recs[j].done);
        ck_assert_int_eq(recs[j].finish, GEN_FINISH_LENGTH);
        ck_assert_int_eq(recs[j].n_tok, N_GEN);
        ck_assert_int_eq(recs[j].n_logits, N_GEN);
    }
}

static tokenizer *tokenizer_of(const engine *e)
{
    tokenizer *tok = NULL;
    int rc = tokenizer_load(engine_gguf(e), NULL, &tok, err, sizeof(err));
    ck_assert_msg(rc == 0, "tokenizer_load = %d: %s", rc, err);
    return tok;
}

static void job_set(struct job *j, const tokenizer *tok, const char *text, int start)
{
    int rc =
        tokenizer_encode(tok, text, strlen(text), true, false, j->prompt, MAX_PROMPT, &j->n_prompt);
    ck_assert_msg(rc == 0, "tokenize = %d", rc);
    ck_assert_uint_gt(j->n_prompt, 0);
    j->start = start;
}

static engine *engine_open(const char *path, int n_seq)
{
    engine_opts eo = {.n_threads = 1, .n_seq_max = n_seq, .n_ctx = N_CTX};
    engine *e = NULL;
    int rc = engine_new(path, &eo, &e, err, sizeof(err));
    ck_assert_msg(rc == 0, "engine_new = %d: %s", rc, err);
    return e;
}

/* One compute thread: two spinning pools on a small shared machine slow the
 * tests down many times over. */
static bitnet_model *model_open(const backend_api *api, const char *path, int n_ctx, int n_ctx_max)
{
    bitnet_model_params p = {
        .struct_size = sizeof(p), .n_threads = 1, .n_ctx = n_ctx, .n_ctx_max = n_ctx_max};
    bitnet_model *m = NULL;
    int rc = api->model_new_from_file(path, &p, &m, err, sizeof(err));
    ck_assert_msg(rc == 0, "model_new_from_file = %d: %s", rc, err);
    return m;
}

static backend_target *target_open(const backend_api *api, bitnet_model *m, int n_seq)
{
    backend_target *t = NULL;
    int rc = backend_target_new(api, m, n_seq, &t, err, sizeof(err));
    ck_assert_msg(rc == 0, "backend_target_new = %d: %s", rc, err);
    return t;
}

static batcher *batcher_on_target(backend_target *t, const tokenizer *tok, int max_batch)
{
    batch_target bt;
    backend_target_get(t, &bt);
    batcher *b = NULL;
    ck_assert_int_eq(batcher_new_target(&bt, tok, max_batch, &b), 0);
    return b;
}

/* The schedules the native comparison runs: one generation alone, then
 * several of different lengths at once, some joining while others decode. */
static int make_schedules(const tokenizer *tok, struct job *alone, struct job *many)
{
    job_set(alone, tok, texts[3], 0);
    const int starts[N_SEQ] = {0, 0, 3, 7};
    const int which[N_SEQ] = {3, 0, 1, 5};
    for (int i = 0; i < N_SEQ; i++)
        job_set(&many[i], tok, texts[which[i]], starts[i]);
    return N_SEQ;
}

static void compare_recs(const struct rec *a, const struct rec *b, int n, const char *what)
{
    for (int j = 0; j < n; j++) {
        ck_assert_msg(memcmp(a[j].tok, b[j].tok, sizeof(a[j].tok)) == 0,
                      "%s: generation %d: tokens differ", what, j);
        size_t nl = (size_t)N_GEN * (size_t)a[j].n_vocab;
        size_t k = 0;
        while (k < nl && memcmp(&a[j].logits[k], &b[j].logits[k], sizeof(float)) == 0)
            k++;
        ck_assert_msg(k == nl,
                      "%s: generation %d: logits differ at token %zu, id %zu: %.9g vs %.9g", what,
                      j, k / (size_t)a[j].n_vocab, k % (size_t)a[j].n_vocab, (double)a[j].logits[k],
                      (double)b[j].logits[k]);
    }
}

/*
 * The same generations on a batcher over the engine and on a batcher over
 * the native backend's ABI table (a different engine instance of the same
 * file): identical tokens and logits, alone and several at once. max_batch
 * 8 cuts the long prompt into chunks, so runs whose logits nobody wants go
 * through the target too.
 */
static void native_matches_engine(const char *path)
{
    engine *e = engine_open(path, N_SEQ);
    tokenizer *tok = tokenizer_of(e);
    int n_vocab = engine_get_info(e)->n_vocab;
    const backend_api *api = backend_native_api();
    bitnet_model *m = model_open(api, path, N_CTX, N_SEQ);
    backend_target *t = target_open(api, m, N_SEQ);

    struct job alone, many[N_SEQ];
    int n_many = make_schedules(tok, &alone, many);
    ck_assert_uint_gt(alone.n_prompt, 16);
    for (int max_batch = 8; max_batch <= 64; max_batch *= 8) {
        batcher *be = NULL;
        ck_assert_int_eq(batcher_new(e, tok, max_batch, &be), 0);
        batcher *bt = batcher_on_target(t, tok, max_batch);

        struct rec ra[1], rb[1];
        recs_init(ra, 1, n_vocab);
        recs_init(rb, 1, n_vocab);
        run_jobs(be, &alone, 1, ra);
        run_jobs(bt, &alone, 1, rb);
        compare_recs(ra, rb, 1, "alone");
        recs_free(ra, 1);
        recs_free(rb, 1);

        struct rec ma[N_SEQ], mb[N_SEQ];
        recs_init(ma, n_many, n_vocab);
        recs_init(mb, n_many, n_vocab);
        run_jobs(be, many, n_many, ma);
        run_jobs(bt, many, n_many, mb);
        compare_recs(ma, mb, n_many, "concurrent");
        /* Not vacuous: the generations are not all the same. */
        ck_assert(memcmp(ma[0].tok, ma[1].tok, sizeof(ma[0].tok)) != 0 ||
                  memcmp(ma[0].logits, ma[1].logits, sizeof(float) * (size_t)n_vocab) != 0);
        recs_free(ma, n_many);
        recs_free(mb, n_many);
        batcher_free(be);
        batcher_free(bt);
    }
    backend_target_free(t);
    api->model_free(m);
    tokenizer_free(tok);
    engine_free(e);
}

START_TEST(test_native_target_matches_engine_tq2_0)
{
    native_matches_engine(tq2_path);
}
END_TEST

START_TEST(test_native_target_matches_engine_i2s)
{
    native_matches_engine(i2s_path);
}
END_TEST

/* A batch of n tokens over seqs, every token's logits wanted unless want
 * says otherwise. */
static engine_batch batch_of(int n, const int32_t *tokens, const int *seqs, const bool *want)
{
    return (engine_batch){.n = n, .tokens = tokens, .seq = seqs, .logits = want};
}

/*
 * eval writes the wanted logits in batch order, as engine_eval() does: an
 * interleaved batch of two sequences gives the rows that evaluating each
 * sequence on its own gives.
 */
START_TEST(test_target_eval_writes_logits_in_batch_order)
{
    const backend_api *api = backend_native_api();
    bitnet_model *m = model_open(api, tq2_path, N_CTX, 4);
    backend_target *t = target_open(api, m, 4);
    batch_target bt;
    backend_target_get(t, &bt);
    ck_assert_ptr_eq(bt.impl, t);
    ck_assert_int_eq(bt.n_seq_max, 4);
    ck_assert_int_eq(bt.n_ctx, N_CTX);
    int n_vocab = bt.n_vocab;
    ck_assert_int_gt(n_vocab, 1000);
    int s[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(bt.seq_new(bt.impl, &s[i], err, sizeof(err)), 0);
    float *mixed = malloc(sizeof(float) * 3 * (size_t)n_vocab);
    float *alone = malloc(sizeof(float) * 3 * (size_t)n_vocab);
    ck_assert(mixed && alone);
    /* s0: 10 11 (no logits) 12 (logits); s1: 20 (logits) 21 (logits). */
    const int32_t tk[5] = {10, 20, 11, 12, 21};
    const int sq[5] = {s[0], s[1], s[0], s[0], s[1]};
    const bool want[5] = {false, true, false, true, true};
    engine_batch b = batch_of(5, tk, sq, want);
    ck_assert_int_eq(bt.eval(bt.impl, &b, mixed, err, sizeof(err)), 0);
    /* The same tokens on s2 and s3, one sequence at a time. */
    const int32_t a0[3] = {10, 11, 12}, a1[2] = {20, 21};
    const int s2[3] = {s[2], s[2], s[2]}, s3[2] = {s[3], s[3]};
    const bool w0[3] = {false, false, true}, w1[2] = {true, true};
    engine_batch b0 = batch_of(3, a0, s2, w0), b1 = batch_of(2, a1, s3, w1);
    ck_assert_int_eq(bt.eval(bt.impl, &b1, alone, err, sizeof(err)), 0);
    ck_assert_int_eq(bt.eval(bt.impl, &b0, alone + 2 * (size_t)n_vocab, err, sizeof(err)), 0);
    size_t row = sizeof(float) * (size_t)n_vocab;
    /* mixed: s1@20, s0@12, s1@21; alone: s3@20, s3@21, s2@12. */
    ck_assert_int_eq(memcmp(mixed, alone, row), 0);
    ck_assert_int_eq(memcmp(mixed + n_vocab, alone + 2 * (size_t)n_vocab, row), 0);
    ck_assert_int_eq(memcmp(mixed + 2 * (size_t)n_vocab, alone + n_vocab, row), 0);
    ck_assert(memcmp(mixed, mixed + n_vocab, row) != 0);
    /* Nothing wanted and no output buffer: still evaluated. */
    const bool none[1] = {false};
    engine_batch bn = batch_of(1, tk, s, none);
    ck_assert_int_eq(bt.eval(bt.impl, &bn, NULL, err, sizeof(err)), 0);
    for (int i = 0; i < 4; i++)
        bt.seq_free(bt.impl, s[i]);
    free(mixed);
    free(alone);
    backend_target_free(t);
    api->model_free(m);
}
END_TEST

/* Logits of token tok appended to sequence s (a one-token batch). */
static void eval_one(const batch_target *bt, int s, int32_t tok, float *out)
{
    const bool want = true;
    engine_batch b = batch_of(1, &tok, &s, &want);
    int rc = bt->eval(bt->impl, &b, out, err, sizeof(err));
    ck_assert_msg(rc == 0, "eval = %d: %s", rc, err);
}

/*
 * Errors, each refused before anything is evaluated: an unknown or ended
 * sequence, a token outside the vocabulary, a sequence that would pass n_ctx;
 * more sequences than n_seq_max; and the backend's own refusal passed through.
 */
START_TEST(test_target_errors)
{
    enum { SMALL_CTX = 32 };
    const backend_api *api = backend_native_api();
    bitnet_model *m = model_open(api, tq2_path, SMALL_CTX, 3);
    backend_target *t = NULL;
    ck_assert_int_eq(backend_target_new(api, m, 0, &t, err, sizeof(err)), BITNET_EPARAM);
    ck_assert_int_eq(backend_target_new(api, NULL, 2, &t, err, sizeof(err)), BITNET_EPARAM);
    backend_api partial = *api;
    partial.eval = NULL;
    ck_assert_int_eq(backend_target_new(&partial, m, 2, &t, err, sizeof(err)), BITNET_EPARAM);
    ck_assert_ptr_null(t);
    t = target_open(api, m, 2);
    batch_target bt;
    backend_target_get(t, &bt);
    ck_assert_int_eq(bt.n_ctx, SMALL_CTX);
    int n_vocab = bt.n_vocab;
    float *la = malloc(sizeof(float) * (size_t)n_vocab),
          *lb = malloc(sizeof(float) * (size_t)n_vocab);
    ck_assert(la && lb);

    /* More sequences than n_seq_max. */
    int s0 = -1, s1 = -1, s2 = -1;
    ck_assert_int_eq(bt.seq_new(bt.impl, &s0, err, sizeof(err)), 0);
    ck_assert_int_eq(bt.seq_new(bt.impl, &s1, err, sizeof(err)), 0);
    ck_assert_int_ne(s0, s1);
    ck_assert_int_eq(bt.seq_new(bt.impl, &s2, err, sizeof(err)), BITNET_ELIMIT);
    ck_assert_int_eq(s2, -1);
    ck_assert_ptr_nonnull(strstr(err, "in use"));

    /* Unknown sequences: never made, negative, ended. */
    int32_t tk[2] = {5, 6};
    int sq[2] = {s0, 7};
    bool want[2] = {true, true};
    engine_batch b = batch_of(2, tk, sq, want);
    err[0] = '\0';
    ck_assert_int_eq(bt.eval(bt.impl, &b, la, err, sizeof(err)), BITNET_EPARAM);
    ck_assert_msg(strstr(err, "unknown sequence 7") != NULL, "%s", err);
    sq[1] = -1;
    ck_assert_int_eq(bt.eval(bt.impl, &b, la, err, sizeof(err)), BITNET_EPARAM);
    bt.seq_free(bt.impl, s1);
    sq[1] = s1;
    ck_assert_int_eq(bt.eval(bt.impl, &b, la, err, sizeof(err)), BITNET_EPARAM);
    bt.seq_free(bt.impl, s1); /* twice, and unknown ids: ignored */
    bt.seq_free(bt.impl, 99);
    bt.seq_free(bt.impl, -3);
    ck_assert_int_eq(bt.seq_new(bt.impl, &s1, err, sizeof(err)), 0);

    /* A token outside the vocabulary, after a good one of the same batch. */
    sq[1] = s0;
    tk[1] = n_vocab;
    ck_assert_int_eq(bt.eval(bt.impl, &b, la, err, sizeof(err)), BITNET_EPARAM);
    ck_assert_msg(strstr(err, "outside the vocabulary") != NULL, "%s", err);
    tk[1] = -1;
    ck_assert_int_eq(bt.eval(bt.impl, &b, la, err, sizeof(err)), BITNET_EPARAM);
    /* Nothing of it was evaluated: s0 is still empty, like the fresh s1. */
    eval_one(&bt, s0, 5, la);
    eval_one(&bt, s1, 5, lb);
    ck_assert_int_eq(memcmp(la, lb, sizeof(float) * (size_t)n_vocab), 0);

    /* Context full: s0 holds 1 token; fill it to SMALL_CTX, then one more. */
    int32_t fill[SMALL_CTX];
    int fseq[SMALL_CTX];
    for (int i = 0; i < SMALL_CTX; i++) {
        fill[i] = 1 + i;
        fseq[i] = s0;
    }
    engine_batch bf = batch_of(SMALL_CTX, fill, fseq, NULL);
    ck_assert_int_eq(bt.eval(bt.impl, &bf, la, err, sizeof(err)), BITNET_ECONTEXT);
    ck_assert_msg(strstr(err, "is full") != NULL, "%s", err);
    bf.n = SMALL_CTX - 1;
    ck_assert_int_eq(bt.eval(bt.impl, &bf, NULL, err, sizeof(err)), 0);
    /* s1 (1 token) + s0 (full): refused as a whole; s1 untouched. */
    tk[0] = 9;
    tk[1] = 9;
    sq[0] = s1;
    sq[1] = s0;
    ck_assert_int_eq(bt.eval(bt.impl, &b, la, err, sizeof(err)), BITNET_ECONTEXT);
    /* An ended sequence starts empty again on the reused context. */
    bt.seq_free(bt.impl, s0);
    ck_assert_int_eq(bt.seq_new(bt.impl, &s0, err, sizeof(err)), 0);
    eval_one(&bt, s0, 5, la);
    eval_one(&bt, s0, 9, la);
    eval_one(&bt, s1, 9, lb);
    ck_assert_int_eq(memcmp(la, lb, sizeof(float) * (size_t)n_vocab), 0);

    /* The backend's own limit (the model allows 3 contexts and t holds 2,
     * so this target of 3 sequences gets one): its code and message come
     * through, and a batcher reports the sequence limit as busy. */
    backend_target *t2 = target_open(api, m, 3);
    batch_target bt2;
    backend_target_get(t2, &bt2);
    int x = -1;
    ck_assert_int_eq(bt2.seq_new(bt2.impl, &x, err, sizeof(err)), 0);
    int y = -1;
    err[0] = '\0';
    ck_assert_int_eq(bt2.seq_new(bt2.impl, &y, err, sizeof(err)), BITNET_ELIMIT);
    ck_assert_msg(strstr(err, "native:") != NULL, "%s", err);
    ck_assert_int_eq(y, -1);
    bt2.seq_free(bt2.impl, x);

    tokenizer *tok = NULL;
    gguf_file *f = NULL;
    ck_assert_int_eq(gguf_open(tq2_path, &f, err, sizeof(err)), 0);
    ck_assert_int_eq(tokenizer_load(f, NULL, &tok, err, sizeof(err)), 0);
    batcher *bat = NULL;
    ck_assert_int_eq(batcher_new_target(&bt2, tok, 0, &bat), 0);
    gen_request req = {.prompt = tk, .n_prompt = 1, .max_tokens = 2};
    req.sampling = sampler_params_default();
    struct rec r[2];
    recs_init(r, 2, n_vocab);
    int id = -1;
    ck_assert_int_eq(batcher_add(bat, &req, on_event, &r[0], &id, err, sizeof(err)), 0);
    err[0] = '\0';
    ck_assert_int_eq(batcher_add(bat, &req, on_event, &r[1], &id, err, sizeof(err)), BITNET_EBUSY);
    ck_assert_msg(strstr(err, "native:") != NULL, "%s", err);
    batcher_free(bat);
    ck_assert(r[0].done && !r[1].done);
    recs_free(r, 2);
    /* A target without functions is refused. */
    batch_target empty = {0};
    bat = NULL;
    ck_assert_int_eq(batcher_new_target(&empty, tok, 0, &bat), BITNET_EPARAM);
    ck_assert_ptr_null(bat);
    tokenizer_free(tok);
    gguf_close(f);

    backend_target_free(t2);
    free(la);
    free(lb);
    backend_target_free(t); /* s0 and s1 still open: freed with it */
    api->model_free(m);
}
END_TEST

#ifdef LLAMA_SHIM_PATH

static backend_lib *load_shim(void)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", LLAMA_SHIM_PATH);
    const char *dirs[2] = {dirname(dir), NULL};
    validate_opts o = {.dirs = dirs, .uid = getuid()};
    backend_lib *lib = NULL;
    int rc = backend_lib_load(LLAMA_SHIM_PATH, &o, &lib, err, sizeof(err));
    ck_assert_msg(rc == 0, "load %s = %d: %s", LLAMA_SHIM_PATH, rc, err);
    return lib;
}

/*
 * Greedy generations through a batcher over the llama shim agree with a
 * batcher over the native engine (the crossval criterion: identical
 * continuations for all prompts but at most one, where float summation
 * order may flip a near tie); and generations run several at once through
 * one shim target give exactly the tokens and logits each gives alone.
 */
START_TEST(test_llama_target_agrees_with_native)
{
    backend_lib *lib = load_shim();
    engine *e = engine_open(tq2_path, 1);
    tokenizer *tok = tokenizer_of(e);
    int n_vocab = engine_get_info(e)->n_vocab;
    bitnet_model *m = model_open(&lib->api, tq2_path, N_CTX, N_SEQ);
    backend_target *t = target_open(&lib->api, m, N_SEQ);
    batch_target bt;
    backend_target_get(t, &bt);
    ck_assert_int_eq(bt.n_vocab, n_vocab);

    /* max_batch 256: a prompt is always one run, alone or not, so the shim
     * sees the same llama_decode() shapes either way. */
    batcher *bn = NULL;
    ck_assert_int_eq(batcher_new(e, tok, 256, &bn), 0);
    batcher *bl = batcher_on_target(t, tok, 256);
    struct job jobs[N_TEXTS];
    struct rec rn[N_TEXTS], rl[N_TEXTS], rc[N_TEXTS];
    recs_init(rn, N_TEXTS, n_vocab);
    recs_init(rl, N_TEXTS, n_vocab);
    recs_init(rc, N_TEXTS, n_vocab);
    int same = 0, same_tokens = 0;
    for (size_t i = 0; i < N_TEXTS; i++) {
        job_set(&jobs[i], tok, texts[i], 0);
        run_jobs(bn, &jobs[i], 1, &rn[i]);
        run_jobs(bl, &jobs[i], 1, &rl[i]);
        int k = 0;
        while (k < N_GEN && rn[i].tok[k] == rl[i].tok[k])
            k++;
        same += k == N_GEN;
        same_tokens += k;
    }
    fprintf(stderr,
            "llama target vs native engine: %d of %zu greedy %d-token continuations identical, "
            "%d of %zu tokens before the first difference\n",
            same, N_TEXTS, N_GEN, same_tokens, N_TEXTS * N_GEN);
    ck_assert_int_ge(same, (int)N_TEXTS - 1);

    /* N_SEQ at a time, joining at different steps, on the same target. */
    for (size_t i = 0; i < N_TEXTS; i++)
        jobs[i].start = (int)(i % 3) * 2;
    for (size_t first = 0; first < N_TEXTS; first += N_SEQ) {
        int n = N_TEXTS - first < N_SEQ ? (int)(N_TEXTS - first) : N_SEQ;
        run_jobs(bl, &jobs[first], n, &rc[first]);
    }
    compare_recs(rl, rc, N_TEXTS, "llama target, concurrent vs alone");

    recs_free(rn, N_TEXTS);
    recs_free(rl, N_TEXTS);
    recs_free(rc, N_TEXTS);
    batcher_free(bn);
    batcher_free(bl);
    backend_target_free(t);
    lib->api.model_free(m);
    tokenizer_free(tok);
    engine_free(e);
    backend_lib_free(lib);
}
END_TEST

/* The shim's refusals come through the target with their codes and its
 * messages: a context limit below the target's sequences, and context full
 * checked by the target before libllama sees the batch. */
START_TEST(test_llama_target_errors)
{
    backend_lib *lib = load_shim();
    enum { SMALL_CTX = 32 };
    bitnet_model *m = model_open(&lib->api, tq2_path, SMALL_CTX, 1);
    backend_target *t = target_open(&lib->api, m, 2);
    batch_target bt;
    backend_target_get(t, &bt);
    ck_assert_int_eq(bt.n_ctx, SMALL_CTX);
    int s0 = -1, s1 = -1;
    ck_assert_int_eq(bt.seq_new(bt.impl, &s0, err, sizeof(err)), 0);
    err[0] = '\0';
    ck_assert_int_eq(bt.seq_new(bt.impl, &s1, err, sizeof(err)), BITNET_ELIMIT);
    ck_assert_msg(strstr(err, "llama:") != NULL, "%s", err);
    float *l = malloc(sizeof(float) * (size_t)bt.n_vocab);
    ck_assert_ptr_nonnull(l);
    int32_t fill[SMALL_CTX + 1];
    int fseq[SMALL_CTX + 1];
    for (int i = 0; i <= SMALL_CTX; i++) {
        fill[i] = 1 + i;
        fseq[i] = s0;
    }
    engine_batch b = batch_of(SMALL_CTX + 1, fill, fseq, NULL);
    ck_assert_int_eq(bt.eval(bt.impl, &b, l, err, sizeof(err)), BITNET_ECONTEXT);
    fill[3] = bt.n_vocab;
    b.n = SMALL_CTX;
    ck_assert_int_eq(bt.eval(bt.impl, &b, l, err, sizeof(err)), BITNET_EPARAM);
    fill[3] = 4;
    ck_assert_int_eq(bt.eval(bt.impl, &b, l, err, sizeof(err)), 0);
    /* Reused after a reset: the same first logits as a fresh start. */
    float *l2 = malloc(sizeof(float) * (size_t)bt.n_vocab);
    ck_assert_ptr_nonnull(l2);
    const bool want = true;
    int32_t five = 5;
    engine_batch b1 = batch_of(1, &five, &s0, &want);
    ck_assert_int_eq(bt.eval(bt.impl, &b1, l, err, sizeof(err)), BITNET_ECONTEXT);
    bt.seq_free(bt.impl, s0);
    ck_assert_int_eq(bt.seq_new(bt.impl, &s0, err, sizeof(err)), 0);
    eval_one(&bt, s0, 7, l);
    bt.seq_free(bt.impl, s0);
    ck_assert_int_eq(bt.seq_new(bt.impl, &s0, err, sizeof(err)), 0);
    eval_one(&bt, s0, 7, l2);
    ck_assert_int_eq(memcmp(l, l2, sizeof(float) * (size_t)bt.n_vocab), 0);
    free(l);
    free(l2);
    backend_target_free(t);
    lib->api.model_free(m);
    backend_lib_free(lib);
}
END_TEST

#endif

static Suite *target_suite(void)
{
    Suite *s = suite_create("target");
    TCase *tc = tcase_create("target");
    tcase_add_test(tc, test_native_target_matches_engine_tq2_0);
    tcase_add_test(tc, test_native_target_matches_engine_i2s);
    tcase_add_test(tc, test_target_eval_writes_logits_in_batch_order);
    tcase_add_test(tc, test_target_errors);
#ifdef LLAMA_SHIM_PATH
    tcase_add_test(tc, test_llama_target_agrees_with_native);
    tcase_add_test(tc, test_llama_target_errors);
#else
    fprintf(stderr, "llama target tests skipped: libbitnet-llama.so is not built "
                    "(no llama.cpp tree)\n");
#endif
    suite_add_tcase(s, tc);
    return s;
}

/* Writes the test models with bitnet-mkmodel (once, before the tests fork). */
static int make_models(void)
{
    snprintf(tq2_path, sizeof(tq2_path), "%s/tiny-bitnet-tq2_0-spm.gguf", scratch_dir());
    snprintf(i2s_path, sizeof(i2s_path), "%s/tiny-b158-i2s.gguf", scratch_dir());
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof(cmd),
             "'%s' --arch bitnet --preset tiny --type tq2_0 --seed 12 --vocab "
             "'%s/llama.cpp/models/ggml-vocab-llama-spm.gguf' -o '%s' >/dev/null",
             MKMODEL_PATH, BITNET_REFERENCE_DIR, tq2_path);
    if (system(cmd) != 0)
        return -1;
    snprintf(cmd, sizeof(cmd),
             "'%s' --arch bitnet-b1.58 --preset tiny --type i2s --seed 7 -o '%s' >/dev/null",
             MKMODEL_PATH, i2s_path);
    return system(cmd) != 0 ? -1 : 0;
}

int main(void)
{
    scratch_init();
    if (make_models() != 0) {
        fprintf(stderr, "bitnet-mkmodel failed\n");
        scratch_cleanup();
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(target_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    scratch_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
