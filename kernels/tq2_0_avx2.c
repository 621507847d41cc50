/*
 * kernels/tq2_0_avx2.c - TQ2_0 x Q8_K with AVX2.
 *
 * Each 32-byte half of a block holds the codes of 4 runs of 32 consecutive
 * elements in bits 2l..2l+1, so a block decodes into eight vectors of codes
 * paired with eight consecutive 32-byte runs of activations.
 * VPMADDUBSW multiplies the unsigned codes with the signed activations; the
 * products add up in 16-bit lanes without overflow (a stray code 3
 * included), VPMADDWD widens them and the block's bsums turn
 * sum(code * qa) into sum((code - 1) * qa). A decoded block serves up to four
 * activation rows. Integer sums are exact; the float scaling runs in 8 lanes,
 * so results differ from the scalar kernel's by summation order only.
 */
#include <immintrin.h>

#include "kernels/tq.h"

#define ACTS 4 /* activation rows served by one decoded weight block */

/* The sum of 8 float lanes. */
static inline float hsum8(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

/*
 * Decodes one 66-byte block into c[j], paired with the activations of
 * elements 32j..32j+31. Odd j hold 4 * code (bits 2..3 of a nibble, masked
 * in place): that saves half of the shifts, which compete with VPMADDUBSW
 * for the same execution ports, and dot_acts() divides their sum by 4.
 */
static inline __attribute__((always_inline)) void decode(const uint8_t *wb, __m256i c[8])
{
    const __m256i m3 = _mm256_set1_epi8(3), m12 = _mm256_set1_epi8(12);
    for (int h = 0; h < 2; h++) {
        const __m256i q = _mm256_loadu_si256((const __m256i *)(wb + TQ2_0_QS + 32 * h));
        const __m256i q4 = _mm256_srli_epi16(q, 4);
        c[4 * h + 0] = _mm256_and_si256(q, m3);
        c[4 * h + 1] = _mm256_and_si256(q, m12);
        c[4 * h + 2] = _mm256_and_si256(q4, m3);
        c[4 * h + 3] = _mm256_and_si256(q4, m12);
    }
}

/* out[t] = dot of one weight row with activation rows act + t * act_row_bytes
 * (t < nt). The hot loop. */
static inline __attribute__((always_inline)) void
dot_acts(const uint8_t *w, const uint8_t *act, size_t act_row_bytes, int nt, int64_t nb, float *out)
{
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[ACTS];
    for (int t = 0; t < nt; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *wb = w + (size_t)b * TQ2_0_BYTES;
        __m256i c[8];
        decode(wb, c);
        const float dw = _cvtsh_ss(tq_load_u16(wb + TQ2_0_D));
        for (int t = 0; t < nt; t++) {
            const uint8_t *ab = act + (size_t)t * act_row_bytes + (size_t)b * TQ_Q8K_BYTES;
            const uint8_t *qa = ab + TQ_Q8K_QS;
            /* Per 16-bit lane: even j at most 4 * 2 * 3 * 128, odd j
             * (4 * code) at most 4 * 2 * 12 * 128 = 12288: no overflow. */
            __m256i s1 = _mm256_setzero_si256(), s4 = _mm256_setzero_si256();
            for (int j = 0; j < 8; j += 2) {
                __m256i p0 =
                    _mm256_maddubs_epi16(c[j], _mm256_loadu_si256((const __m256i *)(qa + 32 * j)));
                __m256i p1 = _mm256_maddubs_epi16(
                    c[j + 1], _mm256_loadu_si256((const __m256i *)(qa + 32 * j + 32)));
                s1 = _mm256_add_epi16(s1, p0);
                s4 = _mm256_add_epi16(s4, p1);
            }
            /* s4 is 4 * an exact sum, so the arithmetic shift is exact. */
            __m256i s16 = _mm256_add_epi16(s1, _mm256_srai_epi16(s4, 2));
            const __m256i bs = _mm256_loadu_si256((const __m256i *)(ab + TQ_Q8K_BSUMS));
            __m256i s = _mm256_madd_epi16(_mm256_sub_epi16(s16, bs), ones);
            const float d = tq_load_f32(ab + TQ_Q8K_D) * dw;
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++)
        out[t] = hsum8(acc[t]);
}

/*
 * out[i] = dot of weight rows w + i * w_dist (i < 2) with one activation
 * row: the decode path (one activation row), where loading the activations,
 * not multiplying, would be the limit if every row loaded them again. Each
 * 32-byte run of activations is loaded once for both rows.
 */
static void dot_rows2(const uint8_t *w, size_t w_dist, const uint8_t *act, int64_t nb, float *out)
{
    const __m256i m3 = _mm256_set1_epi8(3), m12 = _mm256_set1_epi8(12);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *ab = act + (size_t)b * TQ_Q8K_BYTES;
        const uint8_t *w0 = w + (size_t)b * TQ2_0_BYTES, *w1 = w0 + w_dist;
        __m256i s1[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
        __m256i s4[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
        for (int h = 0; h < 2; h++) {
            const uint8_t *qa = ab + TQ_Q8K_QS + 128 * h;
            const __m256i a0 = _mm256_loadu_si256((const __m256i *)(qa + 0));
            const __m256i a1 = _mm256_loadu_si256((const __m256i *)(qa + 32));
            const __m256i a2 = _mm256_loadu_si256((const __m256i *)(qa + 64));
            const __m256i a3 = _mm256_loadu_si256((const __m256i *)(qa + 96));
            for (int i = 0; i < 2; i++) {
                const uint8_t *wb = i ? w1 : w0;
                const __m256i q = _mm256_loadu_si256((const __m256i *)(wb + TQ2_0_QS + 32 * h));
                const __m256i q4 = _mm256_srli_epi16(q, 4);
                s1[i] = _mm256_add_epi16(
                    s1[i], _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_and_si256(q, m3), a0),
                                            _mm256_maddubs_epi16(_mm256_and_si256(q4, m3), a2)));
                s4[i] = _mm256_add_epi16(
                    s4[i], _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_and_si256(q, m12), a1),
                                            _mm256_maddubs_epi16(_mm256_and_si256(q4, m12), a3)));
            }
        }
        const __m256i bs = _mm256_loadu_si256((const __m256i *)(ab + TQ_Q8K_BSUMS));
        const float da = tq_load_f32(ab + TQ_Q8K_D);
        __m256i t0 = _mm256_add_epi16(s1[0], _mm256_srai_epi16(s4[0], 2));
        __m256i t1 = _mm256_add_epi16(s1[1], _mm256_srai_epi16(s4[1], 2));
        t0 = _mm256_madd_epi16(_mm256_sub_epi16(t0, bs), ones);
        t1 = _mm256_madd_epi16(_mm256_sub_epi16(t1, bs), ones);
        const float d0 = da * _cvtsh_ss(tq_load_u16(w0 + TQ2_0_D));
        const float d1 = da * _cvtsh_ss(tq_load_u16(w1 + TQ2_0_D));
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t0), _mm256_set1_ps(d0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t1), _mm256_set1_ps(d1), acc1);
    }
    out[0] = hsum8(acc0);
    out[1] = hsum8(acc1);
}

static void tq2_0_avx2_matmul(const bitnet_matmul_args *a)
{
    const int64_t nb = a->k / TQ_QK;
    float out[ACTS];
    int64_t r = 0;
    if (a->n_act == 1) {
        /* The two rows come from the two halves of the range, so that each
         * is one sequential stream for the hardware prefetcher; neighbouring
         * rows interleaved block by block run at a fraction of the memory
         * bandwidth. */
        const int64_t q = a->n_rows / 2;
        for (; r < q; r++) {
            dot_rows2(a->w + (size_t)r * a->w_row_bytes, (size_t)q * a->w_row_bytes, a->act, nb,
                      out);
            a->y[r] = out[0] * a->w_scale;
            a->y[r + q] = out[1] * a->w_scale;
        }
        r = 2 * q;
    }
    /* Batches (and the odd row of a single activation row): groups of
     * weight rows go through each group of activation rows in turn, which
     * then stays in cache across the rows (see tq2_0_avx512.c). */
    for (int64_t g = r; g < a->n_rows; g += TQ_ROW_GROUP) {
        const int64_t g_end = g + TQ_ROW_GROUP < a->n_rows ? g + TQ_ROW_GROUP : a->n_rows;
        for (int t0 = 0; t0 < a->n_act; t0 += ACTS) {
            const uint8_t *act = a->act + (size_t)t0 * a->act_row_bytes;
            const int nt = a->n_act - t0 < ACTS ? a->n_act - t0 : ACTS;
            for (int64_t rr = g; rr < g_end; rr++) {
                const uint8_t *w = a->w + (size_t)rr * a->w_row_bytes;
                /* Constant counts keep the accumulators in registers. */
                switch (nt) {
                case 1:
                    dot_acts(w, act, a->act_row_bytes, 1, nb, out);
                    break;
                case 2:
                    dot_acts(w, act, a->act_row_bytes, 2, nb, out);
                    break;
                case 3:
                    dot_acts(w, act, a->act_row_bytes, 3, nb, out);
                    break;
                default:
                    dot_acts(w, act, a->act_row_bytes, ACTS, nb, out);
                    break;
                }
                for (int t = 0; t < nt; t++)
                    a->y[(t0 + t) * a->y_stride + rr] = out[t] * a->w_scale;
            }
        }
    }
}

const bitnet_kernel_ops bitnet_kernel_tq2_0_avx2 = {
    .act_row_bytes = tq_act_row_bytes,
    .quantize_act = tq_quantize_q8k,
    .matmul = tq2_0_avx2_matmul,
};
