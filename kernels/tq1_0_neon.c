/*
 * kernels/tq1_0_neon.c - TQ1_0 x Q8_K with NEON, SDOT where the CPU has the
 * DotProd extension.
 *
 * NEON multiplies bytes modulo 256, so digit n of a TQ1_0 byte comes to the
 * top with one multiplication by 3^n, and the top digit of a byte v is
 * (v * 3) >> 8 = [v > 85] + [v > 170]: two compares whose all-ones results
 * (-1 as signed bytes) are added and negated. The qh bytes are spread over a
 * 16-byte vector with byte 4n + j = qh[j] * 3^n, the order of elements
 * 240..255. Codes and activations are multiplied as signed bytes (SDOT, or
 * SMULL/SMLAL then SADALP); the block's bsums turn sum(code * qa) into
 * sum((code - 1) * qa). Each block's integer sum is reduced to a scalar and
 * scaled and added in the scalar kernel's order, so the results are
 * bit-identical to tq1_0.scalar (the file is built with -ffp-contract=off).
 */
#include <arm_neon.h>
#include <stdbool.h>

#include "kernels/tq.h"

/* SDOT needs the DotProd extension, used only where the CPU reports it. GCC
 * enables it per function; clang before 16 declares vdotq_s32 only when the
 * whole file is built for it, so there the SDOT path exists only in builds
 * that target DotProd CPUs anyway. */
#if defined(__ARM_FEATURE_DOTPROD)
#define TQ_HAVE_SDOT 1
#define TQ_DOTPROD
#elif !defined(__clang__)
#define TQ_HAVE_SDOT 1
#define TQ_DOTPROD   __attribute__((target("arch=armv8.2-a+dotprod")))
#else
#define TQ_HAVE_SDOT 0
#endif

/* The top base-3 digit of every byte, as signed bytes 0..2. */
static inline int8x16_t top_trit(uint8x16_t v)
{
    const uint8x16_t gt85 = vcgtq_u8(v, vdupq_n_u8(85));
    const uint8x16_t gt170 = vcgtq_u8(v, vdupq_n_u8(170));
    return vnegq_s8(vreinterpretq_s8_u8(vaddq_u8(gt85, gt170)));
}

/* Decodes one 54-byte block into c[j], the codes of elements 16j..16j+15. */
static inline __attribute__((always_inline)) void decode(const uint8_t *wb, int8x16_t c[16])
{
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    static const uint8_t qh_pow3[16] = {1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9, 27, 27, 27, 27};
    const uint8x16_t q0 = vld1q_u8(wb + TQ1_0_QS), q1 = vld1q_u8(wb + TQ1_0_QS + 16);
    const uint8x16_t q2 = vld1q_u8(wb + TQ1_0_QS + 32);
    for (int n = 0; n < 5; n++) {
        const uint8x16_t p = vdupq_n_u8(pow3[n]);
        c[2 * n] = top_trit(vmulq_u8(q0, p));     /* elements 32n + 0..15 */
        c[2 * n + 1] = top_trit(vmulq_u8(q1, p)); /* elements 32n + 16..31 */
        c[10 + n] = top_trit(vmulq_u8(q2, p));    /* elements 160 + 16n + 0..15 */
    }
    uint32_t qh;
    memcpy(&qh, wb + TQ1_0_QH, sizeof(qh));
    c[15] = top_trit(vmulq_u8(vreinterpretq_u8_u32(vdupq_n_u32(qh)), vld1q_u8(qh_pow3)));
}

/* sum(code * qa) of one decoded block, in four int32 lanes. */
static inline __attribute__((always_inline)) int32x4_t block_dot_plain(const int8x16_t c[16],
                                                                       const int8_t *qa)
{
    int32x4_t acc = vdupq_n_s32(0);
    for (int j = 0; j < 16; j++) {
        const int8x16_t a = vld1q_s8(qa + 16 * j);
        int16x8_t p = vmull_s8(vget_low_s8(c[j]), vget_low_s8(a));
        p = vmlal_s8(p, vget_high_s8(c[j]), vget_high_s8(a));
        acc = vpadalq_s16(acc, p);
    }
    return acc;
}

#if TQ_HAVE_SDOT
TQ_DOTPROD static int32x4_t block_dot_sdot(const int8x16_t c[16], const int8_t *qa)
{
    int32x4_t acc0 = vdupq_n_s32(0), acc1 = vdupq_n_s32(0);
    for (int j = 0; j < 16; j += 2) {
        acc0 = vdotq_s32(acc0, c[j], vld1q_s8(qa + 16 * j));
        acc1 = vdotq_s32(acc1, c[j + 1], vld1q_s8(qa + 16 * j + 16));
    }
    return vaddq_s32(acc0, acc1);
}
#endif

/* The dot of one weight row with one activation row, block sums added as the
 * scalar kernel adds them. */
static inline __attribute__((always_inline)) float row_dot(const uint8_t *w, const uint8_t *act,
                                                           int64_t nb, bool sdot)
{
    float sumf = 0.0f;
    for (int64_t b = 0; b < nb; b++, w += TQ1_0_BYTES, act += TQ_Q8K_BYTES) {
        const int8_t *qa = (const int8_t *)(act + TQ_Q8K_QS);
        int8x16_t c[16];
        decode(w, c);
#if TQ_HAVE_SDOT
        const int32x4_t s = sdot ? block_dot_sdot(c, qa) : block_dot_plain(c, qa);
#else
        const int32x4_t s = block_dot_plain(c, qa);
#endif
        int16_t bs[16];
        memcpy(bs, act + TQ_Q8K_BSUMS, sizeof(bs));
        const int32_t asum = vaddlvq_s16(vld1q_s16(bs)) + vaddlvq_s16(vld1q_s16(bs + 8));
        const int32_t isum = vaddvq_s32(s) - asum;
        __fp16 dh;
        memcpy(&dh, w + TQ1_0_D, sizeof(dh));
        const float d = (float)dh * tq_load_f32(act + TQ_Q8K_D);
        sumf += (float)isum * d;
    }
    return sumf;
}

static inline __attribute__((always_inline)) void matmul(const bitnet_matmul_args *a, bool sdot)
{
    const int64_t nb = a->k / TQ_QK;
    for (int64_t r = 0; r < a->n_rows; r++) {
        const uint8_t *w = a->w + (size_t)r * a->w_row_bytes;
        for (int t = 0; t < a->n_act; t++)
            a->y[t * a->y_stride + r] =
                row_dot(w, a->act + (size_t)t * a->act_row_bytes, nb, sdot) * a->w_scale;
    }
}

#if TQ_HAVE_SDOT
TQ_DOTPROD static void tq1_0_neon_matmul_sdot(const bitnet_matmul_args *a)
{
    matmul(a, true);
}
#endif

void tq1_0_neon_matmul_nodotprod(const bitnet_matmul_args *a)
{
    matmul(a, false);
}

static void tq1_0_neon_matmul(const bitnet_matmul_args *a)
{
#if TQ_HAVE_SDOT
    if (bitnet_cpu_features_get()->dotprod) {
        tq1_0_neon_matmul_sdot(a);
        return;
    }
#endif
    tq1_0_neon_matmul_nodotprod(a);
}

const bitnet_kernel_ops bitnet_kernel_tq1_0_neon = {
    .act_row_bytes = tq_act_row_bytes,
    .quantize_act = tq_quantize_q8k,
    .matmul = tq1_0_neon_matmul,
};
