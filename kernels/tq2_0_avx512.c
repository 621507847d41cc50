/*
 * kernels/tq2_0_avx512.c - TQ2_0 x Q8_K with AVX-512BW, VPDPBUSD where the
 * CPU has AVX512-VNNI.
 *
 * One 64-byte vector holds a block's 256 2-bit codes. Shifting it right by
 * 2l and masking gives codes 0..2 for elements 32l..32l+31 (low half) and
 * 128+32l..128+32l+31 (high half); the activations are loaded in that order,
 * once per block, and shared by every weight row of a tile. Unsigned codes
 * times signed activations (VPDPBUSD, or VPMADDUBSW + VPMADDWD without VNNI)
 * give sum(code * qa); the accumulator starts at -bsums, which turns it into
 * sum((code - 1) * qa). Integer sums are exact; the block sums are folded
 * into 8 int32 lanes, scaled and added in 8 float lanes, then reduced, so
 * the float result differs from the scalar kernel's by summation order only
 * (docs/kernels-tq.md), and is the same on every path of this kernel and in
 * the AVX2 kernel.
 *
 * Where the CPU has GFNI (and VNNI), one VGF2P8AFFINEQB per code vector
 * replaces the shift and the mask: the affine map picks bits 2l and 2l+1 of
 * every byte and moves them to bits 0 and 1. That takes three of the eleven
 * vector operations a block costs per row, and one thread then decodes about
 * 15% faster (decode on one thread is bound by these operations, not by
 * memory; docs/kernels-tq.md).
 *
 * Decode (one activation row), and batches on CPUs without VNNI, run in
 * tiles of R weight rows x T activation rows. The R rows of a tile come from
 * R separate stretches of the row range, not from neighbouring rows: each
 * stretch is then one sequential stream for the hardware prefetcher.
 * Neighbouring rows interleaved block by block (66 bytes apart within a few
 * kilobytes) defeat it, and decode ran at a third of the memory bandwidth
 * that way. Batches with VNNI take a 256-bit path, rows_acts() below.
 */
#include <immintrin.h>
#include <stdbool.h>

#include "kernels/tq.h"

#define MAX_R 4 /* weight rows per tile */
#define MAX_T 4 /* activation rows per tile (batches without VNNI) */

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* The four activation vectors that pair with a block's shifted codes. */
static ALWAYS_INLINE void load_act(const uint8_t *ab, __m512i a[4])
{
    const uint8_t *qa = ab + TQ_Q8K_QS;
    for (int l = 0; l < 4; l++) {
        __m256i lo = _mm256_loadu_si256((const __m256i *)(qa + 32 * l));
        __m256i hi = _mm256_loadu_si256((const __m256i *)(qa + 128 + 32 * l));
        a[l] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    }
}

/* -(bsums[2i] + bsums[2i + 1]) in int32 lane i < 8: lanes that sum to
 * -(sum of the block's qa), spread as rows_acts() spreads them. */
static ALWAYS_INLINE __m256i neg_bsums(const uint8_t *ab)
{
    __m256i bs = _mm256_loadu_si256((const __m256i *)(ab + TQ_Q8K_BSUMS));
    return _mm256_madd_epi16(bs, _mm256_set1_epi16(-1));
}

/* The sum of 8 float lanes. */
static ALWAYS_INLINE float hsum8(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

/* How a tile decodes and multiplies: VPDPBUSD with the codes extracted by
 * GFNI affine maps, VPDPBUSD with shifts and masks, or neither (AVX-512BW). */
enum path { PATH_GFNI, PATH_VNNI, PATH_PLAIN, PATH_COUNT };

/* The affine map of VGF2P8AFFINEQB that moves bits 2l, 2l+1 of each byte
 * to bits 0, 1 and clears the rest: row i of the bit matrix (byte 7 - i of
 * the qword) selects the source bit of result bit i. */
static ALWAYS_INLINE __m512i gfni_matrix(int l)
{
    const uint64_t bit0 = (uint64_t)(1u << (2 * l)) << 56;
    const uint64_t bit1 = (uint64_t)(1u << (2 * l + 1)) << 48;
    return _mm512_set1_epi64((long long)(bit0 | bit1));
}

/* VGF2P8AFFINEQB x, matrix, 0. Written as assembly so that this file needs
 * no -mgfni: the compiler could otherwise use GFNI anywhere in it, and the
 * non-GFNI paths must run on CPUs without it. */
static ALWAYS_INLINE __m512i gfni_affine(__m512i x, __m512i matrix)
{
    __m512i r;
    __asm__("vgf2p8affineqb $0, %2, %1, %0" : "=v"(r) : "v"(x), "v"(matrix));
    return r;
}

/* The codes 0..3 of one block, c[l] pairing with activation vector l. */
static ALWAYS_INLINE void decode(const uint8_t *wb, __m512i c[4], const enum path p)
{
    const __m512i m3 = _mm512_set1_epi8(3);
    const __m512i w = _mm512_loadu_si512((const void *)(wb + TQ2_0_QS));
    c[0] = _mm512_and_si512(w, m3);
    if (p == PATH_GFNI) {
        for (int l = 1; l < 4; l++)
            c[l] = gfni_affine(w, gfni_matrix(l));
        return;
    }
    c[1] = _mm512_and_si512(_mm512_srli_epi16(w, 2), m3);
    c[2] = _mm512_and_si512(_mm512_srli_epi16(w, 4), m3);
    c[3] = _mm512_and_si512(_mm512_srli_epi16(w, 6), m3);
}

/* acc + sum(code * qa) of one block, in 16 int32 lanes. */
static ALWAYS_INLINE __m512i block_dot(const __m512i c[4], const __m512i a[4], __m512i acc,
                                       const enum path p)
{
    if (p != PATH_PLAIN) {
        /* One dependency chain: the rows and activation rows of a tile
         * give the out-of-order core enough independent chains. */
        for (int l = 0; l < 4; l++)
            acc = _mm512_dpbusd_epi32(acc, c[l], a[l]);
        return acc;
    }
    /* Four products of at most 3 * 128 * 2 per 16-bit lane: no overflow. */
    __m512i s01 =
        _mm512_add_epi16(_mm512_maddubs_epi16(c[0], a[0]), _mm512_maddubs_epi16(c[1], a[1]));
    __m512i s23 =
        _mm512_add_epi16(_mm512_maddubs_epi16(c[2], a[2]), _mm512_maddubs_epi16(c[3], a[3]));
    __m512i s = _mm512_madd_epi16(_mm512_add_epi16(s01, s23), _mm512_set1_epi16(1));
    return _mm512_add_epi32(acc, s);
}

/*
 * The hot loop: weight rows r0, r0 + rs, ..., r0 + (R - 1) * rs against
 * activation rows t0..t0+T-1 over the whole of k. R, T and p are
 * compile-time constants at every call site, so the loops unroll and the
 * accumulators live in registers.
 *
 * The 16 int32 lanes of a block's sum are folded into 8 (lane i + lane
 * i + 8: the same elements that lane i of rows_acts() holds, so the same
 * integer) before they are scaled and added in 8 float lanes. Every path of
 * this kernel thus rounds in the same order, and a sequence decoded alone
 * (this tile) gets bit for bit the logits it gets inside a batch
 * (rows_acts()); the engine's tests rely on that.
 */
static ALWAYS_INLINE void tile(const bitnet_matmul_args *a, int64_t r0, int64_t rs, int t0,
                               const int R, const int T, const enum path p)
{
    const int64_t nb = a->k / TQ_QK;
    const uint8_t *w[MAX_R];
    const uint8_t *act[MAX_T];
    __m256 acc[MAX_R][MAX_T];
    for (int r = 0; r < R; r++)
        w[r] = a->w + (size_t)(r0 + r * rs) * a->w_row_bytes;
    for (int t = 0; t < T; t++)
        act[t] = a->act + (size_t)(t0 + t) * a->act_row_bytes;
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            acc[r][t] = _mm256_setzero_ps();

    for (int64_t b = 0; b < nb; b++) {
        __m512i c[MAX_R][4];
        float dw[MAX_R];
        if (T > 1) {
            /* Decoded once, used by every activation row. */
            for (int r = 0; r < R; r++) {
                decode(w[r] + (size_t)b * TQ2_0_BYTES, c[r], p);
                dw[r] = _cvtsh_ss(tq_load_u16(w[r] + (size_t)b * TQ2_0_BYTES + TQ2_0_D));
            }
        }
        for (int t = 0; t < T; t++) {
            const uint8_t *ab = act[t] + (size_t)b * TQ_Q8K_BYTES;
            __m512i av[4];
            load_act(ab, av);
            const __m512i nbs = _mm512_zextsi256_si512(neg_bsums(ab));
            const float da = tq_load_f32(ab + TQ_Q8K_D);
            for (int r = 0; r < R; r++) {
                if (T == 1) {
                    decode(w[r] + (size_t)b * TQ2_0_BYTES, c[r], p);
                    dw[r] = _cvtsh_ss(tq_load_u16(w[r] + (size_t)b * TQ2_0_BYTES + TQ2_0_D));
                }
                __m512i s = block_dot(c[r], av, nbs, p);
                const __m256i s8 =
                    _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
                acc[r][t] =
                    _mm256_fmadd_ps(_mm256_cvtepi32_ps(s8), _mm256_set1_ps(da * dw[r]), acc[r][t]);
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            a->y[(size_t)(t0 + t) * (size_t)a->y_stride + (size_t)(r0 + r * rs)] =
                hsum8(acc[r][t]) * a->w_scale;
}

typedef void (*tile_fn)(const bitnet_matmul_args *a, int64_t r0, int64_t rs, int t0);

/* One function per (R, T, path) the dispatcher uses. */
#define TILE_FN(R, T, P)                                                                           \
    static void tile_##R##_##T##_##P(const bitnet_matmul_args *a, int64_t r0, int64_t rs, int t0)  \
    {                                                                                              \
        tile(a, r0, rs, t0, R, T, P);                                                              \
    }
/* Decode (one activation row) on every path; batches on the path without
 * VNNI (with VNNI they take rows_acts() below). With T > 1 the decoded
 * codes of every row stay in registers (4 each) beside R * T accumulators. */
TILE_FN(4, 1, PATH_GFNI)
TILE_FN(1, 1, PATH_GFNI)
TILE_FN(4, 1, PATH_VNNI)
TILE_FN(1, 1, PATH_VNNI)
TILE_FN(4, 1, PATH_PLAIN)
TILE_FN(1, 1, PATH_PLAIN)
TILE_FN(2, 2, PATH_PLAIN)
TILE_FN(1, 2, PATH_PLAIN)
TILE_FN(2, 3, PATH_PLAIN)
TILE_FN(1, 3, PATH_PLAIN)
TILE_FN(2, 4, PATH_PLAIN)
TILE_FN(1, 4, PATH_PLAIN)

struct tile_set {
    int rows;     /* weight rows of the wide tile */
    tile_fn wide; /* that many rows */
    tile_fn one;  /* one row, for the remainder */
};

#define SET(R, T, P)                                                                               \
    {                                                                                              \
        R, tile_##R##_##T##_##P, tile_1_##T##_##P                                                  \
    }

/* Decode, by path; batches without VNNI, by T - 1. */
static const struct tile_set tiles_decode[PATH_COUNT] = {SET(4, 1, PATH_GFNI), SET(4, 1, PATH_VNNI),
                                                         SET(4, 1, PATH_PLAIN)};
static const struct tile_set tiles_plain[MAX_T] = {SET(4, 1, PATH_PLAIN), SET(2, 2, PATH_PLAIN),
                                                   SET(2, 3, PATH_PLAIN), SET(2, 4, PATH_PLAIN)};

#define ACTS_Y 8 /* activation rows per pass of rows_acts() */

/*
 * Batches with VNNI (prefill, several sequences): weight row r against
 * activation rows t0..t0+T-1, in 256-bit registers. A block decodes once
 * into eight vectors of codes, each paired with 32 consecutive activations
 * that VPDPBUSD reads straight from memory: no shuffles to put activations
 * in the order of a 512-bit code vector, and on CPUs that split 512-bit
 * operations in two (Zen 4) the multiplies cost the same. The sums start at
 * -bsums (pairs added by VPMADDWD), as in the 512-bit tiles, and every
 * lane holds what lane i + lane i + 8 of a 512-bit tile holds.
 */
static ALWAYS_INLINE void rows_acts(const bitnet_matmul_args *a, int64_t r, int t0, const int T)
{
    const __m256i m3 = _mm256_set1_epi8(3);
    const int64_t nb = a->k / TQ_QK;
    const uint8_t *w = a->w + (size_t)r * a->w_row_bytes;
    const uint8_t *act = a->act + (size_t)t0 * a->act_row_bytes;
    __m256 acc[ACTS_Y];
    for (int t = 0; t < T; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *wb = w + (size_t)b * TQ2_0_BYTES;
        __m256i c[8]; /* c[4h + l] pairs with elements 128h + 32l.. */
        for (int h = 0; h < 2; h++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(wb + TQ2_0_QS + 32 * h));
            c[4 * h + 0] = _mm256_and_si256(q, m3);
            c[4 * h + 1] = _mm256_and_si256(_mm256_srli_epi16(q, 2), m3);
            c[4 * h + 2] = _mm256_and_si256(_mm256_srli_epi16(q, 4), m3);
            c[4 * h + 3] = _mm256_and_si256(_mm256_srli_epi16(q, 6), m3);
        }
        const float dw = _cvtsh_ss(tq_load_u16(wb + TQ2_0_D));
        for (int t = 0; t < T; t++) {
            const uint8_t *ab = act + (size_t)t * a->act_row_bytes + (size_t)b * TQ_Q8K_BYTES;
            const uint8_t *qa = ab + TQ_Q8K_QS;
            __m256i s = neg_bsums(ab);
            for (int j = 0; j < 8; j++)
                s = _mm256_dpbusd_epi32(s, c[j],
                                        _mm256_loadu_si256((const __m256i *)(qa + 32 * j)));
            const float d = tq_load_f32(ab + TQ_Q8K_D) * dw;
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d), acc[t]);
        }
    }
    for (int t = 0; t < T; t++)
        a->y[(size_t)(t0 + t) * (size_t)a->y_stride + (size_t)r] = hsum8(acc[t]) * a->w_scale;
}

/* rows_acts() with a constant activation count, for the registers. */
static void rows_acts_any(const bitnet_matmul_args *a, int64_t r, int t0)
{
    switch (a->n_act - t0 < ACTS_Y ? a->n_act - t0 : ACTS_Y) {
    case 1:
        rows_acts(a, r, t0, 1);
        break;
    case 2:
        rows_acts(a, r, t0, 2);
        break;
    case 3:
        rows_acts(a, r, t0, 3);
        break;
    case 4:
        rows_acts(a, r, t0, 4);
        break;
    case 5:
        rows_acts(a, r, t0, 5);
        break;
    case 6:
        rows_acts(a, r, t0, 6);
        break;
    case 7:
        rows_acts(a, r, t0, 7);
        break;
    default:
        rows_acts(a, r, t0, ACTS_Y);
        break;
    }
}

/* TQ_ROW_GROUP weight rows per pass over the activation groups: a group's
 * activation rows (8 x 292 bytes per block) stay in L1 across the rows, and
 * the rows' weights in L2 across the groups. Row by row, a long prompt's
 * activations (1.5 MB for 512 tokens of 2560) came from L3 again for every
 * weight row. */
static void batch_vnni(const bitnet_matmul_args *a)
{
    for (int64_t g = 0; g < a->n_rows; g += TQ_ROW_GROUP) {
        const int64_t g_end = g + TQ_ROW_GROUP < a->n_rows ? g + TQ_ROW_GROUP : a->n_rows;
        for (int t0 = 0; t0 < a->n_act; t0 += ACTS_Y) {
            for (int64_t r = g; r < g_end; r++)
                rows_acts_any(a, r, t0);
        }
    }
}

static void matmul(const bitnet_matmul_args *a, enum path p)
{
    if (a->n_act <= 0 || a->n_rows <= 0)
        return;
    if (a->n_act > 1 && p != PATH_PLAIN) {
        batch_vnni(a);
        return;
    }
    /* Up to MAX_T activation rows at a time; the rest of a batch takes the
     * same weight rows again while they are still in L1. */
    const struct tile_set *ts =
        a->n_act == 1 ? &tiles_decode[p] : &tiles_plain[(a->n_act < MAX_T ? a->n_act : MAX_T) - 1];
    const int last_nt = a->n_act % MAX_T;
    const struct tile_set *ts_last = last_nt && a->n_act > MAX_T ? &tiles_plain[last_nt - 1] : ts;
    const int64_t q = a->n_rows / ts->rows; /* rows per stretch */
    for (int64_t r = 0; r < q; r++) {
        for (int t0 = 0; t0 < a->n_act; t0 += MAX_T) {
            if (a->n_act - t0 >= MAX_T || a->n_act < MAX_T) {
                ts->wide(a, r, q, t0);
            } else if (ts_last->rows == ts->rows) {
                ts_last->wide(a, r, q, t0);
            } else {
                for (int i = 0; i < ts->rows; i++)
                    ts_last->one(a, r + i * q, 0, t0);
            }
        }
    }
    for (int64_t r = q * ts->rows; r < a->n_rows; r++)
        for (int t0 = 0; t0 < a->n_act; t0 += MAX_T)
            (a->n_act - t0 >= MAX_T || a->n_act < MAX_T ? ts : ts_last)->one(a, r, 0, t0);
}

void tq2_0_avx512_matmul_nogfni(const bitnet_matmul_args *a)
{
    matmul(a, PATH_VNNI);
}

void tq2_0_avx512_matmul_novnni(const bitnet_matmul_args *a)
{
    matmul(a, PATH_PLAIN);
}

/* The AVX-512 kernel only runs where the OS saves the zmm state, which GFNI
 * on zmm registers needs too. */
static void tq2_0_avx512_matmul(const bitnet_matmul_args *a)
{
    const bitnet_cpu_features *cpu = bitnet_cpu_features_get();
    if (!cpu->avx512_vnni)
        matmul(a, PATH_PLAIN);
    else if (cpu->gfni)
        matmul(a, PATH_GFNI);
    else
        matmul(a, PATH_VNNI);
}

const bitnet_kernel_ops bitnet_kernel_tq2_0_avx512 = {
    .act_row_bytes = tq_act_row_bytes,
    .quantize_act = tq_quantize_q8k,
    .matmul = tq2_0_avx512_matmul,
};
