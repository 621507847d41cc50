/*
 * kernels/tq2_0_avx512.c - TQ2_0 x Q8_K with AVX-512BW, VPDPBUSD where the
 * CPU has AVX512-VNNI.
 *
 * One 64-byte vector holds a block's 256 2-bit codes. Shifting it right by
 * 2l and masking gives codes 0..2 for elements 32l..32l+31 (low half) and
 * 128+32l..128+32l+31 (high half); the activations are loaded in that order,
 * once per block and shared by four weight rows. Unsigned codes times signed
 * activations (VPDPBUSD, or VPMADDUBSW + VPMADDWD without VNNI) give
 * sum(code * qa); the accumulator starts at -bsums, which turns it into
 * sum((code - 1) * qa). Integer sums are exact; the block sums are scaled
 * and added in 16 float lanes, then reduced, so the float result differs
 * from the scalar kernel's by summation order only (docs/kernels-tq.md).
 */
#include <immintrin.h>
#include <stdbool.h>

#include "kernels/tq.h"

#define ROWS 4 /* weight rows per pass over one activation row */

/* The four activation vectors that pair with a block's shifted codes. */
static inline __attribute__((always_inline)) void load_act(const uint8_t *ab, __m512i a[4])
{
    const uint8_t *qa = ab + TQ_Q8K_QS;
    for (int l = 0; l < 4; l++) {
        __m256i lo = _mm256_loadu_si256((const __m256i *)(qa + 32 * l));
        __m256i hi = _mm256_loadu_si256((const __m256i *)(qa + 128 + 32 * l));
        a[l] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    }
}

/* 16 int32 lanes that sum to -(sum of the block's qa). */
static inline __attribute__((always_inline)) __m512i neg_bsums(const uint8_t *ab)
{
    __m256i bs = _mm256_loadu_si256((const __m256i *)(ab + TQ_Q8K_BSUMS));
    return _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_cvtepi16_epi32(bs));
}

/* Adds sum(code * qa) of one weight block to acc, in 16 int32 lanes. */
static inline __attribute__((always_inline)) __m512i
block_dot(const uint8_t *wb, const __m512i a[4], __m512i acc, bool vnni)
{
    const __m512i m3 = _mm512_set1_epi8(3);
    const __m512i w = _mm512_loadu_si512((const void *)(wb + TQ2_0_QS));
    __m512i c[4];
    c[0] = _mm512_and_si512(w, m3);
    c[1] = _mm512_and_si512(_mm512_srli_epi16(w, 2), m3);
    c[2] = _mm512_and_si512(_mm512_srli_epi16(w, 4), m3);
    c[3] = _mm512_and_si512(_mm512_srli_epi16(w, 6), m3);
    if (vnni) {
        __m512i x = _mm512_dpbusd_epi32(acc, c[0], a[0]);
        __m512i y = _mm512_dpbusd_epi32(_mm512_setzero_si512(), c[1], a[1]);
        x = _mm512_dpbusd_epi32(x, c[2], a[2]);
        y = _mm512_dpbusd_epi32(y, c[3], a[3]);
        return _mm512_add_epi32(x, y);
    }
    /* Four products of at most 3 * 128 * 2 per 16-bit lane: no overflow. */
    __m512i s01 =
        _mm512_add_epi16(_mm512_maddubs_epi16(c[0], a[0]), _mm512_maddubs_epi16(c[1], a[1]));
    __m512i s23 =
        _mm512_add_epi16(_mm512_maddubs_epi16(c[2], a[2]), _mm512_maddubs_epi16(c[3], a[3]));
    __m512i s = _mm512_madd_epi16(_mm512_add_epi16(s01, s23), _mm512_set1_epi16(1));
    return _mm512_add_epi32(acc, s);
}

/* out[i] = dot of weight rows w + i * w_row_bytes (i < nr) with one
 * activation row of nb blocks. The hot loop. */
static inline __attribute__((always_inline)) void dot_rows(const uint8_t *w, size_t w_row_bytes,
                                                           int nr, const uint8_t *act, int64_t nb,
                                                           bool vnni, float *out)
{
    __m512 acc[ROWS];
    for (int i = 0; i < nr; i++)
        acc[i] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *ab = act + (size_t)b * TQ_Q8K_BYTES;
        __m512i a[4];
        load_act(ab, a);
        const __m512i nbs = neg_bsums(ab);
        const float da = tq_load_f32(ab + TQ_Q8K_D);
        for (int i = 0; i < nr; i++) {
            const uint8_t *wb = w + (size_t)i * w_row_bytes + (size_t)b * TQ2_0_BYTES;
            __m512i s = block_dot(wb, a, nbs, vnni);
            float d = da * _cvtsh_ss(tq_load_u16(wb + TQ2_0_D));
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(d), acc[i]);
        }
    }
    for (int i = 0; i < nr; i++)
        out[i] = _mm512_reduce_add_ps(acc[i]);
}

static inline __attribute__((always_inline)) void matmul(const bitnet_matmul_args *a, bool vnni)
{
    const int64_t nb = a->k / TQ_QK;
    int64_t r = 0;
    float out[ROWS];
    for (; r + ROWS <= a->n_rows; r += ROWS) {
        const uint8_t *w = a->w + (size_t)r * a->w_row_bytes;
        for (int t = 0; t < a->n_act; t++) {
            dot_rows(w, a->w_row_bytes, ROWS, a->act + (size_t)t * a->act_row_bytes, nb, vnni, out);
            for (int i = 0; i < ROWS; i++)
                a->y[t * a->y_stride + r + i] = out[i] * a->w_scale;
        }
    }
    for (; r < a->n_rows; r++) {
        const uint8_t *w = a->w + (size_t)r * a->w_row_bytes;
        for (int t = 0; t < a->n_act; t++) {
            dot_rows(w, a->w_row_bytes, 1, a->act + (size_t)t * a->act_row_bytes, nb, vnni, out);
            a->y[t * a->y_stride + r] = out[0] * a->w_scale;
        }
    }
}

static void tq2_0_avx512_matmul_vnni(const bitnet_matmul_args *a)
{
    matmul(a, true);
}

void tq2_0_avx512_matmul_novnni(const bitnet_matmul_args *a)
{
    matmul(a, false);
}

static void tq2_0_avx512_matmul(const bitnet_matmul_args *a)
{
    if (bitnet_cpu_features_get()->avx512_vnni)
        tq2_0_avx512_matmul_vnni(a);
    else
        tq2_0_avx512_matmul_novnni(a);
}

const bitnet_kernel_ops bitnet_kernel_tq2_0_avx512 = {
    .act_row_bytes = tq_act_row_bytes,
    .quantize_act = tq_quantize_q8k,
    .matmul = tq2_0_avx512_matmul,
};
