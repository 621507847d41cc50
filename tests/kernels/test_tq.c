/*
 * tests/kernels/test_tq.c - TQ1_0 / TQ2_0 packers and kernels.
 *
 * The packers, unpackers, the Q8_K activation quantizer and the scalar dot
 * products are checked against the real llama.cpp CPU libraries of the
 * reference release (tests/support/ggml_ref.c). Every other compiled TQ kernel
 * that this CPU supports is then checked against the scalar kernel: integer
 * sums exactly, float results within the bound their summation order allows.
 */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/kernels.h"
#include "bitnet/quant.h"
#include "common/f16.h"
#include "kernels/tq.h"
#include "tests/support/ggml_ref.h"

/* The reference release is an x86-64 build: elsewhere (the aarch64 build run
 * under qemu) the checks against llama.cpp are not built. */
#if defined(__x86_64__)
#define TQ_HAVE_REF 1
#else
#define TQ_HAVE_REF 0
#endif

/* ---- inputs ---------------------------------------------------------------- */

static uint64_t rng_state;

static void rng_seed(uint64_t s)
{
    rng_state = s * 0x9e3779b97f4a7c15ull + 1;
}

static uint64_t rng_next(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static float rng_unit(void)
{
    return (float)((double)(rng_next() >> 11) / (double)(1ull << 52) - 1.0);
}

static void fill_bytes(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rng_next();
}

/* Kinds of float rows, each a case the quantizers treat specially. */
enum row_kind {
    ROW_UNIFORM,  /* uniform noise times a scale */
    ROW_GAUSSISH, /* sum of uniforms: many small, few large values */
    ROW_ZERO,     /* all zeros: d = 0 */
    ROW_EQUAL,    /* every element the same value */
    ROW_TERNARY,  /* already {-s, 0, +s} */
    ROW_HALVES,   /* values at exactly +-0.5 * amax: ties in the rounding */
    ROW_EXTREMES, /* +-large values mixed with tiny ones */
    ROW_MIXED,    /* blocks of different kinds in one row */
    ROW_KIND_COUNT
};

static void fill_row(float *x, int64_t k, enum row_kind kind, float scale)
{
    for (int64_t i = 0; i < k; i++) {
        switch (kind) {
        case ROW_UNIFORM:
            x[i] = rng_unit() * scale;
            break;
        case ROW_GAUSSISH:
            x[i] = (rng_unit() + rng_unit() + rng_unit()) * scale;
            break;
        case ROW_ZERO:
            x[i] = 0.0f;
            break;
        case ROW_EQUAL:
            x[i] = scale;
            break;
        case ROW_TERNARY:
            x[i] = (float)((int)(rng_next() % 3) - 1) * scale;
            break;
        case ROW_HALVES: {
            static const float v[5] = {1.0f, -1.0f, 0.5f, -0.5f, 0.0f};
            x[i] = v[i % 256 == 0 ? 0 : rng_next() % 5] * scale;
            break;
        }
        case ROW_EXTREMES:
            x[i] =
                (rng_next() & 1) ? (rng_next() & 1 ? 3.0e4f : -3.0e4f) * scale : rng_unit() * 1e-6f;
            break;
        case ROW_MIXED:
        case ROW_KIND_COUNT:
            break;
        }
    }
    if (kind == ROW_MIXED) {
        for (int64_t b = 0; b < k / TQ_QK; b++) {
            enum row_kind bk = (enum row_kind)(b % ROW_MIXED);
            fill_row(x + b * TQ_QK, TQ_QK, bk, scale * (float)(b + 1));
            if (b % 3 == 1) /* a negative extreme: Q8_K's d becomes positive */
                x[b * TQ_QK + 17] = -4.0f * scale * (float)(b + 1);
        }
    }
}

static const float scales[] = {1e-3f, 0.37f, 1.0f, -2.5f, 1e3f};
#define N_SCALES (sizeof(scales) / sizeof(scales[0]))

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(p);
    return p;
}

typedef void (*pack_fn)(const float *, int64_t, uint8_t *);
typedef void (*unpack_fn)(const uint8_t *, int64_t, float *);

#if TQ_HAVE_REF
/* ---- the reference library ------------------------------------------------- */

/* Opens the reference release's libraries once. It is an x86-64 build;
 * elsewhere there is nothing to compare with, and these tests are not built. */
static void ref_open(void)
{
    char err[512];
    int rc = ggml_ref_open(BITNET_REFERENCE_LIBDIR, err, sizeof(err));
    ck_assert_msg(rc == 0, "reference llama.cpp libraries: %s (run scripts/fetch-reference.sh)",
                  err);
}

START_TEST(test_ref_variant_reported)
{
    ref_open();
    const char *v = ggml_ref_cpu_variant();
    ck_assert_msg(v[0] != 0, "no CPU variant reported");
    printf("test_tq: reference libggml-cpu variant: %s\n", v);
}
END_TEST

/* ---- packers ---------------------------------------------------------------- */

static void check_pack(int ggml_type, pack_fn pack, size_t (*row_bytes)(int64_t))
{
    static const int64_t ks[] = {256, 2560};
    for (size_t ki = 0; ki < 2; ki++) {
        int64_t k = ks[ki];
        size_t nb = row_bytes(k);
        float *x = xmalloc((size_t)k * sizeof(float));
        uint8_t *ours = xmalloc(nb), *theirs = xmalloc(nb);
        for (int kind = 0; kind < ROW_KIND_COUNT; kind++) {
            for (size_t s = 0; s < N_SCALES; s++) {
                rng_seed((uint64_t)(1000 * ki + 10 * kind + s));
                fill_row(x, k, (enum row_kind)kind, scales[s]);
                memset(ours, 0xa5, nb);
                memset(theirs, 0x5a, nb);
                pack(x, k, ours);
                ggml_ref_quantize_row(ggml_type, x, theirs, k);
                for (size_t i = 0; i < nb; i++)
                    ck_assert_msg(ours[i] == theirs[i],
                                  "type %d k %lld kind %d scale %g: byte %zu is %#x, "
                                  "llama.cpp wrote %#x",
                                  ggml_type, (long long)k, kind, (double)scales[s], i, ours[i],
                                  theirs[i]);
            }
        }
        free(x);
        free(ours);
        free(theirs);
    }
}

START_TEST(test_tq2_0_pack_matches_llama)
{
    ref_open();
    check_pack(GGML_REF_TYPE_TQ2_0, bitnet_tq2_0_pack_row, bitnet_tq2_0_row_bytes);
}
END_TEST

START_TEST(test_tq1_0_pack_matches_llama)
{
    ref_open();
    check_pack(GGML_REF_TYPE_TQ1_0, bitnet_tq1_0_pack_row, bitnet_tq1_0_row_bytes);
}
END_TEST

/* Random bytes (any code, any trit byte, including TQ2_0's unused code 3) with
 * random finite f16 scales: both unpackers must give the same floats. */
static void check_unpack(int ggml_type, unpack_fn unpack, size_t block_bytes, size_t d_off)
{
    const int64_t k = 2560;
    const size_t nb = (size_t)(k / TQ_QK) * block_bytes;
    uint8_t *w = xmalloc(nb);
    float *ours = xmalloc((size_t)k * sizeof(float)), *theirs = xmalloc((size_t)k * sizeof(float));
    for (int iter = 0; iter < 20; iter++) {
        rng_seed(7000 + (uint64_t)iter);
        fill_bytes(w, nb);
        for (int64_t b = 0; b < k / TQ_QK; b++) {
            uint16_t d = (uint16_t)rng_next();
            if ((d & 0x7c00) == 0x7c00) /* keep scales finite */
                d &= 0xbfff;
            memcpy(w + (size_t)b * block_bytes + d_off, &d, 2);
        }
        unpack(w, k, ours);
        ggml_ref_dequantize_row(ggml_type, w, theirs, k);
        ck_assert_msg(memcmp(ours, theirs, (size_t)k * sizeof(float)) == 0,
                      "type %d iteration %d: unpacked floats differ from llama.cpp's", ggml_type,
                      iter);
    }
    free(w);
    free(ours);
    free(theirs);
}

START_TEST(test_tq2_0_unpack_matches_llama)
{
    ref_open();
    check_unpack(GGML_REF_TYPE_TQ2_0, bitnet_tq2_0_unpack_row, TQ2_0_BYTES, TQ2_0_D);
}
END_TEST

START_TEST(test_tq1_0_unpack_matches_llama)
{
    ref_open();
    check_unpack(GGML_REF_TYPE_TQ1_0, bitnet_tq1_0_unpack_row, TQ1_0_BYTES, TQ1_0_D);
}
END_TEST

#endif

/* Packing a row and unpacking it gives back the ternarized row: every value is
 * exactly -d, 0 or +d of its block, with d the block's max |x| in f16. */
START_TEST(test_pack_unpack_round_trip)
{
    const int64_t k = 2560;
    float *x = xmalloc((size_t)k * sizeof(float)), *y = xmalloc((size_t)k * sizeof(float));
    uint8_t *w = xmalloc(bitnet_tq2_0_row_bytes(k));
    for (int fmt = 0; fmt < 2; fmt++) {
        rng_seed(99 + (uint64_t)fmt);
        fill_row(x, k, ROW_TERNARY, 0.75f);
        if (fmt == 0) {
            bitnet_tq2_0_pack_row(x, k, w);
            bitnet_tq2_0_unpack_row(w, k, y);
        } else {
            bitnet_tq1_0_pack_row(x, k, w);
            bitnet_tq1_0_unpack_row(w, k, y);
        }
        for (int64_t i = 0; i < k; i++)
            ck_assert_msg(y[i] == x[i], "format %d element %lld: %g became %g", fmt, (long long)i,
                          (double)x[i], (double)y[i]);
    }
    free(x);
    free(y);
    free(w);
}
END_TEST

/* ---- Q8_K activations -------------------------------------------------------- */

#if TQ_HAVE_REF
START_TEST(test_q8k_matches_llama)
{
    ref_open();
    const int64_t k = 6912;
    const size_t nb = tq_act_row_bytes(k);
    float *x = xmalloc((size_t)k * sizeof(float));
    uint8_t *ours = xmalloc(nb), *theirs = xmalloc(nb);
    ck_assert_uint_eq(nb, (size_t)(k / 256) * 292);
    for (int kind = 0; kind < ROW_KIND_COUNT; kind++) {
        for (size_t s = 0; s < N_SCALES; s++) {
            rng_seed(300 + 10 * (uint64_t)kind + s);
            fill_row(x, k, (enum row_kind)kind, scales[s]);
            memset(ours, 0xee, nb);
            memset(theirs, 0, nb); /* llama.cpp leaves bsums of zero blocks unwritten */
            tq_quantize_q8k(x, k, ours);
            ggml_ref_quantize_q8_k(x, theirs, k);
            for (size_t i = 0; i < nb; i++)
                ck_assert_msg(ours[i] == theirs[i],
                              "kind %d scale %g: byte %zu (block %zu, offset %zu) is %#x, "
                              "llama.cpp wrote %#x",
                              kind, (double)scales[s], i, i / 292, i % 292, ours[i], theirs[i]);
        }
    }
    free(x);
    free(ours);
    free(theirs);
}
END_TEST

#endif

/* ---- scalar dot products against llama.cpp ------------------------------------ */

typedef int32_t (*block_dot_fn)(const uint8_t *, const uint8_t *);

struct tq_format {
    bitnet_format format;
    int ggml_type;
    size_t block_bytes;
    size_t d_off;
    pack_fn pack;
    unpack_fn unpack;
    block_dot_fn block_dot;
    float (*row_dot)(const uint8_t *, const uint8_t *, int64_t);
};

static const struct tq_format formats[] = {
    {BITNET_FORMAT_TQ2_0, GGML_REF_TYPE_TQ2_0, TQ2_0_BYTES, TQ2_0_D, bitnet_tq2_0_pack_row,
     bitnet_tq2_0_unpack_row, tq2_0_block_dot, tq2_0_row_dot},
    {BITNET_FORMAT_TQ1_0, GGML_REF_TYPE_TQ1_0, TQ1_0_BYTES, TQ1_0_D, bitnet_tq1_0_pack_row,
     bitnet_tq1_0_unpack_row, tq1_0_block_dot, tq1_0_row_dot},
};

/*
 * Sum over elements of |w_i * qa_i * d_a|, with w_i = (code - 1) * d_w the
 * unpacked weight: it bounds every partial sum that any grouping of the
 * integer products into per-lane or per-block sums can produce, so it bounds
 * the rounding error of any summation order.
 */
static double abs_term_sum(const struct tq_format *f, const uint8_t *w, const uint8_t *act,
                           int64_t k)
{
    double s = 0.0;
    float v[TQ_QK];
    for (int64_t b = 0; b < k / TQ_QK; b++) {
        const uint8_t *ab = act + (size_t)b * TQ_Q8K_BYTES;
        f->unpack(w + (size_t)b * f->block_bytes, TQ_QK, v);
        double bs = 0.0;
        for (int i = 0; i < TQ_QK; i++)
            bs += fabs((double)v[i] * (int8_t)ab[TQ_Q8K_QS + i]);
        s += bs * fabs((double)tq_load_f32(ab + TQ_Q8K_D));
    }
    return s;
}

/*
 * The float result of a k-element dot may differ between two summation orders
 * by at most about (blocks + lanes) * eps * abs_term_sum(): each term is
 * rounded twice (d = d_a * d_w, then isum * d) and each of the at most
 * blocks + 16 additions of a lane-wise or sequential sum adds one rounding of
 * a partial sum bounded by abs_term_sum().
 */
static double dot_tolerance(int64_t k, double abs_sum)
{
    return (double)(k / TQ_QK + 16 + 2) * FLT_EPSILON * abs_sum + 1e-30;
}

static void make_weights(const struct tq_format *f, uint8_t *w, int64_t k, int64_t rows,
                         size_t row_bytes, int kind)
{
    float *x = xmalloc((size_t)k * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *wr = w + (size_t)r * row_bytes;
        if (kind == 0) { /* real packed rows */
            fill_row(x, k, ROW_GAUSSISH, 0.05f + 0.01f * (float)(r % 7));
            f->pack(x, k, wr);
        } else if (kind == 1) { /* random bytes: every code, sane scales */
            fill_bytes(wr, row_bytes);
            for (int64_t b = 0; b < k / TQ_QK; b++) {
                uint16_t d = f32_to_f16(0.01f + 0.1f * (float)((rng_next() % 100)) / 100.0f);
                memcpy(wr + (size_t)b * f->block_bytes + f->d_off, &d, 2);
            }
        } else if (kind == 3) { /* all zero: d = 0, every code 1 */
            fill_row(x, k, ROW_ZERO, 1.0f);
            f->pack(x, k, wr);
        } else { /* all +1 or all -1 */
            fill_row(x, k, ROW_EQUAL, (r & 1) ? -0.5f : 0.5f);
            f->pack(x, k, wr);
        }
    }
    free(x);
}

#if TQ_HAVE_REF
START_TEST(test_scalar_dot_matches_llama)
{
    ref_open();
    static const int64_t ks[] = {256, 2560, 6912};
    double worst_rel = 0.0;
    int exact = 0, total = 0;
    for (size_t fi = 0; fi < 2; fi++) {
        const struct tq_format *f = &formats[fi];
        for (size_t ki = 0; ki < 3; ki++) {
            int64_t k = ks[ki];
            size_t wb = (size_t)(k / TQ_QK) * f->block_bytes, ab = tq_act_row_bytes(k);
            uint8_t *w = xmalloc(wb), *act = xmalloc(ab);
            float *x = xmalloc((size_t)k * sizeof(float));
            for (int iter = 0; iter < 24; iter++) {
                rng_seed(5000 + 100 * fi + 10 * ki + (uint64_t)iter);
                make_weights(f, w, k, 1, wb, iter % 3);
                fill_row(x, k, (enum row_kind)(iter % ROW_KIND_COUNT), scales[iter % N_SCALES]);
                tq_quantize_q8k(x, k, act);
                float ours = f->row_dot(w, act, k), theirs = 0.0f;
                ggml_ref_vec_dot(f->ggml_type, k, &theirs, w, act);
                double tol = dot_tolerance(k, abs_term_sum(f, w, act, k));
                double diff = fabs((double)ours - (double)theirs);
                ck_assert_msg(diff <= tol,
                              "%s k %lld iteration %d: ours %.9g, llama.cpp %.9g (tolerance %g)",
                              bitnet_format_name(f->format), (long long)k, iter, (double)ours,
                              (double)theirs, tol);
                double sum = abs_term_sum(f, w, act, k);
                if (sum > 0 && diff / sum > worst_rel)
                    worst_rel = diff / sum;
                exact += ours == theirs;
                total++;
            }
            free(w);
            free(act);
            free(x);
        }
    }
    printf("test_tq: scalar vs llama.cpp (%s) vec_dot: %d of %d bit-identical, worst "
           "|diff| / sum|terms| = %.3g\n",
           ggml_ref_cpu_variant(), exact, total, worst_rel);
}
END_TEST

#endif

/* The scalar per-block integer dot equals the dot of the unpacked weights: with
 * d = 1 every unpacked value is the integer code - 1. */
START_TEST(test_block_dot_matches_unpack)
{
    for (size_t fi = 0; fi < 2; fi++) {
        const struct tq_format *f = &formats[fi];
        uint8_t w[TQ2_0_BYTES], a[TQ_Q8K_BYTES];
        float v[TQ_QK];
        for (int iter = 0; iter < 200; iter++) {
            rng_seed(900 + 1000 * fi + (uint64_t)iter);
            fill_bytes(w, f->block_bytes);
            uint16_t one = 0x3c00;
            memcpy(w + f->d_off, &one, 2);
            fill_bytes(a, sizeof(a));
            f->unpack(w, TQ_QK, v);
            int32_t want = 0;
            for (int i = 0; i < TQ_QK; i++)
                want += (int32_t)v[i] * (int8_t)a[TQ_Q8K_QS + i];
            ck_assert_int_eq(f->block_dot(w, a), want);
        }
    }
}
END_TEST

/* ---- every TQ kernel against the scalar one ---------------------------------- */

/* Fills rows of activations with the Q8_K quantizer (real inputs). */
static void make_acts(uint8_t *act, int64_t k, int n, size_t row_bytes, int kind)
{
    float *x = xmalloc((size_t)k * sizeof(float));
    for (int t = 0; t < n; t++) {
        if (kind == 3) { /* extremes: every qa is +-127 or -128 with d = 1 */
            for (int64_t b = 0; b < k / TQ_QK; b++) {
                tq_block_q8k blk;
                blk.d = 1.0f;
                for (int i = 0; i < TQ_QK; i++)
                    blk.qs[i] = (int8_t)((rng_next() & 1) ? 127 : -128);
                for (int j = 0; j < 16; j++) {
                    int s = 0;
                    for (int i = 0; i < 16; i++)
                        s += blk.qs[16 * j + i];
                    blk.bsums[j] = (int16_t)s;
                }
                memcpy(act + (size_t)t * row_bytes + (size_t)b * TQ_Q8K_BYTES, &blk, sizeof(blk));
            }
            continue;
        }
        enum row_kind rk = kind == 0   ? (enum row_kind)((t + 1) % ROW_KIND_COUNT)
                           : kind == 1 ? ROW_ZERO
                                       : ROW_EXTREMES;
        fill_row(x, k, rk, scales[t % N_SCALES]);
        tq_quantize_q8k(x, k, act + (size_t)t * row_bytes);
    }
    free(x);
}

/* Builds activation rows with d = 1 and random qs in [-128, 127], and weight
 * blocks with d = 1: then each block term is the exact integer and every
 * partial sum is an integer below 2^24, so any kernel must be exact. */
static void make_unit_scale_inputs(const struct tq_format *f, uint8_t *w, int64_t k, int64_t rows,
                                   size_t w_row_bytes, uint8_t *act, int n, size_t a_row_bytes)
{
    fill_bytes(w, (size_t)rows * w_row_bytes);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t b = 0; b < k / TQ_QK; b++) {
            uint16_t one = 0x3c00;
            memcpy(w + (size_t)r * w_row_bytes + (size_t)b * f->block_bytes + f->d_off, &one, 2);
        }
    for (int t = 0; t < n; t++)
        for (int64_t b = 0; b < k / TQ_QK; b++) {
            tq_block_q8k blk;
            blk.d = 1.0f;
            for (int i = 0; i < TQ_QK; i++)
                blk.qs[i] = (int8_t)rng_next();
            for (int j = 0; j < 16; j++) {
                int s = 0;
                for (int i = 0; i < 16; i++)
                    s += blk.qs[16 * j + i];
                blk.bsums[j] = (int16_t)s;
            }
            memcpy(act + (size_t)t * a_row_bytes + (size_t)b * TQ_Q8K_BYTES, &blk, sizeof(blk));
        }
}

/* TQ1_0 rows rewritten as TQ2_0 (what the engine does at load to run TQ1_0
 * models on the TQ2_0 kernels) unpack to the same floats, bit for bit, and
 * give the same exact integer block sums, for packed rows and for random
 * bytes (every byte value, hostile ones included); the output row may be
 * wider than the blocks and nothing past them is written. */
START_TEST(test_tq1_0_to_tq2_0_same_products)
{
    static const int64_t ks[] = {256, 2560, 6912};
    for (size_t ki = 0; ki < 3; ki++) {
        for (int kind = 0; kind < 4; kind++) {
            const int64_t k = ks[ki], rows = 5;
            const size_t rb1 = bitnet_tq1_0_row_bytes(k) + 3, rb2 = bitnet_tq2_0_row_bytes(k) + 7;
            uint8_t *w1 = xmalloc((size_t)rows * rb1), *w2 = xmalloc((size_t)rows * rb2);
            uint8_t *act = xmalloc(tq_act_row_bytes(k));
            float *x1 = xmalloc((size_t)k * sizeof(float)),
                  *x2 = xmalloc((size_t)k * sizeof(float));
            rng_seed(70000 + 10 * ki + (uint64_t)kind);
            make_weights(&formats[1], w1, k, rows, rb1, kind);
            memset(w2, 0xa5, (size_t)rows * rb2);
            make_acts(act, k, 1, tq_act_row_bytes(k), kind);
            tq1_0_to_tq2_0(w1, rb1, k, rows, w2, rb2);
            for (int64_t r = 0; r < rows; r++) {
                const uint8_t *r1 = w1 + (size_t)r * rb1, *r2 = w2 + (size_t)r * rb2;
                bitnet_tq1_0_unpack_row(r1, k, x1);
                bitnet_tq2_0_unpack_row(r2, k, x2);
                ck_assert_msg(memcmp(x1, x2, (size_t)k * sizeof(float)) == 0,
                              "k %lld kind %d row %lld: unpacked values differ", (long long)k, kind,
                              (long long)r);
                for (int64_t b = 0; b < k / TQ_QK; b++)
                    ck_assert_int_eq(tq1_0_block_dot(r1 + (size_t)b * TQ1_0_BYTES,
                                                     act + (size_t)b * TQ_Q8K_BYTES),
                                     tq2_0_block_dot(r2 + (size_t)b * TQ2_0_BYTES,
                                                     act + (size_t)b * TQ_Q8K_BYTES));
                ck_assert(tq1_0_row_dot(r1, act, k) == tq2_0_row_dot(r2, act, k));
                for (size_t i = bitnet_tq2_0_row_bytes(k); i < rb2; i++)
                    ck_assert_uint_eq(r2[i], 0xa5);
            }
            free(w1);
            free(w2);
            free(act);
            free(x1);
            free(x2);
        }
    }
}
END_TEST

struct shape {
    int64_t k, rows;
    int n_act;
};

static const struct shape shapes[] = {
    {256, 1, 1},  {256, 3, 2},   {256, 17, 17}, {2560, 7, 1},  {2560, 5, 3},  {2560, 33, 5},
    {2560, 8, 8}, {6912, 13, 1}, {6912, 4, 4},  {6912, 9, 17}, {1024, 31, 9}, {512, 64, 16},
};
#define N_SHAPES (sizeof(shapes) / sizeof(shapes[0]))

/* Runs one kernel's matmul into y (n_act x y_stride, sentinel-filled) and
 * checks nothing outside the n_rows x n_act results was written. */
static void run_matmul(const bitnet_kernel_ops *ops, const uint8_t *w, size_t w_row_bytes,
                       int64_t k, int64_t rows, const uint8_t *act, size_t a_row_bytes, int n,
                       float *y, int64_t y_stride)
{
    const float sentinel = -12345.5f;
    for (int64_t i = 0; i < (int64_t)n * y_stride; i++)
        y[i] = sentinel;
    bitnet_matmul_args args = {
        .w = w,
        .w_row_bytes = w_row_bytes,
        .w_scale = 1.0f,
        .k = k,
        .n_rows = rows,
        .act = act,
        .act_row_bytes = a_row_bytes,
        .n_act = n,
        .y = y,
        .y_stride = y_stride,
    };
    ops->matmul(&args);
    for (int t = 0; t < n; t++)
        for (int64_t r = rows; r < y_stride; r++)
            ck_assert_msg(y[t * y_stride + r] == sentinel, "wrote past row %lld of output %d",
                          (long long)rows, t);
}

/* Calls fn for every compiled TQ kernel this CPU supports; prints why the
 * others are skipped. */
static void for_each_tq_kernel(void (*fn)(const bitnet_kernel *, const struct tq_format *))
{
    int ran = 0;
    for (int id = 0; id < BITNET_KERNEL_COUNT; id++) {
        const bitnet_kernel *kn = bitnet_kernel_get((bitnet_kernel_id)id);
        const struct tq_format *f = NULL;
        for (size_t fi = 0; fi < 2; fi++)
            if (kn->format == formats[fi].format && kn->provider == BITNET_PROVIDER_BITNETD &&
                kn->device == BITNET_DEVICE_CPU)
                f = &formats[fi];
        if (!f)
            continue;
        bitnet_kernel_status st;
        bitnet_kernel_status_get(kn, NULL, &st);
        if (!st.available) {
            printf("test_tq: skipping %s: %s\n", kn->name, st.reason);
            continue;
        }
        fn(kn, f);
        ran++;
    }
    ck_assert_int_ge(ran, 2); /* at least the two scalar kernels */
}

static const bitnet_kernel *scalar_kernel(const struct tq_format *f)
{
    const bitnet_kernel *k = bitnet_kernel_get(
        f->format == BITNET_FORMAT_TQ2_0 ? BITNET_KERNEL_TQ2_0_SCALAR : BITNET_KERNEL_TQ1_0_SCALAR);
    ck_assert_ptr_nonnull(k->ops);
    return k;
}

static void check_kernel_exact_integers(const bitnet_kernel *kn, const struct tq_format *f)
{
    for (size_t si = 0; si < N_SHAPES; si++) {
        const struct shape *sh = &shapes[si];
        size_t wrb = (size_t)(sh->k / TQ_QK) * f->block_bytes + (si & 1 ? f->block_bytes : 0);
        size_t arb = kn->ops->act_row_bytes(sh->k) + (si & 2 ? 292 : 0);
        int64_t ys = sh->rows + (int64_t)(si % 3);
        uint8_t *w = xmalloc((size_t)sh->rows * wrb), *act = xmalloc((size_t)sh->n_act * arb);
        float *y = xmalloc((size_t)(sh->n_act * ys) * sizeof(float));
        rng_seed(40000 + si);
        make_unit_scale_inputs(f, w, sh->k, sh->rows, wrb, act, sh->n_act, arb);
        run_matmul(kn->ops, w, wrb, sh->k, sh->rows, act, arb, sh->n_act, y, ys);
        for (int t = 0; t < sh->n_act; t++)
            for (int64_t r = 0; r < sh->rows; r++) {
                int64_t want = 0;
                for (int64_t b = 0; b < sh->k / TQ_QK; b++)
                    want += f->block_dot(w + (size_t)r * wrb + (size_t)b * f->block_bytes,
                                         act + (size_t)t * arb + (size_t)b * TQ_Q8K_BYTES);
                ck_assert_msg(y[t * ys + r] == (float)want,
                              "%s k %lld row %lld act %d: %.1f, exact integer sum %lld", kn->name,
                              (long long)sh->k, (long long)r, t, (double)y[t * ys + r],
                              (long long)want);
            }
        free(w);
        free(act);
        free(y);
    }
}

START_TEST(test_kernels_exact_integer_sums)
{
    for_each_tq_kernel(check_kernel_exact_integers);
}
END_TEST

static void check_kernel_vs_scalar(const bitnet_kernel *kn, const struct tq_format *f)
{
    const bitnet_kernel *sc = scalar_kernel(f);
    double worst = 0.0;
    int identical = 0, total = 0;
    for (size_t si = 0; si < N_SHAPES; si++) {
        for (int wkind = 0; wkind < 4; wkind++) {
            const struct shape *sh = &shapes[si];
            int akind = (int)(si + (size_t)wkind) % 4;
            size_t wrb = (size_t)(sh->k / TQ_QK) * f->block_bytes;
            size_t arb = kn->ops->act_row_bytes(sh->k);
            ck_assert_uint_eq(arb, sc->ops->act_row_bytes(sh->k));
            int64_t ys = sh->rows + 1;
            uint8_t *w = xmalloc((size_t)sh->rows * wrb), *act = xmalloc((size_t)sh->n_act * arb);
            float *y = xmalloc((size_t)(sh->n_act * ys) * sizeof(float));
            float *y0 = xmalloc((size_t)(sh->n_act * ys) * sizeof(float));
            rng_seed(60000 + 10 * si + (uint64_t)wkind);
            make_weights(f, w, sh->k, sh->rows, wrb, wkind);
            make_acts(act, sh->k, sh->n_act, arb, akind);
            run_matmul(sc->ops, w, wrb, sh->k, sh->rows, act, arb, sh->n_act, y0, ys);
            run_matmul(kn->ops, w, wrb, sh->k, sh->rows, act, arb, sh->n_act, y, ys);
            for (int t = 0; t < sh->n_act; t++)
                for (int64_t r = 0; r < sh->rows; r++) {
                    double abs_sum =
                        abs_term_sum(f, w + (size_t)r * wrb, act + (size_t)t * arb, sh->k);
                    double diff = fabs((double)y[t * ys + r] - (double)y0[t * ys + r]);
                    ck_assert_msg(diff <= dot_tolerance(sh->k, abs_sum),
                                  "%s k %lld rows %lld n_act %d, row %lld act %d: %.9g, "
                                  "scalar %.9g",
                                  kn->name, (long long)sh->k, (long long)sh->rows, sh->n_act,
                                  (long long)r, t, (double)y[t * ys + r], (double)y0[t * ys + r]);
                    if (abs_sum > 0 && diff / abs_sum > worst)
                        worst = diff / abs_sum;
                    identical += y[t * ys + r] == y0[t * ys + r];
                    total++;
                }
            free(w);
            free(act);
            free(y);
            free(y0);
        }
    }
    printf("test_tq: %s vs scalar: %d of %d outputs bit-identical, worst |diff| / sum|terms| = "
           "%.3g\n",
           kn->name, identical, total, worst);
    /* The NEON kernels add the block sums in the scalar kernel's order. */
    if (kn->isa == BITNET_ISA_NEON || kn->isa == BITNET_ISA_SCALAR)
        ck_assert_msg(identical == total, "%s: %d of %d outputs differ from the scalar kernel's",
                      kn->name, total - identical, total);
}

START_TEST(test_kernels_match_scalar)
{
    for_each_tq_kernel(check_kernel_vs_scalar);
}
END_TEST

/* Every batch size from 1 to 17 (the kernels group activation rows by 4 or 8
 * and weight rows by 2 or 4, so every remainder is hit), 7 weight rows.
 * Each activation row's results are also bit-identical to that row computed
 * alone: the engine relies on a sequence getting the same logits inside a
 * batch as on its own. */
static void check_kernel_batches(const bitnet_kernel *kn, const struct tq_format *f)
{
    const bitnet_kernel *sc = scalar_kernel(f);
    const int64_t k = 512, rows = 7;
    const size_t wrb = (size_t)(k / TQ_QK) * f->block_bytes, arb = kn->ops->act_row_bytes(k);
    uint8_t *w = xmalloc((size_t)rows * wrb), *act = xmalloc(17 * arb);
    float *y = xmalloc(17 * (size_t)rows * sizeof(float));
    float *y0 = xmalloc(17 * (size_t)rows * sizeof(float));
    rng_seed(31337);
    make_weights(f, w, k, rows, wrb, 0);
    make_acts(act, k, 17, arb, 0);
    float *alone = xmalloc(17 * (size_t)rows * sizeof(float));
    for (int t = 0; t < 17; t++)
        run_matmul(kn->ops, w, wrb, k, rows, act + (size_t)t * arb, arb, 1,
                   alone + (size_t)t * (size_t)rows, rows);
    for (int n = 1; n <= 17; n++) {
        run_matmul(sc->ops, w, wrb, k, rows, act, arb, n, y0, rows);
        run_matmul(kn->ops, w, wrb, k, rows, act, arb, n, y, rows);
        for (int t = 0; t < n; t++)
            for (int64_t r = 0; r < rows; r++) {
                ck_assert_msg(y[t * rows + r] == alone[t * rows + r],
                              "%s n_act %d, row %lld act %d: %.9g in the batch, %.9g alone",
                              kn->name, n, (long long)r, t, (double)y[t * rows + r],
                              (double)alone[t * rows + r]);
                double tol = dot_tolerance(
                    k, abs_term_sum(f, w + (size_t)r * wrb, act + (size_t)t * arb, k));
                ck_assert_msg(fabs((double)y[t * rows + r] - (double)y0[t * rows + r]) <= tol,
                              "%s n_act %d, row %lld act %d: %.9g, scalar %.9g", kn->name, n,
                              (long long)r, t, (double)y[t * rows + r], (double)y0[t * rows + r]);
            }
    }
    free(w);
    free(act);
    free(y);
    free(y0);
    free(alone);
}

START_TEST(test_kernels_every_batch_size)
{
    for_each_tq_kernel(check_kernel_batches);
}
END_TEST

/* Every kernel's activation quantizer writes the same bytes as the scalar one. */
static void check_kernel_quantize_act(const bitnet_kernel *kn, const struct tq_format *f)
{
    const bitnet_kernel *sc = scalar_kernel(f);
    const int64_t k = 2560;
    size_t n = kn->ops->act_row_bytes(k);
    float *x = xmalloc((size_t)k * sizeof(float));
    uint8_t *a = xmalloc(n), *b = xmalloc(n);
    for (int kind = 0; kind < ROW_KIND_COUNT; kind++) {
        rng_seed(777 + (uint64_t)kind);
        fill_row(x, k, (enum row_kind)kind, scales[kind % N_SCALES]);
        memset(a, 1, n);
        memset(b, 2, n);
        kn->ops->quantize_act(x, k, a);
        sc->ops->quantize_act(x, k, b);
        ck_assert_msg(memcmp(a, b, n) == 0, "%s: activation bytes differ (row kind %d)", kn->name,
                      kind);
    }
    free(x);
    free(a);
    free(b);
}

START_TEST(test_kernels_quantize_act_match_scalar)
{
    for_each_tq_kernel(check_kernel_quantize_act);
}
END_TEST

/* A zero-row or zero-activation call writes nothing and does not crash. */
static void check_kernel_empty(const bitnet_kernel *kn, const struct tq_format *f)
{
    uint8_t w[TQ2_0_BYTES] = {0}, act[TQ_Q8K_BYTES] = {0};
    float y[2] = {7.0f, 7.0f};
    bitnet_matmul_args args = {.w = w,
                               .w_row_bytes = f->block_bytes,
                               .w_scale = 1.0f,
                               .k = 256,
                               .n_rows = 0,
                               .act = act,
                               .act_row_bytes = TQ_Q8K_BYTES,
                               .n_act = 1,
                               .y = y,
                               .y_stride = 1};
    kn->ops->matmul(&args);
    args.n_rows = 1;
    args.n_act = 0;
    kn->ops->matmul(&args);
    ck_assert(y[0] == 7.0f && y[1] == 7.0f);
}

START_TEST(test_kernels_empty_calls)
{
    for_each_tq_kernel(check_kernel_empty);
}
END_TEST

/* The AVX-512 kernels choose a VPDPBUSD path or a VPMADDUBSW path by the
 * CPU's AVX512-VNNI bit; run the second one directly, so that machines with
 * VNNI test both. */
/* The NEON kernels choose an SDOT path or a plain one by the CPU's DotProd
 * bit; run the plain one directly too. */
START_TEST(test_neon_without_dotprod)
{
#if defined(__aarch64__)
    static const struct {
        bitnet_kernel_id id;
        void (*matmul)(const bitnet_matmul_args *);
    } paths[] = {
        {BITNET_KERNEL_TQ2_0_NEON, tq2_0_neon_matmul_nodotprod},
        {BITNET_KERNEL_TQ1_0_NEON, tq1_0_neon_matmul_nodotprod},
    };
    for (size_t i = 0; i < 2; i++) {
        const bitnet_kernel *kn = bitnet_kernel_get(paths[i].id);
        bitnet_kernel_status st;
        bitnet_kernel_status_get(kn, NULL, &st);
        if (!st.available) {
            printf("test_tq: skipping %s without DotProd: %s\n", kn->name, st.reason);
            continue;
        }
        bitnet_kernel_ops ops = *kn->ops;
        ops.matmul = paths[i].matmul;
        bitnet_kernel copy = *kn;
        copy.ops = &ops;
        copy.name = i == 0 ? "tq2_0.neon (no DotProd)" : "tq1_0.neon (no DotProd)";
        const struct tq_format *f = &formats[kn->format == BITNET_FORMAT_TQ2_0 ? 0 : 1];
        check_kernel_exact_integers(&copy, f);
        check_kernel_vs_scalar(&copy, f);
    }
#endif
}
END_TEST

START_TEST(test_avx512_without_vnni)
{
#if defined(__x86_64__)
    static const struct {
        bitnet_kernel_id id;
        void (*matmul)(const bitnet_matmul_args *);
    } paths[] = {
        {BITNET_KERNEL_TQ2_0_AVX512, tq2_0_avx512_matmul_novnni},
        {BITNET_KERNEL_TQ1_0_AVX512, tq1_0_avx512_matmul_novnni},
    };
    for (size_t i = 0; i < 2; i++) {
        const bitnet_kernel *kn = bitnet_kernel_get(paths[i].id);
        bitnet_kernel_status st;
        bitnet_kernel_status_get(kn, NULL, &st);
        if (!st.available) {
            printf("test_tq: skipping %s without VNNI: %s\n", kn->name, st.reason);
            continue;
        }
        bitnet_kernel_ops ops = *kn->ops;
        ops.matmul = paths[i].matmul;
        bitnet_kernel copy = *kn;
        copy.ops = &ops;
        copy.name = i == 0 ? "tq2_0.avx512 (no VNNI)" : "tq1_0.avx512 (no VNNI)";
        const struct tq_format *f = &formats[kn->format == BITNET_FORMAT_TQ2_0 ? 0 : 1];
        check_kernel_exact_integers(&copy, f);
        check_kernel_vs_scalar(&copy, f);
        check_kernel_batches(&copy, f);
    }
#endif
}
END_TEST

/* With VNNI the TQ2_0 AVX-512 kernel decodes codes with GFNI where the CPU
 * has it, with shifts and masks where it does not: run the second path
 * directly, so that machines with GFNI test both. */
START_TEST(test_avx512_without_gfni)
{
#if defined(__x86_64__)
    const bitnet_kernel *kn = bitnet_kernel_get(BITNET_KERNEL_TQ2_0_AVX512);
    bitnet_kernel_status st;
    bitnet_kernel_status_get(kn, NULL, &st);
    if (!st.available || !bitnet_cpu_features_get()->avx512_vnni) {
        printf("test_tq: skipping %s without GFNI: %s\n", kn->name,
               st.available ? "the CPU lacks AVX512-VNNI" : st.reason);
        return;
    }
    bitnet_kernel_ops ops = *kn->ops;
    ops.matmul = tq2_0_avx512_matmul_nogfni;
    bitnet_kernel copy = *kn;
    copy.ops = &ops;
    copy.name = "tq2_0.avx512 (VNNI, no GFNI)";
    check_kernel_exact_integers(&copy, &formats[0]);
    check_kernel_vs_scalar(&copy, &formats[0]);
    check_kernel_batches(&copy, &formats[0]);
#endif
}
END_TEST

static Suite *tq_suite(void)
{
    Suite *s = suite_create("tq");
#if TQ_HAVE_REF
    TCase *ref = tcase_create("reference");
    tcase_add_test(ref, test_ref_variant_reported);
    tcase_add_test(ref, test_tq2_0_pack_matches_llama);
    tcase_add_test(ref, test_tq1_0_pack_matches_llama);
    tcase_add_test(ref, test_tq2_0_unpack_matches_llama);
    tcase_add_test(ref, test_tq1_0_unpack_matches_llama);
    tcase_add_test(ref, test_q8k_matches_llama);
    tcase_add_test(ref, test_scalar_dot_matches_llama);
    suite_add_tcase(s, ref);
#endif

    TCase *kern = tcase_create("kernels");
    tcase_add_test(kern, test_pack_unpack_round_trip);
    tcase_add_test(kern, test_tq1_0_to_tq2_0_same_products);
    tcase_add_test(kern, test_block_dot_matches_unpack);
    tcase_add_test(kern, test_kernels_exact_integer_sums);
    tcase_add_test(kern, test_kernels_match_scalar);
    tcase_add_test(kern, test_kernels_every_batch_size);
    tcase_add_test(kern, test_kernels_quantize_act_match_scalar);
    tcase_add_test(kern, test_kernels_empty_calls);
    tcase_add_test(kern, test_avx512_without_vnni);
    tcase_add_test(kern, test_avx512_without_gfni);
    tcase_add_test(kern, test_neon_without_dotprod);
    suite_add_tcase(s, kern);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(tq_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
