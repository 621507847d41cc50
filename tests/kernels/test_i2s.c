/*
 * tests/kernels/test_i2s.c - the I2_S packers and kernels.
 *
 * The packer is checked against the byte layout of docs/formats.md 2.7 on
 * hand-placed elements; the scalar kernel against an independent integer
 * computation of sum((code - 1) * qa) from the unpacked ternary values; and
 * every other compiled I2_S kernel in the registry against the scalar one,
 * int32-exact and float bit-identical, on random and edge shapes and values.
 * A kernel this CPU cannot run is skipped with its reason printed.
 *
 * The same file, built with -DI2S_TEST_CUDA, is test_i2s_cuda: the kernel
 * cases against i2s_qk256.cuda on a GPU, skipped (exit 77, the reason
 * printed) where there is no GPU or the build had no nvcc. test_i2s itself
 * also runs the CUDA kernel's lane arithmetic on the CPU (i2s_cuda_ops.h).
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/kernels.h"
#include "bitnet/quant.h"
#include "i2s_cuda_ops.h"
#ifdef I2S_TEST_CUDA
/* The CPU-only cases of this file are test_i2s's and stay unused here. */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-variable"
#pragma GCC diagnostic ignored "-Wunused-const-variable"
#endif
#include "kernels/i2s.h"
#include "test_rng.h"

/* ---- helpers ------------------------------------------------------------- */

/* A ternary value -1, 0 or +1. */
static int rng_trit(void)
{
    return (int)(rng_u32() % 3) - 1;
}

static const bitnet_kernel *scalar_kernel(void)
{
    const bitnet_kernel *k = bitnet_kernel_get(BITNET_KERNEL_I2S_QK256_SCALAR);
    ck_assert_ptr_nonnull(k);
    ck_assert_ptr_nonnull(k->ops);
    return k;
}

/* A tensor of n_rows x k ternary values times scale, packed. */
struct weights {
    int64_t k, n_rows;
    int8_t *trit;    /* the values -1, 0, +1 */
    uint8_t *packed; /* bitnet_i2s_tensor_bytes(k, n_rows) bytes */
    float scale;
};

static void weights_make(struct weights *w, int64_t k, int64_t n_rows, float scale)
{
    w->k = k;
    w->n_rows = n_rows;
    w->scale = scale;
    size_t n = (size_t)(k * n_rows);
    w->trit = malloc(n);
    float *f = malloc(n * sizeof(float));
    w->packed = malloc(bitnet_i2s_tensor_bytes(k, n_rows));
    ck_assert(w->trit && f && w->packed);
    for (size_t i = 0; i < n; i++) {
        w->trit[i] = (int8_t)rng_trit();
        f[i] = (float)w->trit[i] * scale;
    }
    /* At least one nonzero so the stored scale is the one asked for. */
    w->trit[0] = 1;
    f[0] = scale;
    ck_assert_int_eq(bitnet_i2s_pack(f, k, n_rows, w->packed), 0);
    free(f);
}

static void weights_free(struct weights *w)
{
    free(w->trit);
    free(w->packed);
}

/* Activation rows quantized by ops into one buffer, act_row_bytes apart. */
static uint8_t *acts_quantize(const bitnet_kernel_ops *ops, const float *x, int64_t k, int n_act)
{
    size_t rb = ops->act_row_bytes(k);
    uint8_t *act = aligned_alloc(64, rb * (size_t)n_act);
    ck_assert_ptr_nonnull(act);
    memset(act, 0xA5, rb * (size_t)n_act); /* quantize_act must write every byte */
    for (int t = 0; t < n_act; t++)
        ops->quantize_act(x + (size_t)t * (size_t)k, k, act + (size_t)t * rb);
    return act;
}

/* Runs ops->matmul and returns y (n_act x y_stride); slots past n_rows in
 * each output row are filled with a sentinel the kernel must not touch. */
static const uint32_t SENTINEL = 0x7fc0dead;

static float *run_matmul(const bitnet_kernel_ops *ops, const uint8_t *w, size_t w_row_bytes,
                         float w_scale, int64_t k, int64_t n_rows, const uint8_t *act, int n_act)
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
        .w_scale = w_scale,
        .k = k,
        .n_rows = n_rows,
        .act = act,
        .act_row_bytes = ops->act_row_bytes(k),
        .n_act = n_act,
        .y = y,
        .y_stride = y_stride,
    };
    ops->matmul(&a);
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

/* Asserts two outputs are the same floats, bit for bit. */
static void assert_same_bits(const char *who, const float *y, const float *ref, int64_t n_rows,
                             int n_act, int64_t k)
{
    int64_t y_stride = n_rows + 3;
    for (int t = 0; t < n_act; t++) {
        for (int64_t r = 0; r < n_rows; r++) {
            size_t i = (size_t)(t * y_stride + r);
            ck_assert_msg(memcmp(&y[i], &ref[i], sizeof(float)) == 0,
                          "%s: k=%lld rows=%lld n_act=%d: y[%d][%lld] = %.9g, scalar %.9g", who,
                          (long long)k, (long long)n_rows, n_act, t, (long long)r, (double)y[i],
                          (double)ref[i]);
        }
    }
}

/* The kernels under test: every compiled I2_S kernel of bitnetd's own. */
typedef void (*kernel_visit)(const char *name, const bitnet_kernel_ops *ops);

#ifdef I2S_TEST_CUDA
static int for_each_i2s_kernel(kernel_visit visit)
{
#ifndef I2S_CUDA_NOT_BUILT
    visit("i2s_qk256.cuda", &i2s_cuda_gpu_ops);
#endif
    (void)visit; /* never reached without the library: main() skips first */
    return 1;
}
#else
static int for_each_i2s_kernel(kernel_visit visit)
{
    int ran = 0;
    for (int i = 0; i < BITNET_KERNEL_COUNT; i++) {
        const bitnet_kernel *k = bitnet_kernel_get((bitnet_kernel_id)i);
        if (k->format != BITNET_FORMAT_I2S || k->provider != BITNET_PROVIDER_BITNETD ||
            k->device != BITNET_DEVICE_CPU)
            continue;
        bitnet_kernel_status st;
        bitnet_kernel_status_get(k, NULL, &st);
        if (!st.available) {
            if (st.compiled)
                printf("test_i2s: skipping %s: %s\n", k->name, st.reason);
            continue;
        }
        visit(k->name, k->ops);
        ran++;
    }
    visit("i2s_qk256.cuda's lanes on the CPU", &i2s_cuda_lanes_ops);
    return ran + 1;
}
#endif

/* ---- packer -------------------------------------------------------------- */

START_TEST(tensor_bytes_match_the_official_file)
{
    /* Sizes of the 2B4T tensors (docs/formats.md 4.2). */
    ck_assert_uint_eq(bitnet_i2s_tensor_bytes(2560, 2560), 1638432);
    ck_assert_uint_eq(bitnet_i2s_tensor_bytes(2560, 640), 409632);
    ck_assert_uint_eq(bitnet_i2s_tensor_bytes(2560, 6912), 4423712);
    ck_assert_uint_eq(bitnet_i2s_tensor_bytes(6912, 2560), 4423712);
    ck_assert_uint_eq(bitnet_i2s_tensor_bytes(100, 4), 0);
    ck_assert_uint_eq(bitnet_i2s_tensor_bytes(-128, 4), 0);
    /* A hostile file's dimensions must not wrap around to a small size. */
    ck_assert_uint_eq(bitnet_i2s_tensor_bytes((int64_t)1 << 40, (int64_t)1 << 40), 0);
    ck_assert_uint_eq(bitnet_i2s_tensor_bytes(128, INT64_MAX), 0);
}
END_TEST

START_TEST(pack_rejects_rows_that_are_not_whole_blocks)
{
    float x[192] = {0};
    uint8_t out[256];
    ck_assert_int_eq(bitnet_i2s_pack(x, 192, 1, out), -EINVAL);
    ck_assert_int_eq(bitnet_i2s_pack(x, 0, 1, out), -EINVAL);
    ck_assert_int_eq(bitnet_i2s_pack(x, 64, 3, out), -EINVAL);
}
END_TEST

START_TEST(pack_places_each_element_where_the_format_says)
{
    /* Two rows of 256: four blocks. Every element alone, as +s and -s. */
    enum { NE0 = 256, NE1 = 2, N = NE0 * NE1 };
    const float s = 0.75f;
    float x[N];
    uint8_t out[N / 4 + 32];
    for (int e = 0; e < N; e++) {
        for (int sign = -1; sign <= 1; sign += 2) {
            memset(x, 0, sizeof(x));
            x[e] = (float)sign * s;
            memset(out, 0xEE, sizeof(out));
            ck_assert_int_eq(bitnet_i2s_pack(x, NE0, NE1, out), 0);
            int blk = e / 128, i = e % 128;
            int byte = blk * 32 + i % 32, shift = 6 - 2 * (i / 32);
            for (int b = 0; b < N / 4; b++) {
                /* Zero is code 1 in every field: 0b01010101. */
                uint8_t want = 0x55;
                if (b == byte)
                    want = (uint8_t)((0x55 & ~(3 << shift)) | ((sign > 0 ? 2 : 0) << shift));
                ck_assert_msg(out[b] == want, "e=%d sign=%d: byte %d is 0x%02x, want 0x%02x", e,
                              sign, b, out[b], want);
            }
            float got;
            memcpy(&got, out + N / 4, sizeof(got));
            ck_assert(got == s);
            for (int p = 4; p < 32; p++)
                ck_assert_uint_eq(out[N / 4 + p], 0);
        }
    }
}
END_TEST

START_TEST(pack_scale_is_max_abs_and_sign_decides_the_code)
{
    /* Not ternarized input: the packer keeps only the sign, and the scale
     * is the largest magnitude; |x| < 1e-6 counts as zero. */
    float x[128] = {0};
    x[0] = 0.5f;
    x[1] = -2.0f;
    x[2] = 5e-7f;
    x[3] = -5e-7f;
    x[4] = 1e-5f;
    uint8_t out[64];
    ck_assert_int_eq(bitnet_i2s_pack(x, 128, 1, out), 0);
    ck_assert(bitnet_i2s_scale(out, 128, 1) == 2.0f);
    ck_assert_uint_eq(i2s_code_at(out, 0), 2);
    ck_assert_uint_eq(i2s_code_at(out, 1), 0);
    ck_assert_uint_eq(i2s_code_at(out, 2), 1);
    ck_assert_uint_eq(i2s_code_at(out, 3), 1);
    ck_assert_uint_eq(i2s_code_at(out, 4), 2);
}
END_TEST

START_TEST(pack_unpack_round_trips)
{
    rng_seed(1);
    struct weights w;
    weights_make(&w, 384, 5, 0.0421f);
    float *back = malloc(384 * 5 * sizeof(float));
    bitnet_i2s_unpack(w.packed, 384, 5, back);
    ck_assert(bitnet_i2s_scale(w.packed, 384, 5) == 0.0421f);
    for (int i = 0; i < 384 * 5; i++)
        ck_assert_msg(back[i] == (float)w.trit[i] * 0.0421f, "element %d", i);
    free(back);
    weights_free(&w);
}
END_TEST

START_TEST(unpack_reads_code_3_as_zero)
{
    uint8_t in[32 + 32];
    memset(in, 0xFF, 32);
    in[0] = 0xE4; /* fields 3, 2, 1, 0 */
    float s = 2.0f;
    memcpy(in + 32, &s, sizeof(s));
    float out[128];
    bitnet_i2s_unpack(in, 128, 1, out);
    ck_assert(out[0] == 0.0f);   /* code 3 */
    ck_assert(out[32] == 2.0f);  /* code 2 */
    ck_assert(out[64] == 0.0f);  /* code 1 */
    ck_assert(out[96] == -2.0f); /* code 0 */
    for (int e = 1; e < 32; e++)
        ck_assert(out[e] == 0.0f);
}
END_TEST

START_TEST(ternarize_absmean_follows_the_converter)
{
    rng_seed(2);
    enum { N = 1000 };
    float w[N], orig[N];
    double sum = 0;
    for (int i = 0; i < N; i++) {
        orig[i] = w[i] = rng_float() * 3.0f;
        sum += fabs((double)orig[i]);
    }
    float s = bitnet_ternarize_absmean(w, N);
    ck_assert(fabs((double)s - sum / N) <= 1e-6 * sum / N);
    int seen[3] = {0};
    for (int i = 0; i < N; i++) {
        double q = (double)orig[i] / (double)s;
        float want = q > 0.5 ? s : q < -0.5 ? -s : 0.0f;
        ck_assert_msg(w[i] == want, "element %d: %g -> %g, want %g", i, (double)orig[i],
                      (double)w[i], (double)want);
        seen[w[i] > 0 ? 2 : w[i] < 0 ? 0 : 1]++;
    }
    ck_assert(seen[0] && seen[1] && seen[2]);

    /* All zero: the scale is clamped to 1e-5 and everything stays zero. */
    float z[8] = {0};
    ck_assert(bitnet_ternarize_absmean(z, 8) == 1e-5f);
    for (int i = 0; i < 8; i++)
        ck_assert(z[i] == 0.0f);
}
END_TEST

/* ---- activation quantization ----------------------------------------------- */

START_TEST(scalar_quantize_follows_the_definition)
{
    rng_seed(3);
    const bitnet_kernel_ops *ops = scalar_kernel()->ops;
    const int64_t ks[] = {1, 31, 128, 384, 2560};
    for (size_t ki = 0; ki < sizeof(ks) / sizeof(ks[0]); ki++) {
        int64_t k = ks[ki];
        float *x = malloc((size_t)k * sizeof(float));
        for (int64_t i = 0; i < k; i++)
            x[i] = rng_float() * 4.0f;
        uint8_t *act = acts_quantize(ops, x, k, 1);
        double m = 0;
        for (int64_t i = 0; i < k; i++)
            m = fmax(m, fabs((double)x[i]));
        float scale = (float)(127.0 / fmax(m, 1e-5));
        ck_assert(i2s_act_get_scale(act, k) == scale);
        int64_t sum = 0;
        char *seen = calloc(i2s_act_values_bytes(k), 1);
        for (int64_t i = 0; i < k; i++) {
            float v = x[i] * scale;
            long want = lrintf(v); /* default rounding mode: ties to even */
            want = want < -128 ? -128 : want > 127 ? 127 : want;
            int8_t got = (int8_t)act[i2s_act_pos(k, i)];
            ck_assert_msg(got == want, "k=%lld i=%lld: %d, want %ld", (long long)k, (long long)i,
                          got, want);
            /* Kernel order is a permutation of 0..k-1. */
            size_t pos = i2s_act_pos(k, i);
            ck_assert(pos < (size_t)k && !seen[pos]);
            seen[pos] = 1;
            sum += want;
        }
        ck_assert_int_eq(i2s_act_get_sum(act, k), sum);
        free(seen);
        free(act);
        free(x);
    }
}
END_TEST

START_TEST(quantize_rounds_ties_to_even)
{
    /* max|x| = 127 makes act_scale exactly 1, so x itself is rounded. */
    const bitnet_kernel_ops *ops = scalar_kernel()->ops;
    float x[8] = {127.0f, 2.5f, 3.5f, -2.5f, -3.5f, 0.5f, -0.5f, 1.5f};
    int8_t want[8] = {127, 2, 4, -2, -4, 0, 0, 2};
    uint8_t *act = acts_quantize(ops, x, 8, 1);
    ck_assert(i2s_act_get_scale(act, 8) == 1.0f);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq((int8_t)act[i], want[i]);
    ck_assert_int_eq(i2s_act_get_sum(act, 8), 127 + 2 + 4 - 2 - 4 + 0 + 0 + 2);
    free(act);
}
END_TEST

/* Fills x with one of several value patterns. */
static void fill_pattern(float *x, int64_t k, int pattern)
{
    for (int64_t i = 0; i < k; i++) {
        switch (pattern) {
        case 0:
            x[i] = rng_float() * 10.0f;
            break;
        case 1:
            x[i] = 0.0f;
            break;
        case 2: /* tiny: the 1e-5 floor of the scale */
            x[i] = rng_float() * 1e-7f;
            break;
        case 3: /* one hot element */
            x[i] = i == k / 3 ? -7.0f : 0.0f;
            break;
        case 4: /* a NaN and an infinity: garbage out, but the same garbage */
            x[i] = i == 5 ? NAN : i == 7 % k ? INFINITY : rng_float();
            break;
        default: /* huge magnitudes */
            x[i] = rng_float() * 3e38f;
            break;
        }
    }
}

static void check_quantize_same_as_scalar(const char *name, const bitnet_kernel_ops *ops)
{
    const bitnet_kernel_ops *ref = scalar_kernel()->ops;
    const int64_t ks[] = {1, 8, 33, 128, 256, 384, 2560, 6912, 1000};
    rng_seed(4);
    for (size_t ki = 0; ki < sizeof(ks) / sizeof(ks[0]); ki++) {
        int64_t k = ks[ki];
        ck_assert_uint_eq(ops->act_row_bytes(k), ref->act_row_bytes(k));
        float *x = malloc((size_t)k * sizeof(float));
        for (int pattern = 0; pattern < 6; pattern++) {
            fill_pattern(x, k, pattern);
            uint8_t *a = acts_quantize(ops, x, k, 1);
            uint8_t *b = acts_quantize(ref, x, k, 1);
            ck_assert_msg(memcmp(a, b, ref->act_row_bytes(k)) == 0,
                          "%s: quantize_act differs from scalar at k=%lld pattern %d", name,
                          (long long)k, pattern);
            free(a);
            free(b);
        }
        free(x);
    }
}

START_TEST(every_kernel_quantizes_like_scalar)
{
    ck_assert_int_ge(for_each_i2s_kernel(check_quantize_same_as_scalar), 1);
}
END_TEST

/* ---- matmul -------------------------------------------------------------- */

START_TEST(scalar_matmul_equals_the_integer_formula)
{
    /* y = sum((code - 1) * qa) / act_scale * w_scale, with qa computed here
     * from x and the trits taken from before packing. */
    rng_seed(5);
    const bitnet_kernel_ops *ops = scalar_kernel()->ops;
    const int64_t ks[] = {128, 384, 2560};
    for (size_t ki = 0; ki < sizeof(ks) / sizeof(ks[0]); ki++) {
        int64_t k = ks[ki], n_rows = 7;
        int n_act = 3;
        struct weights w;
        weights_make(&w, k, n_rows, 0.37f);
        float *x = malloc((size_t)(k * n_act) * sizeof(float));
        for (int64_t i = 0; i < k * n_act; i++)
            x[i] = rng_float() * 2.0f;
        uint8_t *act = acts_quantize(ops, x, k, n_act);
        float *y = run_matmul(ops, w.packed, (size_t)k / 4, w.scale, k, n_rows, act, n_act);
        for (int t = 0; t < n_act; t++) {
            const float *xt = x + t * k;
            double m = 0;
            for (int64_t i = 0; i < k; i++)
                m = fmax(m, fabs((double)xt[i]));
            float s_a = (float)(127.0 / fmax(m, 1e-5));
            for (int64_t r = 0; r < n_rows; r++) {
                int64_t isum = 0;
                double dsum = 0;
                for (int64_t i = 0; i < k; i++) {
                    long q = lrintf(xt[i] * s_a);
                    isum += w.trit[r * k + i] * q;
                    dsum += fabs((double)q);
                }
                float got = y[t * (n_rows + 3) + r];
                /* Exactly the float formula of the reference ... */
                ck_assert(got == (float)isum / s_a * w.scale);
                /* ... which is the real-valued product up to float rounding. */
                double want = (double)isum / (double)s_a * (double)w.scale;
                ck_assert(fabs((double)got - want) <= 1e-6 * (fabs(want) + dsum / s_a * w.scale));
            }
        }
        free(y);
        free(act);
        free(x);
        weights_free(&w);
    }
}
END_TEST

START_TEST(code_3_is_a_zero_weight)
{
    /* Every byte 0xFF (all code 3) beside one real +1: only that counts. */
    const bitnet_kernel_ops *ops = scalar_kernel()->ops;
    uint8_t w[64];
    memset(w, 0xFF, sizeof(w));
    w[5] = 0xBF; /* element 5 (field 0) is code 2, the rest of the byte 3 */
    float x[256];
    for (int i = 0; i < 256; i++)
        x[i] = (float)(i % 17) - 8.0f;
    uint8_t *act = acts_quantize(ops, x, 256, 1);
    float *y = run_matmul(ops, w, 64, 1.0f, 256, 1, act, 1);
    float s_a = i2s_act_get_scale(act, 256);
    long q5 = lrintf(x[5] * s_a);
    ck_assert(y[0] == (float)q5 / s_a);
    free(y);
    free(act);
}
END_TEST

/* One comparison of a kernel's matmul against the scalar one on the same
 * weights and activation rows. */
static void compare_matmul(const char *name, const bitnet_kernel_ops *ops, const uint8_t *w,
                           size_t w_row_bytes, float w_scale, int64_t k, int64_t n_rows,
                           const uint8_t *act, int n_act)
{
    const bitnet_kernel_ops *ref = scalar_kernel()->ops;
    float *y = run_matmul(ops, w, w_row_bytes, w_scale, k, n_rows, act, n_act);
    float *y_ref = run_matmul(ref, w, w_row_bytes, w_scale, k, n_rows, act, n_act);
    assert_same_bits(name, y, y_ref, n_rows, n_act, k);
    free(y);
    free(y_ref);
}

/* Random bytes (code 3 included) as weights, rows w_row_bytes apart. */
static uint8_t *random_weight_bytes(int64_t k, int64_t n_rows, size_t w_row_bytes)
{
    size_t n = w_row_bytes * (size_t)n_rows;
    uint8_t *w = malloc(n);
    ck_assert_ptr_nonnull(w);
    for (size_t i = 0; i < n; i++)
        w[i] = (uint8_t)rng_u32();
    return w;
}

static void check_matmul_random_shapes(const char *name, const bitnet_kernel_ops *ops)
{
    const bitnet_kernel_ops *ref = scalar_kernel()->ops;
    const int64_t ks[] = {128, 256, 384, 2560, 6912};
    const int64_t rows[] = {1, 5, 13};
    rng_seed(6);
    for (size_t ki = 0; ki < sizeof(ks) / sizeof(ks[0]); ki++) {
        int64_t k = ks[ki];
        /* Rows further apart than k/4, as in a slice of a larger tensor. */
        size_t w_row_bytes = (size_t)k / 4 + (ki % 2 ? 64 : 0);
        float *x = malloc((size_t)(k * 17) * sizeof(float));
        for (int64_t i = 0; i < k * 17; i++)
            x[i] = rng_float() * 3.0f;
        uint8_t *act = acts_quantize(ref, x, k, 17);
        for (size_t ri = 0; ri < sizeof(rows) / sizeof(rows[0]); ri++) {
            uint8_t *w = random_weight_bytes(k, rows[ri], w_row_bytes);
            for (int n_act = 1; n_act <= 17; n_act++)
                compare_matmul(name, ops, w, w_row_bytes, 0.0123f, k, rows[ri], act, n_act);
            free(w);
        }
        free(act);
        free(x);
    }
}

START_TEST(every_kernel_matches_scalar_on_random_shapes)
{
    ck_assert_int_ge(for_each_i2s_kernel(check_matmul_random_shapes), 1);
}
END_TEST

/* Activation rows written by hand: every value v, with a consistent trailer. */
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

static void check_matmul_edges(const char *name, const bitnet_kernel_ops *ops)
{
    const bitnet_kernel_ops *ref = scalar_kernel()->ops;
    const int64_t k = 6912, n_rows = 9;
    const int n_act = 17;
    const size_t wb = (size_t)k / 4;
    uint8_t *w = malloc(wb * (size_t)n_rows);
    /* Weight bytes: all -1 (0x00), all 0 (0x55), all +1 (0xAA), all code 3. */
    const uint8_t fills[] = {0x00, 0x55, 0xAA, 0xFF};
    /* Activations at the int8 extremes: the largest products the int16 and
     * int32 lanes see. */
    const int values[] = {127, -128, 0};
    for (size_t fi = 0; fi < sizeof(fills); fi++) {
        memset(w, fills[fi], wb * (size_t)n_rows);
        for (size_t vi = 0; vi < sizeof(values) / sizeof(values[0]); vi++) {
            uint8_t *act = acts_constant(k, n_act, values[vi]);
            compare_matmul(name, ops, w, wb, 1.0f, k, n_rows, act, n_act);
            /* Independent: sum((code - 1) * v) with code 3 as 1. */
            float *y = run_matmul(ops, w, wb, 1.0f, k, n_rows, act, n_act);
            int code = fills[fi] == 0xFF ? 1 : fills[fi] & 3;
            float want = (float)((int64_t)(code - 1) * values[vi] * k);
            for (int t = 0; t < n_act; t++)
                for (int64_t r = 0; r < n_rows; r++)
                    ck_assert_msg(y[t * (n_rows + 3) + r] == want, "%s: fill 0x%02x v=%d", name,
                                  fills[fi], values[vi]);
            free(y);
            free(act);
        }
    }
    /* One hot weight against varied activations, at every position of the
     * first two chunks. */
    float *x = malloc((size_t)k * sizeof(float));
    rng_seed(7);
    for (int64_t i = 0; i < k; i++)
        x[i] = rng_float();
    uint8_t *act = acts_quantize(ref, x, k, 1);
    for (int64_t e = 0; e < 2 * I2S_CHUNK; e++) {
        memset(w, 0x55, wb);
        size_t byte = (size_t)(e / 128 * 32 + e % 32);
        int shift = 6 - 2 * (int)(e % 128 / 32);
        w[byte] = (uint8_t)((w[byte] & ~(3 << shift)) | (2 << shift));
        float *y = run_matmul(ops, w, wb, 1.0f, k, 1, act, 1);
        float s_a = i2s_act_get_scale(act, k);
        int q = (int8_t)act[i2s_act_pos(k, e)];
        ck_assert_msg(y[0] == (float)q / s_a, "%s: hot element %lld", name, (long long)e);
        free(y);
    }
    /* Empty products compute and write nothing. */
    free(run_matmul(ops, w, wb, 1.0f, k, 0, act, 1));
    float *y = run_matmul(ops, w, wb, 1.0f, k, 2, act, 0);
    ck_assert_msg(memcmp(y, &SENTINEL, sizeof(float)) == 0, "%s: n_act = 0 wrote", name);
    free(y);
    free(act);
    free(x);
    free(w);
}

START_TEST(every_kernel_matches_scalar_on_edge_values)
{
    ck_assert_int_ge(for_each_i2s_kernel(check_matmul_edges), 1);
}
END_TEST

#if defined(__x86_64__)
static void avx512_without_vnni(const bitnet_matmul_args *a)
{
    i2s_avx512_matmul_path(a, false);
}

static void avx512_with_vnni(const bitnet_matmul_args *a)
{
    i2s_avx512_matmul_path(a, true);
}
#endif

START_TEST(avx512_paths_with_and_without_vnni_match_scalar)
{
#if defined(__x86_64__)
    const bitnet_kernel *k = bitnet_kernel_get(BITNET_KERNEL_I2S_QK256_AVX512);
    bitnet_kernel_status st;
    bitnet_kernel_status_get(k, NULL, &st);
    if (!st.available) {
        printf("test_i2s: skipping the AVX-512 paths: %s\n", st.reason);
        return;
    }
    bitnet_kernel_ops ops = *k->ops;
    ops.matmul = avx512_without_vnni;
    check_matmul_random_shapes("i2s_qk256.avx512 (no VNNI)", &ops);
    check_matmul_edges("i2s_qk256.avx512 (no VNNI)", &ops);
    if (bitnet_cpu_features_get()->avx512_vnni) {
        ops.matmul = avx512_with_vnni;
        check_matmul_random_shapes("i2s_qk256.avx512 (VNNI)", &ops);
        check_matmul_edges("i2s_qk256.avx512 (VNNI)", &ops);
    } else {
        printf("test_i2s: skipping the AVX-512 VNNI path: this CPU lacks AVX512_VNNI\n");
    }
#else
    printf("test_i2s: skipping the AVX-512 paths: not an x86-64 build\n");
#endif
}
END_TEST

#if defined(__aarch64__)
static void neon_plain(const bitnet_matmul_args *a)
{
    i2s_neon_matmul_path(a, false);
}

static void neon_sdot(const bitnet_matmul_args *a)
{
    i2s_neon_matmul_path(a, true);
}
#endif

START_TEST(neon_paths_with_and_without_dotprod_match_scalar)
{
#if defined(__aarch64__)
    const bitnet_kernel *k = bitnet_kernel_get(BITNET_KERNEL_I2S_QK256_NEON);
    bitnet_kernel_status st;
    bitnet_kernel_status_get(k, NULL, &st);
    if (!st.available) {
        printf("test_i2s: skipping the NEON paths: %s\n", st.reason);
        return;
    }
    bitnet_kernel_ops ops = *k->ops;
    ops.matmul = neon_plain;
    check_matmul_random_shapes("i2s_qk256.neon (no DOTPROD)", &ops);
    check_matmul_edges("i2s_qk256.neon (no DOTPROD)", &ops);
    if (bitnet_cpu_features_get()->dotprod) {
        ops.matmul = neon_sdot;
        check_matmul_random_shapes("i2s_qk256.neon (SDOT)", &ops);
        check_matmul_edges("i2s_qk256.neon (SDOT)", &ops);
    } else {
        printf("test_i2s: skipping the NEON SDOT path: this CPU lacks DOTPROD\n");
    }
#else
    printf("test_i2s: skipping the NEON paths: not an aarch64 build\n");
#endif
}
END_TEST

#ifdef I2S_TEST_CUDA
/* test_i2s_cuda: the cases that take a kernel, on the GPU. */
static Suite *i2s_suite(void)
{
    Suite *s = suite_create("i2s_cuda");
    TCase *tc = tcase_create("cuda");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, every_kernel_quantizes_like_scalar);
    tcase_add_test(tc, every_kernel_matches_scalar_on_random_shapes);
    tcase_add_test(tc, every_kernel_matches_scalar_on_edge_values);
    suite_add_tcase(s, tc);
    return s;
}

/* 0 when a GPU can run the kernels; else prints why and returns 77, which
 * CTest reports as a skipped test. */
static int cuda_ready(void)
{
#ifdef I2S_CUDA_NOT_BUILT
    printf("test_i2s_cuda: skipped: %s\n", I2S_CUDA_NOT_BUILT);
    return 77;
#else
    char desc[512];
    if (bitnet_cuda_probe(desc, sizeof(desc)) != 0) {
        printf("test_i2s_cuda: skipped: %s\n", desc);
        return 77;
    }
    printf("test_i2s_cuda: running on %s\n", desc);
    return 0;
#endif
}
#else
static Suite *i2s_suite(void)
{
    Suite *s = suite_create("i2s");
    TCase *pack = tcase_create("pack");
    tcase_add_test(pack, tensor_bytes_match_the_official_file);
    tcase_add_test(pack, pack_rejects_rows_that_are_not_whole_blocks);
    tcase_add_test(pack, pack_places_each_element_where_the_format_says);
    tcase_add_test(pack, pack_scale_is_max_abs_and_sign_decides_the_code);
    tcase_add_test(pack, pack_unpack_round_trips);
    tcase_add_test(pack, unpack_reads_code_3_as_zero);
    tcase_add_test(pack, ternarize_absmean_follows_the_converter);
    suite_add_tcase(s, pack);

    TCase *quant = tcase_create("quantize");
    tcase_add_test(quant, scalar_quantize_follows_the_definition);
    tcase_add_test(quant, quantize_rounds_ties_to_even);
    tcase_add_test(quant, every_kernel_quantizes_like_scalar);
    suite_add_tcase(s, quant);

    TCase *mm = tcase_create("matmul");
    tcase_add_test(mm, scalar_matmul_equals_the_integer_formula);
    tcase_add_test(mm, code_3_is_a_zero_weight);
    tcase_add_test(mm, every_kernel_matches_scalar_on_random_shapes);
    tcase_add_test(mm, every_kernel_matches_scalar_on_edge_values);
    tcase_add_test(mm, avx512_paths_with_and_without_vnni_match_scalar);
    tcase_add_test(mm, neon_paths_with_and_without_dotprod_match_scalar);
    suite_add_tcase(s, mm);
    return s;
}
#endif

int main(void)
{
#ifdef I2S_TEST_CUDA
    int ready = cuda_ready();
    if (ready != 0)
        return ready;
#endif
    SRunner *sr = srunner_create(i2s_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
