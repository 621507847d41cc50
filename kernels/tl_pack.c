/*
 * kernels/tl_pack.c - the TL1/TL2 repack from I2_S, its inverse for tests,
 * and the scalar lookup-table references (kernels/tl.h has the layout).
 *
 * Not compiled with any instruction-set flags: every tl kernel's ops->repack
 * points here, and the references run on any CPU.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/tl.h"

/* TL2 magnitudes 0..13: the balanced-ternary digits (w0, w1, w2) with
 * 9*w0 + 3*w1 + w2 = m; 14 and 15 are never written and read as zero. */
const int8_t tl2_digits[16][3] = {
    {0, 0, 0},  {0, 0, 1}, {0, 1, -1}, {0, 1, 0},  {0, 1, 1}, {1, -1, -1}, {1, -1, 0}, {1, -1, 1},
    {1, 0, -1}, {1, 0, 0}, {1, 0, 1},  {1, 1, -1}, {1, 1, 0}, {1, 1, 1},   {0, 0, 0},  {0, 0, 0},
};

/* Where element e of a row sits in the activation row, for every e. */
static uint32_t *positions_new(int64_t k)
{
    uint32_t *pos = malloc((size_t)k * sizeof(*pos));
    if (pos)
        for (int64_t e = 0; e < k; e++)
            pos[e] = (uint32_t)i2s_act_pos(k, e);
    return pos;
}

/* Writes one group's index (TL1) or magnitude and sign (TL2) for tile row i
 * into the tile at tile. */
static void put_group(enum tl_kind kind, uint8_t *tile, int64_t j, int i, unsigned nib, bool neg)
{
    const size_t cb = tl_chunk_bytes(kind);
    int64_t c = j / TL_CHUNK_GROUPS;
    int gg = (int)(j % TL_CHUNK_GROUPS), L = gg % 4, h = gg / 4;
    uint8_t *chunk = tile + (size_t)c * cb;
    chunk[16 * L + i] |= (uint8_t)(nib << (4 * h));
    if (neg)
        chunk[64 + 8 * h + 2 * L + i / 8] |= (uint8_t)(1u << (i % 8));
}

static int tl_repack(enum tl_kind kind, const uint8_t *src, int64_t k, int64_t n_rows,
                     uint8_t **out, size_t *out_row_bytes)
{
    if (!src || !out || !out_row_bytes || k <= 0 || k % I2S_BLOCK != 0 || n_rows < 0 ||
        k > (int64_t)UINT32_MAX)
        return -EINVAL;
    const size_t rb = tl_row_bytes(kind, k);
    const int64_t n_tiles = n_rows / TL_ROWS + (n_rows % TL_ROWS != 0); /* no overflow */
    size_t bytes;
    if (__builtin_mul_overflow(rb * TL_ROWS, (size_t)n_tiles, &bytes))
        return -EINVAL;
    uint8_t *buf = calloc(bytes ? bytes : 1, 1);
    uint32_t *pos = positions_new(k);
    uint8_t *code = malloc((size_t)k + 2); /* codes by activation position */
    if (!buf || !pos || !code) {
        free(buf);
        free(pos);
        free(code);
        return -ENOMEM;
    }
    const int64_t groups = tl_groups(kind, k);
    /* Rows past n_rows in the last tile get zero weights (code 1). */
    for (int64_t r = 0; r < n_tiles * TL_ROWS; r++) {
        const uint8_t *row = src + (size_t)r * ((size_t)k / 4);
        if (r < n_rows) {
            for (int64_t e = 0; e < k; e++) {
                unsigned c = i2s_code_at(row, (size_t)e);
                code[pos[e]] = (uint8_t)(c == 3 ? 1 : c);
            }
        } else {
            memset(code, 1, (size_t)k);
        }
        code[k] = code[k + 1] = 1; /* TL2 padding: zero weights */
        uint8_t *tile = buf + (size_t)(r / TL_ROWS) * rb * TL_ROWS;
        int i = (int)(r % TL_ROWS);
        for (int64_t j = 0; j < groups; j++) {
            if (kind == TL_KIND_1) {
                put_group(kind, tile, j, i, 3u * code[2 * j] + code[2 * j + 1], false);
            } else {
                int v = 9 * (code[3 * j] - 1) + 3 * (code[3 * j + 1] - 1) + (code[3 * j + 2] - 1);
                put_group(kind, tile, j, i, (unsigned)(v < 0 ? -v : v), v < 0);
            }
        }
    }
    free(pos);
    free(code);
    *out = buf;
    *out_row_bytes = rb;
    return 0;
}

int tl1_repack(const uint8_t *src, int64_t k, int64_t n_rows, uint8_t **out, size_t *out_row_bytes)
{
    return tl_repack(TL_KIND_1, src, k, n_rows, out, out_row_bytes);
}

int tl2_repack(const uint8_t *src, int64_t k, int64_t n_rows, uint8_t **out, size_t *out_row_bytes)
{
    return tl_repack(TL_KIND_2, src, k, n_rows, out, out_row_bytes);
}

/* Row i's nibble and sign of group j in the tile at tile. */
static unsigned get_group(enum tl_kind kind, const uint8_t *tile, int64_t j, int i, bool *neg)
{
    const size_t cb = tl_chunk_bytes(kind);
    int64_t c = j / TL_CHUNK_GROUPS;
    int gg = (int)(j % TL_CHUNK_GROUPS), L = gg % 4, h = gg / 4;
    const uint8_t *chunk = tile + (size_t)c * cb;
    *neg = kind == TL_KIND_2 && (chunk[64 + 8 * h + 2 * L + i / 8] >> (i % 8) & 1u);
    return (unsigned)(chunk[16 * L + i] >> (4 * h)) & 15u;
}

void tl_unpack_codes(enum tl_kind kind, const uint8_t *packed, int64_t k, int64_t row,
                     uint8_t *codes)
{
    const size_t rb = tl_row_bytes(kind, k);
    const uint8_t *tile = packed + (size_t)(row / TL_ROWS) * rb * TL_ROWS;
    int i = (int)(row % TL_ROWS);
    for (int64_t e = 0; e < k; e++) {
        int64_t m = (int64_t)i2s_act_pos(k, e);
        bool neg;
        int w;
        if (kind == TL_KIND_1) {
            unsigned idx = get_group(kind, tile, m / 2, i, &neg);
            w = m % 2 ? (int)(idx % 3) - 1 : (int)(idx / 3) - 1;
        } else {
            unsigned mag = get_group(kind, tile, m / 3, i, &neg);
            w = tl2_digits[mag][m % 3] * (neg ? -1 : 1);
        }
        codes[e] = (uint8_t)(w + 1);
    }
}

/* The reference: per tile, activation row and group, the 16 table entries
 * are built and looked up by each of the TL_ROWS rows. */
static void tl_scalar_matmul(const bitnet_matmul_args *a, enum tl_kind kind)
{
    if (a->n_act <= 0 || a->n_rows <= 0 || a->k <= 0)
        return;
    const int64_t k = a->k, groups = tl_groups(kind, k);
    const int g_size = kind == TL_KIND_1 ? 2 : 3;
    const size_t tile_bytes = a->w_row_bytes * TL_ROWS;
    for (int64_t ti = 0; ti * TL_ROWS < a->n_rows; ti++) {
        const uint8_t *tile = a->w + (size_t)ti * tile_bytes;
        int64_t rows = a->n_rows - ti * TL_ROWS < TL_ROWS ? a->n_rows - ti * TL_ROWS : TL_ROWS;
        for (int t = 0; t < a->n_act; t++) {
            const int8_t *qa = (const int8_t *)(a->act + (size_t)t * a->act_row_bytes);
            int32_t sum[TL_ROWS] = {0};
            for (int64_t j = 0; j < groups; j++) {
                int8_t v[3] = {0, 0, 0};
                for (int d = 0; d < g_size; d++)
                    v[d] = j * g_size + d < k ? qa[j * g_size + d] : 0;
                int16_t e[16];
                tl_v16i16 ev;
                tl_group_entries(kind, v, &ev);
                memcpy(e, &ev, sizeof(e));
                for (int i = 0; i < TL_ROWS; i++) {
                    bool neg;
                    unsigned idx = get_group(kind, tile, j, i, &neg);
                    sum[i] += neg ? -e[idx] : e[idx];
                }
            }
            int32_t qsum = tl_act_values_sum(qa, k);
            for (int64_t i = 0; i < rows; i++)
                tl_emit(a, ti * TL_ROWS + i, t, sum[i], qsum, true, true);
        }
    }
}

void tl1_scalar_matmul(const bitnet_matmul_args *args)
{
    tl_scalar_matmul(args, TL_KIND_1);
}

void tl2_scalar_matmul(const bitnet_matmul_args *args)
{
    tl_scalar_matmul(args, TL_KIND_2);
}
