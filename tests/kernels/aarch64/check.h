/*
 * tests/kernels/aarch64/check.h - the part of Check's API that test_i2s.c
 * uses, for the aarch64 cross build only.
 *
 * Debian ships libcheck for the build machine but not for arm64, so the
 * cross-built test_i2s (run under qemu-aarch64) gets this small stand-in:
 * the same macros and runner calls, tests run in-process one after another,
 * and a failed assertion ends its test with a message and counts a failure.
 * The native build always uses the real Check.
 */
#ifndef BITNET_TESTS_MINI_CHECK_H
#define BITNET_TESTS_MINI_CHECK_H

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define MC_MAX_TESTS 64
#define MC_MAX_CASES 16

typedef void (*mc_test_fn)(void);

typedef struct TCase {
    const char *name;
    const char *test_names[MC_MAX_TESTS];
    mc_test_fn tests[MC_MAX_TESTS];
    int n;
} TCase;

typedef struct Suite {
    const char *name;
    TCase *cases[MC_MAX_CASES];
    int n;
} Suite;

typedef struct SRunner {
    Suite *suite;
    int run, failed;
} SRunner;

enum print_output { CK_NORMAL };

static jmp_buf mc_jump;
static const char *mc_test_name;

static void mc_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s:%d:F:%s: ", file, line, mc_test_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    longjmp(mc_jump, 1);
}

#define START_TEST(name) static void name(void)
#define END_TEST

#define ck_assert_msg(expr, ...)                                                                   \
    do {                                                                                           \
        if (!(expr))                                                                               \
            mc_fail(__FILE__, __LINE__, __VA_ARGS__);                                              \
    } while (0)
#define ck_assert(expr) ck_assert_msg(expr, "Assertion '%s' failed", #expr)
#define MC_CMP(T, FMT, a, op, b)                                                                   \
    do {                                                                                           \
        T mc_a = (T)(a), mc_b = (T)(b);                                                            \
        ck_assert_msg(mc_a op mc_b, "Assertion '%s %s %s' failed: %" FMT " vs %" FMT, #a, #op, #b, \
                      mc_a, mc_b);                                                                 \
    } while (0)
#define ck_assert_int_eq(a, b)   MC_CMP(intmax_t, PRIdMAX, a, ==, b)
#define ck_assert_int_ge(a, b)   MC_CMP(intmax_t, PRIdMAX, a, >=, b)
#define ck_assert_uint_eq(a, b)  MC_CMP(uintmax_t, PRIuMAX, a, ==, b)
#define ck_assert_ptr_nonnull(p) ck_assert_msg((p) != NULL, "'%s' is NULL", #p)
#define ck_assert_ptr_null(p)    ck_assert_msg((p) == NULL, "'%s' is not NULL", #p)
#define ck_assert_ptr_eq(a, b)   ck_assert_msg((a) == (b), "'%s' != '%s'", #a, #b)

static Suite *suite_create(const char *name)
{
    Suite *s = calloc(1, sizeof(*s));
    s->name = name;
    return s;
}

static TCase *tcase_create(const char *name)
{
    TCase *tc = calloc(1, sizeof(*tc));
    tc->name = name;
    return tc;
}

static void mc_tcase_add(TCase *tc, const char *name, mc_test_fn fn)
{
    if (tc->n < MC_MAX_TESTS) {
        tc->test_names[tc->n] = name;
        tc->tests[tc->n++] = fn;
    }
}
#define tcase_add_test(tc, fn) mc_tcase_add((tc), #fn, fn)

static void suite_add_tcase(Suite *s, TCase *tc)
{
    if (s->n < MC_MAX_CASES)
        s->cases[s->n++] = tc;
}

static SRunner *srunner_create(Suite *s)
{
    SRunner *sr = calloc(1, sizeof(*sr));
    sr->suite = s;
    return sr;
}

/* Runs one test; returns 1 when an assertion failed. */
static int mc_run_one(mc_test_fn fn)
{
    if (setjmp(mc_jump) == 0) {
        fn();
        return 0;
    }
    return 1;
}

static void srunner_run_all(SRunner *sr, enum print_output mode)
{
    (void)mode;
    printf("Running suite(s): %s\n", sr->suite->name);
    for (int c = 0; c < sr->suite->n; c++) {
        TCase *tc = sr->suite->cases[c];
        for (int i = 0; i < tc->n; i++) {
            mc_test_name = tc->test_names[i];
            sr->run++;
            sr->failed += mc_run_one(tc->tests[i]);
        }
    }
    printf("%d%%: Checks: %d, Failures: %d, Errors: 0\n",
           sr->run ? 100 * (sr->run - sr->failed) / sr->run : 100, sr->run, sr->failed);
}

static int srunner_ntests_failed(SRunner *sr)
{
    return sr->failed;
}

static void srunner_free(SRunner *sr)
{
    if (!sr)
        return;
    for (int c = 0; c < sr->suite->n; c++)
        free(sr->suite->cases[c]);
    free(sr->suite);
    free(sr);
}

#endif
