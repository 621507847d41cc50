/*
 * daemon/gen.c - model generations: carrying out a plan (trying each
 * preference entry until one loads), the batcher over what loaded, and the
 * self-check whose logits a switch compares (daemon/backends.h).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bitnet/error.h"
#include "daemon/backends.h"
#include "daemon/log.h"
#include "engine/tokenizer.h"

/* Tokens of one batcher step (prefill chunks are cut to fit). */
#define GEN_MAX_BATCH 512

/* The self-check prompt: a few ordinary tokens after BOS. */
static const char check_prompt[] = "The capital of France is";

double backends_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- loading one entry ---- */

static int load_native(struct plan *p, struct plan_entry *pe, struct gen *g, char *err,
                       size_t err_len)
{
    engine_opts eo = {.n_threads = p->threads,
                      .n_seq_max = p->n_seq_max,
                      .n_ctx = p->n_ctx,
                      .kernel = pe->kernel ? pe->kernel->name : NULL,
                      .kv_type = p->kv_type[0] ? p->kv_type : NULL};
    int rc = engine_new(p->path, &eo, &g->e, err, err_len);
    if (rc)
        return rc;
    const engine_info *in = engine_get_info(g->e);
    struct gen_facts *f = &g->f;
    snprintf(f->backend, sizeof(f->backend), "native");
    snprintf(f->kernel, sizeof(f->kernel), "%s", in->kernel ? in->kernel : "");
    snprintf(f->arch, sizeof(f->arch), "%s", in->arch ? in->arch : "");
    snprintf(f->weights, sizeof(f->weights), "%s", in->weight_type ? in->weight_type : "");
    snprintf(f->lm_head, sizeof(f->lm_head), "%s", in->lm_head ? in->lm_head : "");
    snprintf(f->kv_cache, sizeof(f->kv_cache), "%s", in->kv_cache);
    snprintf(f->attention, sizeof(f->attention), "%s", in->attention);
    f->n_vocab = in->n_vocab;
    f->n_ctx = in->n_ctx;
    f->threads = in->n_threads;
    f->n_seq_max = in->n_seq_max;
    batch_target_from_engine(g->e, &g->bt);
    return 0;
}

static int load_library(struct plan *p, struct plan_entry *pe, struct gen *g, char *err,
                        size_t err_len)
{
    bitnet_model_params mp = {.struct_size = sizeof(mp),
                              .n_threads = p->threads,
                              .n_ctx = p->n_ctx,
                              .n_ctx_max = p->n_seq_max,
                              .kernel = pe->kernel ? pe->kernel->name : NULL};
    runner_info info;
    bitnet_model_desc d = {0};
    int rc = libgen_runner(pe->lg, &g->runner, &info, err, err_len);
    if (rc == 0)
        rc = backend_runner_model(g->runner, p->path, &mp, &d, err, err_len);
    if (rc) {
        backend_runner_free(g->runner);
        g->runner = NULL;
        return rc;
    }
    backend_runner_target(g->runner, &g->bt);
    g->lg = pe->lg;
    pe->lg = NULL; /* the gen holds the plan's reference now */
    struct gen_facts *f = &g->f;
    snprintf(f->backend, sizeof(f->backend), "%s", g->lg->id);
    snprintf(f->kernel, sizeof(f->kernel), "%s", d.kernel && d.kernel[0] ? d.kernel : g->lg->id);
    snprintf(f->library, sizeof(f->library), "%.40s %.40s (%.8s), generation %d, pid %d", info.name,
             info.version, info.device, g->lg->number, (int)backend_runner_pid(g->runner));
    snprintf(f->arch, sizeof(f->arch), "%s", d.arch ? d.arch : "");
    snprintf(f->weights, sizeof(f->weights), "%s", bitnet_format_name(p->format));
    snprintf(f->lm_head, sizeof(f->lm_head), "in %s", g->lg->id);
    f->lib_number = g->lg->number;
    f->n_vocab = d.n_vocab;
    f->n_ctx = d.n_ctx;
    f->threads = p->threads;
    f->n_seq_max = g->bt.n_seq_max;
    return 0;
}

/* ---- the self-check ---- */

static int run_check(struct gen *g, const tokenizer *tok, char *err, size_t err_len)
{
    int32_t toks[32];
    size_t n = 0;
    int rc = tokenizer_encode(tok, check_prompt, sizeof(check_prompt) - 1, true, false, toks,
                              sizeof(toks) / sizeof(toks[0]), &n);
    if (rc || n == 0) {
        snprintf(err, err_len, "self-check: cannot tokenize its prompt: %s", bitnet_strerror(rc));
        return rc ? rc : BITNET_ETOKENIZER;
    }
    int nv = g->bt.n_vocab;
    float *logits = malloc(sizeof(float) * (size_t)nv);
    int seq = -1;
    int seqs[32];
    bool want[32];
    for (size_t i = 0; i < n; i++)
        want[i] = i + 1 == n;
    if (!logits)
        return -ENOMEM;
    rc = g->bt.seq_new(g->bt.impl, &seq, err, err_len);
    if (rc == 0) {
        for (size_t i = 0; i < n; i++)
            seqs[i] = seq;
        engine_batch b = {(int)n, toks, seqs, want};
        rc = g->bt.eval(g->bt.impl, &b, logits, err, err_len);
        g->bt.seq_free(g->bt.impl, seq);
    }
    if (rc) {
        free(logits);
        if (!err[0])
            snprintf(err, err_len, "self-check: %s", bitnet_strerror(rc));
        return rc;
    }
    int best = 0;
    for (int i = 1; i < nv; i++) {
        if (logits[i] > logits[best])
            best = i;
    }
    g->check = (struct selfcheck){.n_vocab = nv, .logits = logits, .argmax = best};
    return 0;
}

bool selfcheck_compare(const struct selfcheck *a, const struct selfcheck *b, double *cosine,
                       double *max_diff)
{
    if (!a->logits || !b->logits || a->n_vocab != b->n_vocab) {
        *cosine = 0;
        *max_diff = INFINITY;
        return false;
    }
    double ab = 0, aa = 0, bb = 0, md = 0;
    for (int i = 0; i < a->n_vocab; i++) {
        double x = a->logits[i], y = b->logits[i];
        ab += x * y;
        aa += x * x;
        bb += y * y;
        if (fabs(x - y) > md)
            md = fabs(x - y);
    }
    *cosine = aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : (aa == bb ? 1.0 : 0.0);
    *max_diff = md;
    return a->argmax == b->argmax && *cosine >= 0.999;
}

int selfcheck_copy(struct selfcheck *dst, const struct selfcheck *src)
{
    float *l = NULL;
    if (src->logits) {
        l = malloc(sizeof(float) * (size_t)src->n_vocab);
        if (!l)
            return -ENOMEM;
        memcpy(l, src->logits, sizeof(float) * (size_t)src->n_vocab);
    }
    free(dst->logits);
    *dst = *src;
    dst->logits = l;
    return 0;
}

void selfcheck_free(struct selfcheck *c)
{
    free(c->logits);
    c->logits = NULL;
}

/* ---- generations ---- */

void gen_free(struct gen *g)
{
    if (!g)
        return;
    batcher_free(g->b);
    backend_runner_free(g->runner);
    engine_free(g->e);
    libgen_unref(g->lg);
    selfcheck_free(&g->check);
    free(g);
}

/* Tries entry pe; on failure its reason says why. */
static int try_entry(struct plan *p, struct plan_entry *pe, const tokenizer *tok, struct gen **out)
{
    struct gen *g = calloc(1, sizeof(*g));
    if (!g) {
        snprintf(pe->reason, sizeof(pe->reason), "out of memory");
        return -ENOMEM;
    }
    char err[PREF_REASON_MAX] = "";
    double t0 = backends_now_ms();
    int rc = pe->kind == PLAN_NATIVE ? load_native(p, pe, g, err, sizeof(err))
                                     : load_library(p, pe, g, err, sizeof(err));
    double t1 = backends_now_ms();
    if (rc == 0)
        rc = run_check(g, tok, err, sizeof(err));
    g->load_ms = t1 - t0;
    g->check_ms = backends_now_ms() - t1;
    if (rc == 0) {
        rc = batcher_new_target(&g->bt, tok, GEN_MAX_BATCH, &g->b);
        if (rc)
            snprintf(err, sizeof(err), "cannot make a batcher: %s", bitnet_strerror(rc));
    }
    if (rc) {
        snprintf(pe->reason, sizeof(pe->reason), "%s", err[0] ? err : bitnet_strerror(rc));
        gen_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

int gen_create(struct plan *p, const tokenizer *tok, struct gen **out)
{
    struct gen *g = NULL;
    for (int i = 0; i < p->n; i++) {
        struct plan_entry *pe = &p->e[i];
        if (pe->kind == PLAN_SKIP) {
            if (p->strict)
                break;
            continue;
        }
        if (try_entry(p, pe, tok, &g) == 0) {
            snprintf(pe->state, sizeof(pe->state), "active");
            p->active = i;
            break;
        }
        snprintf(pe->state, sizeof(pe->state), "skipped");
        if (p->strict)
            break;
    }
    if (p->active < 0) {
        const struct plan_entry *first = &p->e[0];
        if (p->strict)
            snprintf(p->error, sizeof(p->error),
                     "strict mode: the first preference entry %s cannot run this model: %s",
                     first->id, first->reason);
        else {
            size_t n = (size_t)snprintf(p->error, sizeof(p->error),
                                        "no preference entry can run this model:");
            for (int i = 0; i < p->n && n < sizeof(p->error); i++)
                n += (size_t)snprintf(p->error + n, sizeof(p->error) - n, " %s: %s%s", p->e[i].id,
                                      p->e[i].reason, i + 1 < p->n ? ";" : "");
        }
        return BITNET_EBACKEND;
    }
    *out = g;
    return 0;
}
