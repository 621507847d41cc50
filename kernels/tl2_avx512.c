/*
 * kernels/tl2_avx512.c - the AVX-512 TL2 kernel (tl2.avx512).
 *
 * Triples of weights: 27 combinations, stored as a 4-bit magnitude |v| and
 * a sign bit (kernels/tl.h), 5 bits per 3 weights instead of I2_S's 6, so a
 * tile streams 1/6 fewer bytes. The magnitude indexes a 14-entry table with
 * vpshufb exactly as in TL1. The sign bits come as 64-bit masks, one bit
 * per byte of the index vector: a negative entry's low byte is picked with
 * -1 instead of 1 by vpmaddubsw and its high byte is subtracted (masked
 * vpsubb), so the sums stay exact without ever forming the int16 entry.
 */
#include <immintrin.h>

#include "kernels/tl.h"

/* Chunks between widenings. Per chunk each accumulator lane takes two
 * signed table low bytes (-255..255) and the int8 high-byte lanes two
 * signed high bytes (-2..2, entries being -384..384): after 16 chunks the
 * low sums are at most 8160, the high sums at most 64 in magnitude, and
 * low + 256 * high still fits int16. */
#define TL2_WIDEN 16

#define ALWAYS_INLINE inline __attribute__((always_inline))

extern const bitnet_kernel_ops bitnet_kernel_i2s_qk256_avx512;

/* int16 lanes (4 lanes x 8 rows) widened and folded to 16 int32 lanes. */
static ALWAYS_INLINE __m512i widen(__m512i a16)
{
    return _mm512_add_epi32(_mm512_cvtepi16_epi32(_mm512_castsi512_si256(a16)),
                            _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(a16, 1)));
}

/*
 * Folds one period's sums into the int32 accumulators: even rows are the
 * low sums of even bytes (lo_even) plus 256 times the even high-byte sums,
 * odd rows likewise.
 */
static ALWAYS_INLINE void fold(__m512i s32[2], __m512i lo_even, __m512i lo_odd, __m512i hi8)
{
    __m512i hi_even = _mm512_srai_epi16(_mm512_slli_epi16(hi8, 8), 8);
    __m512i hi_odd = _mm512_srai_epi16(hi8, 8);
    s32[0] =
        _mm512_add_epi32(s32[0], widen(_mm512_add_epi16(lo_even, _mm512_slli_epi16(hi_even, 8))));
    s32[1] =
        _mm512_add_epi32(s32[1], widen(_mm512_add_epi16(lo_odd, _mm512_slli_epi16(hi_odd, 8))));
}

/* Row sums from the two int32 accumulators (even rows, odd rows; each
 * holding its 8 rows twice, for even and odd lanes). */
static ALWAYS_INLINE void store_rows(int32_t *dst, const __m512i s32[2])
{
    int32_t v[2][8];
    for (int p = 0; p < 2; p++)
        _mm256_storeu_si256(
            (__m256i *)v[p],
            _mm256_add_epi32(_mm512_castsi512_si256(s32[p]), _mm512_extracti64x4_epi64(s32[p], 1)));
    for (int j = 0; j < 8; j++) {
        dst[2 * j] = v[0][j];
        dst[2 * j + 1] = v[1][j];
    }
}

/*
 * The hot loop, for R tiles and T activation rows (compile-time constants
 * at each call site, so the accumulators stay in registers). Per lookup:
 * two vpshufb (table low and high bytes), two vpmaddubsw that pick the low
 * bytes of even and odd rows into int16 lanes, and one byte add of the high
 * bytes; joining low and high bytes waits for the period's end. That keeps
 * two of five instructions on the shuffle ports, against four of six when
 * every lookup is joined with vpunpck{l,h}bw. The table loads serve all R
 * tiles.
 */
static ALWAYS_INLINE void tile(const uint8_t *const w[TL_MAX_TILES], const uint8_t *tab,
                               size_t tab_stride, int64_t nc, int32_t (*out)[TL_MAX_ACT][TL_ROWS],
                               const int R, const int T)
{
    const __m512i m0f = _mm512_set1_epi8(0x0f);
    const __m512i pick_even = _mm512_set1_epi16(0x0001);
    const __m512i pick_odd = _mm512_set1_epi16(0x0100);
    const __m512i zero = _mm512_setzero_si512();
    __m512i s32[TL_MAX_TILES][TL_MAX_ACT][2];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            s32[r][t][0] = s32[r][t][1] = _mm512_setzero_si512();
    for (int64_t c0 = 0; c0 < nc; c0 += TL2_WIDEN) {
        const int64_t c1 = nc - c0 < TL2_WIDEN ? nc : c0 + TL2_WIDEN;
        __m512i le[TL_MAX_TILES][TL_MAX_ACT], lo_[TL_MAX_TILES][TL_MAX_ACT];
        __m512i h8[TL_MAX_TILES][TL_MAX_ACT];
        for (int r = 0; r < R; r++)
            for (int t = 0; t < T; t++)
                le[r][t] = lo_[r][t] = h8[r][t] = _mm512_setzero_si512();
        for (int64_t c = c0; c < c1; c++) {
            __m512i idx[TL_MAX_TILES][2];
            for (int r = 0; r < R; r++) {
                __m512i wv = _mm512_loadu_si512((const void *)(w[r] + (size_t)c * TL2_CHUNK_BYTES));
                idx[r][0] = _mm512_and_si512(wv, m0f);
                idx[r][1] = _mm512_and_si512(_mm512_srli_epi16(wv, 4), m0f);
            }
            /* Negative entries: their low bytes are picked with -1 instead
             * of 1 and their high bytes subtracted. */
            __mmask64 sgn[TL_MAX_TILES][2];
            for (int r = 0; r < R; r++) {
                for (int h = 0; h < 2; h++) {
                    uint64_t m;
                    memcpy(&m, w[r] + (size_t)c * TL2_CHUNK_BYTES + 64 + 8 * h, sizeof(m));
                    sgn[r][h] = _cvtu64_mask64(m);
                }
            }
            for (int t = 0; t < T; t++) {
                const uint8_t *tb = tab + (size_t)t * tab_stride + (size_t)c * TL_TAB_CHUNK;
                for (int h = 0; h < 2; h++) {
                    __m512i tlo = _mm512_load_si512((const void *)(tb + 128 * h));
                    __m512i thi = _mm512_load_si512((const void *)(tb + 128 * h + 64));
                    for (int r = 0; r < R; r++) {
                        __m512i lo = _mm512_shuffle_epi8(tlo, idx[r][h]);
                        __m512i hi = _mm512_shuffle_epi8(thi, idx[r][h]);
                        __mmask64 neg = sgn[r][h];
                        __m512i pe = _mm512_mask_sub_epi8(pick_even, neg, zero, pick_even);
                        __m512i po = _mm512_mask_sub_epi8(pick_odd, neg, zero, pick_odd);
                        hi = _mm512_mask_sub_epi8(hi, neg, zero, hi);
                        le[r][t] = _mm512_add_epi16(le[r][t], _mm512_maddubs_epi16(lo, pe));
                        lo_[r][t] = _mm512_add_epi16(lo_[r][t], _mm512_maddubs_epi16(lo, po));
                        h8[r][t] = _mm512_add_epi8(h8[r][t], hi);
                    }
                }
            }
        }
        for (int r = 0; r < R; r++)
            for (int t = 0; t < T; t++)
                fold(s32[r][t], le[r][t], lo_[r][t], h8[r][t]);
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            store_rows(out[r][t], s32[r][t]);
}

/* Four tiles together for one activation row, two and two for two rows
 * (what the 32 zmm registers hold), else one tile at a time. */
static void tile_any(const uint8_t *const w[TL_MAX_TILES], int nr, const uint8_t *tab,
                     size_t tab_stride, int nt, int64_t nc,
                     int32_t out[TL_MAX_TILES][TL_MAX_ACT][TL_ROWS])
{
    if (nr == 4 && nt == 1) {
        tile(w, tab, tab_stride, nc, out, 4, 1);
        return;
    }
    if (nr == 4 && nt == 2) {
        const uint8_t *const w2[TL_MAX_TILES] = {w[2], w[3], NULL, NULL};
        tile(w, tab, tab_stride, nc, out, 2, 2);
        tile(w2, tab, tab_stride, nc, &out[2], 2, 2);
        return;
    }
    for (int r = 0; r < nr; r++) {
        const uint8_t *const one[TL_MAX_TILES] = {w[r], NULL, NULL, NULL};
        int32_t(*o)[TL_MAX_ACT][TL_ROWS] = &out[r];
        switch (nt) {
        case 1:
            tile(one, tab, tab_stride, nc, o, 1, 1);
            break;
        case 2:
            tile(one, tab, tab_stride, nc, o, 1, 2);
            break;
        case 3:
            tile(one, tab, tab_stride, nc, o, 1, 3);
            break;
        default:
            tile(one, tab, tab_stride, nc, o, 1, 4);
            break;
        }
    }
}

/* Precondition: k a positive multiple of 128, args->w on a tile (tl.h). */
static void tl2_avx512_matmul(const bitnet_matmul_args *a)
{
    tl_matmul_drive(a, TL_KIND_2, TL_MAX_ACT, tile_any);
}

static void tl2_avx512_quantize_act(const float *x, int64_t k, uint8_t *act)
{
    bitnet_kernel_i2s_qk256_avx512.quantize_act(x, k, act);
}

const bitnet_kernel_ops bitnet_kernel_tl2_avx512 = {
    .act_row_bytes = i2s_scalar_act_row_bytes,
    .quantize_act = tl2_avx512_quantize_act,
    .matmul = tl2_avx512_matmul,
    .repack = tl2_repack,
};
