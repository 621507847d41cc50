/*
 * tests/backends/test_shim.c - backends through the backend ABI: the llama
 * shim (libbitnet-llama.so over the reference libllama), loaded by the
 * loader after validation, against the native backend on the same model
 * file written by bitnet-mkmodel; and the CUDA library's clean failure on a
 * machine without a CUDA driver.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/loader.h"
#include "bitnet/error.h"
#include "support.h"

static char err[1024];
static char model_path[PATH_MAX];

#ifdef LLAMA_SHIM_PATH
/* The prompts whose greedy continuations are compared (with the shim). */
static const char *const prompts[] = {
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "In 1492, Columbus sailed the ocean blue",
    " leading spaces and\ttabs",
    "Ünïcödé: naïve café — ok?",
};
#define N_PROMPTS (sizeof(prompts) / sizeof(prompts[0]))
#endif
#define N_GENERATE 24
#define N_CTX      256
#define MAX_TOKENS 128

/* One compute thread each: both engines spin-wait between steps, and two
 * spinning pools on a small shared machine slow the test by 40x. */
static bitnet_model_params model_params(void)
{
    return (bitnet_model_params){
        .struct_size = sizeof(bitnet_model_params), .n_threads = 1, .n_ctx = N_CTX, .n_ctx_max = 2};
}

/* Loads the library at lib_path (allowed: its own directory). */
static backend_lib *load_lib(const char *lib_path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", lib_path);
    const char *dirs[2] = {dirname(dir), NULL};
    validate_opts o = {.dirs = dirs, .uid = getuid()};
    backend_lib *lib = NULL;
    int rc = backend_lib_load(lib_path, &o, &lib, err, sizeof(err));
    ck_assert_msg(rc == 0, "load %s = %d: %s", lib_path, rc, err);
    return lib;
}

static bitnet_model *model_new(const backend_api *api)
{
    bitnet_model_params p = model_params();
    bitnet_model *m = NULL;
    int rc = api->model_new_from_file(model_path, &p, &m, err, sizeof(err));
    ck_assert_msg(rc == 0, "model_new = %d: %s", rc, err);
    return m;
}

static bitnet_context *context_new(const backend_api *api, bitnet_model *m)
{
    bitnet_context *c = NULL;
    int rc = api->context_new(m, &c, err, sizeof(err));
    ck_assert_msg(rc == 0, "context_new = %d: %s", rc, err);
    return c;
}

#ifdef LLAMA_SHIM_PATH
static size_t tokenize(const backend_api *api, bitnet_model *m, const char *text, int32_t *out)
{
    size_t n = 0;
    int rc = api->tokenize(m, text, strlen(text), BITNET_TOKENIZE_ADD_SPECIAL, out, MAX_TOKENS, &n,
                           err, sizeof(err));
    ck_assert_msg(rc == 0, "tokenize = %d: %s", rc, err);
    return n;
}
#endif

START_TEST(test_native_backend_through_the_table)
{
    const backend_api *api = backend_native_api();
    ck_assert_uint_eq(api->abi_version(), BITNET_ABI_VERSION);
    bitnet_backend_desc d;
    ck_assert_int_eq(api->backend_info(&d), 0);
    ck_assert_str_eq(d.name, "native");
    ck_assert_str_eq(d.device, "cpu");
    bitnet_model *m = model_new(api);
    bitnet_model_desc md;
    ck_assert_int_eq(api->model_describe(m, &md), 0);
    ck_assert_str_eq(md.arch, "bitnet");
    ck_assert_int_eq(md.n_ctx, N_CTX);
    ck_assert_int_gt(md.n_vocab, 1000);
    /* The same limits as the shim's: n_ctx_max contexts, n_ctx positions. */
    bitnet_context *c1 = context_new(api, m), *c2 = context_new(api, m), *c3 = NULL;
    ck_assert_int_eq(api->context_new(m, &c3, err, sizeof(err)), BITNET_ELIMIT);
    ck_assert_ptr_null(c3);
    float *logits = malloc(sizeof(float) * (size_t)md.n_vocab);
    int32_t *fill = malloc(sizeof(int32_t) * N_CTX);
    ck_assert(logits && fill);
    for (int i = 0; i < N_CTX; i++)
        fill[i] = 1 + i % 100;
    int32_t one = 1, bad_tok = md.n_vocab;
    ck_assert_int_eq(api->eval(c1, &bad_tok, 1, logits, (size_t)md.n_vocab, err, sizeof(err)),
                     BITNET_EPARAM);
    ck_assert_int_eq(api->eval(c1, &one, 1, logits, 4, err, sizeof(err)), BITNET_EPARAM);
    ck_assert_int_eq(api->eval(c2, fill, N_CTX, logits, (size_t)md.n_vocab, err, sizeof(err)), 0);
    ck_assert_int_eq(api->eval(c2, &one, 1, logits, (size_t)md.n_vocab, err, sizeof(err)),
                     BITNET_ECONTEXT);
    ck_assert_int_eq(api->context_reset(c2), 0);
    ck_assert_int_eq(api->eval(c2, &one, 1, logits, (size_t)md.n_vocab, err, sizeof(err)), 0);
    free(fill);
    free(logits);
    api->context_free(c1);
    api->context_free(c2);

    bitnet_model *none = NULL;
    ck_assert_int_eq(
        api->model_new_from_file("/nonexistent/model.gguf", NULL, &none, err, sizeof(err)),
        -ENOENT);
    ck_assert_ptr_null(none);
    api->model_free(m);
}
END_TEST

#ifdef LLAMA_SHIM_PATH

START_TEST(test_llama_shim_validates_and_reports_itself)
{
    backend_lib *lib = load_lib(LLAMA_SHIM_PATH);
    ck_assert_str_eq(lib->desc.name, "llama");
    ck_assert_str_eq(lib->desc.device, "cpu");
    ck_assert_msg(strstr(lib->desc.detail, "libllama") && strstr(lib->desc.detail, "CPU build"),
                  "detail: %s", lib->desc.detail);
    fprintf(stderr, "llama shim: %s\n", lib->desc.detail);
    backend_lib_free(lib);
}
END_TEST

static double cosine(const float *a, const float *b, int n)
{
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / sqrt(aa * bb);
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/*
 * The same prompts through both backends by the same ABI: tokens, the
 * logits after the prompt, and greedy continuations.
 */
START_TEST(test_llama_shim_matches_native)
{
    backend_lib *lib = load_lib(LLAMA_SHIM_PATH);
    const backend_api *ll = &lib->api, *nat = backend_native_api();
    bitnet_model *lm = model_new(ll), *nm = model_new(nat);
    bitnet_model_desc ld, nd;
    ck_assert_int_eq(ll->model_describe(lm, &ld), 0);
    ck_assert_int_eq(nat->model_describe(nm, &nd), 0);
    ck_assert_int_eq(ld.n_vocab, nd.n_vocab);
    ck_assert_int_eq(ld.bos, nd.bos);
    bitnet_context *lc = context_new(ll, lm), *nc = context_new(nat, nm);
    int n_vocab = nd.n_vocab;
    float *la = malloc(sizeof(float) * (size_t)n_vocab),
          *na = malloc(sizeof(float) * (size_t)n_vocab);
    ck_assert(la && na);

    int same_runs = 0, same_tokens = 0, total = 0;
    double min_cos = 1.0;
    for (size_t p = 0; p < N_PROMPTS; p++) {
        int32_t lt[MAX_TOKENS], nt[MAX_TOKENS];
        size_t ln = tokenize(ll, lm, prompts[p], lt), nn = tokenize(nat, nm, prompts[p], nt);
        ck_assert_uint_eq(ln, nn);
        ck_assert_int_eq(memcmp(lt, nt, sizeof(int32_t) * ln), 0);

        ck_assert_int_eq(ll->eval(lc, nt, nn, la, (size_t)n_vocab, err, sizeof(err)), 0);
        ck_assert_int_eq(nat->eval(nc, nt, nn, na, (size_t)n_vocab, err, sizeof(err)), 0);
        double c = cosine(la, na, n_vocab);
        min_cos = c < min_cos ? c : min_cos;
        ck_assert_msg(c > 0.999, "prompt %zu: logits cosine %f", p, c);
        ck_assert_int_eq(argmax(la, n_vocab), argmax(na, n_vocab));

        ck_assert_int_eq(ll->context_reset(lc), 0);
        ck_assert_int_eq(nat->context_reset(nc), 0);
        int32_t lg[N_GENERATE], ng[N_GENERATE];
        size_t lgn = 0, ngn = 0;
        int rc = ll->decode_greedy(lc, nt, nn, 0, lg, N_GENERATE, &lgn, err, sizeof(err));
        ck_assert_msg(rc == 0, "llama decode = %d: %s", rc, err);
        rc = nat->decode_greedy(nc, nt, nn, 0, ng, N_GENERATE, &ngn, err, sizeof(err));
        ck_assert_msg(rc == 0, "native decode = %d: %s", rc, err);
        ck_assert_uint_eq(lgn, N_GENERATE);
        ck_assert_uint_eq(ngn, N_GENERATE);
        int prefix = 0;
        while (prefix < N_GENERATE && lg[prefix] == ng[prefix])
            prefix++;
        same_runs += prefix == N_GENERATE;
        same_tokens += prefix;
        total += N_GENERATE;
        ck_assert_int_eq(ll->context_reset(lc), 0);
        ck_assert_int_eq(nat->context_reset(nc), 0);
    }
    fprintf(stderr,
            "llama vs native: %d of %zu greedy %d-token continuations identical, %d of %d tokens "
            "before the first difference; prompt logits cosine min %.6f\n",
            same_runs, N_PROMPTS, N_GENERATE, same_tokens, total, min_cos);
    /* Both sides compute attention in f32 and the ternary products exactly;
     * what remains is float summation order, which can flip a near tie late
     * in a continuation. */
    ck_assert_int_ge(same_runs, (int)N_PROMPTS - 1);

    free(la);
    free(na);
    ll->context_free(lc);
    nat->context_free(nc);
    ll->model_free(lm);
    nat->model_free(nm);
    backend_lib_free(lib);
}
END_TEST

START_TEST(test_llama_shim_errors_are_values)
{
    backend_lib *lib = load_lib(LLAMA_SHIM_PATH);
    const backend_api *ll = &lib->api;
    bitnet_model *bad = NULL;
    ck_assert_int_eq(
        ll->model_new_from_file("/nonexistent/model.gguf", NULL, &bad, err, sizeof(err)), -ENOENT);
    char text[PATH_MAX];
    snprintf(text, sizeof(text), "%s/not-a-model.gguf", scratch_dir());
    ck_assert_int_eq(write_file(text, "hello\n", 6), 0);
    int rc = ll->model_new_from_file(text, NULL, &bad, err, sizeof(err));
    ck_assert_msg(rc == BITNET_EFORMAT || rc == BITNET_ETRUNCATED, "%d: %s", rc, err);
    ck_assert_ptr_nonnull(strstr(err, text));
    ck_assert_ptr_null(bad);
    /* A real model cut in half is refused by our reader before libllama
     * sees it. */
    size_t size;
    uint8_t *data = read_file(model_path, &size);
    ck_assert_ptr_nonnull(data);
    snprintf(text, sizeof(text), "%s/truncated.gguf", scratch_dir());
    ck_assert_int_eq(write_file(text, data, size / 2), 0);
    free(data);
    rc = ll->model_new_from_file(text, NULL, &bad, err, sizeof(err));
    ck_assert_msg(rc == BITNET_ETRUNCATED, "%d: %s", rc, err);
    ck_assert_ptr_nonnull(strstr(err, "refused before libllama"));
    ck_assert_ptr_null(bad);

    bitnet_model *m = model_new(ll);
    bitnet_model_desc d;
    ck_assert_int_eq(ll->model_describe(m, &d), 0);
    bitnet_context *c1 = context_new(ll, m), *c2 = context_new(ll, m), *c3 = NULL;
    ck_assert_int_eq(ll->context_new(m, &c3, err, sizeof(err)), BITNET_ELIMIT);
    ck_assert_ptr_null(c3);

    float *logits = malloc(sizeof(float) * (size_t)d.n_vocab);
    int32_t bad_tok = d.n_vocab;
    ck_assert_int_eq(ll->eval(c1, &bad_tok, 1, logits, (size_t)d.n_vocab, err, sizeof(err)),
                     BITNET_EPARAM);
    int32_t one = 1;
    ck_assert_int_eq(ll->eval(c1, &one, 1, logits, 4, err, sizeof(err)), BITNET_EPARAM);
    /* Fill the context, then one more token does not fit. */
    int32_t *fill = malloc(sizeof(int32_t) * N_CTX);
    for (int i = 0; i < N_CTX; i++)
        fill[i] = 1 + i % 100;
    ck_assert_int_eq(ll->eval(c2, fill, N_CTX, logits, (size_t)d.n_vocab, err, sizeof(err)), 0);
    ck_assert_int_eq(ll->eval(c2, &one, 1, logits, (size_t)d.n_vocab, err, sizeof(err)),
                     BITNET_ECONTEXT);
    ck_assert_int_eq(ll->context_reset(c2), 0);
    ck_assert_int_eq(ll->eval(c2, &one, 1, logits, (size_t)d.n_vocab, err, sizeof(err)), 0);
    size_t need = 0;
    ck_assert_int_eq(ll->tokenize(m, "hello world", 11, 0, NULL, 0, &need, err, sizeof(err)),
                     -ENOSPC);
    ck_assert_uint_gt(need, 0);
    free(fill);
    free(logits);
    ll->context_free(c1);
    ll->context_free(c2);
    ll->model_free(m);
    backend_lib_free(lib);
}
END_TEST

/* Greedy tokens of the first prompt through one loaded shim. */
static size_t shim_greedy(const backend_api *api, int32_t *out)
{
    bitnet_model *m = model_new(api);
    bitnet_context *c = context_new(api, m);
    int32_t prompt[MAX_TOKENS];
    size_t n = tokenize(api, m, prompts[1], prompt), got = 0;
    int rc = api->decode_greedy(c, prompt, n, 0, out, N_GENERATE, &got, err, sizeof(err));
    ck_assert_msg(rc == 0, "decode = %d: %s", rc, err);
    api->context_free(c);
    api->model_free(m);
    return got;
}

/*
 * A hot reload of the shim itself: the same library installed again at the
 * same path loads as a second copy beside the first; both set up llama.cpp
 * (each copy has its own once-only state) and both generate the same tokens.
 */
START_TEST(test_llama_shim_reload_in_place_runs_beside_old)
{
    char dir[PATH_MAX], path[PATH_MAX + 32], tmp[PATH_MAX + 48];
    snprintf(dir, sizeof(dir), "%s/shimdir", scratch_dir());
    mkdir(dir, 0755);
    snprintf(path, sizeof(path), "%s/libbitnet-llama.so", dir);
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    size_t size;
    uint8_t *data = read_file(LLAMA_SHIM_PATH, &size);
    ck_assert_ptr_nonnull(data);
    ck_assert_int_eq(write_file(path, data, size), 0);
    backend_lib *old = load_lib(path);
    ck_assert_int_eq(write_file(tmp, data, size), 0);
    ck_assert_int_eq(rename(tmp, path), 0);
    free(data);
    backend_lib *new = load_lib(path);
    ck_assert_ptr_ne(old->handle, new->handle);
    int32_t a[N_GENERATE], b[N_GENERATE];
    size_t na = shim_greedy(&old->api, a), nb = shim_greedy(&new->api, b);
    ck_assert_uint_eq(na, nb);
    ck_assert_int_eq(memcmp(a, b, sizeof(int32_t) * na), 0);
    backend_lib_free(old);
    nb = shim_greedy(&new->api, b);
    ck_assert_uint_eq(na, nb);
    ck_assert_int_eq(memcmp(a, b, sizeof(int32_t) * na), 0);
    backend_lib_free(new);
}
END_TEST

#endif

START_TEST(test_cuda_library_fails_cleanly_without_driver)
{
#ifndef CUDA_LIB_PATH
    fprintf(stderr, "test_cuda_library_fails_cleanly_without_driver: skipped, "
                    "libbitnet-cuda.so is not built (no nvcc)\n");
#else
    void *driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
    backend_lib *lib = load_lib(CUDA_LIB_PATH);
    ck_assert_str_eq(lib->desc.name, "cuda");
    bitnet_model *m = NULL;
    int rc = lib->api.model_new_from_file(model_path, NULL, &m, err, sizeof(err));
    ck_assert_ptr_null(m);
    if (driver) {
        fprintf(stderr, "cuda library with a driver present: %d %s\n", rc, err);
        ck_assert_int_lt(rc, 0);
        dlclose(driver);
    } else {
        ck_assert_int_eq(rc, BITNET_ENO_DEVICE);
        ck_assert_msg(strstr(err, "no CUDA driver: libcuda.so.1 not found") != NULL, "%s", err);
        ck_assert_ptr_nonnull(strstr(lib->desc.detail, "no CUDA driver"));
    }
    bitnet_context *c = NULL;
    ck_assert_int_lt(lib->api.context_new(NULL, &c, err, sizeof(err)), 0);
    lib->api.model_free(NULL);
    lib->api.context_free(NULL);
    backend_lib_free(lib);
#endif
}
END_TEST

static Suite *shim_suite(void)
{
    Suite *s = suite_create("shim");
    TCase *tc = tcase_create("shim");
    tcase_add_test(tc, test_native_backend_through_the_table);
#ifdef LLAMA_SHIM_PATH
    tcase_add_test(tc, test_llama_shim_validates_and_reports_itself);
    tcase_add_test(tc, test_llama_shim_matches_native);
    tcase_add_test(tc, test_llama_shim_errors_are_values);
    tcase_add_test(tc, test_llama_shim_reload_in_place_runs_beside_old);
#else
    fprintf(stderr, "llama shim tests skipped: libbitnet-llama.so is not built "
                    "(no llama.cpp tree)\n");
#endif
    tcase_add_test(tc, test_cuda_library_fails_cleanly_without_driver);
    suite_add_tcase(s, tc);
    return s;
}

/* Writes the test model with bitnet-mkmodel (once, before the tests fork). */
static int make_model(void)
{
    snprintf(model_path, sizeof(model_path), "%s/tiny-bitnet-tq2_0-spm.gguf", scratch_dir());
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof(cmd),
             "'%s' --arch bitnet --preset tiny --type tq2_0 --seed 1 --vocab "
             "'%s/llama.cpp/models/ggml-vocab-llama-spm.gguf' -o '%s' >/dev/null",
             MKMODEL_PATH, BITNET_REFERENCE_DIR, model_path);
    return system(cmd);
}

int main(void)
{
    scratch_init();
    if (make_model() != 0) {
        fprintf(stderr, "bitnet-mkmodel failed\n");
        scratch_cleanup();
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(shim_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    scratch_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
