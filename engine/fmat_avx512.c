/* engine/fmat_avx512.c - float matrix products with AVX-512 (see fmat.h). */
#include <immintrin.h>

#include "engine/fmat.h"

/* Up to 4 activation rows at a time share each weight load; two weight
 * rows per step keep two independent streams in flight. */
static void f16_avx512(const uint16_t *w, long w_stride, long n_rows, long k_len, const float *x,
                       int n_act, float *y, long y_stride)
{
    for (int t0 = 0; t0 < n_act; t0 += 4) {
        int nt = n_act - t0 < 4 ? n_act - t0 : 4;
        for (long r = 0; r < n_rows; r++) {
            const uint16_t *row = w + r * w_stride;
            __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                             _mm512_setzero_ps()};
            long k = 0;
            for (; k + 16 <= k_len; k += 16) {
                __m512 wv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + k)));
                for (int j = 0; j < nt; j++)
                    acc[j] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + (long)(t0 + j) * k_len + k),
                                             acc[j]);
            }
            for (int j = 0; j < nt; j++) {
                float s = _mm512_reduce_add_ps(acc[j]);
                for (long kk = k; kk < k_len; kk++)
                    s += _cvtsh_ss(row[kk]) * x[(long)(t0 + j) * k_len + kk];
                y[(long)(t0 + j) * y_stride + r] = s;
            }
        }
    }
}

static void f32_avx512(const float *w, long w_stride, long n_rows, long k_len, const float *x,
                       int n_act, float *y, long y_stride)
{
    for (int t0 = 0; t0 < n_act; t0 += 4) {
        int nt = n_act - t0 < 4 ? n_act - t0 : 4;
        for (long r = 0; r < n_rows; r++) {
            const float *row = w + r * w_stride;
            __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                             _mm512_setzero_ps()};
            long k = 0;
            for (; k + 16 <= k_len; k += 16) {
                __m512 wv = _mm512_loadu_ps(row + k);
                for (int j = 0; j < nt; j++)
                    acc[j] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + (long)(t0 + j) * k_len + k),
                                             acc[j]);
            }
            for (int j = 0; j < nt; j++) {
                float s = _mm512_reduce_add_ps(acc[j]);
                for (long kk = k; kk < k_len; kk++)
                    s += row[kk] * x[(long)(t0 + j) * k_len + kk];
                y[(long)(t0 + j) * y_stride + r] = s;
            }
        }
    }
}

const struct fmat_ops fmat_avx512 = {"avx512", f16_avx512, f32_avx512};
