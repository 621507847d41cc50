/*
 * engine/fmat_tiles.h - the tile driver of the batched float products
 * (fmat_avx2.c, fmat_avx512.c).
 *
 * A tile function computes `rows` weight rows (wr bytes apart, their outputs
 * yr apart) against T activation rows with every accumulator in a register:
 * each weight load serves T activation rows and each activation load `rows`
 * weight rows. A type has one tile function per T = 1..max_t at its widest
 * row count and one per T for a single row; the driver walks the rows and
 * the activation groups. Included by files compiled with their own ISA
 * flags, so everything here is static.
 */
#ifndef BITNET_ENGINE_FMAT_TILES_H
#define BITNET_ENGINE_FMAT_TILES_H

#include <stddef.h>
#include <stdint.h>

typedef void (*tile_fn)(const uint8_t *w, long wr, long yr, long k_len, const float *x, float *y,
                        long y_stride);

struct tile_set {
    int max_t;   /* activation rows per group, at most 8 */
    int rows[9]; /* weight rows of the wide tile for T activation rows */
    tile_fn wide[9];
    tile_fn one[9];
};

/* rows weight rows through every group of up to max_t activation rows,
 * while they are still in cache. */
static void tile_rows(const struct tile_set *ts, const uint8_t *w, long wr, long yr, int rows,
                      long k_len, const float *x, int n_act, float *y, long y_stride)
{
    for (int t0 = 0; t0 < n_act; t0 += ts->max_t) {
        const int nt = n_act - t0 < ts->max_t ? n_act - t0 : ts->max_t;
        const float *xt = x + (long)t0 * k_len;
        float *yt = y + (long)t0 * y_stride;
        if (rows == ts->rows[nt]) {
            ts->wide[nt](w, wr, yr, k_len, xt, yt, y_stride);
            continue;
        }
        for (int i = 0; i < rows; i++)
            ts->one[nt](w + i * wr, 0, 0, k_len, xt, yt + i * yr, y_stride);
    }
}

/* w_stride in bytes. One activation row (one sequence decoding) goes a row
 * at a time, which streams at memory speed (several separate row streams
 * would not be faster there); a batch goes in wide tiles whose rows come
 * from separate stretches of the range. */
static void tiles_run(const struct tile_set *ts, const uint8_t *w, long w_stride, long n_rows,
                      long k_len, const float *x, int n_act, float *y, long y_stride)
{
    if (n_act == 1) {
        for (long r = 0; r < n_rows; r++)
            ts->one[1](w + r * w_stride, 0, 0, k_len, x, y + r, y_stride);
        return;
    }
    const int rows = ts->rows[n_act < ts->max_t ? n_act : ts->max_t];
    const long q = n_rows / rows;
    for (long r = 0; r < q; r++)
        tile_rows(ts, w + r * w_stride, q * w_stride, q, rows, k_len, x, n_act, y + r, y_stride);
    for (long r = q * rows; r < n_rows; r++)
        tile_rows(ts, w + r * w_stride, 0, 0, 1, k_len, x, n_act, y + r, y_stride);
}

/* The tile functions of one type for T activation rows: NAME_wide_T with
 * ROWS(T) weight rows, NAME_one_T with one. KERNEL is an always-inline
 * function (w, wr, yr, k_len, x, R, T, y, y_stride) whose R and T become
 * constants here. Every T up to 8 is defined; MAX_T says which are used. */
#define TILES_FOR(NAME, KERNEL, ROWS, T)                                                           \
    static void NAME##_wide_##T(const uint8_t *w, long wr, long yr, long k_len, const float *x,    \
                                float *y, long y_stride)                                           \
    {                                                                                              \
        KERNEL(w, wr, yr, k_len, x, ROWS(T), T, y, y_stride);                                      \
    }                                                                                              \
    static void NAME##_one_##T(const uint8_t *w, long wr, long yr, long k_len, const float *x,     \
                               float *y, long y_stride)                                            \
    {                                                                                              \
        KERNEL(w, wr, yr, k_len, x, 1, T, y, y_stride);                                            \
    }
#define TILE_SET(NAME, KERNEL, ROWS, MAX_T)                                                        \
    TILES_FOR(NAME, KERNEL, ROWS, 1)                                                               \
    TILES_FOR(NAME, KERNEL, ROWS, 2)                                                               \
    TILES_FOR(NAME, KERNEL, ROWS, 3)                                                               \
    TILES_FOR(NAME, KERNEL, ROWS, 4)                                                               \
    TILES_FOR(NAME, KERNEL, ROWS, 5)                                                               \
    TILES_FOR(NAME, KERNEL, ROWS, 6)                                                               \
    TILES_FOR(NAME, KERNEL, ROWS, 7)                                                               \
    TILES_FOR(NAME, KERNEL, ROWS, 8)                                                               \
    static const struct tile_set NAME##_tiles = {                                                  \
        MAX_T,                                                                                     \
        {0, ROWS(1), ROWS(2), ROWS(3), ROWS(4), ROWS(5), ROWS(6), ROWS(7), ROWS(8)},               \
        {NULL, NAME##_wide_1, NAME##_wide_2, NAME##_wide_3, NAME##_wide_4, NAME##_wide_5,          \
         NAME##_wide_6, NAME##_wide_7, NAME##_wide_8},                                             \
        {NULL, NAME##_one_1, NAME##_one_2, NAME##_one_3, NAME##_one_4, NAME##_one_5, NAME##_one_6, \
         NAME##_one_7, NAME##_one_8},                                                              \
    };

#endif
