/*
 * engine/attn.h - attention of query heads over a sequence's KV cache.
 *
 * One call computes, for n_q query heads that share one KV head (grouped
 * query attention), out = softmax(q.K^T * scale) V over positions
 * [0, n_pos). Reading the KV head once for the whole group matters at long
 * contexts, where the cache rivals the weights in bytes read per token.
 *
 * The cache holds K and V as float or as IEEE half (engine_opts.kv_type):
 * half halves its memory and the bandwidth attention needs; values are
 * rounded to nearest even when stored and widened exactly when read. Each
 * implementation has an f32 and an f16 entry; the scalar one is the
 * reference the others are tested against (tests/forward/test_attn.c). The
 * SIMD ones take the same exponentials (expf, whose cost is small next to
 * the dot products) but sum the products in another order and with FMA,
 * so they agree with it to float rounding, not bit for bit.
 */
#ifndef BITNET_ENGINE_ATTN_H
#define BITNET_ENGINE_ATTN_H

#include <stdint.h>

/* How K and V are stored in the cache. */
typedef enum attn_kv_type {
    ATTN_KV_F32 = 0,
    ATTN_KV_F16 = 1,
} attn_kv_type;

/* Query heads one call serves at most: the scratch is sized for it. */
#define ATTN_MAX_Q 8

typedef struct attn_args {
    float *out;        /* n_q rows of head_dim, consecutive */
    const float *q;    /* n_q rows of head_dim, consecutive */
    int n_q;           /* query heads sharing this KV head, 1..ATTN_MAX_Q */
    const void *k, *v; /* position 0 of this KV head: float or uint16_t (half) */
    long kv_stride;    /* elements from one position to the next */
    int n_pos;         /* positions attended to, >= 1 */
    int head_dim;
    float scale;   /* applied to q.k before the softmax */
    float *scores; /* scratch of n_q * n_pos floats */
} attn_args;

typedef void (*attn_fn)(const attn_args *a);

/* Converts n floats to halves for the cache (round to nearest even). */
typedef void (*attn_to_f16_fn)(uint16_t *dst, const float *src, int n);

struct attn_ops {
    const char *name; /* "scalar", "avx2", "avx512", "neon" */
    attn_fn f32;      /* K and V stored as float */
    attn_fn f16;      /* K and V stored as half */
    attn_to_f16_fn to_f16;
};

/* Parses "f32" or "f16" (NULL means f32). Returns 0 or BITNET_EPARAM. */
int attn_kv_type_parse(const char *s, attn_kv_type *out);

/* "f32" or "f16". */
const char *attn_kv_type_name(attn_kv_type t);

/* Bytes of one cached value. */
static inline int attn_kv_type_size(attn_kv_type t)
{
    return t == ATTN_KV_F16 ? 2 : 4;
}

/* The best implementation for this CPU (respecting BITNET_SIMD). */
const struct attn_ops *attn_select(void);

/* Whether this CPU can run ops (always true for scalar). */
int attn_supported(const struct attn_ops *ops);

/* Every implementation compiled here, for tests: *n set to the count. */
const struct attn_ops *const *attn_all(int *n);

/* Per-ISA tables, defined in attn_scalar.c, attn_avx2.c, attn_avx512.c,
 * attn_neon.c. */
extern const struct attn_ops attn_scalar;
extern const struct attn_ops attn_avx2;
extern const struct attn_ops attn_avx512;
extern const struct attn_ops attn_neon;

/* The scalar entries, which the SIMD ones call for head sizes they do not
 * handle (not a multiple of their vector width). */
void attn_scalar_f32(const attn_args *a);
void attn_scalar_f16(const attn_args *a);

/* The softmax of the SIMD versions, shared so that it is the reference's:
 * replaces s[0..n) by expf(s - max) (summed in double, in order, as
 * op_softmax does) and returns 1 / their sum. */
float attn_softmax_unnormalised(float *s, int n);

#endif
