/*
 * kernels/tq2_0_neon.c - TQ2_0 x Q8_K with NEON, SDOT where the CPU has the
 * DotProd extension.
 *
 * NEON shifts bytes, so (q >> 2l) & 3 gives 16 codes 0..2 a vector with no
 * spill-over between bytes. Codes and activations are both small signed
 * bytes: SDOT (or SMULL/SMLAL into 16 bits, at most 2 * 3 * 128 a lane, then
 * SADALP) sums code * qa exactly, and the block's bsums turn that into
 * sum((code - 1) * qa). Each block's integer sum is reduced to a scalar and
 * scaled and added in the scalar kernel's order, so the results are
 * bit-identical to tq2_0.scalar (the file is built with -ffp-contract=off).
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

/* sum(code * qa) of one block, in four int32 lanes. */
static inline __attribute__((always_inline)) int32x4_t block_dot_plain(const uint8_t *wb,
                                                                       const int8_t *qa)
{
    const uint8x16_t m3 = vdupq_n_u8(3);
    int32x4_t acc = vdupq_n_s32(0);
    for (int h = 0; h < 2; h++) {
        for (int half = 0; half < 2; half++) {
            const uint8x16_t q = vld1q_u8(wb + TQ2_0_QS + 32 * h + 16 * half);
            for (int l = 0; l < 4; l++) {
                const int8x16_t c =
                    vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q, vdupq_n_s8((int8_t)(-2 * l))), m3));
                const int8x16_t a = vld1q_s8(qa + 128 * h + 32 * l + 16 * half);
                int16x8_t p = vmull_s8(vget_low_s8(c), vget_low_s8(a));
                p = vmlal_s8(p, vget_high_s8(c), vget_high_s8(a));
                acc = vpadalq_s16(acc, p);
            }
        }
    }
    return acc;
}

#if TQ_HAVE_SDOT
TQ_DOTPROD static int32x4_t block_dot_sdot(const uint8_t *wb, const int8_t *qa)
{
    const uint8x16_t m3 = vdupq_n_u8(3);
    int32x4_t acc0 = vdupq_n_s32(0), acc1 = vdupq_n_s32(0);
    for (int h = 0; h < 2; h++) {
        for (int half = 0; half < 2; half++) {
            const uint8x16_t q = vld1q_u8(wb + TQ2_0_QS + 32 * h + 16 * half);
            const int8_t *a = qa + 128 * h + 16 * half;
            acc0 = vdotq_s32(acc0, vreinterpretq_s8_u8(vandq_u8(q, m3)), vld1q_s8(a));
            acc1 = vdotq_s32(acc1, vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(q, 2), m3)),
                             vld1q_s8(a + 32));
            acc0 = vdotq_s32(acc0, vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(q, 4), m3)),
                             vld1q_s8(a + 64));
            acc1 = vdotq_s32(acc1, vreinterpretq_s8_u8(vshrq_n_u8(q, 6)), vld1q_s8(a + 96));
        }
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
    for (int64_t b = 0; b < nb; b++, w += TQ2_0_BYTES, act += TQ_Q8K_BYTES) {
        const int8_t *qa = (const int8_t *)(act + TQ_Q8K_QS);
#if TQ_HAVE_SDOT
        const int32x4_t s = sdot ? block_dot_sdot(w, qa) : block_dot_plain(w, qa);
#else
        const int32x4_t s = block_dot_plain(w, qa);
#endif
        int16_t bs[16];
        memcpy(bs, act + TQ_Q8K_BSUMS, sizeof(bs));
        const int32_t asum = vaddlvq_s16(vld1q_s16(bs)) + vaddlvq_s16(vld1q_s16(bs + 8));
        const int32_t isum = vaddvq_s32(s) - asum;
        __fp16 dh;
        memcpy(&dh, w + TQ2_0_D, sizeof(dh));
        const float d = tq_load_f32(act + TQ_Q8K_D) * (float)dh;
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
TQ_DOTPROD static void tq2_0_neon_matmul_sdot(const bitnet_matmul_args *a)
{
    matmul(a, true);
}
#endif

void tq2_0_neon_matmul_nodotprod(const bitnet_matmul_args *a)
{
    matmul(a, false);
}

static void tq2_0_neon_matmul(const bitnet_matmul_args *a)
{
#if TQ_HAVE_SDOT
    if (bitnet_cpu_features_get()->dotprod) {
        tq2_0_neon_matmul_sdot(a);
        return;
    }
#endif
    tq2_0_neon_matmul_nodotprod(a);
}

const bitnet_kernel_ops bitnet_kernel_tq2_0_neon = {
    .act_row_bytes = tq_act_row_bytes,
    .quantize_act = tq_quantize_q8k,
    .matmul = tq2_0_neon_matmul,
};
