/*
 * kernels/tq1_0_avx2.c - TQ1_0 x Q8_K with AVX2.
 *
 * A TQ1_0 byte holds five base-3 digits. Multiplying it by 3 (two byte adds,
 * wrapping in 8 bits) shifts the next digit to the top, and the top digit
 * of a byte v is (v * 3) >> 8, which is [v > 85] + [v > 170]: two signed
 * compares after flipping the sign bit. A block decodes into eight vectors of
 * 32 codes 0..2, each paired with 32 consecutive activations:
 *   vectors 0-4: qs[0..31], digits 0-4      (elements 32n + m)
 *   vector 5:    qs[32..47], digits 0 and 1 (elements 160..191)
 *   vector 6:    qs[32..47], digits 2 and 3 (elements 192..223)
 *   vector 7:    qs[32..47], digit 4, and qh (elements 224..255)
 * VPMADDUBSW multiplies codes with activations; eight products add up in
 * 16-bit lanes without overflow (8 * 2 * 2 * 128), VPMADDWD widens them and
 * the block's bsums turn sum(code * qa) into sum((code - 1) * qa). A decoded
 * block serves up to four activation rows. Integer sums are exact; the float
 * scaling runs in 8 lanes, so results differ from the scalar kernel's by
 * summation order only.
 */
#include <immintrin.h>

#include "kernels/tq.h"

#define ACTS 4 /* activation rows served by one decoded weight block */

static inline __m256i mul3(__m256i v)
{
    return _mm256_add_epi8(_mm256_add_epi8(v, v), v);
}

static inline __m128i mul3_128(__m128i v)
{
    return _mm_add_epi8(_mm_add_epi8(v, v), v);
}

/* The top base-3 digit of every byte: 0, 1 or 2. */
static inline __m256i top_trit(__m256i v)
{
    const __m256i s = _mm256_xor_si256(v, _mm256_set1_epi8((char)0x80));
    const __m256i gt85 = _mm256_cmpgt_epi8(s, _mm256_set1_epi8(85 - 128));
    const __m256i gt170 = _mm256_cmpgt_epi8(s, _mm256_set1_epi8(170 - 128));
    return _mm256_sub_epi8(_mm256_sub_epi8(_mm256_setzero_si256(), gt85), gt170);
}

/* Decodes one 54-byte block into c[j], the codes of elements 32j..32j+31. */
static inline __attribute__((always_inline)) void decode(const uint8_t *wb, __m256i c[8])
{
    __m256i v = _mm256_loadu_si256((const __m256i *)(wb + TQ1_0_QS));
    for (int n = 0; n < 5; n++) {
        c[n] = top_trit(v);
        v = mul3(v);
    }
    const __m128i x1 = _mm_loadu_si128((const __m128i *)(wb + TQ1_0_QS + 32));
    const __m128i x3 = mul3_128(x1), x9 = mul3_128(x3), x27 = mul3_128(x9), x81 = mul3_128(x27);
    /* qh[j] times 3^n in byte 4n + j: element 240 + 4n + j. */
    uint32_t qh;
    memcpy(&qh, wb + TQ1_0_QH, sizeof(qh));
    const __m128i h1 = _mm_set1_epi32((int)qh);
    const __m128i h3 = mul3_128(h1), h9 = mul3_128(h3), h27 = mul3_128(h9);
    const __m128i h =
        _mm_blend_epi32(_mm_blend_epi32(_mm_blend_epi32(h1, h3, 0x2), h9, 0x4), h27, 0x8);
    c[5] = top_trit(_mm256_set_m128i(x3, x1));
    c[6] = top_trit(_mm256_set_m128i(x27, x9));
    c[7] = top_trit(_mm256_set_m128i(h, x81));
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
        const uint8_t *wb = w + (size_t)b * TQ1_0_BYTES;
        __m256i c[8];
        decode(wb, c);
        const float dw = _cvtsh_ss(tq_load_u16(wb + TQ1_0_D));
        for (int t = 0; t < nt; t++) {
            const uint8_t *ab = act + (size_t)t * act_row_bytes + (size_t)b * TQ_Q8K_BYTES;
            const uint8_t *qa = ab + TQ_Q8K_QS;
            __m256i s16 = _mm256_setzero_si256();
            for (int j = 0; j < 8; j += 2) {
                __m256i p0 =
                    _mm256_maddubs_epi16(c[j], _mm256_loadu_si256((const __m256i *)(qa + 32 * j)));
                __m256i p1 = _mm256_maddubs_epi16(
                    c[j + 1], _mm256_loadu_si256((const __m256i *)(qa + 32 * j + 32)));
                s16 = _mm256_add_epi16(s16, _mm256_add_epi16(p0, p1));
            }
            const __m256i bs = _mm256_loadu_si256((const __m256i *)(ab + TQ_Q8K_BSUMS));
            __m256i s = _mm256_madd_epi16(_mm256_sub_epi16(s16, bs), ones);
            const float d = tq_load_f32(ab + TQ_Q8K_D) * dw;
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++) {
        __m128 v = _mm_add_ps(_mm256_castps256_ps128(acc[t]), _mm256_extractf128_ps(acc[t], 1));
        v = _mm_add_ps(v, _mm_movehl_ps(v, v));
        v = _mm_add_ss(v, _mm_movehdup_ps(v));
        out[t] = _mm_cvtss_f32(v);
    }
}

static void tq1_0_avx2_matmul(const bitnet_matmul_args *a)
{
    const int64_t nb = a->k / TQ_QK;
    float out[ACTS];
    /* Groups of weight rows go through each group of activation rows in
     * turn, which then stays in cache across the rows (see tq2_0_avx512.c). */
    for (int64_t g = 0; g < a->n_rows; g += TQ_ROW_GROUP) {
        const int64_t g_end = g + TQ_ROW_GROUP < a->n_rows ? g + TQ_ROW_GROUP : a->n_rows;
        for (int t0 = 0; t0 < a->n_act; t0 += ACTS) {
            for (int64_t r = g; r < g_end; r++) {
                const uint8_t *w = a->w + (size_t)r * a->w_row_bytes;
                const uint8_t *act = a->act + (size_t)t0 * a->act_row_bytes;
                const int nt = a->n_act - t0 < ACTS ? a->n_act - t0 : ACTS;
                /* Constant counts let the compiler keep the accumulators in registers. */
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
                    a->y[(t0 + t) * a->y_stride + r] = out[t] * a->w_scale;
            }
        }
    }
}

const bitnet_kernel_ops bitnet_kernel_tq1_0_avx2 = {
    .act_row_bytes = tq_act_row_bytes,
    .quantize_act = tq_quantize_q8k,
    .matmul = tq1_0_avx2_matmul,
};
