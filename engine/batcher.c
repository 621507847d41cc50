/*
 * engine/batcher.c - continuous batching of generations (see batcher.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bitnet/error.h"
#include "engine/batcher.h"

struct gen {
    bool used;
    int id;
    int seq;         /* the target's sequence */
    int32_t *tokens; /* prompt then generated */
    size_t n_tokens, cap_tokens;
    size_t n_prompt;
    size_t n_fed; /* tokens already evaluated */
    int n_generated;
    gen_request req;
    char *stop_copy[GEN_MAX_STOP];
    size_t max_stop_len;
    sampler *smp;
    tokenizer_stream stream;
    char *held; /* text not yet emitted: it may begin a stop string */
    size_t n_held, cap_held;
    gen_callback cb;
    void *user;
    gen_usage usage;
    const float *logits; /* of the token being accepted, for its TEXT events */
    double t_added, t_started, t_first;
    bool started;
    int32_t next; /* sampled token waiting to be fed, or -1 */
};

struct batcher {
    batch_target t; /* what the steps evaluate on */
    const tokenizer *tok;
    int max_batch;
    struct gen *gens;
    int n_gens; /* slots = the target's n_seq_max */
    int next_id;
    int32_t *btok;
    int *bseq;
    bool *bwant;
    int *bgen; /* which generation each logits row belongs to */
    float *logits;
    char *piece;
    size_t piece_cap;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

const char *gen_finish_name(gen_finish f)
{
    switch (f) {
    case GEN_FINISH_STOP:
        return "stop";
    case GEN_FINISH_LENGTH:
        return "length";
    case GEN_FINISH_CANCELLED:
        return "cancelled";
    case GEN_FINISH_ERROR:
        return "error";
    case GEN_FINISH_NONE:
        break;
    }
    return "none";
}

static int engine_target_seq_new(void *impl, int *seq, char *err, size_t err_len)
{
    int rc = engine_seq_new(impl, seq);
    if (rc)
        snprintf(err, err_len, "no free engine sequence: %s", bitnet_strerror(rc));
    return rc;
}

static void engine_target_seq_free(void *impl, int seq)
{
    engine_seq_free(impl, seq);
}

static int engine_target_eval(void *impl, const engine_batch *batch, float *out_logits, char *err,
                              size_t err_len)
{
    return engine_eval(impl, batch, out_logits, err, err_len);
}

void batch_target_from_engine(engine *e, batch_target *out)
{
    const engine_info *in = engine_get_info(e);
    *out = (batch_target){.impl = e,
                          .seq_new = engine_target_seq_new,
                          .seq_free = engine_target_seq_free,
                          .eval = engine_target_eval,
                          .n_vocab = in->n_vocab,
                          .n_ctx = in->n_ctx,
                          .n_seq_max = in->n_seq_max};
}

int batcher_new(engine *e, const tokenizer *t, int max_batch, batcher **out)
{
    batch_target bt;
    batch_target_from_engine(e, &bt);
    return batcher_new_target(&bt, t, max_batch, out);
}

int batcher_new_target(const batch_target *t, const tokenizer *tok, int max_batch, batcher **out)
{
    if (!t || !tok || !out || !t->seq_new || !t->seq_free || !t->eval || t->n_vocab <= 0 ||
        t->n_ctx <= 0 || t->n_seq_max <= 0)
        return BITNET_EPARAM;
    batcher *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->t = *t;
    b->tok = tok;
    b->max_batch = max_batch > 0 ? max_batch : 256;
    if (b->max_batch < t->n_seq_max)
        b->max_batch = t->n_seq_max;
    b->n_gens = t->n_seq_max;
    b->gens = calloc((size_t)b->n_gens, sizeof(*b->gens));
    b->btok = malloc(sizeof(int32_t) * (size_t)b->max_batch);
    b->bseq = malloc(sizeof(int) * (size_t)b->max_batch);
    b->bwant = malloc(sizeof(bool) * (size_t)b->max_batch);
    b->bgen = malloc(sizeof(int) * (size_t)b->n_gens);
    b->logits = malloc(sizeof(float) * (size_t)t->n_vocab * (size_t)b->n_gens);
    b->piece_cap = tokenizer_stream_bound(tok) + 16;
    b->piece = malloc(b->piece_cap);
    if (!b->gens || !b->btok || !b->bseq || !b->bwant || !b->bgen || !b->logits || !b->piece) {
        batcher_free(b);
        return -ENOMEM;
    }
    *out = b;
    return 0;
}

static void gen_release(batcher *b, struct gen *g)
{
    b->t.seq_free(b->t.impl, g->seq);
    sampler_free(g->smp);
    for (int i = 0; i < GEN_MAX_STOP; i++)
        free(g->stop_copy[i]);
    free(g->tokens);
    free(g->held);
    memset(g, 0, sizeof(*g));
}

/* Emits text as a TEXT event. */
static void emit_text(struct gen *g, const char *text, size_t len, int32_t token)
{
    gen_event ev = {.type = GEN_EVENT_TEXT,
                    .id = g->id,
                    .text = text,
                    .text_len = len,
                    .token = token,
                    .logits = token >= 0 ? g->logits : NULL,
                    .usage = &g->usage};
    g->cb(g->user, &ev);
}

/* Length of the longest prefix of held[0..n) that ends on a UTF-8 boundary
 * and is at most limit bytes. */
static size_t utf8_cut(const char *s, size_t n, size_t limit)
{
    if (limit >= n)
        return n;
    while (limit > 0 && ((unsigned char)s[limit] & 0xC0) == 0x80)
        limit--;
    return limit;
}

/* Ends a generation: flushes held text (up to a stop string), then DONE. */
static void gen_finish_now(batcher *b, struct gen *g, gen_finish why, const char *error)
{
    double t = now_ms();
    if (g->t_first > 0) {
        g->usage.decode_ms = t - g->t_first;
    } else if (g->started) {
        g->usage.prefill_ms = t - g->t_started;
    }
    size_t n = 0;
    tokenizer_stream_flush(&g->stream, b->piece, b->piece_cap, &n);
    if (n && why != GEN_FINISH_STOP) {
        /* Held-back bytes of an unfinished character, as U+FFFD. */
        if (g->n_held + n <= g->cap_held) {
            memcpy(g->held + g->n_held, b->piece, n);
            g->n_held += n;
        }
    }
    if (g->n_held)
        emit_text(g, g->held, g->n_held, -1);
    g->n_held = 0;
    gen_event ev = {.type = GEN_EVENT_DONE,
                    .id = g->id,
                    .finish = why,
                    .error = error,
                    .usage = &g->usage,
                    .token = -1};
    g->cb(g->user, &ev);
    gen_release(b, g);
}

void batcher_free(batcher *b)
{
    if (!b)
        return;
    for (int i = 0; b->gens && i < b->n_gens; i++)
        if (b->gens[i].used)
            gen_finish_now(b, &b->gens[i], GEN_FINISH_CANCELLED, NULL);
    free(b->gens);
    free(b->btok);
    free(b->bseq);
    free(b->bwant);
    free(b->bgen);
    free(b->logits);
    free(b->piece);
    free(b);
}

int batcher_active(const batcher *b)
{
    int n = 0;
    for (int i = 0; i < b->n_gens; i++)
        n += b->gens[i].used;
    return n;
}

int batcher_add(batcher *b, const gen_request *req, gen_callback cb, void *user, int *id, char *err,
                size_t err_len)
{
    const batch_target *t = &b->t;
    if (req->n_prompt == 0) {
        snprintf(err, err_len, "the prompt is empty");
        return BITNET_EPARAM;
    }
    if (req->n_prompt >= (size_t)t->n_ctx) {
        snprintf(err, err_len, "the prompt has %zu tokens; the context holds %d", req->n_prompt,
                 t->n_ctx);
        return BITNET_EPARAM;
    }
    if (req->max_tokens <= 0 || req->n_stop < 0 || req->n_stop > GEN_MAX_STOP) {
        snprintf(err, err_len, "max_tokens must be > 0 and at most %d stop strings", GEN_MAX_STOP);
        return BITNET_EPARAM;
    }
    for (size_t i = 0; i < req->n_prompt; i++) {
        if (req->prompt[i] < 0 || req->prompt[i] >= t->n_vocab) {
            snprintf(err, err_len, "prompt token %zu (%d) is outside the vocabulary", i,
                     req->prompt[i]);
            return BITNET_EPARAM;
        }
    }
    int rc = sampler_params_check(&req->sampling, err, err_len);
    if (rc)
        return rc;
    struct gen *g = NULL;
    for (int i = 0; i < b->n_gens && !g; i++)
        if (!b->gens[i].used)
            g = &b->gens[i];
    if (!g) {
        snprintf(err, err_len, "all %d sequences are busy", b->n_gens);
        return BITNET_EBUSY;
    }
    memset(g, 0, sizeof(*g));
    rc = b->t.seq_new(b->t.impl, &g->seq, err, err_len);
    if (rc)
        return rc == BITNET_ELIMIT ? BITNET_EBUSY : rc;
    g->used = true;
    g->req = *req;
    size_t total = req->n_prompt + (size_t)req->max_tokens + 1;
    g->cap_tokens = total;
    g->tokens = malloc(sizeof(int32_t) * total);
    g->cap_held = 4096;
    g->held = malloc(g->cap_held);
    rc = sampler_new(&req->sampling, t->n_vocab, &g->smp);
    for (int i = 0; i < req->n_stop && !rc; i++) {
        g->stop_copy[i] = strdup(req->stop[i]);
        g->req.stop[i] = g->stop_copy[i];
        if (!g->stop_copy[i])
            rc = -ENOMEM;
        else if (strlen(req->stop[i]) > g->max_stop_len)
            g->max_stop_len = strlen(req->stop[i]);
    }
    if (rc || !g->tokens || !g->held || g->max_stop_len >= 1024) {
        bool too_long = !rc && g->tokens && g->held;
        gen_release(b, g);
        snprintf(err, err_len, "cannot start the generation: %s",
                 too_long ? "a stop string is longer than 1023 bytes" : "out of memory");
        return too_long ? BITNET_EPARAM : rc ? rc : -ENOMEM;
    }
    g->req.prompt = NULL;
    memcpy(g->tokens, req->prompt, sizeof(int32_t) * req->n_prompt);
    g->n_tokens = g->n_prompt = req->n_prompt;
    g->usage.prompt_tokens = (int)req->n_prompt;
    g->next = -1;
    g->id = b->next_id++;
    if (b->next_id < 0)
        b->next_id = 0;
    g->cb = cb;
    g->user = user;
    g->t_added = now_ms();
    tokenizer_stream_init(&g->stream, b->tok, false, false);
    *id = g->id;
    return 0;
}

void batcher_cancel(batcher *b, int id)
{
    for (int i = 0; i < b->n_gens; i++)
        if (b->gens[i].used && b->gens[i].id == id)
            gen_finish_now(b, &b->gens[i], GEN_FINISH_CANCELLED, NULL);
}

/* Appends text to the held buffer, emits what can no longer start a stop
 * string, and returns true when a stop string was found (text up to it is
 * emitted, the rest dropped). */
static bool take_text(struct gen *g, const char *text, size_t len, int32_t token)
{
    if (g->n_held + len > g->cap_held) {
        size_t cap = (g->n_held + len) * 2;
        char *p = realloc(g->held, cap);
        if (!p) {
            emit_text(g, g->held, g->n_held, token);
            g->n_held = 0;
            emit_text(g, text, len, token);
            return false;
        }
        g->held = p;
        g->cap_held = cap;
    }
    memcpy(g->held + g->n_held, text, len);
    g->n_held += len;
    size_t best = (size_t)-1;
    for (int i = 0; i < g->req.n_stop; i++) {
        size_t sl = strlen(g->req.stop[i]);
        if (sl == 0 || sl > g->n_held)
            continue;
        for (size_t p = 0; p + sl <= g->n_held; p++)
            if (memcmp(g->held + p, g->req.stop[i], sl) == 0 && p < best) {
                best = p;
                break;
            }
    }
    if (best != (size_t)-1) {
        g->n_held = best;
        return true;
    }
    /* Keep the last max_stop_len - 1 bytes: a stop string may start there. */
    size_t keep = g->max_stop_len ? g->max_stop_len - 1 : 0;
    size_t emit = g->n_held > keep ? utf8_cut(g->held, g->n_held, g->n_held - keep) : 0;
    if (emit || token >= 0) {
        emit_text(g, g->held, emit, token);
        memmove(g->held, g->held + emit, g->n_held - emit);
        g->n_held -= emit;
    }
    return false;
}

/* Handles a sampled token: stream its text, check the stops and limits. */
static void accept_token(batcher *b, struct gen *g, int32_t tok)
{
    const batch_target *t = &b->t;
    if (g->t_first == 0) {
        g->t_first = now_ms();
        g->usage.prefill_ms = g->t_first - g->t_started;
    }
    g->n_generated++;
    g->usage.generated_tokens = g->n_generated;
    if (!g->req.ignore_eog && tokenizer_is_eog(b->tok, tok)) {
        gen_finish_now(b, g, GEN_FINISH_STOP, NULL);
        return;
    }
    g->tokens[g->n_tokens++] = tok;
    size_t n = 0;
    int rc = tokenizer_stream_feed(&g->stream, tok, b->piece, b->piece_cap, &n);
    if (rc) {
        gen_finish_now(b, g, GEN_FINISH_ERROR, "the tokenizer could not render a token");
        return;
    }
    if (take_text(g, b->piece, n, tok)) {
        gen_finish_now(b, g, GEN_FINISH_STOP, NULL);
        return;
    }
    if (g->n_generated >= g->req.max_tokens || (int)g->n_tokens >= t->n_ctx) {
        gen_finish_now(b, g, GEN_FINISH_LENGTH, NULL);
        return;
    }
    g->next = tok;
}

int batcher_step(batcher *b)
{
    int n = 0, n_want = 0;
    double t = now_ms();
    /* Decode tokens first (one each), then prompt chunks in the room left. */
    for (int i = 0; i < b->n_gens; i++) {
        struct gen *g = &b->gens[i];
        if (!g->used || g->next < 0)
            continue;
        b->btok[n] = g->next;
        b->bseq[n] = g->seq;
        b->bwant[n] = true;
        b->bgen[n_want++] = i;
        g->n_fed++;
        g->next = -1;
        n++;
    }
    for (int i = 0; i < b->n_gens && n < b->max_batch; i++) {
        struct gen *g = &b->gens[i];
        if (!g->used || g->n_fed >= g->n_prompt)
            continue;
        if (!g->started) {
            g->started = true;
            g->t_started = t;
            g->usage.queue_ms = t - g->t_added;
        }
        while (g->n_fed < g->n_prompt && n < b->max_batch) {
            b->btok[n] = g->tokens[g->n_fed];
            b->bseq[n] = g->seq;
            b->bwant[n] = g->n_fed == g->n_prompt - 1;
            if (b->bwant[n])
                b->bgen[n_want++] = i;
            g->n_fed++;
            n++;
        }
    }
    if (n == 0)
        return batcher_active(b);
    char err[256];
    engine_batch batch = {n, b->btok, b->bseq, b->bwant};
    int rc = b->t.eval(b->t.impl, &batch, b->logits, err, sizeof(err));
    if (rc) {
        for (int i = 0; i < b->n_gens; i++)
            if (b->gens[i].used)
                gen_finish_now(b, &b->gens[i],
                               rc == BITNET_ECONTEXT ? GEN_FINISH_LENGTH : GEN_FINISH_ERROR, err);
        return 0;
    }
    for (int j = 0; j < n_want; j++) {
        struct gen *g = &b->gens[b->bgen[j]];
        if (!g->used)
            continue;
        float *lg = b->logits + (size_t)j * (size_t)b->t.n_vocab;
        int32_t tok = sampler_sample(g->smp, lg, g->tokens, g->n_tokens);
        g->logits = lg;
        accept_token(b, g, tok);
    }
    return batcher_active(b);
}
