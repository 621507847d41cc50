/*
 * tests/engine/test_llama_load.c - files from bitnet-mkmodel load and run in
 * the real llama.cpp (the reference release's libllama), proving that our
 * GGUF writer, metadata keys, tensor layouts and built-in vocabulary are what
 * llama.cpp expects.
 *
 * For the `bitnet` architecture with f32, f16 and tq2_0 weights of the same
 * seed (the same ternary weights), llama.cpp must load the model, tokenize
 * with the built-in vocabulary, and produce finite logits that agree across
 * the three encodings of those weights.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-backend.h"
#include "llama.h"
#include "mkmodel_run.h"

#ifndef BITNET_LLAMA_LIBDIR
#error "BITNET_LLAMA_LIBDIR must name the directory of libllama and the ggml backends"
#endif

/* From llama_load_vocab.c: our reader's view of the file. */
long vocab_count(const char *path);
int vocab_token_is(const char *path, long id, const char *text);

static char dir[64];

static void quiet_log(enum ggml_log_level level, const char *text, void *user)
{
    (void)user;
    if (level == GGML_LOG_LEVEL_ERROR)
        fputs(text, stderr);
}

static void setup(void)
{
    llama_log_set(quiet_log, NULL);
    ggml_backend_load_all_from_path(BITNET_LLAMA_LIBDIR);
    llama_backend_init();
    mkmodel_tmpdir(dir, sizeof(dir));
    ck_assert(dir[0]);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    llama_backend_free();
}

static const char *make(const char *type)
{
    static char path[3][128];
    static int slot;
    char *p = path[slot++ % 3];
    snprintf(p, 128, "%s/bitnet-%s.gguf", dir, type);
    ck_assert_int_eq(mkmodel_run("--arch", "bitnet", "--preset", "tiny", "--type", type, "--seed",
                                 "11", "-o", p, NULL),
                     0);
    return p;
}

static struct llama_model *load(const char *path)
{
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    struct llama_model *m = llama_model_load_from_file(path, mp);
    ck_assert_msg(m != NULL, "llama.cpp could not load %s", path);
    return m;
}

/* Runs the prompt and returns a copy of the last position's logits. */
static float *run_prompt(struct llama_model *model, llama_token *toks, int n)
{
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 64;
    cp.n_batch = 64;
    cp.n_threads = 2;
    cp.n_threads_batch = 2;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(llama_decode(ctx, llama_batch_get_one(toks, n)), 0);
    int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    float *out = malloc((size_t)n_vocab * sizeof(float));
    memcpy(out, llama_get_logits_ith(ctx, -1), (size_t)n_vocab * sizeof(float));

    /* A few greedy steps through the KV cache must also work. */
    for (int step = 0; step < 4; step++) {
        const float *lg = llama_get_logits_ith(ctx, -1);
        llama_token best = 0;
        for (int v = 1; v < n_vocab; v++)
            if (lg[v] > lg[best])
                best = v;
        ck_assert(isfinite(lg[best]));
        ck_assert_int_eq(llama_decode(ctx, llama_batch_get_one(&best, 1)), 0);
    }
    llama_free(ctx);
    return out;
}

START_TEST(llama_cpp_loads_and_runs_mkmodel_files)
{
    static const char *types[3] = {"f32", "f16", "tq2_0"};
    float *logits[3] = {NULL, NULL, NULL};
    int n_vocab = 0;
    for (int t = 0; t < 3; t++) {
        const char *path = make(types[t]);
        struct llama_model *model = load(path);
        const struct llama_vocab *vocab = llama_model_get_vocab(model);
        ck_assert_int_eq(llama_model_n_embd(model), 256);
        ck_assert_int_eq(llama_model_n_layer(model), 2);

        /* llama.cpp sees the vocabulary we wrote. */
        n_vocab = llama_vocab_n_tokens(vocab);
        ck_assert_int_eq(n_vocab, (int)vocab_count(path));

        /* Byte-level BPE over the built-in merges: " the" is one token, the
         * one our file spells "Ġthe", and text round-trips. */
        const char *text = "hello the world";
        llama_token toks[32];
        int n = llama_tokenize(vocab, text, (int)strlen(text), toks, 32, false, false);
        ck_assert_int_gt(n, 0);
        int the_found = 0;
        for (int i = 0; i < n; i++) {
            int is = vocab_token_is(path, toks[i], "\xc4\xa0the");
            ck_assert_int_ge(is, 0);
            the_found += is;
        }
        ck_assert_int_eq(the_found, 1);
        char back[64];
        int blen = llama_detokenize(vocab, toks, n, back, sizeof(back), false, false);
        ck_assert_int_eq(blen, (int)strlen(text));
        ck_assert(memcmp(back, text, (size_t)blen) == 0);

        /* BOS from our file, then the prompt. */
        llama_token prompt[33];
        prompt[0] = llama_vocab_bos(vocab);
        memcpy(prompt + 1, toks, (size_t)n * sizeof(llama_token));
        logits[t] = run_prompt(model, prompt, n + 1);
        for (int v = 0; v < n_vocab; v++)
            ck_assert(isfinite(logits[t][v]));
        llama_model_free(model);
    }

    /* The same ternary weights in three encodings give nearly the same
     * logits (f16 rounds the scale; tq2_0 stores it as f16 per block and
     * llama.cpp quantizes activations to 8 bits per 256 block). */
    for (int t = 1; t < 3; t++) {
        double dot = 0, n0 = 0, n1 = 0;
        for (int v = 0; v < n_vocab; v++) {
            dot += (double)logits[0][v] * logits[t][v];
            n0 += (double)logits[0][v] * logits[0][v];
            n1 += (double)logits[t][v] * logits[t][v];
        }
        double cos = dot / sqrt(n0 * n1);
        printf("logits cosine f32 vs %s: %.6f\n", types[t], cos);
        ck_assert_msg(cos > 0.99, "%s logits differ from f32: cosine %f", types[t], cos);
    }
    /* And they are not trivially equal to a constant. */
    double mean = 0, var = 0;
    for (int v = 0; v < n_vocab; v++)
        mean += logits[0][v] / n_vocab;
    for (int v = 0; v < n_vocab; v++)
        var += (logits[0][v] - mean) * (logits[0][v] - mean) / n_vocab;
    ck_assert(var > 1e-6);
    for (int t = 0; t < 3; t++)
        free(logits[t]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("llama_load");
    TCase *tc = tcase_create("llama_load");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, llama_cpp_loads_and_runs_mkmodel_files);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
