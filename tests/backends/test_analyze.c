/*
 * tests/backends/test_analyze.c - the library analysis end to end on real
 * libraries: the reference CPU and CUDA llama.cpp builds, the C library,
 * bitnetctl, the fixture libraries; and `bitnetctl analyze-library` itself.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "backends/analyze.h"
#include "bitnet/error.h"
#include "support.h"

static char err[512];

static json_t *analyze_ok(const char *path)
{
    json_t *r = NULL;
    int rc = analyze_library(path, &r, err, sizeof(err));
    ck_assert_msg(rc == 0, "analyze_library(%s) = %d: %s", path, rc, err);
    ck_assert_ptr_nonnull(r);
    return r;
}

/* True when the array holds the string s, or an object whose key is s. */
static bool has(json_t *array, const char *key, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(array, i, v)
    {
        json_t *x = key ? json_object_get(v, key) : v;
        if (json_is_string(x) && strcmp(json_string_value(x), s) == 0)
            return true;
    }
    return false;
}

/* The entry of "libraries" whose file name is base. */
static json_t *library(json_t *r, const char *base)
{
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(r, "libraries"), i, l)
    {
        const char *p = json_string_value(json_object_get(l, "path"));
        const char *slash = p ? strrchr(p, '/') : NULL;
        if (slash && strcmp(slash + 1, base) == 0)
            return l;
    }
    return NULL;
}

static json_int_t count_at(json_t *obj, const char *a, const char *b, const char *c)
{
    return json_integer_value(json_object_get(json_object_get(json_object_get(obj, a), b), c));
}

static bool cuda_inference(json_t *r)
{
    return json_is_true(json_object_get(json_object_get(r, "cuda"), "inference"));
}

#if defined(__x86_64__)
START_TEST(cpu_libllama_is_llama_cpu_with_tq_formats)
{
    json_t *r = analyze_ok(ref_path(ref_cpu_dir(), "libllama.v0.5.0.so"));
    ck_assert_str_eq(json_string_value(json_object_get(r, "kind")), "llama");
    ck_assert_str_eq(json_string_value(json_object_get(r, "soname")), "libllama.v0.5.0.so");
    json_t *kernels = json_object_get(r, "kernels");
    ck_assert(has(kernels, "id", "llama.cpu"));
    ck_assert(!has(kernels, "id", "llama.cuda"));
    ck_assert(!has(kernels, "id", "iq2s_ggml.cpu"));
    ck_assert(!cuda_inference(r));
    ck_assert(has(json_object_get(r, "quantization"), "type", "tq1_0"));
    ck_assert(has(json_object_get(r, "quantization"), "type", "tq2_0"));
    ck_assert(!has(json_object_get(r, "quantization"), "type", "i2_s"));
    ck_assert(has(json_object_get(r, "formats"), NULL, "tq1_0"));
    ck_assert(has(json_object_get(r, "formats"), NULL, "tq2_0"));
    ck_assert(!has(json_object_get(r, "formats"), NULL, "i2s"));
    ck_assert_int_gt(count_at(json_object_get(r, "symbols"), "categories", "llama", "count"), 200);
    ck_assert_int_eq(count_at(json_object_get(r, "symbols"), "categories", "cuda", "count"), 0);

    /* DT_NEEDED resolved through RUNPATH $ORIGIN to the files beside it. */
    size_t i;
    json_t *n;
    bool base_found = false;
    json_array_foreach(json_object_get(r, "needed"), i, n)
    {
        if (strcmp(json_string_value(json_object_get(n, "name")), "libggml-base.so") == 0) {
            ck_assert_str_eq(json_string_value(json_object_get(n, "found_via")), "runpath");
            ck_assert_str_eq(json_string_value(json_object_get(n, "path")),
                             ref_path(ref_cpu_dir(), "libggml-base.so"));
            base_found = true;
        }
        ck_assert(json_is_false(json_object_get(n, "cuda")));
    }
    ck_assert(base_found);
    json_t *base = library(r, "libggml-base.so");
    ck_assert_ptr_nonnull(base);
    ck_assert_str_eq(json_string_value(json_object_get(base, "role")), "needed");
    ck_assert(has(json_object_get(base, "quantization"), NULL, "tq1_0"));
    /* The CPU backends beside it are read although nothing needs them. */
    json_t *cpu = library(r, "libggml-cpu-x64.so");
    ck_assert_ptr_nonnull(cpu);
    ck_assert_str_eq(json_string_value(json_object_get(cpu, "role")), "backend");
    ck_assert_str_eq(json_string_value(json_object_get(cpu, "ggml_backend")), "cpu");
    ck_assert_ptr_null(library(r, "libggml-cuda.so"));
    json_decref(r);
}
END_TEST

START_TEST(ggml_base_alone_carries_tq_quantizers)
{
    json_t *r = analyze_ok(ref_path(ref_cpu_dir(), "libggml-base.so"));
    ck_assert_str_eq(json_string_value(json_object_get(r, "kind")), "ggml");
    json_t *q = json_object_get(json_object_get(r, "symbols"), "quantization");
    ck_assert_int_ge(json_integer_value(json_object_get(json_object_get(q, "tq1_0"), "count")), 3);
    ck_assert_int_ge(json_integer_value(json_object_get(json_object_get(q, "tq2_0"), "count")), 3);
    ck_assert_uint_gt(json_array_size(json_object_get(json_object_get(q, "tq2_0"), "examples")), 0);
    /* No libllama anywhere: no llama kernel. */
    ck_assert(!has(json_object_get(r, "kernels"), "id", "llama.cpu"));
    json_decref(r);
}
END_TEST

START_TEST(cuda_libllama_is_llama_cuda)
{
    const char *path = ref_path(ref_cuda_dir(), "libllama.cuda.v0.5.0.so");
    if (!file_exists(path)) {
        fprintf(stderr, "skip: %s not fetched (FETCH_CUDA=0)\n", path);
        return;
    }
    json_t *r = analyze_ok(path);
    ck_assert_str_eq(json_string_value(json_object_get(r, "kind")), "llama");
    ck_assert(cuda_inference(r));
    ck_assert(has(json_object_get(r, "kernels"), "id", "llama.cuda"));
    ck_assert(!has(json_object_get(r, "kernels"), "id", "llama.cpu"));
    json_t *cu = library(r, "libggml-cuda.so");
    ck_assert_ptr_nonnull(cu);
    ck_assert_str_eq(json_string_value(json_object_get(cu, "role")), "backend");
    ck_assert_str_eq(json_string_value(json_object_get(cu, "ggml_backend")), "cuda");
    ck_assert(has(json_object_get(cu, "cuda_needed"), NULL, "libcudart.so.13"));
    ck_assert(has(json_object_get(cu, "cuda_needed"), NULL, "libcublas.so.13"));
    ck_assert_int_gt(json_integer_value(json_object_get(json_object_get(cu, "symbols"), "cuda")),
                     100);
    ck_assert_int_gt(
        json_integer_value(json_object_get(json_object_get(cu, "symbols"), "cuda_imports")), 10);
    /* The reasons name the backend library. */
    size_t i;
    json_t *why;
    bool named = false;
    json_array_foreach(json_object_get(json_object_get(r, "cuda"), "reasons"), i, why)
    {
        named |= strstr(json_string_value(why), "libggml-cuda.so") != NULL;
    }
    ck_assert(named);
    json_decref(r);
}
END_TEST
#endif

START_TEST(libc_is_none_of_ours)
{
    json_t *r = analyze_ok(libc_path());
    ck_assert_str_eq(json_string_value(json_object_get(r, "kind")), "none");
    ck_assert_uint_eq(json_array_size(json_object_get(r, "kernels")), 0);
    ck_assert_uint_eq(json_array_size(json_object_get(r, "formats")), 0);
    ck_assert_uint_eq(json_array_size(json_object_get(r, "quantization")), 0);
    ck_assert(!cuda_inference(r));
    json_decref(r);
}
END_TEST

START_TEST(bitnetctl_executable_has_no_cuda)
{
    json_t *r = analyze_ok(BITNETCTL_PATH);
    ck_assert_str_eq(json_string_value(json_object_get(r, "type")), "PIE executable");
    ck_assert(!cuda_inference(r));
    ck_assert(json_is_null(json_object_get(r, "soname")));
    ck_assert(library(r, "libc.so.6") != NULL);
    ck_assert_uint_eq(json_array_size(json_object_get(r, "kernels")), 0);
    json_decref(r);
}
END_TEST

START_TEST(bitnet_fixture_found_through_rpath)
{
    json_t *r = analyze_ok(ELFFIX_MAIN_PATH);
    ck_assert_str_eq(json_string_value(json_object_get(r, "kind")), "bitnet");
    ck_assert_str_eq(json_string_value(json_object_get(r, "rpath")), "$ORIGIN/fixdep");
    ck_assert_str_eq(json_string_value(json_object_get(r, "symbol_source")), "sections");
    size_t i;
    json_t *n;
    bool dep = false;
    json_array_foreach(json_object_get(r, "needed"), i, n)
    {
        if (strcmp(json_string_value(json_object_get(n, "name")), "libelffix_dep.so") == 0) {
            ck_assert_str_eq(json_string_value(json_object_get(n, "found_via")), "rpath");
            char real[4096];
            ck_assert_ptr_nonnull(realpath(ELFFIX_DEP_PATH, real));
            ck_assert_str_eq(json_string_value(json_object_get(n, "path")), real);
            dep = true;
        }
    }
    ck_assert(dep);
    /* Its I2_S symbol is a format it loads, but a bitnet library is not a
     * bitnet.cpp ggml: no iq2s_ggml kernel, and without CUDA no cuda kernel. */
    ck_assert(has(json_object_get(r, "quantization"), "type", "i2_s"));
    ck_assert(has(json_object_get(r, "formats"), NULL, "i2s"));
    ck_assert_uint_eq(json_array_size(json_object_get(r, "kernels")), 0);
    json_decref(r);
}
END_TEST

START_TEST(bitnet_cpp_shaped_ggml_gives_iq2s_kernels)
{
    json_t *r = analyze_ok(ELFFIX_GGML_CPU_PATH);
    ck_assert_str_eq(json_string_value(json_object_get(r, "kind")), "ggml");
    ck_assert(!cuda_inference(r));
    ck_assert(has(json_object_get(r, "quantization"), "type", "i2_s"));
    ck_assert(has(json_object_get(r, "quantization"), "type", "i2_i8_s"));
    json_t *formats = json_object_get(r, "formats");
    ck_assert_uint_eq(json_array_size(formats), 1); /* i2_s and i2_i8_s: one format */
    ck_assert(has(formats, NULL, "i2s"));
    ck_assert(has(json_object_get(r, "kernels"), "id", "iq2s_ggml.cpu"));
    ck_assert(!has(json_object_get(r, "kernels"), "id", "iq2s_ggml.cuda"));
    json_decref(r);

    /* The same library with a ggml CUDA backend beside it. */
    r = analyze_ok(ELFFIX_GGML_CUDA_PATH);
    ck_assert(cuda_inference(r));
    json_t *cu = library(r, "libggml-cuda.so");
    ck_assert_ptr_nonnull(cu);
    ck_assert_str_eq(json_string_value(json_object_get(cu, "role")), "backend");
    ck_assert_str_eq(json_string_value(json_object_get(cu, "kind")), "ggml-backend");
    ck_assert(has(json_object_get(r, "kernels"), "id", "iq2s_ggml.cuda"));
    ck_assert(!has(json_object_get(r, "kernels"), "id", "iq2s_ggml.cpu"));
    json_decref(r);
}
END_TEST

START_TEST(bad_files_fail_with_the_reader_error)
{
    char path[512];
    json_t *r = NULL;
    snprintf(path, sizeof(path), "%s/notelf.so", scratch_dir());
    ck_assert_int_eq(write_file(path, "hello\n", 6), 0);
    ck_assert_int_eq(analyze_library(path, &r, err, sizeof(err)), BITNET_EELF);
    ck_assert_ptr_null(r);
    ck_assert_ptr_nonnull(strstr(err, path));
    ck_assert_int_lt(analyze_library("/nonexistent/lib.so", &r, err, sizeof(err)), 0);
    ck_assert_ptr_null(r);
}
END_TEST

START_TEST(unreadable_needed_library_is_reported_not_fatal)
{
    /* The fixture beside a truncated copy of the library it needs. */
    char dir[512], path[600];
    snprintf(dir, sizeof(dir), "%s/closure", scratch_dir());
    ck_assert(mkdir(dir, 0700) == 0 || errno == EEXIST);
    snprintf(path, sizeof(path), "%s/fixdep", dir);
    ck_assert(mkdir(path, 0700) == 0 || errno == EEXIST);
    size_t size;
    uint8_t *img = read_file(ELFFIX_DEP_PATH, &size);
    ck_assert_ptr_nonnull(img);
    snprintf(path, sizeof(path), "%s/fixdep/libelffix_dep.so", dir);
    ck_assert_int_eq(write_file(path, img, 200), 0);
    free(img);
    img = read_file(ELFFIX_MAIN_PATH, &size);
    ck_assert_ptr_nonnull(img);
    snprintf(path, sizeof(path), "%s/libelffix_main.so", dir);
    ck_assert_int_eq(write_file(path, img, size), 0);
    free(img);

    json_t *r = analyze_ok(path);
    json_t *dep = library(r, "libelffix_dep.so");
    ck_assert_ptr_nonnull(dep);
    ck_assert_str_eq(json_string_value(json_object_get(dep, "kind")), "unreadable");
    const char *why = json_string_value(json_object_get(dep, "error"));
    ck_assert_ptr_nonnull(why);
    ck_assert_ptr_nonnull(strstr(why, "libelffix_dep.so"));
    ck_assert_ptr_nonnull(strstr(why, "past the end of the file"));
    json_decref(r);
}
END_TEST

/* Runs a shell command, returning its exit status and its output. */
static int run(const char *cmd, char *out, size_t len)
{
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(cli_prints_json_and_exits_one_on_bad_files)
{
    static char out[1 << 20];
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' analyze-library --json '%s'", BITNETCTL_PATH,
             ELFFIX_MAIN_PATH);
    ck_assert_int_eq(run(cmd, out, sizeof(out)), 0);
    json_error_t jerr;
    json_t *r = json_loads(out, 0, &jerr);
    ck_assert_msg(r != NULL, "bad JSON: %s", jerr.text);
    ck_assert_str_eq(json_string_value(json_object_get(r, "kind")), "bitnet");
    json_decref(r);

    snprintf(cmd, sizeof(cmd), "'%s' analyze-library '%s'", BITNETCTL_PATH, ELFFIX_MAIN_PATH);
    ck_assert_int_eq(run(cmd, out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(strstr(out, "CUDA inference: no"));
    ck_assert_ptr_nonnull(strstr(out, "kind:    bitnet backend library"));
    ck_assert_ptr_nonnull(strstr(out, "formats: i2s"));

    char path[512];
    snprintf(path, sizeof(path), "%s/elf32.so", scratch_dir());
    size_t size;
    uint8_t *img = read_file(ELFFIX_MAIN_PATH, &size);
    ck_assert_ptr_nonnull(img);
    img[EI_CLASS] = ELFCLASS32;
    ck_assert_int_eq(write_file(path, img, size), 0);
    free(img);
    snprintf(cmd, sizeof(cmd), "'%s' analyze-library '%s' 2>&1", BITNETCTL_PATH, path);
    ck_assert_int_eq(run(cmd, out, sizeof(out)), 1);
    ck_assert_ptr_nonnull(strstr(out, path));
    ck_assert_ptr_nonnull(strstr(out, "ELF32"));
    ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1); /* one line */
}
END_TEST

static Suite *analyze_suite(void)
{
    Suite *s = suite_create("analyze");
    TCase *tc = tcase_create("libraries");
#if defined(__x86_64__)
    tcase_add_test(tc, cpu_libllama_is_llama_cpu_with_tq_formats);
    tcase_add_test(tc, ggml_base_alone_carries_tq_quantizers);
    tcase_add_test(tc, cuda_libllama_is_llama_cuda);
#endif
    tcase_add_test(tc, libc_is_none_of_ours);
    tcase_add_test(tc, bitnetctl_executable_has_no_cuda);
    tcase_add_test(tc, bitnet_fixture_found_through_rpath);
    tcase_add_test(tc, bitnet_cpp_shaped_ggml_gives_iq2s_kernels);
    tcase_add_test(tc, bad_files_fail_with_the_reader_error);
    tcase_add_test(tc, unreadable_needed_library_is_reported_not_fatal);
    tcase_add_test(tc, cli_prints_json_and_exits_one_on_bad_files);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    scratch_init();
    SRunner *sr = srunner_create(analyze_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    scratch_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
