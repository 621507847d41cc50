/*
 * engine/ops.h - the float operations of the forward pass.
 *
 * Everything that is not a ternary matrix product: norms, rotary embedding,
 * softmax, activations, attention over a sequence's KV cache, and the
 * F16/F32 products of the embedding used as LM head. Numerics follow the
 * reference graphs (docs/formats.md): RMSNorm sums in double, RoPE angles by
 * repeated multiplication as ggml computes them.
 */
#ifndef BITNET_ENGINE_OPS_H
#define BITNET_ENGINE_OPS_H

#include <stdint.h>

/* out = x / sqrt(mean(x^2) + eps) * w; out may alias x. */
void op_rmsnorm(float *out, const float *x, const float *w, int n, float eps);

/* Rotates n_heads heads of head_dim values in place at position pos: NEOX
 * style (pairs (i, i + n_rot/2)) when neox, else NORM style (pairs (2i,
 * 2i+1)); dims >= n_rot are left alone. freq_factors (n_rot/2 divisors of
 * the angles, from rope_freqs.weight) may be NULL. */
void op_rope(float *v, int n_heads, int head_dim, int n_rot, int pos, float freq_base,
             float freq_scale, const float *freq_factors, int neox);

/* In-place softmax over n values. */
void op_softmax(float *x, int n);

/* g = silu(g) * u and g = relu(g)^2 * u, elementwise over n. */
void op_silu_mul(float *g, const float *u, int n);
void op_relu2_mul(float *restrict g, const float *restrict u, int n);

float op_dot_f32(const float *a, const float *b, int n);

/* y += a * x over n. */
void op_axpy(float *restrict y, float a, const float *restrict x, int n);

/*
 * One query head against a KV cache: out[head_dim] = softmax(q.K^T * scale)
 * V over positions [0, n_pos). k and v point at the first position of this
 * KV head; consecutive positions are `stride` floats apart. scores is
 * scratch of n_pos floats.
 */
void op_attention_head(float *out, const float *q, const float *k, const float *v, int n_pos,
                       int head_dim, long stride, float scale, float *scores);

#endif
