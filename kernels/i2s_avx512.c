/*
 * kernels/i2s_avx512.c - the AVX-512 I2_S kernel (i2s_qk256.avx512).
 *
 * One zmm load takes 64 weight bytes: two 128-blocks, 256 weights. Two
 * vpshufb lookups per nibble turn them into four vectors of codes 0..2 (the
 * table maps code 3 to 1, as the scalar kernel does), each matching one
 * contiguous zmm of the kernel-ordered activations (kernels/i2s.h). With
 * AVX512_VNNI, vpdpbusd multiplies unsigned codes by signed activations and
 * adds groups of four straight into int32 lanes; without it, vpmaddubsw
 * products (|x| <= 512) of the four fields are summed in int16 (|x| <= 2048)
 * and widened with vpmaddwd once per 256 weights. Either way the sums are
 * exact.
 *
 * Rows are processed in tiles of R weight rows x T activation rows with all
 * R*T accumulators in registers: each weight load serves T activation rows
 * (the batched case: one pass over the weights for the whole batch) and each
 * activation load serves R weight rows.
 */
#include <immintrin.h>
#include <stdbool.h>

#include "kernels/i2s.h"
#include "kernels/i2s_tiles.h"

#define MAX_R          4
#define MAX_T          4
#define GROUP          16   /* wide tiles per pass over the activation tiles */
#define PREFETCH_BYTES 1024 /* ahead of the weight loads, in each row */

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* The code tables: field 0 of a byte is T_HI[high nibble], field 1
 * T_LO[high nibble], field 2 T_HI[low nibble], field 3 T_LO[low nibble]. */
static ALWAYS_INLINE __m512i table_hi(void)
{
    return _mm512_broadcast_i32x4(_mm_setr_epi8(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1));
}

static ALWAYS_INLINE __m512i table_lo(void)
{
    return _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1));
}

/* Sum of code * qa over one trailing 128-block (k % 256 == 128), in ymm. */
static ALWAYS_INLINE __m256i tail_dot(const uint8_t *w, const uint8_t *act, bool vnni)
{
    const __m256i m0f = _mm256_set1_epi8(0x0f);
    const __m256i thi = _mm512_castsi512_si256(table_hi());
    const __m256i tlo = _mm512_castsi512_si256(table_lo());
    __m256i wv = _mm256_loadu_si256((const __m256i *)w);
    __m256i lo = _mm256_and_si256(wv, m0f);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(wv, 4), m0f);
    __m256i c[4] = {_mm256_shuffle_epi8(thi, hi), _mm256_shuffle_epi8(tlo, hi),
                    _mm256_shuffle_epi8(thi, lo), _mm256_shuffle_epi8(tlo, lo)};
    __m256i acc = _mm256_setzero_si256();
    __m256i s16 = _mm256_setzero_si256();
    for (int j = 0; j < 4; j++) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(act + 32 * j));
        if (vnni)
            acc = _mm256_dpbusd_epi32(acc, c[j], a);
        else
            s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(c[j], a));
    }
    if (!vnni)
        acc = _mm256_madd_epi16(s16, _mm256_set1_epi16(1));
    return acc;
}

/* The lane sums of four vectors, as one vector [sum a, sum b, sum c, sum d]:
 * about a third of the instructions of four separate reductions. */
static ALWAYS_INLINE __m128i hsum4(__m512i a, __m512i b, __m512i c, __m512i d)
{
    __m256i a2 = _mm256_add_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
    __m256i b2 = _mm256_add_epi32(_mm512_castsi512_si256(b), _mm512_extracti64x4_epi64(b, 1));
    __m256i c2 = _mm256_add_epi32(_mm512_castsi512_si256(c), _mm512_extracti64x4_epi64(c, 1));
    __m256i d2 = _mm256_add_epi32(_mm512_castsi512_si256(d), _mm512_extracti64x4_epi64(d, 1));
    __m256i abcd = _mm256_hadd_epi32(_mm256_hadd_epi32(a2, b2), _mm256_hadd_epi32(c2, d2));
    return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

/*
 * The hot loop: rows r0..r0+R-1 against activation rows t0..t0+T-1 over the
 * whole of k. R, T and vnni are compile-time constants at every call site, so
 * the loops unroll and the accumulators live in registers.
 */
static ALWAYS_INLINE void tile(const bitnet_matmul_args *a, int64_t r0, int64_t rs, int t0,
                               const int R, const int T, const bool vnni)
{
    const int64_t k = a->k;
    const int64_t nc = k / I2S_CHUNK;
    const bool has_tail = k % I2S_CHUNK >= I2S_BLOCK;
    const __m512i m0f = _mm512_set1_epi8(0x0f);
    const __m512i thi = table_hi();
    const __m512i tlo = table_lo();
    const __m512i ones = _mm512_set1_epi16(1);

    const uint8_t *w[MAX_R];
    const uint8_t *act[MAX_T];
    __m512i acc[MAX_R][MAX_T];
    for (int r = 0; r < R; r++)
        w[r] = a->w + (size_t)(r0 + r * rs) * a->w_row_bytes;
    for (int t = 0; t < T; t++)
        act[t] = a->act + (size_t)(t0 + t) * a->act_row_bytes;
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            acc[r][t] = _mm512_setzero_si512();

    for (int64_t c = 0; c < nc; c++) {
        __m512i hi[MAX_R], lo[MAX_R];
        for (int r = 0; r < R; r++) {
            if (T > 1)
                _mm_prefetch((const char *)(w[r] + 64 * c + I2S_PREFETCH_BYTES), _MM_HINT_T0);
            __m512i wv = _mm512_loadu_si512((const void *)(w[r] + 64 * c));
            lo[r] = _mm512_and_si512(wv, m0f);
            hi[r] = _mm512_and_si512(_mm512_srli_epi16(wv, 4), m0f);
        }
        __m512i s16[MAX_R][MAX_T];
        for (int j = 0; j < 4; j++) {
            __m512i code[MAX_R];
            for (int r = 0; r < R; r++)
                code[r] = _mm512_shuffle_epi8(j % 2 ? tlo : thi, j < 2 ? hi[r] : lo[r]);
            for (int t = 0; t < T; t++) {
                __m512i av = _mm512_loadu_si512((const void *)(act[t] + I2S_CHUNK * c + 64 * j));
                /* Load once into a register for all R rows; the compiler
                 * would otherwise fold a fresh load into every vpdpbusd. */
                if (R > 1)
                    __asm__("" : "+v"(av));
                for (int r = 0; r < R; r++) {
                    if (vnni) {
                        acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], code[r], av);
                    } else {
                        __m512i p = _mm512_maddubs_epi16(code[r], av);
                        s16[r][t] = j ? _mm512_add_epi16(s16[r][t], p) : p;
                    }
                }
            }
        }
        if (!vnni) {
            for (int r = 0; r < R; r++)
                for (int t = 0; t < T; t++)
                    acc[r][t] = _mm512_add_epi32(acc[r][t], _mm512_madd_epi16(s16[r][t], ones));
        }
    }

    /* Horizontal sums, four accumulators at a time. */
    int32_t sumi[MAX_R * MAX_T + 3];
    for (int i = 0; i < R * T; i += 4) {
        __m512i v[4];
        for (int g = 0; g < 4; g++) {
            int r = (i + g) / T, t = (i + g) % T;
            v[g] = _mm512_setzero_si512();
            if (i + g < R * T) {
                v[g] = acc[r][t];
                if (has_tail)
                    v[g] =
                        _mm512_add_epi32(v[g], _mm512_zextsi256_si512(tail_dot(
                                                   w[r] + 64 * nc, act[t] + I2S_CHUNK * nc, vnni)));
            }
        }
        _mm_storeu_si128((__m128i *)&sumi[i], hsum4(v[0], v[1], v[2], v[3]));
    }
    for (int r = 0; r < R; r++) {
        for (int t = 0; t < T; t++) {
            a->y[(size_t)(t0 + t) * (size_t)a->y_stride + (size_t)(r0 + r * rs)] =
                i2s_output(sumi[r * T + t], i2s_act_get_sum(act[t], k),
                           i2s_act_get_scale(act[t], k), a->w_scale);
        }
    }
}

/* One function per (R, T, vnni) the dispatcher uses. */
#define TILE_FN(R, T, V)                                                                           \
    static void tile_##R##_##T##_##V(const bitnet_matmul_args *a, int64_t r0, int64_t rs, int t0)  \
    {                                                                                              \
        tile(a, r0, rs, t0, R, T, V);                                                              \
    }
#define TILES_FOR_T(T, RV, RN) TILE_FN(RV, T, 1) TILE_FN(1, T, 1) TILE_FN(RN, T, 0) TILE_FN(1, T, 0)
/* Weight rows per tile for T activation rows: as many as the 32 zmm
 * registers hold (accumulators, nibbles, codes, constants). Without VNNI
 * each accumulator needs an int16 partner. */
TILES_FOR_T(1, 4, 4)
TILES_FOR_T(2, 4, 2)
TILES_FOR_T(3, 3, 2)
TILES_FOR_T(4, 3, 2)

/* Weight rows of the wide tile for T activation rows, with VNNI (RV) and
 * without (RN); indexed by T - 1. */
#define SET(T, R, V)                                                                               \
    {                                                                                              \
        R, tile_##R##_##T##_##V, tile_1_##T##_##V                                                  \
    }
static const struct i2s_tile_set tiles_vnni[MAX_T] = {
    SET(1, 4, 1),
    SET(2, 4, 1),
    SET(3, 3, 1),
    SET(4, 3, 1),
};
static const struct i2s_tile_set tiles_plain[MAX_T] = {
    SET(1, 4, 0),
    SET(2, 2, 0),
    SET(3, 2, 0),
    SET(4, 2, 0),
};

/* The whole product, with or without VNNI (see kernels/i2s.h). */
void i2s_avx512_matmul_path(const bitnet_matmul_args *a, bool vnni)
{
    i2s_tiles_run(a, vnni ? tiles_vnni : tiles_plain);
}

/* Precondition, as for every I2_S kernel: k is a positive multiple of 128. */
static void i2s_avx512_matmul(const bitnet_matmul_args *a)
{
    i2s_avx512_matmul_path(a, bitnet_cpu_features_get()->avx512_vnni);
}

static void i2s_avx512_quantize_act(const float *x, int64_t k, uint8_t *act)
{
    if (k <= 0) {
        i2s_act_set_trailer(act, 0, i2s_act_scale(0.0f), 0);
        return;
    }
    /* max_ps returns its second operand when the first is NaN, so a NaN
     * never enters the running maximum, exactly as in the scalar loop. */
    __m512 vmax = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= k; i += 16)
        vmax = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + i)), vmax);
    if (i < k) {
        __mmask16 m = (__mmask16)((1u << (k - i)) - 1);
        vmax = _mm512_max_ps(_mm512_abs_ps(_mm512_maskz_loadu_ps(m, x + i)), vmax);
    }
    float scale = i2s_act_scale(_mm512_reduce_max_ps(vmax));

    const __m512 vs = _mm512_set1_ps(scale);
    const __m512 lo = _mm512_set1_ps(-128.0f);
    const __m512 hi = _mm512_set1_ps(127.0f);
    __m512i vsum = _mm512_setzero_si512();
    /* Runs of 32 consecutive elements stay contiguous in kernel order. */
    for (i = 0; i + 32 <= k; i += 32) {
        __m128i q[2];
        for (int h = 0; h < 2; h++) {
            __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + i + 16 * h), vs);
            v = _mm512_min_ps(_mm512_max_ps(v, lo), hi); /* NaN -> -128 */
            __m512i qi = _mm512_cvtps_epi32(v);
            vsum = _mm512_add_epi32(vsum, qi);
            q[h] = _mm512_cvtepi32_epi8(qi);
        }
        uint8_t *dst = act + i2s_act_pos(k, i);
        _mm_storeu_si128((__m128i *)dst, q[0]);
        _mm_storeu_si128((__m128i *)(dst + 16), q[1]);
    }
    int32_t sum = _mm512_reduce_add_epi32(vsum);
    for (; i < k; i++) {
        int qv = i2s_round_clamp(x[i] * scale);
        act[i2s_act_pos(k, i)] = (uint8_t)(int8_t)qv;
        sum += qv;
    }
    i2s_act_set_trailer(act, k, scale, sum);
}

const bitnet_kernel_ops bitnet_kernel_i2s_qk256_avx512 = {
    .act_row_bytes = i2s_scalar_act_row_bytes,
    .quantize_act = i2s_avx512_quantize_act,
    .matmul = i2s_avx512_matmul,
};
