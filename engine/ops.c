/* engine/ops.c - float operations of the forward pass (see ops.h). */
#include <math.h>
#include <string.h>

#include "engine/ops.h"

void op_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    /* Eight partial sums in double, which the compiler vectorises (one
     * running sum is a chain of dependent adds); the order changes only the
     * last bits of the double, far below the float the scale is made of. */
    double s[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            s[j] += (double)x[i + j] * (double)x[i + j];
    double sum = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; i++)
        sum += (double)x[i] * (double)x[i];
    float scale = 1.0f / sqrtf((float)(sum / n) + eps);
    for (i = 0; i < n; i++)
        out[i] = x[i] * scale * w[i];
}

/* Applies one rotation angle sequence to pairs (x[i0], x[i1]) of each head.
 * theta_i = pos * base^(-2i/n_rot), computed by repeated multiplication in
 * float as ggml does so positions agree with llama.cpp to the last bit. */
void op_rope(float *v, int n_heads, int head_dim, int n_rot, int pos, float freq_base,
             float freq_scale, const float *freq_factors, int neox)
{
    float theta_scale = powf(freq_base, -2.0f / (float)n_rot);
    for (int h = 0; h < n_heads; h++) {
        float *x = v + (long)h * head_dim;
        float theta = (float)pos * freq_scale;
        for (int i = 0; i < n_rot / 2; i++) {
            float th = freq_factors ? theta / freq_factors[i] : theta;
            float c = cosf(th), s = sinf(th);
            int i0 = neox ? i : 2 * i;
            int i1 = neox ? i + n_rot / 2 : 2 * i + 1;
            float x0 = x[i0], x1 = x[i1];
            x[i0] = x0 * c - x1 * s;
            x[i1] = x0 * s + x1 * c;
            theta *= theta_scale;
        }
    }
}

void op_softmax(float *x, int n)
{
    float max = -INFINITY;
    for (int i = 0; i < n; i++)
        max = x[i] > max ? x[i] : max;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++)
        x[i] *= inv;
}

void op_silu_mul(float *g, const float *u, int n)
{
    for (int i = 0; i < n; i++)
        g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void op_relu2_mul(float *restrict g, const float *restrict u, int n)
{
    /* Without aliasing (and -fno-trapping-math, engine/CMakeLists.txt) this
     * vectorises. */
    for (int i = 0; i < n; i++) {
        float v = g[i];
        float r = v > 0.0f ? v : 0.0f;
        g[i] = r * r * u[i];
    }
}

float op_dot_f32(const float *a, const float *b, int n)
{
    /* Eight partial sums let the compiler vectorise without -ffast-math. */
    float s[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            s[j] += a[i + j] * b[i + j];
    float sum = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; i++)
        sum += a[i] * b[i];
    return sum;
}

void op_axpy(float *restrict y, float a, const float *restrict x, int n)
{
    for (int i = 0; i < n; i++)
        y[i] += a * x[i];
}

void op_attention_head(float *out, const float *q, const float *k, const float *v, int n_pos,
                       int head_dim, long stride, float scale, float *scores)
{
    for (int p = 0; p < n_pos; p++)
        scores[p] = op_dot_f32(q, k + p * stride, head_dim) * scale;
    op_softmax(scores, n_pos);
    memset(out, 0, sizeof(float) * (size_t)head_dim);
    for (int p = 0; p < n_pos; p++)
        op_axpy(out, scores[p], v + p * stride, head_dim);
}
