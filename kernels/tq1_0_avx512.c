/*
 * kernels/tq1_0_avx512.c - TQ1_0 x Q8_K with AVX-512BW/VL, VPDPBUSD where
 * the CPU has AVX512-VNNI.
 *
 * The block layout and the decoding are those of tq1_0_avx2.c (eight
 * 32-byte vectors of codes 0..2, digit by digit through multiplications by 3
 * in 8 bits), on 256-bit registers: per byte of weights this costs the same
 * as 512-bit registers on the CPUs measured, and the 54-byte block splits
 * into 32-byte pieces without cross-lane shuffles. AVX-512 adds two things:
 * the top digit [v > 85] + [v > 170] comes from two unsigned compares into
 * mask registers, and VPDPBUSD multiplies and accumulates in 32 bits in one
 * instruction. There are 32 vector registers, so a decoded block serves up to
 * eight activation rows. Integer sums are exact; the float scaling runs in
 * 8 lanes, so results differ from the scalar kernel's by summation order only.
 */
#include <immintrin.h>
#include <stdbool.h>

#include "kernels/tq.h"

#define ACTS 8 /* activation rows served by one decoded weight block */

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
    const __mmask32 gt85 = _mm256_cmpgt_epu8_mask(v, _mm256_set1_epi8(85));
    const __mmask32 gt170 = _mm256_cmpgt_epu8_mask(v, _mm256_set1_epi8((char)170));
    const __m256i one = _mm256_maskz_mov_epi8(gt85, _mm256_set1_epi8(1));
    return _mm256_mask_mov_epi8(one, gt170, _mm256_set1_epi8(2));
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

/* sum(code * qa) - sum(qa) of one decoded block and one activation block,
 * in 8 int32 lanes. */
static inline __attribute__((always_inline)) __m256i block_dot(const __m256i c[8],
                                                               const uint8_t *ab, bool vnni)
{
    const uint8_t *qa = ab + TQ_Q8K_QS;
    const __m256i bs = _mm256_loadu_si256((const __m256i *)(ab + TQ_Q8K_BSUMS));
    if (vnni) {
        __m256i x =
            _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_madd_epi16(bs, _mm256_set1_epi16(1)));
        __m256i y = _mm256_setzero_si256();
        for (int j = 0; j < 8; j += 2) {
            x = _mm256_dpbusd_epi32(x, c[j], _mm256_loadu_si256((const __m256i *)(qa + 32 * j)));
            y = _mm256_dpbusd_epi32(y, c[j + 1],
                                    _mm256_loadu_si256((const __m256i *)(qa + 32 * j + 32)));
        }
        return _mm256_add_epi32(x, y);
    }
    /* Eight products of at most 2 * 2 * 128 per 16-bit lane, minus bsums of
     * at most 16 * 128: no overflow. */
    __m256i s16 = _mm256_setzero_si256();
    for (int j = 0; j < 8; j += 2) {
        __m256i p0 = _mm256_maddubs_epi16(c[j], _mm256_loadu_si256((const __m256i *)(qa + 32 * j)));
        __m256i p1 =
            _mm256_maddubs_epi16(c[j + 1], _mm256_loadu_si256((const __m256i *)(qa + 32 * j + 32)));
        s16 = _mm256_add_epi16(s16, _mm256_add_epi16(p0, p1));
    }
    return _mm256_madd_epi16(_mm256_sub_epi16(s16, bs), _mm256_set1_epi16(1));
}

/* out[t] = dot of one weight row with activation rows act + t * act_row_bytes
 * (t < nt). The hot loop. */
static inline __attribute__((always_inline)) void dot_acts(const uint8_t *w, const uint8_t *act,
                                                           size_t act_row_bytes, int nt, int64_t nb,
                                                           bool vnni, float *out)
{
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
            const __m256i s = block_dot(c, ab, vnni);
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

static inline __attribute__((always_inline)) void matmul(const bitnet_matmul_args *a, bool vnni)
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
                const size_t arb = a->act_row_bytes;
                const int nt = a->n_act - t0 < ACTS ? a->n_act - t0 : ACTS;
                /* Constant counts let the compiler keep the accumulators in registers. */
                switch (nt) {
                case 1:
                    dot_acts(w, act, arb, 1, nb, vnni, out);
                    break;
                case 2:
                    dot_acts(w, act, arb, 2, nb, vnni, out);
                    break;
                case 3:
                    dot_acts(w, act, arb, 3, nb, vnni, out);
                    break;
                case 4:
                    dot_acts(w, act, arb, 4, nb, vnni, out);
                    break;
                case ACTS:
                    dot_acts(w, act, arb, ACTS, nb, vnni, out);
                    break;
                default:
                    dot_acts(w, act, arb, nt, nb, vnni, out);
                    break;
                }
                for (int t = 0; t < nt; t++)
                    a->y[(t0 + t) * a->y_stride + r] = out[t] * a->w_scale;
            }
        }
    }
}

static void tq1_0_avx512_matmul_vnni(const bitnet_matmul_args *a)
{
    matmul(a, true);
}

void tq1_0_avx512_matmul_novnni(const bitnet_matmul_args *a)
{
    matmul(a, false);
}

static void tq1_0_avx512_matmul(const bitnet_matmul_args *a)
{
    if (bitnet_cpu_features_get()->avx512_vnni)
        tq1_0_avx512_matmul_vnni(a);
    else
        tq1_0_avx512_matmul_novnni(a);
}

const bitnet_kernel_ops bitnet_kernel_tq1_0_avx512 = {
    .act_row_bytes = tq_act_row_bytes,
    .quantize_act = tq_quantize_q8k,
    .matmul = tq1_0_avx512_matmul,
};
