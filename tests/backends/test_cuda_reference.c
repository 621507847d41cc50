/*
 * tests/backends/test_cuda_reference.c - the real CUDA build of libllama (the
 * npm release's linux-x64-cuda, fetched by scripts/fetch-reference.sh) on a
 * machine that may have no GPU and no CUDA driver.
 *
 * The honest behaviour (docs/backends.md, "A CUDA libllama"): the analysis
 * says CUDA (kernel id llama.cuda) from the file alone; validation refuses
 * the library as a backend because it does not export the bitnetd ABI, from
 * its symbol table, before dlopen(), so none of its code (nor the CUDA
 * runtime it pulls in) runs; the llama shim cannot be pointed at it because
 * the shim is linked to the CPU libllama's soname. Each part is skipped with
 * a message when the CUDA release was not fetched (FETCH_CUDA=0).
 */
#define _GNU_SOURCE
#include <check.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/analyze.h"
#include "backends/elf.h"
#include "backends/loader.h"
#include "backends/validate.h"
#include "bitnet/error.h"
#include "support.h"

#define CUDA_LLAMA "libllama.cuda.v0.5.0.so"

static char err[1024];

/* The CUDA libllama's path, or NULL (with a message) when it is not fetched. */
static const char *cuda_llama(const char *test)
{
    static char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s", ref_path(ref_cuda_dir(), CUDA_LLAMA));
    if (!file_exists(path)) {
        fprintf(stderr, "%s: skipped, %s not fetched (FETCH_CUDA=0)\n", test, path);
        return NULL;
    }
    return path;
}

static bool has_kernel(json_t *report, const char *id)
{
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(report, "kernels"), i, k)
    {
        if (strcmp(json_string_value(json_object_get(k, "id")), id) == 0)
            return true;
    }
    return false;
}

START_TEST(test_analysis_says_cuda)
{
    const char *path = cuda_llama("test_analysis_says_cuda");
    if (!path)
        return;
    json_t *r = NULL;
    ck_assert_int_eq(analyze_library(path, &r, err, sizeof(err)), 0);
    ck_assert(json_is_true(json_object_get(json_object_get(r, "cuda"), "inference")));
    ck_assert(has_kernel(r, "llama.cuda"));
    ck_assert(!has_kernel(r, "llama.cpu"));
    json_decref(r);
}
END_TEST

START_TEST(test_validation_refuses_it_before_loading)
{
    const char *path = cuda_llama("test_validation_refuses_it_before_loading");
    if (!path)
        return;
    const char *dirs[] = {ref_cuda_dir(), NULL};
    validate_opts o = {.dirs = dirs, .uid = getuid()};
    /* The fetched tree may belong to another user or be group-writable; the
     * ELF check must still be reached, so a file refusal skips. */
    int fd = -1;
    char resolved[PATH_MAX];
    int rc = validate_library_file(path, &o, &fd, resolved, sizeof(resolved), err, sizeof(err));
    if (rc == BITNET_ELIB_OWNER || rc == BITNET_ELIB_MODE) {
        fprintf(stderr, "test_validation_refuses_it_before_loading: skipped, %s\n", err);
        return;
    }
    ck_assert_msg(rc == 0, "%s", err);
    close(fd);

    backend_lib *lib = NULL;
    err[0] = '\0';
    rc = backend_lib_load(path, &o, &lib, err, sizeof(err));
    ck_assert_int_eq(rc, BITNET_ELIB_SYMBOL);
    ck_assert_ptr_null(lib);
    ck_assert_msg(strstr(err, path) != NULL, "'%s' does not name the file", err);
    ck_assert_msg(strstr(err, "bitnet_abi_version") != NULL, "'%s' names no symbol", err);
    ck_assert_msg(strstr(err, "not a bitnetd backend") != NULL, "'%s' says not why", err);
    ck_assert_msg(strchr(err, '\n') == NULL, "'%s' is not one line", err);
    /* Refused from its symbol table: neither it nor the ggml it needs was
     * ever mapped, so no CUDA code ran. */
    ck_assert_ptr_null(dlopen(CUDA_LLAMA, RTLD_NOW | RTLD_NOLOAD));
    ck_assert_ptr_null(dlopen("libggml.cuda.v0.5.0.so", RTLD_NOW | RTLD_NOLOAD));
}
END_TEST

START_TEST(test_elf_check_refuses_its_bytes)
{
    const char *path = cuda_llama("test_elf_check_refuses_its_bytes");
    if (!path)
        return;
    size_t size;
    uint8_t *data = read_file(path, &size);
    ck_assert_ptr_nonnull(data);
    ck_assert_int_eq(validate_library_elf(data, size, path, err, sizeof(err)), BITNET_ELIB_SYMBOL);
    ck_assert_ptr_nonnull(strstr(err, "libbitnet-llama.so"));
    free(data);
}
END_TEST

#ifdef LLAMA_SHIM_PATH
/* The shim needs libllama by the CPU build's soname; the CUDA build has
 * another, so no library path can make the shim bind to it. */
START_TEST(test_shim_cannot_bind_to_it)
{
    const char *path = cuda_llama("test_shim_cannot_bind_to_it");
    if (!path)
        return;
    elf_file *cuda = NULL, *shim = NULL;
    ck_assert_int_eq(elf_open(path, &cuda, err, sizeof(err)), 0);
    ck_assert_int_eq(elf_open(LLAMA_SHIM_PATH, &shim, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(cuda->soname);
    bool needs_llama = false;
    for (size_t i = 0; i < shim->n_needed; i++) {
        ck_assert_str_ne(shim->needed[i], cuda->soname);
        needs_llama |= strncmp(shim->needed[i], "libllama", 8) == 0;
    }
    ck_assert(needs_llama);
    elf_close(cuda);
    elf_close(shim);
}
END_TEST
#endif

static Suite *cuda_reference_suite(void)
{
    Suite *s = suite_create("cuda_reference");
    TCase *tc = tcase_create("cuda_reference");
    tcase_add_test(tc, test_analysis_says_cuda);
    tcase_add_test(tc, test_validation_refuses_it_before_loading);
    tcase_add_test(tc, test_elf_check_refuses_its_bytes);
#ifdef LLAMA_SHIM_PATH
    tcase_add_test(tc, test_shim_cannot_bind_to_it);
#else
    fprintf(stderr, "test_shim_cannot_bind_to_it: skipped, the llama shim is not built\n");
#endif
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cuda_reference_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
