/*
 * kernels/tl.h - what the lookup-table kernels (tl1.*, tl2.*) share: the
 * repacked weight layout, the per-activation tables, and a driver that
 * walks activation rows, k-blocks and row tiles for the SIMD tile functions.
 *
 * Idea (T-MAC): ternary weights are grouped, g consecutive k positions at a
 * time (TL1: pairs, TL2: triples), and every group of a weight row becomes
 * one small index. Per activation row and group, a table holds the partial
 * sum of those g int8 activations for every weight combination; a row's dot
 * product is the sum of table[index] over its groups. SIMD byte shuffles
 * (vpshufb, tbl) do 16 lookups per 128-bit lane: a lane holds the table of
 * one group and its 16 bytes index it for 16 weight rows. So the layout
 * interleaves rows in tiles of TL_ROWS.
 *
 * Activations are I2_S's (kernels/i2s.h): per-token absmax int8, in I2_S
 * kernel order, with the same act_scale/act_sum trailer. Groups are formed
 * over the positions of the activation row in memory (not over the element
 * numbers): the repack moves each weight to the position its activation
 * occupies, so no kernel ever permutes activations.
 *
 * Numerics: table entries are sum(w * qa) over a group, w in {-1, 0, +1}
 * (code 3 reads as 0, as in every I2_S kernel). The kernels add the row's
 * own sum of qa, so sumi = sum(w * qa) + sum(qa) = sum(code * qa) is the
 * same integer as i2s_qk256.scalar's, and i2s_output() gives the same float
 * bits. Entries fit int16 (TL1: |e| <= 256, TL2: |e| <= 384); the SIMD
 * kernels look up their low and high bytes with two shuffles, sum them in
 * int16 (and int8 for the high bytes on AVX-512) and widen to int32 often
 * enough that no lane can wrap (the bound is stated at each kernel's period
 * constant).
 *
 * The engine contract: args->w must point at the start of a tile, i.e. at a
 * row that is a multiple of TL_ROWS into the repacked tensor (the engine's
 * pool splits rows in multiples of 16); a partial last tile is computed
 * whole (the repack padded it) but only n_rows outputs are written.
 *
 * Layout (one tile = TL_ROWS consecutive weight rows; tiles follow each
 * other; row_bytes = tile bytes / TL_ROWS):
 *
 *   TL1: group j = positions 2j, 2j+1; index = 3*(w0+1) + (w1+1), 0..8.
 *   TL2: group j = positions 3j..3j+2 (past k: zero weights); v = 9*w0 +
 *        3*w1 + w2 in [-13, 13], stored as |v| (0..13) and a sign bit.
 *
 * A tile is a run of chunks, one per TL_CHUNK_GROUPS (8) groups. A chunk's
 * first 64 bytes hold the indices (TL2: magnitudes): byte 16*L + i has row
 * i's index of group 8c+L in its low nibble and of group 8c+4+L in its high
 * nibble (L = 0..3). A TL2 chunk then has 16 sign bytes: two little-endian
 * uint64 masks, mask h having bit 16*L + i set when row i's v of group
 * 8c + 4*h + L is negative (h: 0 = low nibbles, 1 = high), so bit b of the
 * mask belongs to byte b of the index vector.
 *
 * Tables (per activation row, per chunk, TL_TAB_CHUNK bytes): the low bytes
 * of the 16 entries of groups 8c..8c+3 (64 bytes), their high bytes (64),
 * then the same for groups 8c+4..8c+7. So a 128/256/512-bit load of a table
 * meets the index vector of the same width lane for lane.
 */
#ifndef BITNET_KERNELS_TL_H
#define BITNET_KERNELS_TL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bitnet/kernels.h"
#include "kernels/i2s.h"

#define TL_ROWS         16  /* weight rows per tile (one byte lane each) */
#define TL_CHUNK_GROUPS 8   /* groups per chunk */
#define TL1_CHUNK_BYTES 64  /* 8 groups x 16 rows x 4 bits */
#define TL2_CHUNK_BYTES 80  /* the same plus 16 bytes of sign bits */
#define TL_TAB_CHUNK    256 /* table bytes per chunk and activation row */
/* Table bytes the driver keeps on the stack (no allocation in the hot
 * path): the whole of k for one activation row up to k = 8192 (TL1) or
 * 12288 (TL2); beyond that, k is taken in blocks. */
#define TL_TAB_STACK 262144
#define TL_MAX_ACT   4 /* activation rows per pass of the driver */

enum tl_kind { TL_KIND_1 = 1, TL_KIND_2 = 2 };

/* Groups, chunks and bytes of one tile for k elements (k % 128 == 0). */
static inline int64_t tl_groups(enum tl_kind kind, int64_t k)
{
    return kind == TL_KIND_1 ? k / 2 : (k + 2) / 3;
}

static inline int64_t tl_chunks(enum tl_kind kind, int64_t k)
{
    return (tl_groups(kind, k) + TL_CHUNK_GROUPS - 1) / TL_CHUNK_GROUPS;
}

static inline size_t tl_chunk_bytes(enum tl_kind kind)
{
    return kind == TL_KIND_1 ? TL1_CHUNK_BYTES : TL2_CHUNK_BYTES;
}

/* Bytes per row (a tile is TL_ROWS times this). */
static inline size_t tl_row_bytes(enum tl_kind kind, int64_t k)
{
    return (size_t)tl_chunks(kind, k) * tl_chunk_bytes(kind) / TL_ROWS;
}

/*
 * The repack (ops->repack of every tl kernel): n_rows I2_S rows of k
 * elements, row r at src + r*k/4, into a new buffer (*out, free()) of whole
 * tiles (the last one padded with zero weights), rows *out_row_bytes apart.
 * Returns 0, or -EINVAL (k not a positive multiple of 128, n_rows < 0, or a
 * size that overflows) or -ENOMEM, leaving *out untouched.
 */
int tl1_repack(const uint8_t *src, int64_t k, int64_t n_rows, uint8_t **out, size_t *out_row_bytes);
int tl2_repack(const uint8_t *src, int64_t k, int64_t n_rows, uint8_t **out, size_t *out_row_bytes);

/* Recovers the I2_S codes (0..2, element order) of row `row` of a repacked
 * tensor; a repacked code 3 comes back as 1. For tests. */
void tl_unpack_codes(enum tl_kind kind, const uint8_t *packed, int64_t k, int64_t row,
                     uint8_t *codes);

/*
 * The scalar lookup-table references: walk the repacked layout (args->w must
 * start on a tile, i.e. a row that is a multiple of TL_ROWS into the
 * repacked tensor, which the engine's 16-row split guarantees) with a
 * table per group built on the fly. Every SIMD tl kernel is checked against
 * these and against i2s_qk256.scalar.
 */
void tl1_scalar_matmul(const bitnet_matmul_args *args);
void tl2_scalar_matmul(const bitnet_matmul_args *args);

/* The signed value of TL2 magnitude m's positive representative, digit d
 * (0: w0, 1: w1, 2: w2). */
extern const int8_t tl2_digits[16][3];

/* ---- tables -------------------------------------------------------------- */

/* Sum of the k activation values of a row (the kernels' own act sum). */
static inline int32_t tl_act_values_sum(const int8_t *qa, int64_t k)
{
    int32_t s = 0;
    for (int64_t i = 0; i < k; i++)
        s += qa[i];
    return s;
}

/* 16 int16 and 16 uint8 lanes (GCC/Clang vector extensions: each file
 * compiles them to its own instruction set). */
typedef int16_t tl_v16i16 __attribute__((vector_size(32)));
typedef uint8_t tl_v16u8 __attribute__((vector_size(16)));

/* The weight digits of each table entry, per group position: TL1 index i
 * is (i / 3 - 1, i % 3 - 1) for i < 9; TL2 magnitude m as tl2_digits. The
 * unused entries are all-zero weights. */
static const tl_v16i16 tl_digit[2][3] = {
    {{-1, -1, -1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0},
     {-1, 0, 1, -1, 0, 1, -1, 0, 1, 0, 0, 0, 0, 0, 0, 0},
     {0}},
    {{0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0},
     {0, 0, 1, 1, 1, -1, -1, -1, 0, 0, 0, 1, 1, 1, 0, 0},
     {0, 1, -1, 0, 1, -1, 0, 1, -1, 0, 1, -1, 0, 1, 0, 0}},
};

/* The 16 entries of one group's table (a has 3 values; TL1 uses two).
 * Through a pointer: a returned 32-byte vector would change the ABI with
 * the instruction set. */
static inline void tl_group_entries(enum tl_kind kind, const int8_t *a, tl_v16i16 *e)
{
    const tl_v16i16 *d = tl_digit[kind == TL_KIND_1 ? 0 : 1];
    *e = d[0] * (int16_t)a[0] + d[1] * (int16_t)a[1] + d[2] * (int16_t)a[2];
}

/*
 * Writes the tables of chunks c0..c0+nc-1 of one activation row (values qa,
 * k of them) to tab, TL_TAB_CHUNK bytes per chunk. Activations past k (the
 * padding groups of TL2) count as zero.
 */
static inline void tl_build_tables(enum tl_kind kind, const int8_t *qa, int64_t k, int64_t c0,
                                   int64_t nc, uint8_t *tab)
{
    const int g_size = kind == TL_KIND_1 ? 2 : 3;
    for (int64_t c = 0; c < nc; c++) {
        uint8_t *t = tab + (size_t)c * TL_TAB_CHUNK;
        for (int g = 0; g < TL_CHUNK_GROUPS; g++) {
            int64_t pos = ((c0 + c) * TL_CHUNK_GROUPS + g) * g_size;
            int8_t a[3] = {0, 0, 0};
            if (pos + 3 <= k) {
                memcpy(a, qa + pos, 3); /* TL1 ignores the third */
            } else {
                for (int d = 0; d < g_size; d++)
                    a[d] = pos + d < k ? qa[pos + d] : 0;
            }
            tl_v16i16 e;
            tl_group_entries(kind, a, &e);
            tl_v16u8 lo = __builtin_convertvector(e, tl_v16u8);
            tl_v16u8 hi = __builtin_convertvector(e >> 8, tl_v16u8);
            uint8_t *dst = t + (g / 4) * 128 + (g % 4) * 16;
            memcpy(dst, &lo, 16);
            memcpy(dst + 64, &hi, 16);
        }
    }
}

/* ---- the driver ---------------------------------------------------------- */

/* Tiles a tile function takes at once. */
#define TL_MAX_TILES 4

/*
 * One tile function: the int32 sums of sum(w * qa) for the TL_ROWS rows of
 * each of nr tiles (w[r], already at the first chunk) and nt activation
 * rows, whose tables start at tab + t*tab_stride, over nc chunks.
 * out[r][t][i] is row i of tile r.
 */
typedef void (*tl_tile_fn)(const uint8_t *const w[TL_MAX_TILES], int nr, const uint8_t *tab,
                           size_t tab_stride, int nt, int64_t nc,
                           int32_t out[TL_MAX_TILES][TL_MAX_ACT][TL_ROWS]);

/* Adds a partial sum into y's slot (kept there as int32 bits between
 * k-blocks) and, on the last block, writes the output in its place. */
static inline void tl_emit(const bitnet_matmul_args *a, int64_t r, int t, int32_t part,
                           int32_t qsum, bool first, bool last)
{
    float *slot = &a->y[(size_t)t * (size_t)a->y_stride + (size_t)r];
    int32_t s = part;
    if (!first) {
        int32_t prev;
        memcpy(&prev, slot, sizeof(prev));
        s += prev;
    }
    if (last) {
        const uint8_t *act = a->act + (size_t)t * a->act_row_bytes;
        *slot = i2s_output(s + qsum, i2s_act_get_sum(act, a->k), i2s_act_get_scale(act, a->k),
                           a->w_scale);
    } else {
        memcpy(slot, &s, sizeof(s));
    }
}

/*
 * y = W x over the repacked layout: up to max_t activation rows per pass;
 * per pass, k in blocks whose tables fit TL_TAB_STACK bytes; per block,
 * every tile of rows. Weights stream once per pass (once per call for up to
 * max_t activation rows). args->w must start on a tile; rows past n_rows in
 * the last tile are computed (the repack padded them) but not written.
 */
static inline void tl_matmul_drive(const bitnet_matmul_args *a, enum tl_kind kind, int max_t,
                                   tl_tile_fn tile)
{
    if (a->n_act <= 0 || a->n_rows <= 0 || a->k <= 0)
        return;
    _Alignas(64) uint8_t tab[TL_TAB_STACK];
    const int64_t total = tl_chunks(kind, a->k);
    const size_t cb = tl_chunk_bytes(kind);
    const size_t tile_bytes = a->w_row_bytes * TL_ROWS;
    const int64_t n_tiles = a->n_rows / TL_ROWS + (a->n_rows % TL_ROWS != 0);
    /* Fewer activation rows per pass rather than k in blocks: a second pass
     * over the tiles for the rest of k measured slower than a second pass
     * over the weights for more activation rows. */
    const int64_t fit = TL_TAB_STACK / TL_TAB_CHUNK / total;
    if (max_t > fit)
        max_t = fit > 1 ? (int)fit : 1;
    for (int t0 = 0; t0 < a->n_act; t0 += max_t) {
        const int nt = a->n_act - t0 < max_t ? a->n_act - t0 : max_t;
        const int64_t block = TL_TAB_STACK / TL_TAB_CHUNK / nt;
        const size_t tab_stride = (size_t)block * TL_TAB_CHUNK;
        int32_t qsum[TL_MAX_ACT];
        for (int t = 0; t < nt; t++) {
            const int8_t *qa = (const int8_t *)(a->act + (size_t)(t0 + t) * a->act_row_bytes);
            qsum[t] = tl_act_values_sum(qa, a->k);
        }
        for (int64_t c0 = 0; c0 < total; c0 += block) {
            const int64_t nc = total - c0 < block ? total - c0 : block;
            for (int t = 0; t < nt; t++) {
                const int8_t *qa = (const int8_t *)(a->act + (size_t)(t0 + t) * a->act_row_bytes);
                tl_build_tables(kind, qa, a->k, c0, nc, tab + (size_t)t * tab_stride);
            }
            /* TL_MAX_TILES tiles at a time, one from each quarter of the
             * range: four long sequential streams keep more DRAM reads in
             * flight than one (one stream measured at 40% of the rate),
             * and each table load serves four tiles. The tiles past the
             * last whole quarter go one at a time. */
            const int64_t q = n_tiles / TL_MAX_TILES;
            for (int64_t i = 0; i < q + n_tiles % TL_MAX_TILES; i++) {
                int64_t ti[TL_MAX_TILES];
                const int nr = i < q ? TL_MAX_TILES : 1;
                for (int r = 0; r < nr; r++)
                    ti[r] = i < q ? i + r * q : TL_MAX_TILES * q + (i - q);
                const uint8_t *w[TL_MAX_TILES];
                for (int r = 0; r < nr; r++)
                    w[r] = a->w + (size_t)ti[r] * tile_bytes + (size_t)c0 * cb;
                int32_t out[TL_MAX_TILES][TL_MAX_ACT][TL_ROWS];
                tile(w, nr, tab, tab_stride, nt, nc, out);
                for (int r = 0; r < nr; r++) {
                    int64_t r0 = ti[r] * TL_ROWS;
                    int64_t rows = a->n_rows - r0 < TL_ROWS ? a->n_rows - r0 : TL_ROWS;
                    for (int t = 0; t < nt; t++)
                        for (int64_t j = 0; j < rows; j++)
                            tl_emit(a, r0 + j, t0 + t, out[r][t][j], qsum[t], c0 == 0,
                                    c0 + nc == total);
                }
            }
        }
    }
}

#endif
