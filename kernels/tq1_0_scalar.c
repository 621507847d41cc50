/*
 * kernels/tq1_0_scalar.c - the reference TQ1_0 kernel in portable C.
 *
 * It computes what llama.cpp's generic ggml_vec_dot_tq1_0_q8_K computes:
 * per 256-block the exact integer sum of (trit - 1) * qa, then
 * sumf += (float)isum * (d_a * d_w) in block order. The SIMD kernels are
 * checked against it.
 */
#include "common/f16.h"
#include "kernels/tq.h"

/* Trit n (0 = most significant) of a TQ1_0 byte (FORMATS.md section 2.4). */
static int trit(uint8_t byte, int n)
{
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    uint8_t v = (uint8_t)(byte * pow3[n]);
    return ((uint16_t)v * 3) >> 8;
}

int32_t tq1_0_block_dot(const uint8_t *wblock, const uint8_t *ablock)
{
    const uint8_t *qs = wblock + TQ1_0_QS;
    const uint8_t *qh = wblock + TQ1_0_QH;
    const int8_t *qa = (const int8_t *)(ablock + TQ_Q8K_QS);
    int32_t sum = 0;
    for (int n = 0; n < 5; n++)
        for (int m = 0; m < 32; m++)
            sum += (trit(qs[m], n) - 1) * qa[32 * n + m];
    for (int n = 0; n < 5; n++)
        for (int m = 0; m < 16; m++)
            sum += (trit(qs[32 + m], n) - 1) * qa[160 + 16 * n + m];
    for (int n = 0; n < 4; n++)
        for (int j = 0; j < 4; j++)
            sum += (trit(qh[j], n) - 1) * qa[240 + 4 * n + j];
    return sum;
}

float tq1_0_row_dot(const uint8_t *w, const uint8_t *act, int64_t k)
{
    float sumf = 0.0f;
    for (int64_t b = 0; b < k / TQ_QK; b++, w += TQ1_0_BYTES, act += TQ_Q8K_BYTES) {
        const int32_t isum = tq1_0_block_dot(w, act);
        const float d = f16_to_f32(tq_load_u16(w + TQ1_0_D)) * tq_load_f32(act + TQ_Q8K_D);
        sumf += (float)isum * d;
    }
    return sumf;
}

static void tq1_0_scalar_matmul(const bitnet_matmul_args *a)
{
    for (int64_t r = 0; r < a->n_rows; r++) {
        const uint8_t *w = a->w + (size_t)r * a->w_row_bytes;
        for (int t = 0; t < a->n_act; t++) {
            const uint8_t *act = a->act + (size_t)t * a->act_row_bytes;
            a->y[t * a->y_stride + r] = tq1_0_row_dot(w, act, a->k) * a->w_scale;
        }
    }
}

const bitnet_kernel_ops bitnet_kernel_tq1_0_scalar = {
    .act_row_bytes = tq_act_row_bytes,
    .quantize_act = tq_quantize_q8k,
    .matmul = tq1_0_scalar_matmul,
};
