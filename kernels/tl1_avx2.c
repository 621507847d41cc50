/*
 * kernels/tl1_avx2.c - the AVX2 TL1 kernel (tl1.avx2).
 *
 * A 64-byte tile chunk is two ymm: bytes 0..31 hold lanes 0 and 1 (groups
 * 8c, 8c+1 in the low nibbles, 8c+4, 8c+5 in the high), bytes 32..63 lanes
 * 2 and 3. Each meets the 32-byte slice of the table at the same offset in
 * its 128-byte half (kernels/tl.h), so vpshufb does 32 lookups per
 * instruction with no rearranging. Low and high table bytes are joined into
 * int16 with vpunpck{l,h}bw, summed in int16 and widened every TL1_WIDEN
 * chunks.
 */
#include <immintrin.h>

#include "kernels/tl.h"

/* Chunks between widenings: each int16 lane takes 4 entries of |e| <= 256
 * per chunk, so 16 chunks sum to at most 16384 in magnitude. */
#define TL1_WIDEN 16

/* Activation rows per pass: with two tiles, 2 rows keep 8 int16
 * accumulators plus indices and table slices within the 16 ymm registers. */
#define TL1_AVX2_ACT 2

#define ALWAYS_INLINE inline __attribute__((always_inline))

extern const bitnet_kernel_ops bitnet_kernel_i2s_qk256_avx2;

static ALWAYS_INLINE __m256i widen(__m256i a16)
{
    return _mm256_add_epi32(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(a16)),
                            _mm256_cvtepi16_epi32(_mm256_extracti128_si256(a16, 1)));
}

/*
 * The hot loop, for R tiles and T activation rows (compile-time constants).
 * Each table slice is loaded once for the R tiles; the indices are made
 * from the weight bytes as each slice needs them, which keeps the int16
 * accumulators of four tiles in registers (the int32 ones are touched once
 * a period and may live in memory).
 */
static ALWAYS_INLINE void tile(const uint8_t *const w[TL_MAX_TILES], const uint8_t *tab,
                               size_t tab_stride, int64_t nc, int32_t (*out)[TL_MAX_ACT][TL_ROWS],
                               const int R, const int T)
{
    const __m256i m0f = _mm256_set1_epi8(0x0f);
    __m256i s32[TL_MAX_TILES][TL1_AVX2_ACT][2];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            s32[r][t][0] = s32[r][t][1] = _mm256_setzero_si256();
    for (int64_t c0 = 0; c0 < nc; c0 += TL1_WIDEN) {
        const int64_t c1 = nc - c0 < TL1_WIDEN ? nc : c0 + TL1_WIDEN;
        __m256i a16[TL_MAX_TILES][TL1_AVX2_ACT][2];
        for (int r = 0; r < R; r++)
            for (int t = 0; t < T; t++)
                a16[r][t][0] = a16[r][t][1] = _mm256_setzero_si256();
        for (int64_t c = c0; c < c1; c++) {
            for (int j = 0; j < 4; j++) {
                /* ymm j / 2 of the chunk, nibble j % 2, and its table slice. */
                __m256i idx[TL_MAX_TILES];
                for (int r = 0; r < R; r++) {
                    __m256i wv = _mm256_loadu_si256(
                        (const __m256i *)(w[r] + (size_t)c * TL1_CHUNK_BYTES + 32 * (j / 2)));
                    idx[r] = _mm256_and_si256(j % 2 ? _mm256_srli_epi16(wv, 4) : wv, m0f);
                }
                for (int t = 0; t < T; t++) {
                    const uint8_t *p = tab + (size_t)t * tab_stride + (size_t)c * TL_TAB_CHUNK +
                                       128 * (j % 2) + 32 * (j / 2);
                    __m256i tlo = _mm256_load_si256((const __m256i *)p);
                    __m256i thi = _mm256_load_si256((const __m256i *)(p + 64));
                    for (int r = 0; r < R; r++) {
                        __m256i lo = _mm256_shuffle_epi8(tlo, idx[r]);
                        __m256i hi = _mm256_shuffle_epi8(thi, idx[r]);
                        a16[r][t][0] = _mm256_add_epi16(a16[r][t][0], _mm256_unpacklo_epi8(lo, hi));
                        a16[r][t][1] = _mm256_add_epi16(a16[r][t][1], _mm256_unpackhi_epi8(lo, hi));
                    }
                }
            }
        }
        for (int r = 0; r < R; r++) {
            for (int t = 0; t < T; t++) {
                s32[r][t][0] = _mm256_add_epi32(s32[r][t][0], widen(a16[r][t][0]));
                s32[r][t][1] = _mm256_add_epi32(s32[r][t][1], widen(a16[r][t][1]));
            }
        }
    }
    for (int r = 0; r < R; r++) {
        for (int t = 0; t < T; t++) {
            _mm256_storeu_si256((__m256i *)&out[r][t][0], s32[r][t][0]);
            _mm256_storeu_si256((__m256i *)&out[r][t][8], s32[r][t][1]);
        }
    }
}

/* Four tiles together for one activation row, two and two for two rows
 * (what the 16 ymm registers hold), else one at a time. Several tiles also
 * mean several DRAM streams (see tl.h). */
static void tile_any(const uint8_t *const w[TL_MAX_TILES], int nr, const uint8_t *tab,
                     size_t tab_stride, int nt, int64_t nc,
                     int32_t out[TL_MAX_TILES][TL_MAX_ACT][TL_ROWS])
{
    if (nr == 4 && nt == 1) {
        tile(w, tab, tab_stride, nc, out, 4, 1);
        return;
    }
    if (nr == 4 && nt == 2) {
        const uint8_t *const w2[TL_MAX_TILES] = {w[2], w[3], NULL, NULL};
        tile(w, tab, tab_stride, nc, out, 2, 2);
        tile(w2, tab, tab_stride, nc, &out[2], 2, 2);
        return;
    }
    for (int r = 0; r < nr; r++) {
        const uint8_t *const one[TL_MAX_TILES] = {w[r], NULL, NULL, NULL};
        if (nt == 1)
            tile(one, tab, tab_stride, nc, &out[r], 1, 1);
        else
            tile(one, tab, tab_stride, nc, &out[r], 1, 2);
    }
}

/* Precondition: k a positive multiple of 128, args->w on a tile (tl.h). */
static void tl1_avx2_matmul(const bitnet_matmul_args *a)
{
    tl_matmul_drive(a, TL_KIND_1, TL1_AVX2_ACT, tile_any);
}

static void tl1_avx2_quantize_act(const float *x, int64_t k, uint8_t *act)
{
    bitnet_kernel_i2s_qk256_avx2.quantize_act(x, k, act);
}

const bitnet_kernel_ops bitnet_kernel_tl1_avx2 = {
    .act_row_bytes = i2s_scalar_act_row_bytes,
    .quantize_act = tl1_avx2_quantize_act,
    .matmul = tl1_avx2_matmul,
    .repack = tl1_repack,
};
