/*
 * tests/kernels/test_tl.c - the lookup-table kernels (tl1.*, tl2.*).
 *
 * The repack is checked by unpacking the TL1/TL2 layout back to I2_S codes;
 * the scalar lookup-table references and every compiled tl kernel this CPU
 * can run by comparing their outputs, float bit for bit, with
 * i2s_qk256.scalar on the same I2_S weights and activation rows: random
 * shapes and batches, the int8 extremes, all-zero and all-+/-1 weights, and
 * single hot weights. A kernel this CPU cannot run is skipped with its
 * reason printed.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/kernels.h"
#include "kernels/i2s.h"
#include "kernels/tl.h"
#include "test_rng.h"

/* ---- helpers ------------------------------------------------------------- */

static const bitnet_kernel_ops *i2s_ref(void)
{
    const bitnet_kernel *k = bitnet_kernel_get(BITNET_KERNEL_I2S_QK256_SCALAR);
    ck_assert_ptr_nonnull(k);
    ck_assert_ptr_nonnull(k->ops);
    return k->ops;
}

/* Random I2_S bytes (code 3 included), n_rows rows of k/4 bytes. */
static uint8_t *random_i2s(int64_t k, int64_t n_rows)
{
    size_t n = (size_t)k / 4 * (size_t)n_rows;
    uint8_t *w = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(w);
    for (size_t i = 0; i < n; i++)
        w[i] = (uint8_t)rng_u32();
    return w;
}

static uint8_t *acts_quantize(const float *x, int64_t k, int n_act)
{
    const bitnet_kernel_ops *ops = i2s_ref();
    size_t rb = ops->act_row_bytes(k);
    uint8_t *act = aligned_alloc(64, rb * (size_t)n_act);
    ck_assert_ptr_nonnull(act);
    for (int t = 0; t < n_act; t++)
        ops->quantize_act(x + (size_t)t * (size_t)k, k, act + (size_t)t * rb);
    return act;
}

/* Activation rows of one value v everywhere, with a consistent trailer. */
static uint8_t *acts_constant(int64_t k, int n_act, int v)
{
    size_t rb = i2s_act_row_bytes(k);
    uint8_t *act = aligned_alloc(64, rb * (size_t)n_act);
    ck_assert_ptr_nonnull(act);
    for (int t = 0; t < n_act; t++) {
        uint8_t *row = act + (size_t)t * rb;
        memset(row, (uint8_t)(int8_t)v, (size_t)k);
        i2s_act_set_trailer(row, k, 1.0f, (int32_t)(v * k));
    }
    return act;
}

static const uint32_t SENTINEL = 0x7fc0dead;

/* y (n_act x (n_rows + 3)), the 3 slots past n_rows of each row holding a
 * sentinel the kernel must not touch. */
static float *run_matmul(void (*matmul)(const bitnet_matmul_args *), const uint8_t *w,
                         size_t w_row_bytes, int64_t k, int64_t n_rows, const uint8_t *act,
                         int n_act)
{
    int64_t y_stride = n_rows + 3;
    size_t n = (size_t)(y_stride * n_act);
    float *y = malloc((n + 1) * sizeof(float));
    ck_assert_ptr_nonnull(y);
    for (size_t i = 0; i < n + 1; i++)
        memcpy(&y[i], &SENTINEL, sizeof(float));
    bitnet_matmul_args a = {
        .w = w,
        .w_row_bytes = w_row_bytes,
        .w_scale = 0.0123f,
        .k = k,
        .n_rows = n_rows,
        .act = act,
        .act_row_bytes = i2s_act_row_bytes(k),
        .n_act = n_act,
        .y = y,
        .y_stride = y_stride,
    };
    matmul(&a);
    for (int t = 0; t < n_act; t++) {
        for (int64_t s = n_rows; s < y_stride; s++) {
            uint32_t bits;
            memcpy(&bits, &y[t * y_stride + s], sizeof(bits));
            ck_assert_msg(bits == SENTINEL, "matmul wrote past n_rows at t=%d slot %lld", t,
                          (long long)s);
        }
    }
    return y;
}

/* One thing under test: a matmul over a repacked layout and its repack. */
struct tl_impl {
    char name[64];
    void (*matmul)(const bitnet_matmul_args *);
    int (*repack)(const uint8_t *, int64_t, int64_t, uint8_t **, size_t *);
};

/*
 * Compares impl with i2s_qk256.scalar on I2_S weights w (n_rows x k) for
 * activation rows act, batches 1..n_act: the reference runs once with all
 * rows (each activation row's outputs do not depend on the others). first
 * is the first row to compute, a multiple of TL_ROWS.
 */
static void compare(const struct tl_impl *im, const uint8_t *w, int64_t k, int64_t n_rows,
                    int64_t first, const uint8_t *act, int n_act, int n_act_min)
{
    uint8_t *packed = NULL;
    size_t rb = 0;
    ck_assert_int_eq(im->repack(w, k, n_rows, &packed, &rb), 0);
    int64_t rows = n_rows - first;
    float *ref = run_matmul(i2s_ref()->matmul, w + (size_t)first * ((size_t)k / 4), (size_t)k / 4,
                            k, rows, act, n_act);
    for (int na = n_act_min; na <= n_act; na++) {
        float *y = run_matmul(im->matmul, packed + (size_t)first * rb, rb, k, rows, act, na);
        for (int t = 0; t < na; t++) {
            for (int64_t r = 0; r < rows; r++) {
                size_t i = (size_t)(t * (rows + 3) + r);
                ck_assert_msg(memcmp(&y[i], &ref[i], sizeof(float)) == 0,
                              "%s: k=%lld rows=%lld first=%lld n_act=%d: y[%d][%lld] = %.9g, "
                              "i2s_qk256.scalar %.9g",
                              im->name, (long long)k, (long long)rows, (long long)first, na, t,
                              (long long)r, (double)y[i], (double)ref[i]);
            }
        }
        free(y);
    }
    free(ref);
    free(packed);
}

static void check_random_shapes(const struct tl_impl *im)
{
    const int64_t ks[] = {128, 256, 384, 2560, 6912};
    const int64_t rows[] = {1, 5, 13, 16, 33};
    rng_seed(11);
    for (size_t ki = 0; ki < sizeof(ks) / sizeof(ks[0]); ki++) {
        int64_t k = ks[ki];
        float *x = malloc((size_t)(k * 17) * sizeof(float));
        for (int64_t i = 0; i < k * 17; i++)
            x[i] = rng_float() * 3.0f;
        uint8_t *act = acts_quantize(x, k, 17);
        for (size_t ri = 0; ri < sizeof(rows) / sizeof(rows[0]); ri++) {
            uint8_t *w = random_i2s(k, rows[ri]);
            compare(im, w, k, rows[ri], 0, act, 17, 1);
            free(w);
        }
        /* A slice starting on the second tile, as a thread's share. */
        uint8_t *w = random_i2s(k, 37);
        compare(im, w, k, 37, TL_ROWS, act, 5, 5);
        free(w);
        free(act);
        free(x);
    }
}

static void check_edges(const struct tl_impl *im)
{
    const int64_t k = 6912, n_rows = 9;
    const int n_act = 17;
    const size_t wb = (size_t)k / 4;
    uint8_t *w = malloc(wb * (size_t)n_rows);
    ck_assert_ptr_nonnull(w);
    /* All -1 (0x00), all 0 (0x55), all +1 (0xAA), all code 3 (0xFF), against
     * activations at the int8 extremes: the largest table entries and sums
     * the int16 lanes see. */
    const uint8_t fills[] = {0x00, 0x55, 0xAA, 0xFF};
    const int values[] = {127, -128, 0};
    for (size_t fi = 0; fi < sizeof(fills); fi++) {
        memset(w, fills[fi], wb * (size_t)n_rows);
        for (size_t vi = 0; vi < sizeof(values) / sizeof(values[0]); vi++) {
            uint8_t *act = acts_constant(k, n_act, values[vi]);
            compare(im, w, k, n_rows, 0, act, n_act, n_act);
            free(act);
        }
    }
    /* Alternating +1/-1 blocks with extreme activations of the same sign
     * pattern: every group's entry is +/-256 (TL1) or +/-384 (TL2). */
    for (size_t i = 0; i < wb * (size_t)n_rows; i++)
        w[i] = i % 64 < 32 ? 0xAA : 0x00;
    uint8_t *act = acts_constant(k, n_act, -128);
    compare(im, w, k, n_rows, 0, act, n_act, n_act);
    free(act);

    /* One hot weight (+1, then -1) against random activations, at every
     * position of the first two 256-chunks and at the end of the row. */
    float *x = malloc((size_t)k * sizeof(float));
    rng_seed(12);
    for (int64_t i = 0; i < k; i++)
        x[i] = rng_float();
    act = acts_quantize(x, k, 1);
    for (int64_t e = 0; e < 2 * I2S_CHUNK + 4; e++) {
        int64_t el = e < 2 * I2S_CHUNK ? e : k - 1 - (e - 2 * I2S_CHUNK) * 97;
        for (int code = 0; code <= 2; code += 2) {
            memset(w, 0x55, wb);
            size_t byte = (size_t)(el / 128 * 32 + el % 32);
            int shift = 6 - 2 * (int)(el % 128 / 32);
            w[byte] = (uint8_t)((w[byte] & ~(3 << shift)) | (code << shift));
            compare(im, w, k, 1, 0, act, 1, 1);
        }
    }
    free(act);
    /* One hot activation (the others zero) against random weights. */
    for (int64_t i = 0; i < k; i++)
        x[i] = i == k / 3 ? -7.0f : 0.0f;
    act = acts_quantize(x, k, 1);
    for (size_t i = 0; i < wb * (size_t)n_rows; i++)
        w[i] = (uint8_t)rng_u32();
    compare(im, w, k, n_rows, 0, act, 1, 1);
    free(act);
    free(x);
    free(w);
}

/* Every bitnetd tl kernel: visit(impl) for those this CPU runs. */
static int for_each_tl_kernel(void (*visit)(const struct tl_impl *))
{
    int ran = 0;
    for (int i = 0; i < BITNET_KERNEL_COUNT; i++) {
        const bitnet_kernel *k = bitnet_kernel_get((bitnet_kernel_id)i);
        if (k->format != BITNET_FORMAT_TL1 && k->format != BITNET_FORMAT_TL2)
            continue;
        bitnet_kernel_status st;
        bitnet_kernel_status_get(k, NULL, &st);
        if (!st.available) {
            printf("test_tl: skipping %s: %s\n", k->name, st.reason);
            continue;
        }
        ck_assert_ptr_nonnull(k->ops->repack);
        struct tl_impl im = {.matmul = k->ops->matmul, .repack = k->ops->repack};
        snprintf(im.name, sizeof(im.name), "%s", k->name);
        visit(&im);
        ran++;
    }
    return ran;
}

static const struct tl_impl scalar_refs[2] = {
    {"tl1 scalar reference", tl1_scalar_matmul, tl1_repack},
    {"tl2 scalar reference", tl2_scalar_matmul, tl2_repack},
};

/* ---- repack -------------------------------------------------------------- */

START_TEST(repack_rejects_bad_shapes)
{
    uint8_t src[64] = {0};
    uint8_t *out = (uint8_t *)src;
    size_t rb = 77;
    int (*fns[2])(const uint8_t *, int64_t, int64_t, uint8_t **, size_t *) = {tl1_repack,
                                                                              tl2_repack};
    for (int f = 0; f < 2; f++) {
        ck_assert_int_eq(fns[f](src, 0, 1, &out, &rb), -EINVAL);
        ck_assert_int_eq(fns[f](src, 192, 1, &out, &rb), -EINVAL);
        ck_assert_int_eq(fns[f](src, -128, 1, &out, &rb), -EINVAL);
        ck_assert_int_eq(fns[f](src, 128, -1, &out, &rb), -EINVAL);
        ck_assert_int_eq(fns[f](src, 128, INT64_MAX, &out, &rb), -EINVAL);
        ck_assert_ptr_eq(out, (uint8_t *)src);
        ck_assert_uint_eq(rb, 77);
    }
}
END_TEST

START_TEST(repack_round_trips_to_the_i2s_codes)
{
    const int64_t ks[] = {128, 256, 384, 2560, 6912};
    const int64_t rows[] = {1, 13, 16, 33};
    rng_seed(13);
    for (int kind = TL_KIND_1; kind <= TL_KIND_2; kind++) {
        for (size_t ki = 0; ki < sizeof(ks) / sizeof(ks[0]); ki++) {
            int64_t k = ks[ki];
            uint8_t *codes = malloc((size_t)k);
            for (size_t ri = 0; ri < sizeof(rows) / sizeof(rows[0]); ri++) {
                int64_t n = rows[ri];
                uint8_t *w = random_i2s(k, n);
                uint8_t *packed = NULL;
                size_t rb = 0;
                int rc = kind == TL_KIND_1 ? tl1_repack(w, k, n, &packed, &rb)
                                           : tl2_repack(w, k, n, &packed, &rb);
                ck_assert_int_eq(rc, 0);
                ck_assert_uint_eq(rb, tl_row_bytes((enum tl_kind)kind, k));
                int64_t padded = (n + TL_ROWS - 1) / TL_ROWS * TL_ROWS;
                for (int64_t r = 0; r < padded; r++) {
                    tl_unpack_codes((enum tl_kind)kind, packed, k, r, codes);
                    for (int64_t e = 0; e < k; e++) {
                        unsigned want = 1; /* padding rows: zero weights */
                        if (r < n) {
                            want = i2s_code_at(w + (size_t)r * ((size_t)k / 4), (size_t)e);
                            want = want == 3 ? 1 : want;
                        }
                        ck_assert_msg(codes[e] == want,
                                      "tl%d k=%lld row %lld element %lld: %u, want %u", kind,
                                      (long long)k, (long long)r, (long long)e, codes[e], want);
                    }
                }
                free(packed);
                free(w);
            }
            free(codes);
        }
    }
}
END_TEST

START_TEST(repacked_sizes_follow_the_layout)
{
    /* TL1: 4 bits per pair, as many bytes as I2_S. TL2: 5 bits per triple
     * in chunks of 8 triples, so fewer bytes than I2_S from k = 384 on. */
    const int64_t ks[] = {128, 256, 384, 2560, 6912};
    for (size_t ki = 0; ki < sizeof(ks) / sizeof(ks[0]); ki++) {
        int64_t k = ks[ki];
        ck_assert_uint_eq(tl_row_bytes(TL_KIND_1, k), (size_t)k / 4);
        int64_t triples = (k + 2) / 3, chunks = (triples + 7) / 8;
        ck_assert_uint_eq(tl_row_bytes(TL_KIND_2, k) * TL_ROWS, (size_t)chunks * 80);
        if (k >= 384)
            ck_assert(tl_row_bytes(TL_KIND_2, k) < (size_t)k / 4);
    }
    /* An empty tensor repacks to an empty (but freeable) buffer. */
    uint8_t src[1] = {0};
    uint8_t *out = NULL;
    size_t rb = 0;
    ck_assert_int_eq(tl2_repack(src, 256, 0, &out, &rb), 0);
    ck_assert_ptr_nonnull(out);
    free(out);
}
END_TEST

/* ---- matmul -------------------------------------------------------------- */

START_TEST(scalar_references_match_i2s_on_random_shapes)
{
    for (int i = 0; i < 2; i++)
        check_random_shapes(&scalar_refs[i]);
}
END_TEST

START_TEST(scalar_references_match_i2s_on_edge_values)
{
    for (int i = 0; i < 2; i++)
        check_edges(&scalar_refs[i]);
}
END_TEST

START_TEST(every_kernel_matches_i2s_on_random_shapes)
{
    int ran = for_each_tl_kernel(check_random_shapes);
    printf("test_tl: %d tl kernel(s) ran on random shapes\n", ran);
}
END_TEST

START_TEST(every_kernel_matches_i2s_on_edge_values)
{
    for_each_tl_kernel(check_edges);
}
END_TEST

START_TEST(every_kernel_uses_the_i2s_activation_row)
{
    const bitnet_kernel_ops *ref = i2s_ref();
    rng_seed(14);
    for (int i = 0; i < BITNET_KERNEL_COUNT; i++) {
        const bitnet_kernel *k = bitnet_kernel_get((bitnet_kernel_id)i);
        if (k->format != BITNET_FORMAT_TL1 && k->format != BITNET_FORMAT_TL2)
            continue;
        bitnet_kernel_status st;
        bitnet_kernel_status_get(k, NULL, &st);
        if (!st.available)
            continue;
        const int64_t ks[] = {128, 2560, 6912};
        for (size_t ki = 0; ki < 3; ki++) {
            int64_t kk = ks[ki];
            ck_assert_uint_eq(k->ops->act_row_bytes(kk), ref->act_row_bytes(kk));
            float *x = malloc((size_t)kk * sizeof(float));
            for (int64_t j = 0; j < kk; j++)
                x[j] = rng_float() * 5.0f;
            size_t rb = ref->act_row_bytes(kk);
            uint8_t *a = calloc(1, rb), *b = calloc(1, rb);
            k->ops->quantize_act(x, kk, a);
            ref->quantize_act(x, kk, b);
            ck_assert_msg(memcmp(a, b, rb) == 0, "%s: quantize_act differs at k=%lld", k->name,
                          (long long)kk);
            free(a);
            free(b);
            free(x);
        }
    }
}
END_TEST

static Suite *tl_suite(void)
{
    Suite *s = suite_create("tl");
    TCase *pack = tcase_create("repack");
    tcase_add_test(pack, repack_rejects_bad_shapes);
    tcase_add_test(pack, repack_round_trips_to_the_i2s_codes);
    tcase_add_test(pack, repacked_sizes_follow_the_layout);
    suite_add_tcase(s, pack);

    TCase *mm = tcase_create("matmul");
    tcase_add_test(mm, scalar_references_match_i2s_on_random_shapes);
    tcase_add_test(mm, scalar_references_match_i2s_on_edge_values);
    tcase_add_test(mm, every_kernel_matches_i2s_on_random_shapes);
    tcase_add_test(mm, every_kernel_matches_i2s_on_edge_values);
    tcase_add_test(mm, every_kernel_uses_the_i2s_activation_row);
    suite_add_tcase(s, mm);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(tl_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
