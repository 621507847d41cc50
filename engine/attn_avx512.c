/*
 * engine/attn_avx512.c - attention with AVX-512 (see attn.h).
 *
 * Two passes over the cache, each reading it once: q.k for every position
 * (four positions at a time, so one horizontal reduction serves four
 * scores), then the weighted sum of the values. Positions go in blocks of
 * BLOCK so that every query head of a group reuses a block's rows from L1
 * instead of reading the cache again. The softmax is the scalar
 * reference's (expf, summed in double: attn_softmax_unnormalised); the
 * values are summed unnormalised and scaled by 1/sum at the end.
 */
#include <immintrin.h>
#include <string.h>

#include "common/f16.h"
#include "engine/attn.h"

/* Positions per block: 64 rows of a 128-wide head are 32 KiB as float. */
#define BLOCK 64

/* Sixteen cached values at element offset off, widened to float. */
static inline __attribute__((always_inline)) __m512 load_kv(const void *base, long off, int half)
{
    if (half)
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)base + off)));
    return _mm512_loadu_ps((const float *)base + off);
}

static inline __m256 half_sum(__m512 a)
{
    return _mm256_add_ps(_mm512_castps512_ps256(a),
                         _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
}

static inline __m128 quarter_sum(__m256 a)
{
    return _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
}

/* The four lane sums of a, b, c, d, in that order. */
static inline __m128 reduce4(__m512 a, __m512 b, __m512 c, __m512 d)
{
    __m128 a4 = quarter_sum(half_sum(a)), b4 = quarter_sum(half_sum(b));
    __m128 c4 = quarter_sum(half_sum(c)), d4 = quarter_sum(half_sum(d));
    return _mm_hadd_ps(_mm_hadd_ps(a4, b4), _mm_hadd_ps(c4, d4));
}

/* s[p] = q.k[p] * scale for p in [p0, p1). */
static inline __attribute__((always_inline)) void scores_block(const float *q, const void *k,
                                                               long stride, int hd, int p0, int p1,
                                                               float scale, float *s, int half)
{
    int p = p0;
    for (; p + 4 <= p1; p += 4) {
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        long o = (long)p * stride;
        for (int d = 0; d < hd; d += 16) {
            __m512 qv = _mm512_loadu_ps(q + d);
            a0 = _mm512_fmadd_ps(qv, load_kv(k, o + d, half), a0);
            a1 = _mm512_fmadd_ps(qv, load_kv(k, o + stride + d, half), a1);
            a2 = _mm512_fmadd_ps(qv, load_kv(k, o + 2 * stride + d, half), a2);
            a3 = _mm512_fmadd_ps(qv, load_kv(k, o + 3 * stride + d, half), a3);
        }
        _mm_storeu_ps(s + p, _mm_mul_ps(reduce4(a0, a1, a2, a3), _mm_set1_ps(scale)));
    }
    for (; p < p1; p++) {
        __m512 a = _mm512_setzero_ps();
        for (int d = 0; d < hd; d += 16)
            a = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), load_kv(k, (long)p * stride + d, half), a);
        s[p] = _mm512_reduce_add_ps(a) * scale;
    }
}

/* out += sum over p in [p0, p1) of w[p] * v[p]. */
static inline __attribute__((always_inline)) void values_block(float *out, const float *w,
                                                               const void *v, long stride, int hd,
                                                               int p0, int p1, int half)
{
    int p = p0;
    for (; p + 4 <= p1; p += 4) {
        __m512 w0 = _mm512_set1_ps(w[p]), w1 = _mm512_set1_ps(w[p + 1]);
        __m512 w2 = _mm512_set1_ps(w[p + 2]), w3 = _mm512_set1_ps(w[p + 3]);
        long o = (long)p * stride;
        for (int d = 0; d < hd; d += 16) {
            __m512 acc = _mm512_loadu_ps(out + d);
            acc = _mm512_fmadd_ps(w0, load_kv(v, o + d, half), acc);
            acc = _mm512_fmadd_ps(w1, load_kv(v, o + stride + d, half), acc);
            acc = _mm512_fmadd_ps(w2, load_kv(v, o + 2 * stride + d, half), acc);
            acc = _mm512_fmadd_ps(w3, load_kv(v, o + 3 * stride + d, half), acc);
            _mm512_storeu_ps(out + d, acc);
        }
    }
    for (; p < p1; p++) {
        __m512 wp = _mm512_set1_ps(w[p]);
        for (int d = 0; d < hd; d += 16)
            _mm512_storeu_ps(out + d, _mm512_fmadd_ps(wp, load_kv(v, (long)p * stride + d, half),
                                                      _mm512_loadu_ps(out + d)));
    }
}

static inline __attribute__((always_inline)) void attn_body(const attn_args *a, int half)
{
    const int hd = a->head_dim, n = a->n_pos;
    for (int p0 = 0; p0 < n; p0 += BLOCK) {
        int p1 = p0 + BLOCK < n ? p0 + BLOCK : n;
        for (int j = 0; j < a->n_q; j++)
            scores_block(a->q + (long)j * hd, a->k, a->kv_stride, hd, p0, p1, a->scale,
                         a->scores + (long)j * n, half);
    }
    float inv[ATTN_MAX_Q];
    for (int j = 0; j < a->n_q; j++) {
        inv[j] = attn_softmax_unnormalised(a->scores + (long)j * n, n);
        memset(a->out + (long)j * hd, 0, sizeof(float) * (size_t)hd);
    }
    for (int p0 = 0; p0 < n; p0 += BLOCK) {
        int p1 = p0 + BLOCK < n ? p0 + BLOCK : n;
        for (int j = 0; j < a->n_q; j++)
            values_block(a->out + (long)j * hd, a->scores + (long)j * n, a->v, a->kv_stride, hd, p0,
                         p1, half);
    }
    for (int j = 0; j < a->n_q; j++) {
        float *out = a->out + (long)j * hd;
        __m512 s = _mm512_set1_ps(inv[j]);
        for (int d = 0; d < hd; d += 16)
            _mm512_storeu_ps(out + d, _mm512_mul_ps(_mm512_loadu_ps(out + d), s));
    }
}

static void attn_f32_avx512(const attn_args *a)
{
    if (a->head_dim % 16 || a->n_q > ATTN_MAX_Q)
        attn_scalar_f32(a);
    else
        attn_body(a, 0);
}

static void attn_f16_avx512(const attn_args *a)
{
    if (a->head_dim % 16 || a->n_q > ATTN_MAX_Q)
        attn_scalar_f16(a);
    else
        attn_body(a, 1);
}

static void to_f16_avx512(uint16_t *dst, const float *src, int n)
{
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        dst[i] = f32_to_f16(src[i]);
}

const struct attn_ops attn_avx512 = {"avx512", attn_f32_avx512, attn_f16_avx512, to_f16_avx512};
