/*
 * engine/attn_neon.c - attention with ARM64 NEON (see attn.h).
 *
 * The same two passes as attn_avx512.c on four-float vectors: q.k four
 * positions at a time, the reference's softmax (attn_softmax_unnormalised),
 * then the unnormalised weighted sum of the values, scaled at the end.
 * Halves are widened with FCVTL, which every ARMv8-A core has.
 */
#include <arm_neon.h>
#include <string.h>

#include "common/f16.h"
#include "engine/attn.h"

/* Positions per block: 64 rows of a 128-wide head are 32 KiB as float. */
#define BLOCK 64

/* Four cached values at element offset off, widened to float. */
static inline __attribute__((always_inline)) float32x4_t load_kv(const void *base, long off,
                                                                 int half)
{
    if (half)
        return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)base + off)));
    return vld1q_f32((const float *)base + off);
}

/* s[p] = q.k[p] * scale for p in [p0, p1). */
static inline __attribute__((always_inline)) void scores_block(const float *q, const void *k,
                                                               long stride, int hd, int p0, int p1,
                                                               float scale, float *s, int half)
{
    int p = p0;
    for (; p + 4 <= p1; p += 4) {
        float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
        long o = (long)p * stride;
        for (int d = 0; d < hd; d += 4) {
            float32x4_t qv = vld1q_f32(q + d);
            a0 = vfmaq_f32(a0, qv, load_kv(k, o + d, half));
            a1 = vfmaq_f32(a1, qv, load_kv(k, o + stride + d, half));
            a2 = vfmaq_f32(a2, qv, load_kv(k, o + 2 * stride + d, half));
            a3 = vfmaq_f32(a3, qv, load_kv(k, o + 3 * stride + d, half));
        }
        float32x4_t sum = vpaddq_f32(vpaddq_f32(a0, a1), vpaddq_f32(a2, a3));
        vst1q_f32(s + p, vmulq_n_f32(sum, scale));
    }
    for (; p < p1; p++) {
        float32x4_t a = vdupq_n_f32(0.0f);
        for (int d = 0; d < hd; d += 4)
            a = vfmaq_f32(a, vld1q_f32(q + d), load_kv(k, (long)p * stride + d, half));
        s[p] = vaddvq_f32(a) * scale;
    }
}

/* out += sum over p in [p0, p1) of w[p] * v[p]. */
static inline __attribute__((always_inline)) void values_block(float *out, const float *w,
                                                               const void *v, long stride, int hd,
                                                               int p0, int p1, int half)
{
    int p = p0;
    for (; p + 4 <= p1; p += 4) {
        long o = (long)p * stride;
        for (int d = 0; d < hd; d += 4) {
            float32x4_t acc = vld1q_f32(out + d);
            acc = vfmaq_n_f32(acc, load_kv(v, o + d, half), w[p]);
            acc = vfmaq_n_f32(acc, load_kv(v, o + stride + d, half), w[p + 1]);
            acc = vfmaq_n_f32(acc, load_kv(v, o + 2 * stride + d, half), w[p + 2]);
            acc = vfmaq_n_f32(acc, load_kv(v, o + 3 * stride + d, half), w[p + 3]);
            vst1q_f32(out + d, acc);
        }
    }
    for (; p < p1; p++)
        for (int d = 0; d < hd; d += 4)
            vst1q_f32(out + d, vfmaq_n_f32(vld1q_f32(out + d),
                                           load_kv(v, (long)p * stride + d, half), w[p]));
}

static inline __attribute__((always_inline)) void attn_body(const attn_args *a, int half)
{
    const int hd = a->head_dim, n = a->n_pos;
    for (int p0 = 0; p0 < n; p0 += BLOCK) {
        int p1 = p0 + BLOCK < n ? p0 + BLOCK : n;
        for (int j = 0; j < a->n_q; j++)
            scores_block(a->q + (long)j * hd, a->k, a->kv_stride, hd, p0, p1, a->scale,
                         a->scores + (long)j * n, half);
    }
    float inv[ATTN_MAX_Q];
    for (int j = 0; j < a->n_q; j++) {
        inv[j] = attn_softmax_unnormalised(a->scores + (long)j * n, n);
        memset(a->out + (long)j * hd, 0, sizeof(float) * (size_t)hd);
    }
    for (int p0 = 0; p0 < n; p0 += BLOCK) {
        int p1 = p0 + BLOCK < n ? p0 + BLOCK : n;
        for (int j = 0; j < a->n_q; j++)
            values_block(a->out + (long)j * hd, a->scores + (long)j * n, a->v, a->kv_stride, hd, p0,
                         p1, half);
    }
    for (int j = 0; j < a->n_q; j++) {
        float *out = a->out + (long)j * hd;
        for (int d = 0; d < hd; d += 4)
            vst1q_f32(out + d, vmulq_n_f32(vld1q_f32(out + d), inv[j]));
    }
}

static void attn_f32_neon(const attn_args *a)
{
    if (a->head_dim % 4 || a->n_q > ATTN_MAX_Q)
        attn_scalar_f32(a);
    else
        attn_body(a, 0);
}

static void attn_f16_neon(const attn_args *a)
{
    if (a->head_dim % 4 || a->n_q > ATTN_MAX_Q)
        attn_scalar_f16(a);
    else
        attn_body(a, 1);
}

static void to_f16_neon(uint16_t *dst, const float *src, int n)
{
    int i = 0;
    for (; i + 4 <= n; i += 4)
        vst1_u16(dst + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(src + i))));
    for (; i < n; i++)
        dst[i] = f32_to_f16(src[i]);
}

const struct attn_ops attn_neon = {"neon", attn_f32_neon, attn_f16_neon, to_f16_neon};
