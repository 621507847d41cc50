/* tests/engine/test_compute.c - the compute pool, float ops and the sampler. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/error.h"
#include "engine/fmat.h"
#include "engine/ops.h"
#include "engine/pool.h"
#include "engine/sampler.h"

struct count_ctx {
    long n;
    _Atomic int *hits;
    _Atomic int calls;
};

static void count_task(void *ctx, int ith, int nth)
{
    struct count_ctx *c = ctx;
    long b, e;
    pool_split(c->n, ith, nth, 3, &b, &e);
    for (long i = b; i < e; i++)
        atomic_fetch_add(&c->hits[i], 1);
    atomic_fetch_add(&c->calls, 1);
}

START_TEST(pool_runs_every_item_exactly_once)
{
    for (int threads = 1; threads <= 4; threads++) {
        pool *p;
        ck_assert_int_eq(pool_new(threads, &p), 0);
        ck_assert_int_eq(pool_threads(p), threads);
        for (long n = 0; n < 200; n += 7) {
            _Atomic int *hits = calloc((size_t)n + 1, sizeof(*hits));
            struct count_ctx c = {n, hits, 0};
            for (int rep = 0; rep < 50; rep++)
                pool_run(p, count_task, &c);
            for (long i = 0; i < n; i++)
                ck_assert_int_eq(hits[i], 50);
            ck_assert_int_eq(c.calls, 50 * threads);
            free(hits);
        }
        pool_free(p);
    }
    pool *p;
    ck_assert_int_eq(pool_new(0, &p), -EINVAL);
    pool_free(NULL);
}
END_TEST

START_TEST(pool_split_covers_the_range)
{
    for (long n = 0; n < 100; n++)
        for (int nth = 1; nth < 6; nth++) {
            long prev = 0;
            for (int i = 0; i < nth; i++) {
                long b, e;
                pool_split(n, i, nth, 16, &b, &e);
                ck_assert_int_eq(b, prev);
                ck_assert_int_le(b, e);
                ck_assert(b % 16 == 0 || b == n);
                prev = e;
            }
            ck_assert_int_eq(prev, n);
        }
}
END_TEST

START_TEST(rmsnorm_softmax_and_rope)
{
    float x[4] = {1, 2, 3, 4}, w[4] = {1, 1, 2, 1}, y[4];
    op_rmsnorm(y, x, w, 4, 0.0f);
    float s = 1.0f / sqrtf(30.0f / 4.0f);
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq_tol(y[i], x[i] * s * w[i], 1e-6);

    float p[5] = {1, 2, 3, 4, 1000};
    op_softmax(p, 5);
    float sum = 0;
    for (int i = 0; i < 5; i++)
        sum += p[i];
    ck_assert_float_eq_tol(sum, 1.0f, 1e-6);
    ck_assert_float_eq_tol(p[4], 1.0f, 1e-6);

    /* Position 0 is the identity; NEOX rotates pairs (i, i + n/2). */
    float v[8] = {1, 2, 3, 4, 5, 6, 7, 8}, v0[8];
    memcpy(v0, v, sizeof(v));
    op_rope(v, 1, 8, 8, 0, 10000.0f, 1.0f, NULL, 1);
    ck_assert_mem_eq(v, v0, sizeof(v));
    op_rope(v, 1, 8, 8, 1, 10000.0f, 1.0f, NULL, 1);
    ck_assert_float_eq_tol(v[0], cosf(1) * 1 - sinf(1) * 5, 1e-6);
    ck_assert_float_eq_tol(v[4], sinf(1) * 1 + cosf(1) * 5, 1e-6);
    float n[4] = {1, 0, 0, 1};
    op_rope(n, 1, 4, 4, 1, 10000.0f, 1.0f, NULL, 0);
    ck_assert_float_eq_tol(n[0], cosf(1), 1e-6);
    ck_assert_float_eq_tol(n[1], sinf(1), 1e-6);
}
END_TEST

START_TEST(every_fmat_agrees_with_scalar)
{
    int n;
    const struct fmat_ops *const *all = fmat_all(&n);
    const long K = 67, R = 9;
    const int T = 5;
    uint16_t wh[67 * 9];
    float wf[67 * 9], x[5 * 67], ref[5 * 9], got[5 * 9];
    for (long i = 0; i < K * R; i++) {
        wf[i] = (float)((i * 37) % 11) - 5.0f;
        wh[i] = (uint16_t)(0x3c00 + (i % 7) * 64); /* small positive halves */
    }
    for (long i = 0; i < K * T; i++)
        x[i] = (float)((i * 13) % 17) / 8.0f - 1.0f;
    fmat_scalar.f32(wf, K, R, K, x, T, ref, R);
    ck_assert_int_eq(fmat_supported(fmat_select()), 1);
    for (int i = 0; i < n; i++) {
        if (!fmat_supported(all[i])) {
            printf("fmat.%s: not supported on this CPU, skipped\n", all[i]->name);
            continue;
        }
        all[i]->f32(wf, K, R, K, x, T, got, R);
        for (int j = 0; j < T * R; j++)
            ck_assert_float_eq_tol(got[j], ref[j], 1e-3);
    }
    fmat_scalar.f16(wh, K, R, K, x, T, ref, R);
    for (int i = 0; i < n; i++) {
        if (!fmat_supported(all[i]))
            continue;
        all[i]->f16(wh, K, R, K, x, T, got, R);
        for (int j = 0; j < T * R; j++)
            ck_assert_float_eq_tol(got[j], ref[j], 1e-3);
    }
}
END_TEST

/* Every implementation, every weight type: a row's result against one
 * activation row is bit-identical whether that row is computed alone or in a
 * batch of any size (the tiled batched paths sum each pair in the one-row
 * order), for row counts that do and do not fill the tiles, and row lengths
 * with and without a tail. */
START_TEST(fmat_batched_rows_equal_single_rows)
{
    int n;
    const struct fmat_ops *const *all = fmat_all(&n);
    const long ks[] = {64, 80, 67};
    const long rows_max = 14;
    const int t_max = 19;
    const long k_max = 80;
    uint16_t *wh = malloc(sizeof(uint16_t) * rows_max * k_max);
    float *wf = malloc(sizeof(float) * rows_max * k_max);
    uint8_t *wq = malloc((size_t)rows_max * (k_max / 32 + 1) * FMAT_Q8_0_BYTES);
    float *x = malloc(sizeof(float) * t_max * k_max);
    float *got = malloc(sizeof(float) * t_max * rows_max);
    float *one = malloc(sizeof(float) * rows_max);
    unsigned seed = 12345;
    for (long i = 0; i < rows_max * k_max; i++) {
        seed = seed * 1103515245u + 12345u;
        wf[i] = (float)((seed >> 16) % 2001) / 1000.0f - 1.0f;
        wh[i] = (uint16_t)(0x3000 + (seed >> 20) % 0x0c00) | (uint16_t)((seed >> 8 & 1) << 15);
    }
    for (long i = 0; i < t_max * k_max; i++) {
        seed = seed * 1103515245u + 12345u;
        x[i] = (float)((seed >> 16) % 2001) / 500.0f - 2.0f;
    }
    for (int i = 0; i < n; i++) {
        const struct fmat_ops *f = all[i];
        if (!fmat_supported(f))
            continue;
        for (size_t ki = 0; ki < sizeof(ks) / sizeof(ks[0]); ki++) {
            const long k = ks[ki];
            const long q_row = (k / 32) * FMAT_Q8_0_BYTES;
            if (k % 32 == 0)
                for (long r = 0; r < rows_max; r++)
                    fmat_quantize_q8_0(wf + r * k, k, wq + r * q_row);
            for (long rows = 1; rows <= rows_max; rows++) {
                for (int t = 1; t <= t_max; t++) {
                    for (int type = 0; type < 3; type++) {
                        if (type == 2 && k % 32 != 0)
                            continue;
                        if (type == 0)
                            f->f16(wh, k, rows, k, x, t, got, rows);
                        else if (type == 1)
                            f->f32(wf, k, rows, k, x, t, got, rows);
                        else
                            f->q8_0(wq, q_row, rows, k, x, t, got, rows);
                        for (int j = 0; j < t; j++) {
                            const float *xj = x + (long)j * k;
                            if (type == 0)
                                f->f16(wh, k, rows, k, xj, 1, one, rows);
                            else if (type == 1)
                                f->f32(wf, k, rows, k, xj, 1, one, rows);
                            else
                                f->q8_0(wq, q_row, rows, k, xj, 1, one, rows);
                            ck_assert_msg(memcmp(one, got + (long)j * rows,
                                                 sizeof(float) * (size_t)rows) == 0,
                                          "fmat.%s %s: k=%ld rows=%ld batch=%d: activation row "
                                          "%d differs from its one-row result",
                                          f->name,
                                          type == 0   ? "f16"
                                          : type == 1 ? "f32"
                                                      : "q8_0",
                                          k, rows, t, j);
                        }
                    }
                }
            }
        }
    }
    free(wh);
    free(wf);
    free(wq);
    free(x);
    free(got);
    free(one);
}
END_TEST

START_TEST(greedy_sampler_is_argmax)
{
    sampler_params p = sampler_params_default();
    sampler *s;
    ck_assert_int_eq(sampler_new(&p, 6, &s), 0);
    float logits[6] = {0.1f, 2.0f, -1.0f, 5.0f, 5.0f, 0.0f};
    ck_assert_int_eq(sampler_sample(s, logits, NULL, 0), 3);
    sampler_free(s);
}
END_TEST

START_TEST(seeded_sampling_is_reproducible_and_follows_top_k)
{
    sampler_params p = sampler_params_default();
    p.temperature = 1.0f;
    p.top_k = 3;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 42;
    enum { V = 50, N = 400 };
    int32_t a[N], b[N];
    int hist[V] = {0};
    for (int run = 0; run < 2; run++) {
        sampler *s;
        ck_assert_int_eq(sampler_new(&p, V, &s), 0);
        for (int i = 0; i < N; i++) {
            float logits[V];
            for (int v = 0; v < V; v++)
                logits[v] = (float)v / 10.0f;
            int32_t t = sampler_sample(s, logits, NULL, 0);
            (run ? b : a)[i] = t;
            if (run)
                hist[t]++;
        }
        sampler_free(s);
    }
    ck_assert_mem_eq(a, b, sizeof(a));
    /* Only the three best tokens, each drawn at least sometimes. */
    for (int v = 0; v < V - 3; v++)
        ck_assert_int_eq(hist[v], 0);
    for (int v = V - 3; v < V; v++)
        ck_assert_int_gt(hist[v], 50);
}
END_TEST

START_TEST(repeat_penalty_lowers_seen_tokens)
{
    sampler_params p = sampler_params_default();
    p.repeat_penalty = 2.0f;
    sampler *s;
    ck_assert_int_eq(sampler_new(&p, 3, &s), 0);
    float logits[3] = {1.0f, 1.5f, 1.2f};
    int32_t hist[2] = {1, 1};
    ck_assert_int_eq(sampler_sample(s, logits, hist, 2), 2);
    sampler_free(s);
    char err[128];
    p.top_p = 0.0f;
    ck_assert_int_eq(sampler_params_check(&p, err, sizeof(err)), BITNET_EPARAM);
    ck_assert_ptr_nonnull(strstr(err, "top_p"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("compute");
    TCase *tc = tcase_create("compute");
    tcase_add_test(tc, pool_runs_every_item_exactly_once);
    tcase_add_test(tc, pool_split_covers_the_range);
    tcase_add_test(tc, rmsnorm_softmax_and_rope);
    tcase_add_test(tc, every_fmat_agrees_with_scalar);
    tcase_add_test(tc, fmat_batched_rows_equal_single_rows);
    tcase_add_test(tc, greedy_sampler_is_argmax);
    tcase_add_test(tc, seeded_sampling_is_reproducible_and_follows_top_k);
    tcase_add_test(tc, repeat_penalty_lowers_seen_tokens);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
