/*
 * engine/sampler.h - picking the next token from logits.
 *
 * Greedy when temperature <= 0; otherwise repetition penalty, top-k, then
 * temperature, min-p and top-p over the survivors, and a draw from a
 * seeded generator. The same seed, logits and history give the same token.
 */
#ifndef BITNET_ENGINE_SAMPLER_H
#define BITNET_ENGINE_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

typedef struct sampler_params {
    float temperature;    /* <= 0: greedy */
    int top_k;            /* <= 0: no limit */
    float top_p;          /* 1: off */
    float min_p;          /* 0: off */
    float repeat_penalty; /* 1: off */
    int repeat_last_n;    /* tokens of history the penalty looks at */
    uint64_t seed;
} sampler_params;

/* The defaults: greedy, top_k 40, top_p 0.95, min_p 0.05, no penalty. */
sampler_params sampler_params_default(void);

/* Returns 0 when every parameter is in range, or BITNET_EPARAM with the
 * offending one named in err. */
int sampler_params_check(const sampler_params *p, char *err, size_t err_len);

typedef struct sampler sampler;

/* A sampler for a vocabulary of n_vocab tokens. Returns 0 or -ENOMEM. */
int sampler_new(const sampler_params *params, int n_vocab, sampler **out);
void sampler_free(sampler *s);

/*
 * Picks a token. logits (n_vocab values) may be modified. history holds the
 * sequence's tokens so far (prompt and generated), n_history of them.
 */
int32_t sampler_sample(sampler *s, float *logits, const int32_t *history, size_t n_history);

/* Index of the largest value (the first one on ties). */
int32_t sampler_argmax(const float *x, int n);

#endif
