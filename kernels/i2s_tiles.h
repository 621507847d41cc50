/*
 * kernels/i2s_tiles.h - the row and activation walk of the SIMD I2_S kernels
 * (i2s_avx2.c, i2s_avx512.c, i2s_neon.c).
 *
 * Each kernel computes tiles of `rows` weight rows x up to I2S_MAX_T
 * activation rows with every accumulator in a register. The rows of a wide
 * tile come from `rows` separate stretches of the range, so that each is a
 * long sequential stream for the hardware prefetcher (interleaving
 * neighbouring rows halves the DRAM rate). Batches of more than I2S_MAX_T
 * activation rows take groups of I2S_TILE_GROUP wide tiles through every
 * activation tile in turn: the group's weights stay in L2 between activation
 * tiles and each activation tile in L1 across the group, so the weights
 * still come from memory once.
 */
#ifndef BITNET_KERNELS_I2S_TILES_H
#define BITNET_KERNELS_I2S_TILES_H

#include <stdint.h>

#include "bitnet/kernels.h"

#define I2S_MAX_T      4  /* activation rows per tile */
#define I2S_TILE_GROUP 16 /* wide tiles per pass over the activation tiles */
/* How far ahead of its loads a compute-bound tile (several activation rows)
 * prefetches each weight row: the hardware prefetcher falls behind streams
 * that advance this slowly. */
#define I2S_PREFETCH_BYTES 1024

typedef void (*i2s_tile_fn)(const bitnet_matmul_args *a, int64_t r0, int64_t rs, int t0);

struct i2s_tile_set {
    int rows;         /* weight rows of the wide tile */
    i2s_tile_fn wide; /* that many rows, r0 + i * rs */
    i2s_tile_fn one;  /* one row, for the remainder */
};

/* The whole product; sets[T - 1] computes T activation rows. */
static inline void i2s_tiles_run(const bitnet_matmul_args *a, const struct i2s_tile_set *sets)
{
    if (a->n_act <= 0 || a->n_rows <= 0)
        return;
    const struct i2s_tile_set *ts = &sets[(a->n_act < I2S_MAX_T ? a->n_act : I2S_MAX_T) - 1];
    const int last_nt = a->n_act % I2S_MAX_T;
    const struct i2s_tile_set *ts_last = last_nt ? &sets[last_nt - 1] : ts;
    const int64_t q = a->n_rows / ts->rows;
    for (int64_t g = 0; g < q; g += I2S_TILE_GROUP) {
        int64_t g_end = g + I2S_TILE_GROUP < q ? g + I2S_TILE_GROUP : q;
        for (int t0 = 0; t0 < a->n_act; t0 += I2S_MAX_T) {
            for (int64_t r = g; r < g_end; r++) {
                if (a->n_act - t0 >= I2S_MAX_T || a->n_act < I2S_MAX_T) {
                    ts->wide(a, r, q, t0);
                } else {
                    for (int i = 0; i < ts->rows; i++)
                        ts_last->one(a, r + i * q, 0, t0);
                }
            }
        }
    }
    for (int64_t r = q * ts->rows; r < a->n_rows; r++) {
        for (int t0 = 0; t0 < a->n_act; t0 += I2S_MAX_T)
            (a->n_act - t0 >= I2S_MAX_T || a->n_act < I2S_MAX_T ? ts : ts_last)->one(a, r, 0, t0);
    }
}

#endif
