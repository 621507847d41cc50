/*
 * engine/attn_scalar.c - attention in portable C: the reference (attn.h).
 *
 * Each query head is computed on its own, exactly as op_attention_head does
 * for a float cache: dot products with eight partial sums, a softmax summed
 * in double, then the weighted sum of the values.
 */
#include <math.h>
#include <string.h>

#include "common/f16.h"
#include "engine/attn.h"
#include "engine/ops.h"

void attn_scalar_f32(const attn_args *a)
{
    const float *k = a->k, *v = a->v;
    for (int j = 0; j < a->n_q; j++)
        op_attention_head(a->out + (long)j * a->head_dim, a->q + (long)j * a->head_dim, k, v,
                          a->n_pos, a->head_dim, a->kv_stride, a->scale, a->scores);
}

/* q.k with k in half, summed like op_dot_f32. */
static float dot_f16(const float *q, const uint16_t *k, int n)
{
    float s[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            s[j] += q[i + j] * f16_to_f32(k[i + j]);
    float sum = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; i++)
        sum += q[i] * f16_to_f32(k[i]);
    return sum;
}

void attn_scalar_f16(const attn_args *a)
{
    const uint16_t *k = a->k, *v = a->v;
    const int hd = a->head_dim;
    for (int j = 0; j < a->n_q; j++) {
        const float *q = a->q + (long)j * hd;
        float *out = a->out + (long)j * hd;
        for (int p = 0; p < a->n_pos; p++)
            a->scores[p] = dot_f16(q, k + p * a->kv_stride, hd) * a->scale;
        op_softmax(a->scores, a->n_pos);
        memset(out, 0, sizeof(float) * (size_t)hd);
        for (int p = 0; p < a->n_pos; p++) {
            const uint16_t *vp = v + p * a->kv_stride;
            float w = a->scores[p];
            for (int i = 0; i < hd; i++)
                out[i] += w * f16_to_f32(vp[i]);
        }
    }
}

float attn_softmax_unnormalised(float *s, int n)
{
    float max = -INFINITY;
    for (int i = 0; i < n; i++)
        max = s[i] > max ? s[i] : max;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        s[i] = expf(s[i] - max);
        sum += s[i];
    }
    return (float)(1.0 / sum);
}

static void to_f16_scalar(uint16_t *dst, const float *src, int n)
{
    for (int i = 0; i < n; i++)
        dst[i] = f32_to_f16(src[i]);
}

const struct attn_ops attn_scalar = {"scalar", attn_scalar_f32, attn_scalar_f16, to_f16_scalar};
