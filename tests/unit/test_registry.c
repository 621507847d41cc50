/* tests/unit/test_registry.c - the kernel registry and SIMD levels. */
#include <check.h>
#include <string.h>

#include "bitnet/error.h"
#include "bitnet/kernels.h"

START_TEST(every_id_round_trips_through_its_name)
{
    for (int i = 0; i < BITNET_KERNEL_COUNT; i++) {
        const bitnet_kernel *k = bitnet_kernel_get((bitnet_kernel_id)i);
        ck_assert_ptr_nonnull(k);
        ck_assert_int_eq(k->id, i);
        const bitnet_kernel *found = NULL;
        ck_assert_int_eq(bitnet_kernel_lookup(k->name, &found, NULL, 0), 0);
        ck_assert_ptr_eq(found, k);
        ck_assert_ptr_nonnull(k->roadmap_name);
    }
    ck_assert_ptr_null(bitnet_kernel_get(BITNET_KERNEL_COUNT));
}
END_TEST

START_TEST(design_ids_are_all_present)
{
    static const char *ids[] = {"i2s_qk256.scalar", "i2s_qk256.avx2", "i2s_qk256.avx512",
                                "i2s_qk256.neon",   "i2s_qk256.cuda", "tl1.neon",
                                "tl1.avx2",         "tl1.avx512",     "tl2.avx512",
                                "tq2_0.scalar",     "tq2_0.avx2",     "tq2_0.avx512",
                                "tq2_0.neon",       "tq1_0.scalar",   "tq1_0.avx2",
                                "tq1_0.avx512",     "tq1_0.neon",     "iq2s_ggml.cpu",
                                "iq2s_ggml.cuda",   "llama.cpu",      "llama.cuda"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        const bitnet_kernel *k = NULL;
        ck_assert_msg(bitnet_kernel_lookup(ids[i], &k, NULL, 0) == 0, "missing %s", ids[i]);
    }
}
END_TEST

START_TEST(unknown_id_lists_the_valid_ones)
{
    const bitnet_kernel *k = NULL;
    char err[1024];
    ck_assert_int_eq(bitnet_kernel_lookup("i2s_qk256.avx1024", &k, err, sizeof(err)),
                     BITNET_EUNKNOWN_ID);
    ck_assert_ptr_null(k);
    ck_assert_ptr_nonnull(strstr(err, "i2s_qk256.avx1024"));
    ck_assert_ptr_nonnull(strstr(err, "i2s_qk256.scalar"));
    ck_assert_ptr_nonnull(strstr(err, "llama.cuda"));
    ck_assert_int_eq(bitnet_kernel_require("nope", &k, err, sizeof(err)), BITNET_EUNKNOWN_ID);
}
END_TEST

START_TEST(simd_levels_are_ordered_within_a_family)
{
    ck_assert(bitnet_simd_at_most(BITNET_SIMD_SCALAR, BITNET_SIMD_AVX512));
    ck_assert(bitnet_simd_at_most(BITNET_SIMD_AVX2, BITNET_SIMD_AVX512));
    ck_assert(bitnet_simd_at_most(BITNET_SIMD_AVX512, BITNET_SIMD_AVX512));
    ck_assert(!bitnet_simd_at_most(BITNET_SIMD_AVX512, BITNET_SIMD_AVX2));
    ck_assert(!bitnet_simd_at_most(BITNET_SIMD_NEON, BITNET_SIMD_AVX512));
    ck_assert(!bitnet_simd_at_most(BITNET_SIMD_AVX2, BITNET_SIMD_NEON));
    ck_assert(bitnet_simd_at_most(BITNET_SIMD_SCALAR, BITNET_SIMD_NEON));
    for (int l = 0; l < BITNET_SIMD_COUNT; l++) {
        bitnet_simd_level back;
        ck_assert_int_eq(bitnet_simd_level_parse(bitnet_simd_level_name(l), &back), 0);
        ck_assert_int_eq(back, l);
    }
}
END_TEST

START_TEST(availability_is_compiled_and_supported)
{
    const bitnet_cpu_features *cpu = bitnet_cpu_features_get();
    for (int i = 0; i < BITNET_KERNEL_COUNT; i++) {
        const bitnet_kernel *k = bitnet_kernel_get((bitnet_kernel_id)i);
        bitnet_kernel_status st;
        bitnet_kernel_status_get(k, cpu, &st);
        ck_assert_int_eq(st.compiled, k->ops != NULL);
        ck_assert_int_eq(st.available, st.compiled && st.supported);
        ck_assert_msg(st.available || st.reason[0], "%s unavailable without a reason", k->name);
        ck_assert_int_eq(bitnet_kernel_is_capable_of(k), st.available);
    }
}
END_TEST

START_TEST(override_lowers_but_never_raises)
{
    bitnet_cpu_features f;
    bitnet_cpu_features_detect(&f, NULL);
    ck_assert_int_eq(f.active, f.detected);
    ck_assert_str_eq(f.simd_override, "");

    bitnet_cpu_features_detect(&f, "scalar");
    ck_assert_int_eq(f.active, BITNET_SIMD_SCALAR);
    ck_assert_str_eq(f.simd_override_error, "");

    /* A level this CPU lacks is refused and ignored. */
    const char *higher = f.detected == BITNET_SIMD_NEON ? "avx512" : "neon";
    bitnet_cpu_features_detect(&f, higher);
    ck_assert_int_eq(f.active, f.detected);
    ck_assert_ptr_nonnull(strstr(f.simd_override_error, "ignored"));

    bitnet_cpu_features_detect(&f, "sse9");
    ck_assert_int_eq(f.active, f.detected);
    ck_assert_ptr_nonnull(strstr(f.simd_override_error, "not one of"));
}
END_TEST

START_TEST(scalar_override_makes_simd_kernels_unsupported)
{
    bitnet_cpu_features f;
    bitnet_cpu_features_detect(&f, "scalar");
    for (int i = 0; i < BITNET_KERNEL_COUNT; i++) {
        const bitnet_kernel *k = bitnet_kernel_get((bitnet_kernel_id)i);
        if (k->provider != BITNET_PROVIDER_BITNETD || k->isa == BITNET_ISA_SCALAR)
            continue;
        bitnet_kernel_status st;
        bitnet_kernel_status_get(k, &f, &st);
        ck_assert_msg(!st.supported, "%s still supported at scalar", k->name);
    }
    for (int fmt = 0; fmt < BITNET_FORMAT_COUNT; fmt++) {
        const bitnet_kernel *k = bitnet_kernel_select((bitnet_format)fmt, &f);
        if (k)
            ck_assert_int_eq(k->isa, BITNET_ISA_SCALAR);
    }
}
END_TEST

START_TEST(select_prefers_the_highest_available_level)
{
    const bitnet_cpu_features *cpu = bitnet_cpu_features_get();
    for (int fmt = 0; fmt < BITNET_FORMAT_COUNT; fmt++) {
        const bitnet_kernel *best = bitnet_kernel_select((bitnet_format)fmt, cpu);
        for (int i = 0; i < BITNET_KERNEL_COUNT; i++) {
            const bitnet_kernel *k = bitnet_kernel_get((bitnet_kernel_id)i);
            if ((int)k->format != fmt || k->provider != BITNET_PROVIDER_BITNETD)
                continue;
            bitnet_kernel_status st;
            bitnet_kernel_status_get(k, cpu, &st);
            if (st.available)
                ck_assert_msg(best != NULL, "format %d has %s available but no choice", fmt,
                              k->name);
        }
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("registry");
    TCase *tc = tcase_create("registry");
    tcase_add_test(tc, every_id_round_trips_through_its_name);
    tcase_add_test(tc, design_ids_are_all_present);
    tcase_add_test(tc, unknown_id_lists_the_valid_ones);
    tcase_add_test(tc, simd_levels_are_ordered_within_a_family);
    tcase_add_test(tc, availability_is_compiled_and_supported);
    tcase_add_test(tc, override_lowers_but_never_raises);
    tcase_add_test(tc, scalar_override_makes_simd_kernels_unsupported);
    tcase_add_test(tc, select_prefers_the_highest_available_level);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
