/* engine/fmat_avx2.c - float matrix products with AVX2+FMA+F16C (see fmat.h). */
#include <immintrin.h>
#include <string.h>

#include "engine/fmat.h"
#include "engine/fmat_tiles.h"

static inline float hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/*
 * F16 weights in tiles of R weight rows x T activation rows (see
 * fmat_tiles.h and fmat_avx512.c): 16 ymm registers hold 2 x 4
 * accumulators with the converted weights and one activation vector. Every
 * (row, activation) pair is summed in the same order whatever R and T are.
 */
#define F16_PREFETCH 512 /* elements ahead of the loads, in each row */

static inline __attribute__((always_inline)) void tile_f16(const uint8_t *wb, long wr_bytes,
                                                           long yr, long k_len, const float *x,
                                                           const int R, const int T, float *y,
                                                           long y_stride)
{
    const uint16_t *w = (const uint16_t *)wb;
    const long wr = wr_bytes / 2;
    __m256 acc[2][8];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            acc[r][t] = _mm256_setzero_ps();
    long k = 0;
    for (; k + 8 <= k_len; k += 8) {
        __m256 wv[2];
        for (int r = 0; r < R; r++) {
            if (R * T > 1 && k % 32 == 0)
                _mm_prefetch((const char *)(w + r * wr + k + F16_PREFETCH), _MM_HINT_T0);
            wv[r] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + r * wr + k)));
        }
        for (int t = 0; t < T; t++) {
            __m256 xv = _mm256_loadu_ps(x + (long)t * k_len + k);
            for (int r = 0; r < R; r++)
                acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
        }
    }
    for (int r = 0; r < R; r++) {
        for (int t = 0; t < T; t++) {
            float s = hsum256(acc[r][t]);
            for (long kk = k; kk < k_len; kk++)
                s += _cvtsh_ss(w[r * wr + kk]) * x[(long)t * k_len + kk];
            y[(long)t * y_stride + r * yr] = s;
        }
    }
}

/* Two rows for up to four activation rows (the groups are of four here);
 * the larger T are defined by TILE_SET but never used. */
#define F16_ROWS(T) ((T) > 4 ? 1 : 2)
TILE_SET(f16, tile_f16, F16_ROWS, 4)

static inline __attribute__((always_inline)) void
row_f32(const float *row, long k_len, const float *x, int nt, float *y, long y_stride)
{
    __m256 acc[8];
    for (int j = 0; j < nt; j++)
        acc[j] = _mm256_setzero_ps();
    long k = 0;
    for (; k + 8 <= k_len; k += 8) {
        __m256 wv = _mm256_loadu_ps(row + k);
        for (int j = 0; j < nt; j++)
            acc[j] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + (long)j * k_len + k), acc[j]);
    }
    for (int j = 0; j < nt; j++) {
        float s = hsum256(acc[j]);
        for (long kk = k; kk < k_len; kk++)
            s += row[kk] * x[(long)j * k_len + kk];
        y[(long)j * y_stride] = s;
    }
}

static void f16_avx2(const uint16_t *w, long w_stride, long n_rows, long k_len, const float *x,
                     int n_act, float *y, long y_stride)
{
    tiles_run(&f16_tiles, (const uint8_t *)w, w_stride * 2, n_rows, k_len, x, n_act, y, y_stride);
}

static void f32_avx2(const float *w, long w_stride, long n_rows, long k_len, const float *x,
                     int n_act, float *y, long y_stride)
{
    for (int t0 = 0; t0 < n_act; t0 += 8) {
        int nt = n_act - t0 < 8 ? n_act - t0 : 8;
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

/* Q8_0 weights; see fmat_avx512.c. */
static inline __attribute__((always_inline)) void
row_q8_0(const uint8_t *row, long k_len, const float *x, int nt, float *y, long y_stride)
{
    __m256 acc[4];
    for (int j = 0; j < nt; j++)
        acc[j] = _mm256_setzero_ps();
    for (long b = 0; b < k_len / FMAT_Q8_0_BLOCK; b++) {
        const uint8_t *blk = row + b * FMAT_Q8_0_BYTES;
        uint16_t dh;
        memcpy(&dh, blk, 2);
        __m256 d = _mm256_set1_ps(_cvtsh_ss(dh));
        __m256 wv[4];
        for (int i = 0; i < 4; i++)
            wv[i] = _mm256_cvtepi32_ps(
                _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(blk + 2 + 8 * i))));
        for (int j = 0; j < nt; j++) {
            const float *xb = x + (long)j * k_len + b * FMAT_Q8_0_BLOCK;
            __m256 s = _mm256_mul_ps(wv[0], _mm256_loadu_ps(xb));
            for (int i = 1; i < 4; i++)
                s = _mm256_fmadd_ps(wv[i], _mm256_loadu_ps(xb + 8 * i), s);
            acc[j] = _mm256_fmadd_ps(s, d, acc[j]);
        }
    }
    for (int j = 0; j < nt; j++)
        y[(long)j * y_stride] = hsum256(acc[j]);
}

static void q8_0_avx2(const uint8_t *w, long w_stride, long n_rows, long k_len, const float *x,
                      int n_act, float *y, long y_stride)
{
    for (int t0 = 0; t0 < n_act; t0 += 4) {
        int nt = n_act - t0 < 4 ? n_act - t0 : 4;
        const float *xt = x + (long)t0 * k_len;
        float *yt = y + (long)t0 * y_stride;
        for (long r = 0; r < n_rows; r++) {
            const uint8_t *row = w + r * w_stride;
            if (nt == 1)
                row_q8_0(row, k_len, xt, 1, yt + r, y_stride);
            else
                row_q8_0(row, k_len, xt, nt, yt + r, y_stride);
        }
    }
}

const struct fmat_ops fmat_avx2 = {"avx2", f16_avx2, f32_avx2, q8_0_avx2};
