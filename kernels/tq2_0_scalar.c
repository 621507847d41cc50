/*
 * kernels/tq2_0_scalar.c - the reference TQ2_0 kernel in portable C.
 *
 * It computes what llama.cpp's generic ggml_vec_dot_tq2_0_q8_K computes:
 * per 256-block the exact integer sum of (code - 1) * qa, then
 * sumf += (float)isum * (d_a * d_w) in block order. The SIMD kernels are
 * checked against it.
 */
#include "common/f16.h"
#include "kernels/tq.h"

int32_t tq2_0_block_dot(const uint8_t *wblock, const uint8_t *ablock)
{
    const uint8_t *qs = wblock + TQ2_0_QS;
    const int8_t *qa = (const int8_t *)(ablock + TQ_Q8K_QS);
    int32_t sum = 0;
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 4; l++)
            for (int m = 0; m < 32; m++) {
                int code = (qs[32 * h + m] >> (2 * l)) & 3;
                sum += (code - 1) * qa[128 * h + 32 * l + m];
            }
    return sum;
}

float tq2_0_row_dot(const uint8_t *w, const uint8_t *act, int64_t k)
{
    float sumf = 0.0f;
    for (int64_t b = 0; b < k / TQ_QK; b++, w += TQ2_0_BYTES, act += TQ_Q8K_BYTES) {
        const int32_t isum = tq2_0_block_dot(w, act);
        const float d = tq_load_f32(act + TQ_Q8K_D) * f16_to_f32(tq_load_u16(w + TQ2_0_D));
        sumf += (float)isum * d;
    }
    return sumf;
}

static void tq2_0_scalar_matmul(const bitnet_matmul_args *a)
{
    for (int64_t r = 0; r < a->n_rows; r++) {
        const uint8_t *w = a->w + (size_t)r * a->w_row_bytes;
        for (int t = 0; t < a->n_act; t++) {
            const uint8_t *act = a->act + (size_t)t * a->act_row_bytes;
            a->y[t * a->y_stride + r] = tq2_0_row_dot(w, act, a->k) * a->w_scale;
        }
    }
}

const bitnet_kernel_ops bitnet_kernel_tq2_0_scalar = {
    .act_row_bytes = tq_act_row_bytes,
    .quantize_act = tq_quantize_q8k,
    .matmul = tq2_0_scalar_matmul,
};
