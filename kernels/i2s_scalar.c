/*
 * kernels/i2s_scalar.c - the portable I2_S reference kernel (i2s_qk256.scalar).
 *
 * Every SIMD I2_S kernel must give the same int32 sums and, through
 * i2s_output(), the same float bits as this one. It decodes each 128-weight
 * block once into bytes and multiplies it into up to 16 activation rows
 * before moving on, so even the fallback streams the weights only once per
 * batch.
 */
#include <math.h>

#include "kernels/i2s.h"

/* Activation rows handled per pass over a block. */
#define SCALAR_ACT_TILE 16

size_t i2s_scalar_act_row_bytes(int64_t k)
{
    return i2s_act_row_bytes(k);
}

void i2s_scalar_quantize_act(const float *x, int64_t k, uint8_t *act)
{
    if (k <= 0) {
        i2s_act_set_trailer(act, 0, i2s_act_scale(0.0f), 0);
        return;
    }
    float max_abs = 0.0f;
    for (int64_t i = 0; i < k; i++) {
        float a = fabsf(x[i]);
        max_abs = a > max_abs ? a : max_abs; /* a NaN never wins */
    }
    float scale = i2s_act_scale(max_abs);
    int32_t sum = 0;
    for (int64_t i = 0; i < k; i++) {
        int q = i2s_round_clamp(x[i] * scale);
        act[i2s_act_pos(k, i)] = (uint8_t)(int8_t)q;
        sum += q;
    }
    i2s_act_set_trailer(act, k, scale, sum);
}

/* Decodes one 128-weight block into codes 0..2. Code 3 reads as 1: where a
 * field's two bits are both set, its high bit is cleared. Plain arithmetic
 * on whole bytes, so the compiler can vectorize it. */
static void decode_block(const uint8_t *blk, uint8_t codes[I2S_BLOCK])
{
    for (int p = 0; p < 32; p++) {
        unsigned b = blk[p];
        b &= ~((b & (b >> 1) & 0x55u) << 1);
        codes[p] = (uint8_t)(b >> 6);
        codes[32 + p] = (uint8_t)((b >> 4) & 3u);
        codes[64 + p] = (uint8_t)((b >> 2) & 3u);
        codes[96 + p] = (uint8_t)(b & 3u);
    }
}

/*
 * Precondition (checked by the engine at load, as for every I2_S kernel):
 * k is a positive multiple of 128. Elements past the last full block would
 * be ignored.
 */
void i2s_scalar_matmul(const bitnet_matmul_args *args)
{
    const int64_t k = args->k;
    const int64_t n_blocks = k / I2S_BLOCK;
    uint8_t codes[I2S_BLOCK];

    for (int64_t r = 0; r < args->n_rows; r++) {
        const uint8_t *wrow = args->w + (size_t)r * args->w_row_bytes;
        for (int t0 = 0; t0 < args->n_act; t0 += SCALAR_ACT_TILE) {
            int nt = args->n_act - t0 < SCALAR_ACT_TILE ? args->n_act - t0 : SCALAR_ACT_TILE;
            int32_t sumi[SCALAR_ACT_TILE] = {0};
            for (int64_t b = 0; b < n_blocks; b++) {
                decode_block(wrow + b * I2S_BLOCK_BYTES, codes);
                int64_t base, field_step;
                i2s_block_fields(k, b, &base, &field_step);
                for (int t = 0; t < nt; t++) {
                    const int8_t *qa =
                        (const int8_t *)(args->act + (size_t)(t0 + t) * args->act_row_bytes);
                    int32_t s = 0;
                    for (int j = 0; j < 4; j++) {
                        const int8_t *a = qa + base + j * field_step;
                        for (int p = 0; p < 32; p++)
                            s += codes[32 * j + p] * a[p];
                    }
                    sumi[t] += s;
                }
            }
            for (int t = 0; t < nt; t++) {
                const uint8_t *act = args->act + (size_t)(t0 + t) * args->act_row_bytes;
                args->y[(size_t)(t0 + t) * (size_t)args->y_stride + (size_t)r] = i2s_output(
                    sumi[t], i2s_act_get_sum(act, k), i2s_act_get_scale(act, k), args->w_scale);
            }
        }
    }
}

const bitnet_kernel_ops bitnet_kernel_i2s_qk256_scalar = {
    .act_row_bytes = i2s_scalar_act_row_bytes,
    .quantize_act = i2s_scalar_quantize_act,
    .matmul = i2s_scalar_matmul,
};
