/*
 * kernels/i2s_avx2.c - the AVX2 I2_S kernel (i2s_qk256.avx2).
 *
 * One ymm load takes a 128-weight block (32 bytes). Two vpshufb lookups per
 * nibble turn it into four vectors of codes 0..2 (the tables map code 3 to 1,
 * as the scalar kernel does), each matching one contiguous ymm of the
 * kernel-ordered activations (kernels/i2s.h). vpmaddubsw multiplies unsigned
 * codes by signed activations into int16 pairs (|x| <= 512); the four
 * products of a block are summed in int16 (|x| <= 2048) and widened with
 * vpmaddwd, so the sums are exact.
 *
 * Tiles of R weight rows x T activation rows keep their accumulators in the
 * 16 ymm registers: each weight load and decode serves T activation rows.
 */
#include <immintrin.h>
#include <stdbool.h>

#include "kernels/i2s.h"
#include "kernels/i2s_tiles.h"

#define MAX_R 2
#define MAX_T I2S_MAX_T

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* Field 0 of a byte is T_HI[high nibble], field 1 T_LO[high nibble], field
 * 2 T_HI[low nibble], field 3 T_LO[low nibble]. */
static ALWAYS_INLINE __m256i table_hi(void)
{
    return _mm256_broadcastsi128_si256(
        _mm_setr_epi8(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1));
}

static ALWAYS_INLINE __m256i table_lo(void)
{
    return _mm256_broadcastsi128_si256(
        _mm_setr_epi8(0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1));
}

/*
 * Adds code * qa of one 128-block of R rows to acc[r][t]. w[r] points at the
 * block; act[t] + off + j * step at field j of the activations. The four
 * products of a (row, activation) pair are summed in int16 (|x| <= 2048)
 * and widened at once, which keeps few values live: AVX2 has 16 registers.
 */
static ALWAYS_INLINE void block(const uint8_t *const *w, const uint8_t *const *act, size_t off,
                                size_t step, __m256i acc[MAX_R][MAX_T], const int R, const int T)
{
    const __m256i m0f = _mm256_set1_epi8(0x0f);
    const __m256i thi = table_hi();
    const __m256i tlo = table_lo();
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i code[MAX_R][4];
    for (int r = 0; r < R; r++) {
        __m256i wv = _mm256_loadu_si256((const __m256i *)w[r]);
        __m256i lo = _mm256_and_si256(wv, m0f);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(wv, 4), m0f);
        code[r][0] = _mm256_shuffle_epi8(thi, hi);
        code[r][1] = _mm256_shuffle_epi8(tlo, hi);
        code[r][2] = _mm256_shuffle_epi8(thi, lo);
        code[r][3] = _mm256_shuffle_epi8(tlo, lo);
    }
    for (int t = 0; t < T; t++) {
        const uint8_t *a = act[t] + off;
        for (int r = 0; r < R; r++) {
            __m256i s = _mm256_maddubs_epi16(code[r][0], _mm256_loadu_si256((const __m256i *)a));
            for (int j = 1; j < 4; j++)
                s = _mm256_add_epi16(
                    s, _mm256_maddubs_epi16(code[r][j],
                                            _mm256_loadu_si256((const __m256i *)(a + step * j))));
            acc[r][t] = _mm256_add_epi32(acc[r][t], _mm256_madd_epi16(s, ones));
        }
    }
}

static ALWAYS_INLINE int32_t hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* The hot loop: rows r0..r0+R-1 against activation rows t0..t0+T-1 over the
 * whole of k. R and T are compile-time constants at every call site. */
static ALWAYS_INLINE void tile(const bitnet_matmul_args *a, int64_t r0, int64_t rs, int t0,
                               const int R, const int T)
{
    const int64_t k = a->k;
    const int64_t nc = k / I2S_CHUNK;
    const bool has_tail = k % I2S_CHUNK >= I2S_BLOCK;
    const uint8_t *w0[MAX_R];
    const uint8_t *act[MAX_T];
    __m256i acc[MAX_R][MAX_T];
    for (int r = 0; r < R; r++)
        w0[r] = a->w + (size_t)(r0 + r * rs) * a->w_row_bytes;
    for (int t = 0; t < T; t++)
        act[t] = a->act + (size_t)(t0 + t) * a->act_row_bytes;
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            acc[r][t] = _mm256_setzero_si256();

    for (int64_t c = 0; c < nc + has_tail; c++) {
        const uint8_t *w[MAX_R];
        for (int r = 0; r < R; r++) {
            w[r] = w0[r] + 64 * c;
            if (T > 1)
                _mm_prefetch((const char *)(w[r] + I2S_PREFETCH_BYTES), _MM_HINT_T0);
        }
        if (c < nc) {
            /* Blocks A and B of a full chunk: fields 64 bytes apart. */
            block(w, act, (size_t)(I2S_CHUNK * c), 64, acc, R, T);
            for (int r = 0; r < R; r++)
                w[r] += 32;
            block(w, act, (size_t)(I2S_CHUNK * c + 32), 64, acc, R, T);
        } else {
            /* The trailing 128-block, stored as is. */
            block(w, act, (size_t)(I2S_CHUNK * c), 32, acc, R, T);
        }
    }

    for (int r = 0; r < R; r++) {
        for (int t = 0; t < T; t++) {
            a->y[(size_t)(t0 + t) * (size_t)a->y_stride + (size_t)(r0 + r * rs)] =
                i2s_output(hsum_epi32(acc[r][t]), i2s_act_get_sum(act[t], k),
                           i2s_act_get_scale(act[t], k), a->w_scale);
        }
    }
}

#define TILE_FN(R, T)                                                                              \
    static void tile_##R##_##T(const bitnet_matmul_args *a, int64_t r0, int64_t rs, int t0)        \
    {                                                                                              \
        tile(a, r0, rs, t0, R, T);                                                                 \
    }

TILE_FN(2, 1)
TILE_FN(1, 1)
TILE_FN(2, 2)
TILE_FN(1, 2)
TILE_FN(1, 3)
TILE_FN(1, 4)

/* Weight rows per tile for T activation rows, as the 16 ymm registers
 * allow; indexed by T - 1. */
static const struct i2s_tile_set tiles[MAX_T] = {
    {2, tile_2_1, tile_1_1},
    {2, tile_2_2, tile_1_2},
    {1, tile_1_3, tile_1_3},
    {1, tile_1_4, tile_1_4},
};

/* Precondition, as for every I2_S kernel: k is a positive multiple of 128. */
static void i2s_avx2_matmul(const bitnet_matmul_args *a)
{
    i2s_tiles_run(a, tiles);
}

static void i2s_avx2_quantize_act(const float *x, int64_t k, uint8_t *act)
{
    if (k <= 0) {
        i2s_act_set_trailer(act, 0, i2s_act_scale(0.0f), 0);
        return;
    }
    /* max_ps returns its second operand when the first is NaN, so a NaN
     * never enters the running maximum, exactly as in the scalar loop. */
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 vmax = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= k; i += 8)
        vmax = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), absmask), vmax);
    float lanes[8];
    _mm256_storeu_ps(lanes, vmax);
    float max_abs = 0.0f;
    for (int l = 0; l < 8; l++)
        max_abs = lanes[l] > max_abs ? lanes[l] : max_abs;
    for (; i < k; i++) {
        float v = x[i] < 0 ? -x[i] : x[i];
        max_abs = v > max_abs ? v : max_abs;
    }
    float scale = i2s_act_scale(max_abs);

    const __m256 vs = _mm256_set1_ps(scale);
    const __m256 lo = _mm256_set1_ps(-128.0f);
    const __m256 hi = _mm256_set1_ps(127.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    __m256i vsum = _mm256_setzero_si256();
    /* Runs of 32 consecutive elements stay contiguous in kernel order. */
    for (i = 0; i + 32 <= k; i += 32) {
        __m256i q[4];
        for (int h = 0; h < 4; h++) {
            __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * h), vs);
            v = _mm256_min_ps(_mm256_max_ps(v, lo), hi); /* NaN -> -128 */
            q[h] = _mm256_cvtps_epi32(v);
            vsum = _mm256_add_epi32(vsum, q[h]);
        }
        __m256i b =
            _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        b = _mm256_permutevar8x32_epi32(b, order);
        _mm256_storeu_si256((__m256i *)(act + i2s_act_pos(k, i)), b);
    }
    int32_t sum = hsum_epi32(vsum);
    for (; i < k; i++) {
        int qv = i2s_round_clamp(x[i] * scale);
        act[i2s_act_pos(k, i)] = (uint8_t)(int8_t)qv;
        sum += qv;
    }
    i2s_act_set_trailer(act, k, scale, sum);
}

const bitnet_kernel_ops bitnet_kernel_i2s_qk256_avx2 = {
    .act_row_bytes = i2s_scalar_act_row_bytes,
    .quantize_act = i2s_avx2_quantize_act,
    .matmul = i2s_avx2_matmul,
};
