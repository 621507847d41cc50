/* tests/unit/test_error.c - error codes have names and messages. */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "bitnet/error.h"

START_TEST(every_code_has_a_distinct_name_and_message)
{
    static const int codes[] = {
#define CODE(name, value, msg) name,
        BITNET_ERROR_LIST(CODE)
#undef CODE
    };
    size_t n = sizeof(codes) / sizeof(codes[0]);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_le(codes[i], -1000);
        ck_assert_ptr_nonnull(bitnet_error_name(codes[i]));
        ck_assert_str_ne(bitnet_strerror(codes[i]), "unknown error");
        for (size_t j = i + 1; j < n; j++)
            ck_assert_int_ne(codes[i], codes[j]);
    }
}
END_TEST

START_TEST(errno_values_use_strerror)
{
    ck_assert_str_eq(bitnet_strerror(-ENOENT), strerror(ENOENT));
    ck_assert_ptr_null(bitnet_error_name(-ENOENT));
    ck_assert_str_eq(bitnet_strerror(0), "success");
    ck_assert_str_eq(bitnet_strerror(-999999), "unknown error");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("error");
    TCase *tc = tcase_create("codes");
    tcase_add_test(tc, every_code_has_a_distinct_name_and_message);
    tcase_add_test(tc, errno_values_use_strerror);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
