/*
 * tests/engine/test_tokenizer_crossval.c - bitnetd's tokenizers against the
 * reference libllama, in one process, on many strings.
 *
 * For each vocab the strings are llama.cpp's test strings plus rounds of
 * random insertions (spaces, digits, punctuation, contractions, CJK, emoji,
 * combining marks, non-ASCII spaces, special-token text) at character
 * boundaries, so the text stays valid UTF-8 (invalid input differs by
 * design: docs/tokenizers.md). Both tokenizers encode each string with
 * add_special on and parse_special off and on; the ids must be equal.
 */
#define _GNU_SOURCE /* memmem, rand_r */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/gguf.h"
#include "engine/gguf_write.h"
#include "engine/tokenizer.h"

#define MODELS BITNET_REFERENCE_DIR "/llama.cpp/models/"
#define ROUNDS 8

void *ref_vocab_open(const char *path);
void ref_vocab_close(void *model);
int ref_tokenize(void *model, const char *text, int len, int *ids, int cap, bool add_special,
                 bool parse_special);

static char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    ck_assert_msg(fp != NULL, "cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

/* Copies a vocab file, without tokenizer.ggml.pre when drop_pre, to a
 * temporary file (libllama loads from paths) and returns its bytes. */
static uint8_t *copy_vocab(const char *src_path, bool drop_pre, char *tmp_path, size_t *len)
{
    char err[256];
    gguf_file *src;
    ck_assert_int_eq(gguf_open(src_path, &src, err, sizeof(err)), 0);
    gguf_writer *w;
    ck_assert_int_eq(gguf_writer_new(&w), 0);
    for (int64_t i = 0; i < gguf_kv_count(src); i++) {
        if (!drop_pre || strcmp(gguf_kv_key(src, i), "tokenizer.ggml.pre") != 0)
            ck_assert_int_eq(gguf_writer_copy_kv(w, src, i), 0);
    }
    uint8_t *mem;
    ck_assert_int_eq(gguf_writer_to_memory(w, NULL, &mem, len), 0);
    gguf_writer_free(w);
    gguf_close(src);
    int fd = mkstemp(tmp_path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, mem, *len), (ssize_t)*len);
    close(fd);
    return mem;
}

/* Inserts random valid pieces before some characters of text. */
static size_t mutate(unsigned *seed, const char *text, size_t len, char *out, size_t cap)
{
    static const char *const pieces[] = {" ",
                                         "(",
                                         "1",
                                         "234",
                                         ",",
                                         ".",
                                         "!",
                                         "?",
                                         "'s",
                                         "'LL",
                                         "\t",
                                         "\n",
                                         "\r",
                                         "  ",
                                         "$",
                                         "+",
                                         "`",
                                         "~",
                                         "^",
                                         "___",
                                         "A",
                                         "z",
                                         "\xc3\xa9",
                                         "\xe2\x82\xac",
                                         "\xe4\xb8\xad",
                                         "\xf0\x9f\xa6\x99",
                                         "\xc2\xa0",
                                         "\xe3\x80\x80",
                                         "\xd9\xa3",
                                         "\xcc\x81",
                                         "<|eot_id|>",
                                         "<s>"};
    size_t o = 0;
    for (size_t i = 0; i < len && o + 16 < cap; i++) {
        if (((unsigned char)text[i] & 0xC0) != 0x80 && rand_r(seed) % 4 == 0) {
            const char *p = pieces[rand_r(seed) % (sizeof(pieces) / sizeof(pieces[0]))];
            memcpy(out + o, p, strlen(p));
            o += strlen(p);
        }
        out[o++] = text[i];
    }
    return o;
}

static void crossval(const char *name, bool drop_pre)
{
    char src[512], tmp[] = "/tmp/bitnet-tok-XXXXXX", err[256];
    snprintf(src, sizeof(src), MODELS "ggml-vocab-%s.gguf", name);
    size_t file_len;
    uint8_t *mem = copy_vocab(src, drop_pre, tmp, &file_len);
    gguf_file *f;
    ck_assert_int_eq(gguf_open_memory(mem, file_len, name, &f, err, sizeof(err)), 0);
    tokenizer_options opts = {.bitnet_cpp_pre = drop_pre};
    tokenizer *t;
    ck_assert_msg(tokenizer_load(f, &opts, &t, err, sizeof(err)) == 0, "%s", err);
    void *ref = ref_vocab_open(tmp);
    ck_assert_msg(ref != NULL, "libllama cannot load %s", tmp);

    char inp_path[600];
    snprintf(inp_path, sizeof(inp_path), "%s.inp", src);
    size_t inp_len;
    char *inp = read_file(inp_path, &inp_len);
    static const char sep[] = "\n__ggml_vocab_test__\n";
    unsigned seed = 42;
    size_t cases = 0, diffs = 0;
    char text[8192];
    int ours[8192], theirs[8192];
    for (int round = 0; round <= ROUNDS; round++) {
        size_t pos = 0;
        while (pos < inp_len) {
            char *next = memmem(inp + pos, inp_len - pos, sep, sizeof(sep) - 1);
            size_t end = next ? (size_t)(next - inp) : inp_len;
            size_t len = end - pos < 2000 ? end - pos : 2000;
            if (round == 0)
                memcpy(text, inp + pos, len);
            else
                len = mutate(&seed, inp + pos, len, text, sizeof(text));
            for (int ps = 0; ps < 2; ps++) {
                size_t n;
                ck_assert_int_eq(
                    tokenizer_encode(t, text, len, true, ps, (int32_t *)ours, 8192, &n), 0);
                int k = ref_tokenize(ref, text, (int)len, theirs, 8192, true, ps);
                cases++;
                if (k != (int)n || memcmp(ours, theirs, n * sizeof(int)) != 0) {
                    if (diffs++ < 3)
                        fprintf(stderr, "%s: '%.*s' (parse_special %d): %zu vs %d ids\n", name,
                                (int)len, text, ps, n, k);
                }
            }
            if (!next)
                break;
            pos = end + sizeof(sep) - 1;
        }
    }
    ck_assert_msg(diffs == 0, "%s: %zu of %zu encodings differ from libllama", name, diffs, cases);
    ck_assert_uint_gt(cases, 46 * 2 * ROUNDS);

    free(inp);
    ref_vocab_close(ref);
    tokenizer_free(t);
    gguf_close(f);
    free(mem);
    unlink(tmp);
}

START_TEST(llama_bpe_matches_libllama)
{
    crossval("llama-bpe", false);
}
END_TEST

START_TEST(llama_bpe_without_pre_matches_bitnet_cpp_default)
{
    /* The official 2B4T file's situation with the bitnet.cpp switch on. */
    crossval("llama-bpe", true);
}
END_TEST

START_TEST(llama_spm_matches_libllama)
{
    crossval("llama-spm", false);
}
END_TEST

START_TEST(gpt2_matches_libllama)
{
    crossval("gpt-2", false);
}
END_TEST

START_TEST(phi3_matches_libllama)
{
    crossval("phi-3", false);
}
END_TEST

START_TEST(qwen2_matches_libllama)
{
    crossval("qwen2", false);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tokenizer_crossval");
    TCase *tc = tcase_create("libllama");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, llama_bpe_matches_libllama);
    tcase_add_test(tc, llama_bpe_without_pre_matches_bitnet_cpp_default);
    tcase_add_test(tc, llama_spm_matches_libllama);
    tcase_add_test(tc, gpt2_matches_libllama);
    tcase_add_test(tc, phi3_matches_libllama);
    tcase_add_test(tc, qwen2_matches_libllama);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
