/* engine/fmat_scalar.c - portable float matrix products (see fmat.h). */
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

const struct fmat_ops fmat_scalar = {"scalar", f16_scalar, f32_scalar};
