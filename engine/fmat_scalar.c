/* engine/fmat_scalar.c - portable float matrix products (see fmat.h). */
#include <math.h>
#include <string.h>

#include "common/f16.h"
#include "engine/fmat.h"

static void f16_scalar(const uint16_t *w, long w_stride, long n_rows, long k_len, const float *x,
                       int n_act, float *y, long y_stride)
{
    for (long r = 0; r < n_rows; r++) {
        const uint16_t *row = w + r * w_stride;
        for (int t = 0; t < n_act; t++) {
            const float *xt = x + (long)t * k_len;
            float s[4] = {0};
            long k = 0;
            for (; k + 4 <= k_len; k += 4)
                for (int j = 0; j < 4; j++)
                    s[j] += f16_to_f32(row[k + j]) * xt[k + j];
            float sum = (s[0] + s[1]) + (s[2] + s[3]);
            for (; k < k_len; k++)
                sum += f16_to_f32(row[k]) * xt[k];
            y[(long)t * y_stride + r] = sum;
        }
    }
}

static void f32_scalar(const float *w, long w_stride, long n_rows, long k_len, const float *x,
                       int n_act, float *y, long y_stride)
{
    for (long r = 0; r < n_rows; r++) {
        const float *row = w + r * w_stride;
        for (int t = 0; t < n_act; t++) {
            const float *xt = x + (long)t * k_len;
            float s[4] = {0};
            long k = 0;
            for (; k + 4 <= k_len; k += 4)
                for (int j = 0; j < 4; j++)
                    s[j] += row[k + j] * xt[k + j];
            float sum = (s[0] + s[1]) + (s[2] + s[3]);
            for (; k < k_len; k++)
                sum += row[k] * xt[k];
            y[(long)t * y_stride + r] = sum;
        }
    }
}

static void q8_0_scalar(const uint8_t *w, long w_stride, long n_rows, long k_len, const float *x,
                        int n_act, float *y, long y_stride)
{
    for (long r = 0; r < n_rows; r++) {
        const uint8_t *row = w + r * w_stride;
        for (int t = 0; t < n_act; t++) {
            const float *xt = x + (long)t * k_len;
            float sum = 0.0f;
            for (long b = 0; b < k_len / FMAT_Q8_0_BLOCK; b++) {
                const uint8_t *blk = row + b * FMAT_Q8_0_BYTES;
                uint16_t d;
                memcpy(&d, blk, 2);
                const int8_t *q = (const int8_t *)(blk + 2);
                float s = 0.0f;
                for (int i = 0; i < FMAT_Q8_0_BLOCK; i++)
                    s += (float)q[i] * xt[b * FMAT_Q8_0_BLOCK + i];
                sum += f16_to_f32(d) * s;
            }
            y[(long)t * y_stride + r] = sum;
        }
    }
}

void fmat_quantize_q8_0(const float *x, long k, uint8_t *out)
{
    for (long b = 0; b < k / FMAT_Q8_0_BLOCK; b++) {
        const float *xb = x + b * FMAT_Q8_0_BLOCK;
        uint8_t *blk = out + b * FMAT_Q8_0_BYTES;
        float amax = 0.0f;
        for (int i = 0; i < FMAT_Q8_0_BLOCK; i++)
            amax = fabsf(xb[i]) > amax ? fabsf(xb[i]) : amax;
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t dh = f32_to_f16(d);
        memcpy(blk, &dh, 2);
        for (int i = 0; i < FMAT_Q8_0_BLOCK; i++)
            blk[2 + i] = (uint8_t)(int8_t)roundf(xb[i] * id);
    }
}

const struct fmat_ops fmat_scalar = {"scalar", f16_scalar, f32_scalar, q8_0_scalar};
