/* engine/fmat_avx512.c - float matrix products with AVX-512 (see fmat.h). */
#include <immintrin.h>
#include <string.h>

#include "engine/fmat.h"
#include "engine/fmat_tiles.h"

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

/*
 * Several weight rows against several activation rows (the batched head: a
 * step that decodes 8 sequences multiplies every vocabulary row by 8
 * activation rows). A tile of R weight rows x T activation rows keeps its
 * R*T accumulators in registers, so each weight load serves T activation
 * rows and each activation load R weight rows (one row at a time needs T + 1
 * loads for T multiply-adds, and stalls on them). The R rows come from R
 * separate stretches of the range (wr elements apart), each a sequential
 * stream the prefetcher follows, and a software prefetch runs one kilobyte
 * ahead in each. Every (row, activation) pair is summed in the same order
 * whatever R and T are, so a row's result does not depend on the batch
 * around it: a sequence decodes the same alone and in a batch.
 */
#define F16_PREFETCH 512 /* elements ahead of the loads, in each row */

static inline __attribute__((always_inline)) void tile_f16(const uint8_t *wb, long wr_bytes,
                                                           long yr, long k_len, const float *x,
                                                           const int R, const int T, float *y,
                                                           long y_stride)
{
    const uint16_t *w = (const uint16_t *)wb;
    const long wr = wr_bytes / 2;
    __m512 acc[4][8];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            acc[r][t] = _mm512_setzero_ps();
    long k = 0;
    for (; k + 16 <= k_len; k += 16) {
        __m512 wv[4];
        for (int r = 0; r < R; r++) {
            if (R * T > 1) /* one row alone streams fine without */
                _mm_prefetch((const char *)(w + r * wr + k + F16_PREFETCH), _MM_HINT_T0);
            wv[r] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + r * wr + k)));
        }
        for (int t = 0; t < T; t++) {
            __m512 xv = _mm512_loadu_ps(x + (long)t * k_len + k);
            for (int r = 0; r < R; r++)
                acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
        }
    }
    for (int r = 0; r < R; r++) {
        for (int t = 0; t < T; t++) {
            float s = _mm512_reduce_add_ps(acc[r][t]);
            for (long kk = k; kk < k_len; kk++)
                s += _cvtsh_ss(w[r * wr + kk]) * x[(long)t * k_len + kk];
            y[(long)t * y_stride + r * yr] = s;
        }
    }
}

/* Weight rows per tile for T activation rows: what the 32 registers hold
 * next to the R*T accumulators (3 x 8 and 4 x 4 measured fastest here). */
#define F16_ROWS(T) ((T) > 4 ? 3 : 4)
TILE_SET(f16, tile_f16, F16_ROWS, 8)

static void f16_avx512(const uint16_t *w, long w_stride, long n_rows, long k_len, const float *x,
                       int n_act, float *y, long y_stride)
{
    tiles_run(&f16_tiles, (const uint8_t *)w, w_stride * 2, n_rows, k_len, x, n_act, y, y_stride);
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

/*
 * Q8_0 weights (the optional in-memory LM head) in the same tiles: each
 * block's 32 int8 weights are widened to floats once per tile; for every
 * activation row the block's products are summed and scaled by the block
 * scale into the accumulator, one dependent FMA per block (the arithmetic of
 * the one-row loop this replaced, so the head's logits are unchanged).
 */
#define Q8_0_PREFETCH_BYTES 1024 /* ahead of the loads, in each row, as for F16 */

static inline __attribute__((always_inline)) void tile_q8_0(const uint8_t *w, long wr, long yr,
                                                            long k_len, const float *x, const int R,
                                                            const int T, float *y, long y_stride)
{
    __m512 acc[4][8];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            acc[r][t] = _mm512_setzero_ps();
    for (long b = 0; b < k_len / FMAT_Q8_0_BLOCK; b++) {
        __m512 w0[4], w1[4], d[4];
        for (int r = 0; r < R; r++) {
            const uint8_t *blk = w + r * wr + b * FMAT_Q8_0_BYTES;
            if (R * T > 1)
                _mm_prefetch((const char *)(blk + Q8_0_PREFETCH_BYTES), _MM_HINT_T0);
            uint16_t dh;
            memcpy(&dh, blk, 2);
            d[r] = _mm512_set1_ps(_cvtsh_ss(dh));
            w0[r] = _mm512_cvtepi32_ps(
                _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2))));
            w1[r] = _mm512_cvtepi32_ps(
                _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 18))));
        }
        for (int t = 0; t < T; t++) {
            const float *xb = x + (long)t * k_len + b * FMAT_Q8_0_BLOCK;
            __m512 x0 = _mm512_loadu_ps(xb), x1 = _mm512_loadu_ps(xb + 16);
            for (int r = 0; r < R; r++)
                acc[r][t] = _mm512_fmadd_ps(_mm512_fmadd_ps(w1[r], x1, _mm512_mul_ps(w0[r], x0)),
                                            d[r], acc[r][t]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            y[(long)t * y_stride + r * yr] = _mm512_reduce_add_ps(acc[r][t]);
}

/* Two widened blocks per row take two registers each. */
#define Q8_0_ROWS(T) ((T) > 4 ? 2 : 4)
TILE_SET(q8_0, tile_q8_0, Q8_0_ROWS, 8)

static void q8_0_avx512(const uint8_t *w, long w_stride, long n_rows, long k_len, const float *x,
                        int n_act, float *y, long y_stride)
{
    tiles_run(&q8_0_tiles, w, w_stride, n_rows, k_len, x, n_act, y, y_stride);
}

const struct fmat_ops fmat_avx512 = {"avx512", f16_avx512, f32_avx512, q8_0_avx512};
