/* engine/sampler.c - token sampling (see sampler.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/error.h"
#include "engine/sampler.h"

struct cand {
    float logit;
    int32_t id;
};

struct sampler {
    sampler_params p;
    int n_vocab;
    uint64_t rng[4];    /* xoshiro256** state */
    struct cand *cands; /* n_vocab scratch */
};

sampler_params sampler_params_default(void)
{
    return (sampler_params){.temperature = 0.0f,
                            .top_k = 40,
                            .top_p = 0.95f,
                            .min_p = 0.05f,
                            .repeat_penalty = 1.0f,
                            .repeat_last_n = 64,
                            .seed = 0};
}

int sampler_params_check(const sampler_params *p, char *err, size_t err_len)
{
    const char *bad = NULL;
    if (!(p->temperature >= 0.0f && p->temperature <= 100.0f))
        bad = "temperature must be in [0, 100]";
    else if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        bad = "top_p must be in (0, 1]";
    else if (!(p->min_p >= 0.0f && p->min_p < 1.0f))
        bad = "min_p must be in [0, 1)";
    else if (!(p->repeat_penalty > 0.0f && p->repeat_penalty <= 10.0f))
        bad = "repeat_penalty must be in (0, 10]";
    else if (p->repeat_last_n < 0)
        bad = "repeat_last_n must be >= 0";
    if (!bad)
        return 0;
    if (err && err_len)
        snprintf(err, err_len, "%s", bad);
    return BITNET_EPARAM;
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* A uniform double in [0, 1). */
static double rng_uniform(uint64_t s[4])
{
    return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

int sampler_new(const sampler_params *params, int n_vocab, sampler **out)
{
    if (n_vocab <= 0)
        return -EINVAL;
    sampler *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->cands = malloc(sizeof(*s->cands) * (size_t)n_vocab);
    if (!s->cands) {
        free(s);
        return -ENOMEM;
    }
    s->p = *params;
    s->n_vocab = n_vocab;
    uint64_t x = params->seed;
    for (int i = 0; i < 4; i++)
        s->rng[i] = splitmix64(&x);
    *out = s;
    return 0;
}

void sampler_free(sampler *s)
{
    if (!s)
        return;
    free(s->cands);
    free(s);
}

int32_t sampler_argmax(const float *x, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

static int cand_desc(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit < y->logit ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Moves the k largest candidates to the front (unordered): quickselect. */
static void select_top(struct cand *c, int n, int k)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = c[lo + (hi - lo) / 2].logit;
        int i = lo, j = hi;
        while (i <= j) {
            while (c[i].logit > pivot)
                i++;
            while (c[j].logit < pivot)
                j--;
            if (i <= j) {
                struct cand t = c[i];
                c[i++] = c[j];
                c[j--] = t;
            }
        }
        if (k - 1 <= j)
            hi = j;
        else if (k - 1 >= i)
            lo = i;
        else
            break;
    }
}

static void apply_repeat_penalty(const sampler *s, float *logits, const int32_t *history,
                                 size_t n_history)
{
    if (s->p.repeat_penalty == 1.0f || s->p.repeat_last_n == 0)
        return;
    size_t start = n_history > (size_t)s->p.repeat_last_n ? n_history - s->p.repeat_last_n : 0;
    /* Penalise each token once even when it repeats in the window. */
    for (size_t i = start; i < n_history; i++) {
        int32_t t = history[i];
        if (t < 0 || t >= s->n_vocab)
            continue;
        int seen = 0;
        for (size_t j = start; j < i && !seen; j++)
            seen = history[j] == t;
        if (seen)
            continue;
        logits[t] =
            logits[t] > 0 ? logits[t] / s->p.repeat_penalty : logits[t] * s->p.repeat_penalty;
    }
}

int32_t sampler_sample(sampler *s, float *logits, const int32_t *history, size_t n_history)
{
    apply_repeat_penalty(s, logits, history, n_history);
    if (s->p.temperature <= 0.0f)
        return sampler_argmax(logits, s->n_vocab);

    int n = s->n_vocab;
    for (int i = 0; i < n; i++)
        s->cands[i] = (struct cand){logits[i], i};
    int k = s->p.top_k > 0 && s->p.top_k < n ? s->p.top_k : n;
    if (k < n)
        select_top(s->cands, n, k);
    qsort(s->cands, (size_t)k, sizeof(*s->cands), cand_desc);

    /* Softmax with temperature over the k survivors (sorted descending). */
    float max = s->cands[0].logit;
    for (int i = 0; i < k; i++)
        s->cands[i].logit = expf((s->cands[i].logit - max) / s->p.temperature);
    /* min-p: drop tokens below min_p times the best probability. */
    int keep = k;
    float floor_p = s->p.min_p * s->cands[0].logit;
    while (keep > 1 && s->cands[keep - 1].logit < floor_p)
        keep--;
    /* top-p: the smallest prefix whose mass reaches top_p. */
    double total = 0.0;
    for (int i = 0; i < keep; i++)
        total += s->cands[i].logit;
    double mass = 0.0;
    int cut = keep;
    for (int i = 0; i < keep; i++) {
        mass += s->cands[i].logit;
        if (mass >= s->p.top_p * total) {
            cut = i + 1;
            break;
        }
    }
    /* Draw from the first `cut` candidates in proportion to their weight. */
    double cut_mass = 0.0;
    for (int i = 0; i < cut; i++)
        cut_mass += s->cands[i].logit;
    double r = rng_uniform(s->rng) * cut_mass;
    double acc = 0.0;
    for (int i = 0; i < cut; i++) {
        acc += s->cands[i].logit;
        if (r < acc)
            return s->cands[i].id;
    }
    return s->cands[cut - 1].id;
}
