/*
 * kernels/i2s_pack.c - the I2_S reference packer and unpacker, and BitNet's
 * absmean ternarization.
 *
 * Layout (docs/formats.md, section 2.7): the whole tensor, row-major, is cut
 * into blocks of 128 consecutive elements stored in 32 bytes. Byte p of a
 * block holds elements p, p+32, p+64 and p+96 in bits 7:6, 5:4, 3:2 and 1:0.
 * Codes 0, 1, 2 mean -1, 0, +1; code 3 is never written and reads as 0. After
 * the codes come one f32 scale and 28 zero bytes.
 *
 * Not a hot path: bitnet-mkmodel and the tests use these.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "bitnet/quant.h"
#include "kernels/i2s.h"

float bitnet_ternarize_absmean(float *w, size_t n)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += fabs((double)w[i]);
    float mean = n ? (float)(sum / (double)n) : 0.0f;
    /* "!(mean >= 1e-5f)" also catches a NaN mean, so s is always usable. */
    float s = !(mean >= 1e-5f) ? 1e-5f : mean;
    for (size_t i = 0; i < n; i++) {
        /* round(w/s) to nearest, ties to even, then clamped to [-1, 1]: only
         * |q| > 0.5 leaves zero, whatever the FPU rounding mode. */
        float q = w[i] / s;
        w[i] = q > 0.5f ? s : q < -0.5f ? -s : 0.0f;
    }
    return s;
}

/* Returns 0 for shapes that are not whole blocks or whose size overflows,
 * so a loader comparing it with a file's byte count rejects them. */
size_t bitnet_i2s_tensor_bytes(int64_t ne0, int64_t ne1)
{
    size_t n;
    if (ne0 <= 0 || ne1 < 0 || ne0 % I2S_BLOCK != 0)
        return 0;
    if (__builtin_mul_overflow((size_t)ne0, (size_t)ne1, &n) || n / 4 > SIZE_MAX - I2S_TAIL_BYTES)
        return 0;
    return n / 4 + I2S_TAIL_BYTES;
}

/* The 2-bit code of one already-ternarized value. */
static uint8_t i2s_code(float x)
{
    if (fabsf(x) < 1e-6f)
        return 1;
    return x > 0.0f ? 2 : 0;
}

int bitnet_i2s_pack(const float *x, int64_t ne0, int64_t ne1, uint8_t *out)
{
    if (ne0 <= 0 || ne1 < 0 || ne0 % I2S_BLOCK != 0)
        return -EINVAL;
    size_t n = (size_t)ne0 * (size_t)ne1;
    float scale = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (a > scale)
            scale = a;
    }
    for (size_t b = 0; b < n / I2S_BLOCK; b++) {
        const float *src = x + b * I2S_BLOCK;
        uint8_t *dst = out + b * I2S_BLOCK_BYTES;
        for (int p = 0; p < I2S_BLOCK_BYTES; p++) {
            dst[p] = (uint8_t)(i2s_code(src[p]) << 6 | i2s_code(src[p + 32]) << 4 |
                               i2s_code(src[p + 64]) << 2 | i2s_code(src[p + 96]));
        }
    }
    memcpy(out + n / 4, &scale, sizeof(scale));
    memset(out + n / 4 + sizeof(scale), 0, I2S_TAIL_BYTES - sizeof(scale));
    return 0;
}

void bitnet_i2s_unpack(const uint8_t *in, int64_t ne0, int64_t ne1, float *out)
{
    if (ne0 <= 0 || ne1 < 0 || ne0 % I2S_BLOCK != 0)
        return;
    static const float map[4] = {-1.0f, 0.0f, 1.0f, 0.0f};
    size_t n = (size_t)ne0 * (size_t)ne1;
    float scale = bitnet_i2s_scale(in, ne0, ne1);
    for (size_t e = 0; e < n; e++)
        out[e] = scale * map[i2s_code_at(in, e)];
}

float bitnet_i2s_scale(const uint8_t *in, int64_t ne0, int64_t ne1)
{
    float scale;
    memcpy(&scale, in + (size_t)ne0 * (size_t)ne1 / 4, sizeof(scale));
    return scale;
}
