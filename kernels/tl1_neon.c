/*
 * kernels/tl1_neon.c - the NEON TL1 kernel (tl1.neon).
 *
 * Each 16-byte lane L of a 64-byte tile chunk holds the indices of group
 * 8c+L (low nibbles) and 8c+4+L (high nibbles) for 16 rows (kernels/tl.h);
 * tbl (vqtbl1q_u8) looks each up in the group's 16 table low bytes and high
 * bytes, and zip joins them into int16: rows 0..7 and 8..15. Sums stay in
 * int16 for TL1_WIDEN chunks, then widen into int32.
 */
#include <arm_neon.h>

#include "kernels/tl.h"

/* Chunks between widenings: each int16 lane takes 8 entries of |e| <= 256
 * per chunk, so 8 chunks sum to at most 16384 in magnitude. */
#define TL1_WIDEN 8

/* Activation rows per pass. */
#define TL1_NEON_ACT 2

extern const bitnet_kernel_ops bitnet_kernel_i2s_qk256_neon;

static inline __attribute__((always_inline)) void tile(const uint8_t *w, const uint8_t *tab,
                                                       size_t tab_stride, int64_t nc,
                                                       int32_t out[TL_MAX_ACT][TL_ROWS],
                                                       const int T)
{
    const uint8x16_t m0f = vdupq_n_u8(0x0f);
    int32x4_t s32[TL1_NEON_ACT][4];
    for (int t = 0; t < T; t++)
        for (int q = 0; q < 4; q++)
            s32[t][q] = vdupq_n_s32(0);
    for (int64_t c0 = 0; c0 < nc; c0 += TL1_WIDEN) {
        const int64_t c1 = nc - c0 < TL1_WIDEN ? nc : c0 + TL1_WIDEN;
        int16x8_t a16[TL1_NEON_ACT][2];
        for (int t = 0; t < T; t++)
            a16[t][0] = a16[t][1] = vdupq_n_s16(0);
        for (int64_t c = c0; c < c1; c++) {
            const uint8_t *chunk = w + (size_t)c * TL1_CHUNK_BYTES;
            uint8x16_t idx[8]; /* [2L + h]: lane L, nibble h */
            for (int L = 0; L < 4; L++) {
                uint8x16_t wv = vld1q_u8(chunk + 16 * L);
                idx[2 * L] = vandq_u8(wv, m0f);
                idx[2 * L + 1] = vshrq_n_u8(wv, 4);
            }
            for (int t = 0; t < T; t++) {
                const uint8_t *tb = tab + (size_t)t * tab_stride + (size_t)c * TL_TAB_CHUNK;
                for (int j = 0; j < 8; j++) {
                    const uint8_t *p = tb + 128 * (j % 2) + 16 * (j / 2);
                    uint8x16_t lo = vqtbl1q_u8(vld1q_u8(p), idx[j]);
                    uint8x16_t hi = vqtbl1q_u8(vld1q_u8(p + 64), idx[j]);
                    a16[t][0] = vaddq_s16(a16[t][0], vreinterpretq_s16_u8(vzip1q_u8(lo, hi)));
                    a16[t][1] = vaddq_s16(a16[t][1], vreinterpretq_s16_u8(vzip2q_u8(lo, hi)));
                }
            }
        }
        for (int t = 0; t < T; t++) {
            for (int p = 0; p < 2; p++) {
                s32[t][2 * p] = vaddw_s16(s32[t][2 * p], vget_low_s16(a16[t][p]));
                s32[t][2 * p + 1] = vaddw_high_s16(s32[t][2 * p + 1], a16[t][p]);
            }
        }
    }
    for (int t = 0; t < T; t++)
        for (int q = 0; q < 4; q++)
            vst1q_s32(&out[t][4 * q], s32[t][q]);
}

static void tile_any(const uint8_t *const w[TL_MAX_TILES], int nr, const uint8_t *tab,
                     size_t tab_stride, int nt, int64_t nc,
                     int32_t out[TL_MAX_TILES][TL_MAX_ACT][TL_ROWS])
{
    for (int r = 0; r < nr; r++) {
        if (nt == 1)
            tile(w[r], tab, tab_stride, nc, out[r], 1);
        else
            tile(w[r], tab, tab_stride, nc, out[r], 2);
    }
}

/* Precondition: k a positive multiple of 128, args->w on a tile (tl.h). */
static void tl1_neon_matmul(const bitnet_matmul_args *a)
{
    tl_matmul_drive(a, TL_KIND_1, TL1_NEON_ACT, tile_any);
}

static void tl1_neon_quantize_act(const float *x, int64_t k, uint8_t *act)
{
    bitnet_kernel_i2s_qk256_neon.quantize_act(x, k, act);
}

const bitnet_kernel_ops bitnet_kernel_tl1_neon = {
    .act_row_bytes = i2s_scalar_act_row_bytes,
    .quantize_act = tl1_neon_quantize_act,
    .matmul = tl1_neon_matmul,
    .repack = tl1_repack,
};
