/*
 * backends/native.c - the native backend: the backend ABI over bitnetd's own
 * engine (engine/engine.h) and tokenizer, in-process.
 *
 * A native model is one engine; each context is one of its sequences. That
 * is why the ABI says a model and its contexts are driven by one thread at a
 * time: the engine evaluates every sequence in one pass over the weights.
 * The functions are static and reached only through backend_native_api(), so
 * the daemon never exports bitnet_* symbols a loaded library could bind to.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/api.h"
#include "bitnet/config.h"
#include "bitnet/error.h"
#include "engine/engine.h"
#include "engine/tokenizer.h"

struct bitnet_model {
    engine *eng;
    tokenizer *tok;
    int n_vocab;
    int n_ctx;
};

struct bitnet_context {
    bitnet_model *model;
    int seq;       /* the engine sequence this context owns */
    float *logits; /* n_vocab floats for bitnet_decode_greedy */
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

static uint32_t native_abi_version(void)
{
    return BITNET_ABI_VERSION;
}

static int32_t native_backend_info(bitnet_backend_desc *out)
{
    if (!out)
        return -EINVAL;
    *out = (bitnet_backend_desc){
        .abi_version = BITNET_ABI_VERSION,
        .struct_size = sizeof(bitnet_backend_desc),
        .name = "native",
        .version = BITNET_VERSION,
        .device = "cpu",
        .detail = "bitnetd engine " BITNET_VERSION " on its CPU kernels",
    };
    return 0;
}

static int32_t native_model_new_from_file(const char *path, const bitnet_model_params *params,
                                          bitnet_model **out, char *err, size_t err_len)
{
    if (!path || !out) {
        set_err(err, err_len, "native: no model path or output");
        return BITNET_EPARAM;
    }
    engine_opts eo = {0};
    if (params) {
        if (params->struct_size < sizeof(bitnet_model_params)) {
            set_err(err, err_len, "native: bitnet_model_params.struct_size is %u, need %zu",
                    params->struct_size, sizeof(bitnet_model_params));
            return BITNET_EPARAM;
        }
        eo.n_threads = params->n_threads;
        eo.n_ctx = params->n_ctx;
        eo.n_seq_max = params->n_ctx_max;
        eo.kernel = params->kernel;
    }
    bitnet_model *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    int rc = engine_new(path, &eo, &m->eng, err, err_len);
    if (rc == 0)
        rc = tokenizer_load(engine_gguf(m->eng), NULL, &m->tok, err, err_len);
    if (rc) {
        engine_free(m->eng);
        free(m);
        return rc;
    }
    const engine_info *info = engine_get_info(m->eng);
    m->n_vocab = info->n_vocab;
    m->n_ctx = info->n_ctx;
    *out = m;
    return 0;
}

static void native_model_free(bitnet_model *m)
{
    if (!m)
        return;
    tokenizer_free(m->tok);
    engine_free(m->eng);
    free(m);
}

static int32_t native_model_describe(const bitnet_model *m, bitnet_model_desc *out)
{
    if (!m || !out)
        return -EINVAL;
    const engine_info *info = engine_get_info(m->eng);
    *out = (bitnet_model_desc){
        .struct_size = sizeof(bitnet_model_desc),
        .n_vocab = m->n_vocab,
        .n_ctx = m->n_ctx,
        .bos = tokenizer_bos(m->tok),
        .eos = tokenizer_eos(m->tok),
        .arch = info->arch,
        .kernel = info->kernel,
    };
    return 0;
}

static int32_t native_context_new(bitnet_model *m, bitnet_context **out, char *err, size_t err_len)
{
    if (!m || !out) {
        set_err(err, err_len, "native: no model or output");
        return BITNET_EPARAM;
    }
    bitnet_context *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->logits = malloc(sizeof(float) * (size_t)m->n_vocab);
    if (!c->logits) {
        free(c);
        return -ENOMEM;
    }
    int rc = engine_seq_new(m->eng, &c->seq);
    if (rc) {
        set_err(err, err_len, "native: every context of this model is in use (%d)",
                engine_get_info(m->eng)->n_seq_max);
        free(c->logits);
        free(c);
        return rc;
    }
    c->model = m;
    *out = c;
    return 0;
}

static void native_context_free(bitnet_context *c)
{
    if (!c)
        return;
    engine_seq_free(c->model->eng, c->seq);
    free(c->logits);
    free(c);
}

static int32_t native_tokenize(bitnet_model *m, const char *text, size_t len, uint32_t flags,
                               int32_t *tokens, size_t cap, size_t *n_out, char *err,
                               size_t err_len)
{
    if (!m || (!text && len) || !n_out || (!tokens && cap)) {
        set_err(err, err_len, "native: bad tokenize arguments");
        return BITNET_EPARAM;
    }
    int rc = tokenizer_encode(m->tok, text ? text : "", len, flags & BITNET_TOKENIZE_ADD_SPECIAL,
                              flags & BITNET_TOKENIZE_PARSE_SPECIAL, tokens, cap, n_out);
    if (rc && rc != -ENOSPC)
        set_err(err, err_len, "native: tokenizer failed: %s", bitnet_strerror(rc));
    return rc;
}

/* Appends tokens to the context's sequence; the last one's logits go to
 * logits. */
static int32_t context_append(bitnet_context *c, const int32_t *tokens, size_t n, float *logits,
                              char *err, size_t err_len)
{
    if (n > (size_t)c->model->n_ctx) {
        set_err(err, err_len, "native: %zu tokens do not fit a context of %d", n, c->model->n_ctx);
        return BITNET_ECONTEXT;
    }
    int *seq = malloc(sizeof(int) * n);
    bool *want = calloc(n, sizeof(bool));
    if (!seq || !want) {
        free(seq);
        free(want);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        seq[i] = c->seq;
    want[n - 1] = true;
    engine_batch b = {(int)n, tokens, seq, want};
    int rc = engine_eval(c->model->eng, &b, logits, err, err_len);
    free(seq);
    free(want);
    return rc;
}

static int32_t native_eval(bitnet_context *c, const int32_t *tokens, size_t n, float *logits,
                           size_t logits_cap, char *err, size_t err_len)
{
    if (!c || !tokens || n == 0 || !logits) {
        set_err(err, err_len, "native: bad eval arguments");
        return BITNET_EPARAM;
    }
    if (logits_cap < (size_t)c->model->n_vocab) {
        set_err(err, err_len, "native: logits buffer holds %zu floats, need %d", logits_cap,
                c->model->n_vocab);
        return BITNET_EPARAM;
    }
    /* Evaluate into the context's buffer so a failure leaves logits untouched. */
    int rc = context_append(c, tokens, n, c->logits, err, err_len);
    if (rc == 0)
        memcpy(logits, c->logits, sizeof(float) * (size_t)c->model->n_vocab);
    return rc;
}

static int32_t argmax(const float *x, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

static int32_t native_decode_greedy(bitnet_context *c, const int32_t *prompt, size_t n_prompt,
                                    uint32_t flags, int32_t *out, size_t cap, size_t *n_out,
                                    char *err, size_t err_len)
{
    if (!c || !prompt || n_prompt == 0 || !n_out || (!out && cap)) {
        set_err(err, err_len, "native: bad decode arguments");
        return BITNET_EPARAM;
    }
    int rc = context_append(c, prompt, n_prompt, c->logits, err, err_len);
    if (rc)
        return rc;
    size_t n = 0;
    while (n < cap) {
        int32_t t = argmax(c->logits, c->model->n_vocab);
        out[n++] = t;
        if ((flags & BITNET_DECODE_STOP_AT_EOG) && tokenizer_is_eog(c->model->tok, t))
            break;
        if (engine_seq_len(c->model->eng, c->seq) >= c->model->n_ctx)
            break;
        rc = context_append(c, &t, 1, c->logits, err, err_len);
        if (rc)
            return rc;
    }
    *n_out = n;
    return 0;
}

static int32_t native_context_reset(bitnet_context *c)
{
    if (!c)
        return -EINVAL;
    return engine_seq_truncate(c->model->eng, c->seq, 0);
}

static const backend_api native_api = {
    .abi_version = native_abi_version,
    .backend_info = native_backend_info,
    .model_new_from_file = native_model_new_from_file,
    .model_free = native_model_free,
    .model_describe = native_model_describe,
    .context_new = native_context_new,
    .context_free = native_context_free,
    .tokenize = native_tokenize,
    .eval = native_eval,
    .decode_greedy = native_decode_greedy,
    .context_reset = native_context_reset,
};

const backend_api *backend_native_api(void)
{
    return &native_api;
}
