/* engine/fmat_avx512.c - float matrix products with AVX-512 (see fmat.h). */
#include <immintrin.h>
#include <string.h>

#include "engine/fmat.h"

/*
 * One weight row against NT activation rows: each 16-wide chunk of weights
 * is loaded (and converted) once and multiplied into NT accumulators, so a
 * batch of up to 16 rows costs one pass over the weights. NT is a constant
 * at every call site, which lets the compiler keep the accumulators in
 * registers.
 */
static inline __attribute__((always_inline)) void
row_f16(const uint16_t *row, long k_len, const float *x, int nt, float *y, long y_stride)
{
    __m512 acc[16];
    for (int j = 0; j < nt; j++)
        acc[j] = _mm512_setzero_ps();
    long k = 0;
    for (; k + 16 <= k_len; k += 16) {
        __m512 wv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + k)));
        for (int j = 0; j < nt; j++)
            acc[j] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + (long)j * k_len + k), acc[j]);
    }
    for (int j = 0; j < nt; j++) {
        float s = _mm512_reduce_add_ps(acc[j]);
        for (long kk = k; kk < k_len; kk++)
            s += _cvtsh_ss(row[kk]) * x[(long)j * k_len + kk];
        y[(long)j * y_stride] = s;
    }
}

static inline __attribute__((always_inline)) void
row_f32(const float *row, long k_len, const float *x, int nt, float *y, long y_stride)
{
    __m512 acc[16];
    for (int j = 0; j < nt; j++)
        acc[j] = _mm512_setzero_ps();
    long k = 0;
    for (; k + 16 <= k_len; k += 16) {
        __m512 wv = _mm512_loadu_ps(row + k);
        for (int j = 0; j < nt; j++)
            acc[j] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + (long)j * k_len + k), acc[j]);
    }
    for (int j = 0; j < nt; j++) {
        float s = _mm512_reduce_add_ps(acc[j]);
        for (long kk = k; kk < k_len; kk++)
            s += row[kk] * x[(long)j * k_len + kk];
        y[(long)j * y_stride] = s;
    }
}

static void f16_avx512(const uint16_t *w, long w_stride, long n_rows, long k_len, const float *x,
                       int n_act, float *y, long y_stride)
{
    for (int t0 = 0; t0 < n_act; t0 += 16) {
        int nt = n_act - t0 < 16 ? n_act - t0 : 16;
        const float *xt = x + (long)t0 * k_len;
        float *yt = y + (long)t0 * y_stride;
        for (long r = 0; r < n_rows; r++) {
            const uint16_t *row = w + r * w_stride;
            switch (nt) {
            case 16:
                row_f16(row, k_len, xt, 16, yt + r, y_stride);
                break;
            case 8:
                row_f16(row, k_len, xt, 8, yt + r, y_stride);
                break;
            case 4:
                row_f16(row, k_len, xt, 4, yt + r, y_stride);
                break;
            case 1:
                row_f16(row, k_len, xt, 1, yt + r, y_stride);
                break;
            default:
                row_f16(row, k_len, xt, nt, yt + r, y_stride);
                break;
            }
        }
    }
}

static void f32_avx512(const float *w, long w_stride, long n_rows, long k_len, const float *x,
                       int n_act, float *y, long y_stride)
{
    for (int t0 = 0; t0 < n_act; t0 += 16) {
        int nt = n_act - t0 < 16 ? n_act - t0 : 16;
        const float *xt = x + (long)t0 * k_len;
        float *yt = y + (long)t0 * y_stride;
        for (long r = 0; r < n_rows; r++) {
            const float *row = w + r * w_stride;
            if (nt == 1)
                row_f32(row, k_len, xt, 1, yt + r, y_stride);
            else
                row_f32(row, k_len, xt, nt, yt + r, y_stride);
        }
    }
}

/* Q8_0 weights: each block's 32 int8 weights are widened to floats once
 * and multiplied into nt activation rows; the block scale is applied to the
 * block's partial sums. */
static inline __attribute__((always_inline)) void
row_q8_0(const uint8_t *row, long k_len, const float *x, int nt, float *y, long y_stride)
{
    __m512 acc[8];
    for (int j = 0; j < nt; j++)
        acc[j] = _mm512_setzero_ps();
    for (long b = 0; b < k_len / FMAT_Q8_0_BLOCK; b++) {
        const uint8_t *blk = row + b * FMAT_Q8_0_BYTES;
        uint16_t dh;
        memcpy(&dh, blk, 2);
        __m512 d = _mm512_set1_ps(_cvtsh_ss(dh));
        __m512 w0 =
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2))));
        __m512 w1 =
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 18))));
        for (int j = 0; j < nt; j++) {
            const float *xb = x + (long)j * k_len + b * FMAT_Q8_0_BLOCK;
            __m512 s = _mm512_mul_ps(w0, _mm512_loadu_ps(xb));
            s = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xb + 16), s);
            acc[j] = _mm512_fmadd_ps(s, d, acc[j]);
        }
    }
    for (int j = 0; j < nt; j++)
        y[(long)j * y_stride] = _mm512_reduce_add_ps(acc[j]);
}

static void q8_0_avx512(const uint8_t *w, long w_stride, long n_rows, long k_len, const float *x,
                        int n_act, float *y, long y_stride)
{
    for (int t0 = 0; t0 < n_act; t0 += 8) {
        int nt = n_act - t0 < 8 ? n_act - t0 : 8;
        const float *xt = x + (long)t0 * k_len;
        float *yt = y + (long)t0 * y_stride;
        for (long r = 0; r < n_rows; r++) {
            const uint8_t *row = w + r * w_stride;
            if (nt == 1)
                row_q8_0(row, k_len, xt, 1, yt + r, y_stride);
            else if (nt == 8)
                row_q8_0(row, k_len, xt, 8, yt + r, y_stride);
            else
                row_q8_0(row, k_len, xt, nt, yt + r, y_stride);
        }
    }
}

const struct fmat_ops fmat_avx512 = {"avx512", f16_avx512, f32_avx512, q8_0_avx512};
