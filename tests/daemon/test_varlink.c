/* tests/daemon/test_varlink.c - Varlink framing, call/reply parsing and building. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/error.h"
#include "protocol/varlink.h"

/* Three messages as they would come off a socket. */
static const char stream[] =
    "{\"method\":\"org.varlink.service.GetInfo\"}\0"
    "{\"method\":\"io.bitnetd.Query.GetStatus\",\"more\":true}\0"
    "{\"method\":\"a.b.C\",\"parameters\":{\"x\":\"\\u00e9\"},\"oneway\":true}";
#define STREAM_LEN (sizeof(stream)) /* the last NUL is the array's terminator */

/* Feeds stream in chunks of the given sizes (cycled) and collects messages. */
static int split_and_collect(const size_t *chunks, size_t n_chunks, char out[3][128])
{
    struct varlink_reader r;
    varlink_reader_init(&r, 1024);
    size_t off = 0, k = 0;
    int got = 0;
    while (off < STREAM_LEN) {
        size_t n = chunks[k++ % n_chunks];
        if (n > STREAM_LEN - off)
            n = STREAM_LEN - off;
        ck_assert_int_eq(varlink_reader_feed(&r, stream + off, n), 0);
        off += n;
        const char *msg;
        size_t len;
        int rc;
        while ((rc = varlink_reader_next(&r, &msg, &len)) == 1) {
            ck_assert_int_lt(got, 3);
            ck_assert_uint_eq(strlen(msg), len);
            memcpy(out[got++], msg, len + 1);
        }
        ck_assert_int_eq(rc, 0);
    }
    ck_assert_uint_eq(varlink_reader_pending(&r), 0);
    varlink_reader_free(&r);
    return got;
}

START_TEST(split_at_every_byte_gives_the_same_messages)
{
    char whole[3][128], parts[3][128];
    size_t all = STREAM_LEN;
    ck_assert_int_eq(split_and_collect(&all, 1, whole), 3);
    ck_assert_str_eq(whole[0], "{\"method\":\"org.varlink.service.GetInfo\"}");
    /* Every split point of the stream into two chunks. */
    for (size_t cut = 1; cut < STREAM_LEN; cut++) {
        size_t chunks[2] = {cut, STREAM_LEN - cut};
        memset(parts, 0, sizeof(parts));
        ck_assert_int_eq(split_and_collect(chunks, 2, parts), 3);
        for (int i = 0; i < 3; i++)
            ck_assert_str_eq(parts[i], whole[i]);
    }
    /* One byte at a time, and odd sizes. */
    size_t one = 1, odd[3] = {3, 7, 2};
    ck_assert_int_eq(split_and_collect(&one, 1, parts), 3);
    ck_assert_str_eq(parts[2], whole[2]);
    ck_assert_int_eq(split_and_collect(odd, 3, parts), 3);
    ck_assert_str_eq(parts[1], whole[1]);
}
END_TEST

START_TEST(oversized_message_is_refused_before_its_end)
{
    struct varlink_reader r;
    varlink_reader_init(&r, 16);
    const char *msg;
    size_t len;
    ck_assert_int_eq(varlink_reader_feed(&r, "0123456789abcdef", 16), 0);
    ck_assert_int_eq(varlink_reader_next(&r, &msg, &len), 0); /* exactly the limit: wait */
    ck_assert_int_eq(varlink_reader_feed(&r, "g", 1), 0);
    ck_assert_int_eq(varlink_reader_next(&r, &msg, &len), BITNET_ELIMIT);
    varlink_reader_free(&r);

    /* A message of exactly the limit passes; one byte more does not. */
    varlink_reader_init(&r, 16);
    ck_assert_int_eq(varlink_reader_feed(&r,
                                         "0123456789abcdef\0"
                                         "0123456789abcdefg\0",
                                         35),
                     0);
    ck_assert_int_eq(varlink_reader_next(&r, &msg, &len), 1);
    ck_assert_uint_eq(len, 16);
    ck_assert_int_eq(varlink_reader_next(&r, &msg, &len), BITNET_ELIMIT);
    varlink_reader_free(&r);
}
END_TEST

START_TEST(missing_nul_at_eof_is_left_pending)
{
    struct varlink_reader r;
    varlink_reader_init(&r, 1024);
    const char *msg;
    size_t len;
    ck_assert_int_eq(varlink_reader_feed(&r, "{\"method\":\"a.B\"}\0{\"method\"", 26), 0);
    ck_assert_int_eq(varlink_reader_next(&r, &msg, &len), 1);
    ck_assert_int_eq(varlink_reader_next(&r, &msg, &len), 0);
    ck_assert_uint_eq(varlink_reader_pending(&r), 9);
    varlink_reader_free(&r);
}
END_TEST

/* Parses text as a call and returns the code; err gets the message. */
static int parse(const char *text, struct varlink_call *call, char *err)
{
    return varlink_call_parse(text, strlen(text), call, err, 256);
}

START_TEST(call_fields_are_parsed)
{
    struct varlink_call c;
    char err[256];
    ck_assert_int_eq(parse("{\"method\":\"io.bitnetd.Query.GetStatus\",\"more\":true,"
                           "\"parameters\":{\"a\":1},\"future\":[1]}",
                           &c, err),
                     0);
    ck_assert_str_eq(c.method, "io.bitnetd.Query.GetStatus");
    ck_assert(c.more && !c.oneway && !c.upgrade);
    ck_assert_int_eq(json_integer_value(json_object_get(c.parameters, "a")), 1);
    varlink_call_free(&c);
    ck_assert_int_eq(parse("{\"method\":\"a.B\",\"oneway\":true,\"parameters\":null}", &c, err), 0);
    ck_assert(c.oneway && !c.more);
    ck_assert(json_is_object(c.parameters) && json_object_size(c.parameters) == 0);
    varlink_call_free(&c);
}
END_TEST

START_TEST(malformed_json_is_ejson)
{
    static const char *bad[] = {"",
                                "{",
                                "{\"method\":\"a.B\"",
                                "{\"method\":a.B}",
                                "\xff",
                                "{\"method\":\"a.B\",\"method\":\"c.D\"}",
                                "{} x"};
    struct varlink_call c = {0};
    char err[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ck_assert_int_eq(parse(bad[i], &c, err), BITNET_EJSON);
        ck_assert_ptr_null(c.method); /* untouched */
        ck_assert(strlen(err) > 0);
    }
    /* An embedded NUL inside a string escape is refused too. */
    ck_assert_int_eq(parse("{\"method\":\"a.\\u0000B\"}", &c, err), BITNET_EJSON);
}
END_TEST

START_TEST(non_object_and_wrong_types_are_eprotocol)
{
    static const struct {
        const char *text;
        const char *needle; /* part of the error message */
    } bad[] = {
        {"[]", "object"},
        {"\"a.B\"", "object"},
        {"42", "object"},
        {"null", "object"},
        {"{}", "method"},
        {"{\"method\":5}", "method"},
        {"{\"method\":\"\"}", "method"},
        {"{\"method\":\"a.B\",\"parameters\":[]}", "parameters"},
        {"{\"method\":\"a.B\",\"parameters\":\"x\"}", "parameters"},
        {"{\"method\":\"a.B\",\"more\":1}", "more"},
        {"{\"method\":\"a.B\",\"oneway\":\"yes\"}", "oneway"},
        {"{\"method\":\"a.B\",\"upgrade\":{}}", "upgrade"},
        {"{\"method\":\"a.B\",\"more\":true,\"oneway\":true}", "oneway"},
    };
    struct varlink_call c = {0};
    char err[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ck_assert_int_eq(parse(bad[i].text, &c, err), BITNET_EPROTOCOL);
        ck_assert_ptr_null(c.method);
        ck_assert_msg(strstr(err, bad[i].needle), "'%s': error '%s' lacks '%s'", bad[i].text, err,
                      bad[i].needle);
    }
}
END_TEST

START_TEST(method_names_split_at_the_last_dot)
{
    char iface[32];
    const char *m;
    ck_assert_int_eq(varlink_method_split("io.bitnetd.Query.GetStatus", iface, sizeof(iface), &m),
                     0);
    ck_assert_str_eq(iface, "io.bitnetd.Query");
    ck_assert_str_eq(m, "GetStatus");
    ck_assert_int_eq(varlink_method_split("NoDot", iface, sizeof(iface), &m), BITNET_EPROTOCOL);
    ck_assert_int_eq(varlink_method_split(".A", iface, sizeof(iface), &m), BITNET_EPROTOCOL);
    ck_assert_int_eq(varlink_method_split("a.", iface, sizeof(iface), &m), BITNET_EPROTOCOL);
    ck_assert_int_eq(varlink_method_split("a.very.long.interface.name.indeed.X", iface, 8, &m),
                     BITNET_ELIMIT);
}
END_TEST

START_TEST(built_messages_are_exact_varlink)
{
    char *m;
    size_t n;
    json_t *p = json_pack("{s:i, s:s}", "b", 2, "a", "x");
    ck_assert_int_eq(varlink_reply_build(p, false, &m, &n), 0);
    ck_assert_str_eq(m, "{\"parameters\":{\"b\":2,\"a\":\"x\"}}");
    ck_assert_uint_eq(n, strlen(m) + 1); /* the NUL is part of the message */
    free(m);
    ck_assert_int_eq(varlink_reply_build(NULL, true, &m, &n), 0);
    ck_assert_str_eq(m, "{\"parameters\":{},\"continues\":true}");
    free(m);
    ck_assert_int_eq(varlink_error_build("org.varlink.service.InvalidParameter", p, &m, &n), 0);
    ck_assert_str_eq(m,
                     "{\"error\":\"org.varlink.service.InvalidParameter\",\"parameters\":{\"b\":2,"
                     "\"a\":\"x\"}}");
    free(m);
    ck_assert_int_eq(varlink_call_build("a.B", NULL, true, false, &m, &n), 0);
    ck_assert_str_eq(m, "{\"method\":\"a.B\",\"parameters\":{},\"more\":true}");
    free(m);
    /* Parameters must be an object; a name must be valid UTF-8. */
    json_t *arr = json_array();
    ck_assert_int_eq(varlink_reply_build(arr, false, &m, &n), BITNET_EJSON);
    ck_assert_int_eq(varlink_error_build("bad\xff", NULL, &m, &n), BITNET_EJSON);
    json_decref(arr);
    json_decref(p);
}
END_TEST

START_TEST(replies_round_trip)
{
    char *m;
    size_t n;
    json_t *p = json_pack("{s:s}", "k", "v");
    struct varlink_reply r;
    char err[256];
    ck_assert_int_eq(varlink_reply_build(p, true, &m, &n), 0);
    ck_assert_int_eq(varlink_reply_parse(m, n - 1, &r, err, sizeof(err)), 0);
    ck_assert(r.continues && !r.error);
    ck_assert_str_eq(json_string_value(json_object_get(r.parameters, "k")), "v");
    varlink_reply_free(&r);
    free(m);
    ck_assert_int_eq(varlink_error_build("x.Y", NULL, &m, &n), 0);
    ck_assert_int_eq(varlink_reply_parse(m, n - 1, &r, err, sizeof(err)), 0);
    ck_assert_str_eq(r.error, "x.Y");
    varlink_reply_free(&r);
    free(m);
    ck_assert_int_eq(varlink_reply_parse("{\"error\":7}", 11, &r, err, sizeof(err)),
                     BITNET_EPROTOCOL);
    json_decref(p);
}
END_TEST

START_TEST(embedded_interfaces_are_served_by_name)
{
    size_t n;
    const struct varlink_interface *ifs = varlink_interfaces(&n);
    ck_assert_uint_eq(n, 4);
    for (size_t i = 0; i < n; i++) {
        char first_line[256];
        snprintf(first_line, sizeof(first_line), "\ninterface %s\n", ifs[i].name);
        ck_assert_msg(strstr(ifs[i].description, first_line), "%s: no interface line", ifs[i].name);
        ck_assert_ptr_eq(varlink_interface_find(ifs[i].name), &ifs[i]);
    }
    ck_assert_ptr_null(varlink_interface_find("io.bitnetd.Nope"));
}
END_TEST

static Suite *varlink_suite(void)
{
    Suite *s = suite_create("varlink");
    TCase *tc = tcase_create("framing");
    tcase_add_test(tc, split_at_every_byte_gives_the_same_messages);
    tcase_add_test(tc, oversized_message_is_refused_before_its_end);
    tcase_add_test(tc, missing_nul_at_eof_is_left_pending);
    suite_add_tcase(s, tc);
    tc = tcase_create("messages");
    tcase_add_test(tc, call_fields_are_parsed);
    tcase_add_test(tc, malformed_json_is_ejson);
    tcase_add_test(tc, non_object_and_wrong_types_are_eprotocol);
    tcase_add_test(tc, method_names_split_at_the_last_dot);
    tcase_add_test(tc, built_messages_are_exact_varlink);
    tcase_add_test(tc, replies_round_trip);
    tcase_add_test(tc, embedded_interfaces_are_served_by_name);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(varlink_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
