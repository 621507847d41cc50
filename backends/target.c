/*
 * backends/target.c - a backend's model as a batch target (see target.h).
 *
 * Sequence ids are slot numbers 0..n_seq_max-1. A slot keeps its context
 * after its sequence ends (emptied with bitnet_context_reset()), because
 * making a context can be costly in a backend library (libllama allocates
 * its KV cache and compute buffers then); a context whose reset fails is
 * freed instead, and the slot makes a new one when it is next used.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "backends/target.h"
#include "bitnet/error.h"

struct slot {
    bitnet_context *ctx; /* NULL until the slot first needs one */
    bool used;           /* a sequence is open on it */
    int len;             /* positions of the sequence filled so far */
};

struct backend_target {
    backend_api api;     /* the backend's functions (a copy) */
    bitnet_model *model; /* borrowed */
    int n_vocab, n_ctx, n_seq_max;
    struct slot *slots; /* n_seq_max */
    int *n_batch;       /* per slot: tokens in the batch being checked */
    float *scratch;     /* n_vocab floats for logits nobody wants */
};

static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
    if (!err || err_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

int backend_target_new(const backend_api *api, bitnet_model *model, int n_seq_max,
                       backend_target **out, char *err, size_t err_len)
{
    if (!api || !model || !out) {
        set_err(err, err_len, "backend target: no backend, model or output");
        return BITNET_EPARAM;
    }
    if (!api->model_describe || !api->context_new || !api->context_free || !api->context_reset ||
        !api->eval) {
        set_err(err, err_len, "backend target: the backend's function table is incomplete");
        return BITNET_EPARAM;
    }
    if (n_seq_max < 1 || n_seq_max > BACKEND_TARGET_MAX_SEQ) {
        set_err(err, err_len, "backend target: %d sequences asked, must be 1 to %d", n_seq_max,
                BACKEND_TARGET_MAX_SEQ);
        return BITNET_EPARAM;
    }
    bitnet_model_desc d = {0};
    int rc = api->model_describe(model, &d);
    if (rc) {
        set_err(err, err_len, "backend target: the model cannot describe itself: %s",
                bitnet_strerror(rc));
        return rc;
    }
    if (d.n_vocab <= 0 || d.n_ctx <= 0) {
        set_err(err, err_len, "backend target: the model says n_vocab %d, n_ctx %d", d.n_vocab,
                d.n_ctx);
        return BITNET_EBACKEND;
    }
    backend_target *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->api = *api;
    t->model = model;
    t->n_vocab = d.n_vocab;
    t->n_ctx = d.n_ctx;
    t->n_seq_max = n_seq_max;
    t->slots = calloc((size_t)n_seq_max, sizeof(*t->slots));
    t->n_batch = calloc((size_t)n_seq_max, sizeof(*t->n_batch));
    t->scratch = malloc(sizeof(float) * (size_t)d.n_vocab);
    if (!t->slots || !t->n_batch || !t->scratch) {
        backend_target_free(t);
        set_err(err, err_len, "backend target: out of memory");
        return -ENOMEM;
    }
    *out = t;
    return 0;
}

void backend_target_free(backend_target *t)
{
    if (!t)
        return;
    for (int i = 0; t->slots && i < t->n_seq_max; i++)
        t->api.context_free(t->slots[i].ctx);
    free(t->slots);
    free(t->n_batch);
    free(t->scratch);
    free(t);
}

/* Opens a sequence on a free slot, preferring one that still has a context. */
static int target_seq_new(void *impl, int *seq, char *err, size_t err_len)
{
    backend_target *t = impl;
    int pick = -1;
    for (int i = 0; i < t->n_seq_max; i++) {
        if (t->slots[i].used)
            continue;
        if (pick < 0 || (t->slots[i].ctx && !t->slots[pick].ctx))
            pick = i;
        if (t->slots[pick].ctx)
            break;
    }
    if (pick < 0) {
        set_err(err, err_len, "all %d sequences of the backend target are in use", t->n_seq_max);
        return BITNET_ELIMIT;
    }
    struct slot *s = &t->slots[pick];
    if (!s->ctx) {
        bitnet_context *c = NULL;
        int rc = t->api.context_new(t->model, &c, err, err_len);
        if (rc)
            return rc;
        s->ctx = c;
    }
    s->used = true;
    s->len = 0;
    *seq = pick;
    return 0;
}

/* Ends a sequence: its context is emptied for the next one, or freed when
 * the backend cannot empty it. Unknown ids are ignored. */
static void target_seq_free(void *impl, int seq)
{
    backend_target *t = impl;
    if (seq < 0 || seq >= t->n_seq_max || !t->slots[seq].used)
        return;
    struct slot *s = &t->slots[seq];
    if (t->api.context_reset(s->ctx) != 0) {
        t->api.context_free(s->ctx);
        s->ctx = NULL;
    }
    s->used = false;
    s->len = 0;
}

/* Checks every token of the batch before anything is evaluated: known
 * sequences, tokens in the vocabulary, and room in each sequence. */
static int check_batch(backend_target *t, const engine_batch *b, char *err, size_t err_len)
{
    if (!b->tokens || !b->seq) {
        set_err(err, err_len, "batch of %d tokens without tokens or sequences", b->n);
        return BITNET_EPARAM;
    }
    for (int i = 0; i < t->n_seq_max; i++)
        t->n_batch[i] = 0;
    for (int i = 0; i < b->n; i++) {
        int s = b->seq[i];
        if (s < 0 || s >= t->n_seq_max || !t->slots[s].used) {
            set_err(err, err_len, "batch token %d: unknown sequence %d", i, s);
            return BITNET_EPARAM;
        }
        if (b->tokens[i] < 0 || b->tokens[i] >= t->n_vocab) {
            set_err(err, err_len, "batch token %d: id %d is outside the vocabulary (%d)", i,
                    b->tokens[i], t->n_vocab);
            return BITNET_EPARAM;
        }
        t->n_batch[s]++;
    }
    for (int s = 0; s < t->n_seq_max; s++) {
        if (t->n_batch[s] > t->n_ctx - t->slots[s].len) {
            set_err(err, err_len, "sequence %d is full: %d positions (n_ctx)", s, t->n_ctx);
            return BITNET_ECONTEXT;
        }
    }
    return 0;
}

/*
 * Evaluates a batch as engine_eval() does, one bitnet_eval() per run of
 * consecutive tokens of one sequence; a run ends after a token whose logits
 * are wanted, and those logits go to the next out_logits row. A failure the
 * checks can foresee evaluates nothing; one the backend reports midway leaves
 * the runs before it evaluated (the batcher ends every generation then).
 */
static int target_eval(void *impl, const engine_batch *b, float *out_logits, char *err,
                       size_t err_len)
{
    backend_target *t = impl;
    if (b->n <= 0)
        return 0;
    int rc = check_batch(t, b, err, err_len);
    if (rc)
        return rc;
    size_t n_out = 0;
    for (int i = 0; i < b->n;) {
        int s = b->seq[i], j = i;
        while (!(b->logits && b->logits[j]) && j + 1 < b->n && b->seq[j + 1] == s)
            j++;
        bool want = b->logits && b->logits[j];
        float *dst = want && out_logits ? out_logits + n_out * (size_t)t->n_vocab : t->scratch;
        size_t n = (size_t)(j - i + 1);
        char why[256] = "";
        rc = t->api.eval(t->slots[s].ctx, b->tokens + i, n, dst, (size_t)t->n_vocab, why,
                         sizeof(why));
        if (rc) {
            set_err(err, err_len, "sequence %d, batch tokens %d..%d: %s", s, i, j,
                    why[0] ? why : bitnet_strerror(rc));
            return rc;
        }
        t->slots[s].len += (int)n;
        n_out += want;
        i = j + 1;
    }
    return 0;
}

void backend_target_get(backend_target *t, batch_target *out)
{
    *out = (batch_target){.impl = t,
                          .seq_new = target_seq_new,
                          .seq_free = target_seq_free,
                          .eval = target_eval,
                          .n_vocab = t->n_vocab,
                          .n_ctx = t->n_ctx,
                          .n_seq_max = t->n_seq_max};
}
