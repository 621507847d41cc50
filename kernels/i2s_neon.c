/*
 * kernels/i2s_neon.c - the NEON I2_S kernel (i2s_qk256.neon), with SDOT
 * where the CPU has DOTPROD.
 *
 * The weights are the same 128/32 layout as on x86 (bitnet.cpp's ARM build
 * packs 64-element blocks instead, which is why the official file gives
 * garbage there; bitnetd reads the file's real layout everywhere). A
 * 128-block is two q registers; two vqtbl1q lookups per nibble give the codes
 * 0..2 of its four fields (code 3 maps to 1, as in the scalar kernel), each
 * matching 16 contiguous kernel-ordered activations (kernels/i2s.h). Codes
 * fit in int8, so SDOT (signed x signed, groups of four into int32) is exact;
 * without DOTPROD, vmull_s8/vmlal_high_s8 pairs (|x| <= 512 in int16) are
 * widened with vpadalq_s16.
 *
 * Tiles of R weight rows x T activation rows keep their accumulators in
 * registers, and the rows of a tile come from R separate stretches of the
 * row range so each is a long sequential stream.
 */
#include <arm_neon.h>
#include <stdbool.h>

#include "kernels/i2s.h"
#include "kernels/i2s_tiles.h"

#define MAX_R 2
#define MAX_T I2S_MAX_T

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* The 8 code vectors of one 128-block: [half][field]. */
static ALWAYS_INLINE void decode_block(const uint8_t *w, uint8x16_t code[2][4])
{
    static const uint8_t t_hi[16] = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1};
    static const uint8_t t_lo[16] = {0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1};
    const uint8x16_t thi = vld1q_u8(t_hi);
    const uint8x16_t tlo = vld1q_u8(t_lo);
    const uint8x16_t m0f = vdupq_n_u8(0x0f);
    for (int h = 0; h < 2; h++) {
        uint8x16_t wv = vld1q_u8(w + 16 * h);
        uint8x16_t hi = vshrq_n_u8(wv, 4);
        uint8x16_t lo = vandq_u8(wv, m0f);
        code[h][0] = vqtbl1q_u8(thi, hi);
        code[h][1] = vqtbl1q_u8(tlo, hi);
        code[h][2] = vqtbl1q_u8(thi, lo);
        code[h][3] = vqtbl1q_u8(tlo, lo);
    }
}

/* Sum of code * qa over 16 lanes, added to acc without DOTPROD. */
static ALWAYS_INLINE int32x4_t dot16_plain(int32x4_t acc, uint8x16_t code, int8x16_t a)
{
    int8x16_t c = vreinterpretq_s8_u8(code);
    int16x8_t p = vmull_s8(vget_low_s8(c), vget_low_s8(a));
    p = vmlal_high_s8(p, c, a);
    return vpadalq_s16(acc, p);
}

/*
 * The hot loop, over the whole of k: rows r0 + i * rs (i < R) against
 * activation rows t0..t0+T-1. The dot of a block with one activation row is
 * done by dot16 (SDOT or the plain NEON sequence).
 */
#define TILE_BODY(DOT)                                                                             \
    const int64_t k = a->k;                                                                        \
    const int64_t nc = k / I2S_CHUNK;                                                              \
    const int64_t nb = k / I2S_BLOCK;                                                              \
    const uint8_t *w[MAX_R];                                                                       \
    const uint8_t *act[MAX_T];                                                                     \
    int32x4_t acc[MAX_R][MAX_T];                                                                   \
    for (int r = 0; r < R; r++)                                                                    \
        w[r] = a->w + (size_t)(r0 + r * rs) * a->w_row_bytes;                                      \
    for (int t = 0; t < T; t++)                                                                    \
        act[t] = a->act + (size_t)(t0 + t) * a->act_row_bytes;                                     \
    for (int r = 0; r < R; r++)                                                                    \
        for (int t = 0; t < T; t++)                                                                \
            acc[r][t] = vdupq_n_s32(0);                                                            \
    for (int64_t b = 0; b < nb; b++) {                                                             \
        /* Where field j of this block starts in kernel order. */                                  \
        size_t off = b / 2 < nc ? (size_t)(b / 2 * I2S_CHUNK + b % 2 * 32) : (size_t)(b * 128);    \
        size_t step = b / 2 < nc ? 64 : 32;                                                        \
        uint8x16_t code[MAX_R][2][4];                                                              \
        for (int r = 0; r < R; r++)                                                                \
            decode_block(w[r] + 32 * b, code[r]);                                                  \
        for (int t = 0; t < T; t++) {                                                              \
            for (int j = 0; j < 4; j++) {                                                          \
                for (int h = 0; h < 2; h++) {                                                      \
                    int8x16_t av = vld1q_s8((const int8_t *)(act[t] + off + step * j + 16 * h));   \
                    for (int r = 0; r < R; r++)                                                    \
                        acc[r][t] = DOT(acc[r][t], code[r][h][j], av);                             \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    for (int r = 0; r < R; r++)                                                                    \
        for (int t = 0; t < T; t++)                                                                \
            a->y[(size_t)(t0 + t) * (size_t)a->y_stride + (size_t)(r0 + r * rs)] =                 \
                i2s_output(vaddvq_s32(acc[r][t]), i2s_act_get_sum(act[t], k),                      \
                           i2s_act_get_scale(act[t], k), a->w_scale);

static ALWAYS_INLINE void tile_plain(const bitnet_matmul_args *a, int64_t r0, int64_t rs, int t0,
                                     const int R, const int T)
{
    TILE_BODY(dot16_plain)
}

#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod")

static ALWAYS_INLINE int32x4_t dot16_sdot(int32x4_t acc, uint8x16_t code, int8x16_t a)
{
    return vdotq_s32(acc, vreinterpretq_s8_u8(code), a);
}

static ALWAYS_INLINE void tile_sdot(const bitnet_matmul_args *a, int64_t r0, int64_t rs, int t0,
                                    const int R, const int T){TILE_BODY(dot16_sdot)}

#define TILE_FN_SDOT(R, T)                                                                         \
    static void tile_##R##_##T##_1(const bitnet_matmul_args *a, int64_t r0, int64_t rs, int t0)    \
    {                                                                                              \
        tile_sdot(a, r0, rs, t0, R, T);                                                            \
    }

TILE_FN_SDOT(2, 1) TILE_FN_SDOT(1, 1) TILE_FN_SDOT(2, 2) TILE_FN_SDOT(1, 2) TILE_FN_SDOT(2, 3)
    TILE_FN_SDOT(1, 3) TILE_FN_SDOT(2, 4) TILE_FN_SDOT(1, 4)

#pragma GCC pop_options

#define TILE_FN_PLAIN(R, T)                                                                        \
    static void tile_##R##_##T##_0(const bitnet_matmul_args *a, int64_t r0, int64_t rs, int t0)    \
    {                                                                                              \
        tile_plain(a, r0, rs, t0, R, T);                                                           \
    }

        TILE_FN_PLAIN(2, 1) TILE_FN_PLAIN(1, 1) TILE_FN_PLAIN(2, 2) TILE_FN_PLAIN(1, 2)
            TILE_FN_PLAIN(2, 3) TILE_FN_PLAIN(1, 3) TILE_FN_PLAIN(2, 4) TILE_FN_PLAIN(1, 4)

/* Weight rows per tile (2 for every T), with and without DOTPROD; indexed
 * by T - 1. */
#define SET(T, V)                                                                                  \
    {                                                                                              \
        2, tile_2_##T##_##V, tile_1_##T##_##V                                                      \
    }
                static const
    struct i2s_tile_set tiles_dot[MAX_T] = {SET(1, 1), SET(2, 1), SET(3, 1), SET(4, 1)};
static const struct i2s_tile_set tiles_plain[MAX_T] = {SET(1, 0), SET(2, 0), SET(3, 0), SET(4, 0)};

/* The whole product, with or without SDOT (see kernels/i2s.h). */
void i2s_neon_matmul_path(const bitnet_matmul_args *a, bool dotprod)
{
    i2s_tiles_run(a, dotprod ? tiles_dot : tiles_plain);
}

/* Precondition, as for every I2_S kernel: k is a positive multiple of 128. */
static void i2s_neon_matmul(const bitnet_matmul_args *a)
{
    i2s_neon_matmul_path(a, bitnet_cpu_features_get()->dotprod);
}

static void i2s_neon_quantize_act(const float *x, int64_t k, uint8_t *act)
{
    if (k <= 0) {
        i2s_act_set_trailer(act, 0, i2s_act_scale(0.0f), 0);
        return;
    }
    /* A NaN must never enter the maximum, as in the scalar loop: vmaxq_f32
     * would propagate it, so compare and select instead. */
    float32x4_t vmax = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 4 <= k; i += 4) {
        float32x4_t v = vabsq_f32(vld1q_f32(x + i));
        vmax = vbslq_f32(vcgtq_f32(v, vmax), v, vmax);
    }
    float max_abs = vmaxvq_f32(vmax); /* no NaN in vmax */
    for (; i < k; i++) {
        float v = x[i] < 0 ? -x[i] : x[i];
        max_abs = v > max_abs ? v : max_abs;
    }
    float scale = i2s_act_scale(max_abs);

    const float32x4_t vs = vdupq_n_f32(scale);
    const float32x4_t lo = vdupq_n_f32(-128.0f);
    const float32x4_t hi = vdupq_n_f32(127.0f);
    int32x4_t vsum = vdupq_n_s32(0);
    /* Runs of 16 consecutive elements stay contiguous in kernel order. */
    for (i = 0; i + 16 <= k; i += 16) {
        int32x4_t q[4];
        for (int h = 0; h < 4; h++) {
            float32x4_t v = vmulq_f32(vld1q_f32(x + i + 4 * h), vs);
            /* NaN fails v >= -128 and becomes -128, as in i2s_round_clamp. */
            v = vbslq_f32(vcgeq_f32(v, lo), v, lo);
            v = vminq_f32(v, hi);
            q[h] = vcvtnq_s32_f32(v); /* to nearest, ties to even */
            vsum = vaddq_s32(vsum, q[h]);
        }
        int16x8_t q01 = vcombine_s16(vmovn_s32(q[0]), vmovn_s32(q[1]));
        int16x8_t q23 = vcombine_s16(vmovn_s32(q[2]), vmovn_s32(q[3]));
        int8x16_t b = vcombine_s8(vmovn_s16(q01), vmovn_s16(q23));
        vst1q_s8((int8_t *)(act + i2s_act_pos(k, i)), b);
    }
    int32_t sum = vaddvq_s32(vsum);
    for (; i < k; i++) {
        int qv = i2s_round_clamp(x[i] * scale);
        act[i2s_act_pos(k, i)] = (uint8_t)(int8_t)qv;
        sum += qv;
    }
    i2s_act_set_trailer(act, k, scale, sum);
}

const bitnet_kernel_ops bitnet_kernel_i2s_qk256_neon = {
    .act_row_bytes = i2s_scalar_act_row_bytes,
    .quantize_act = i2s_neon_quantize_act,
    .matmul = i2s_neon_matmul,
};
