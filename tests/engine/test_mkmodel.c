/*
 * tests/engine/test_mkmodel.c - bitnet-mkmodel: deterministic bytes, the
 * exact I2_S / TQ layouts (checked by unpacking against the f32 file of the
 * same seed), presets, the built-in and copied vocabularies, and errors.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bitnet/error.h"
#include "bitnet/quant.h"
#include "common/f16.h"
#include "engine/gguf.h"
#include "engine/model_meta.h"
#include "mkmodel_run.h"

static char err[512];
static char dir[64];

static void setup(void)
{
    mkmodel_tmpdir(dir, sizeof(dir));
    ck_assert(dir[0]);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Runs mkmodel for a tiny model into dir/name and returns the path. */
static const char *make(const char *name, const char *arch, const char *type, const char *seed)
{
    static char path[4][128];
    static int slot;
    char *p = path[slot++ % 4];
    snprintf(p, 128, "%s/%s", dir, name);
    ck_assert_int_eq(mkmodel_run("--arch", arch, "--preset", "tiny", "--type", type, "--seed", seed,
                                 "-o", p, NULL),
                     0);
    return p;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    ck_assert_ptr_nonnull(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n + 1);
    ck_assert_int_eq(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

static gguf_file *open_path(const char *path)
{
    gguf_file *f = NULL;
    int rc = gguf_open(path, &f, err, sizeof(err));
    ck_assert_msg(rc == 0, "%s", err);
    return f;
}

START_TEST(same_seed_gives_identical_bytes)
{
    const char *a = make("a.gguf", "bitnet-b1.58", "i2s", "42");
    const char *b = make("b.gguf", "bitnet-b1.58", "i2s", "42");
    const char *c = make("c.gguf", "bitnet-b1.58", "i2s", "43");
    size_t la, lb, lc;
    uint8_t *da = slurp(a, &la), *db = slurp(b, &lb), *dc = slurp(c, &lc);
    ck_assert_uint_eq(la, lb);
    ck_assert_int_eq(memcmp(da, db, la), 0);
    /* Another seed changes the weights but not the layout. */
    ck_assert_uint_eq(la, lc);
    ck_assert_int_ne(memcmp(da, dc, la), 0);
    free(da);
    free(db);
    free(dc);
}
END_TEST

/* For each ternary matrix of the i2s file: bytes = ne0*ne1/4 + 32, the scale
 * sits at +ne0*ne1/4 followed by 28 zero bytes, no code is 3, and unpacking
 * gives exactly the f32 file's ternarized floats. */
START_TEST(i2s_layout_unpacks_to_the_f32_weights)
{
    gguf_file *fi = open_path(make("i.gguf", "bitnet-b1.58", "i2s", "5"));
    gguf_file *ff = open_path(make("f.gguf", "bitnet-b1.58", "f32", "5"));
    model_meta *m = NULL;
    ck_assert_int_eq(model_meta_load(fi, &m, err, sizeof(err)), 0);
    int checked = 0;
    for (int64_t i = 0; i < gguf_tensor_count(fi); i++) {
        const gguf_tensor *t = gguf_tensor_at(fi, i);
        if (t->dtype != GGUF_DTYPE_I2_S)
            continue;
        const gguf_tensor *g = gguf_tensor_find(ff, t->name);
        ck_assert_ptr_nonnull(g);
        ck_assert_int_eq(g->dtype, GGUF_DTYPE_F32);
        int64_t ne0 = t->ne[0], ne1 = t->ne[1];
        size_t n = (size_t)(ne0 * ne1);
        ck_assert_uint_eq(t->nbytes, n / 4 + 32);
        float scale;
        memcpy(&scale, t->data + n / 4, 4);
        ck_assert(scale > 0.0f);
        ck_assert(scale == bitnet_i2s_scale(t->data, ne0, ne1));
        for (size_t k = 4; k < 32; k++)
            ck_assert_uint_eq(t->data[n / 4 + k], 0);
        /* Count in plain C: a Check assertion per element is slow. */
        int zeros = 0, plus = 0, minus = 0, threes = 0;
        for (size_t k = 0; k < n / 4; k++) {
            for (int sh = 0; sh < 8; sh += 2) {
                unsigned code = (t->data[k] >> sh) & 3;
                threes += code == 3;
                zeros += code == 1;
                plus += code == 2;
                minus += code == 0;
            }
        }
        ck_assert_int_eq(threes, 0);
        /* Gaussian weights ternarized at their absmean: all three values common. */
        ck_assert_int_gt(zeros, (int)n / 10);
        ck_assert_int_gt(plus, (int)n / 10);
        ck_assert_int_gt(minus, (int)n / 10);
        float *w = malloc(n * sizeof(float));
        bitnet_i2s_unpack(t->data, ne0, ne1, w);
        /* The element order: element e of a 128-block is in byte e % 32 at
         * bits 6 - 2*(e / 32); check one element by hand too. */
        size_t e = 77; /* block 0, byte 13, bits 3:2 */
        unsigned code = (t->data[13] >> 2) & 3;
        float ref;
        memcpy(&ref, g->data + 4 * e, 4);
        ck_assert(ref == (code == 2 ? scale : code == 0 ? -scale : 0.0f));
        ck_assert_int_eq(memcmp(w, g->data, n * sizeof(float)), 0);
        free(w);
        checked++;
    }
    ck_assert_int_eq(checked, 7 * 2);
    model_meta_free(m);
    gguf_close(fi);
    gguf_close(ff);
}
END_TEST

/* TQ2_0 and TQ1_0 files hold the same ternary pattern, with d = the f16 of
 * the tensor scale in every block. */
START_TEST(tq_layouts_unpack_to_the_f32_weights)
{
    static const char *types[2] = {"tq2_0", "tq1_0"};
    gguf_file *ff = open_path(make("f.gguf", "bitnet", "f32", "9"));
    for (int ty = 0; ty < 2; ty++) {
        gguf_file *fq = open_path(make(ty ? "t1.gguf" : "t2.gguf", "bitnet", types[ty], "9"));
        int checked = 0;
        for (int64_t i = 0; i < gguf_tensor_count(fq); i++) {
            const gguf_tensor *t = gguf_tensor_at(fq, i);
            if (t->dtype != GGUF_DTYPE_TQ2_0 && t->dtype != GGUF_DTYPE_TQ1_0)
                continue;
            const gguf_tensor *g = gguf_tensor_find(ff, t->name);
            int64_t k = t->ne[0];
            size_t rb = ty == 0 ? bitnet_tq2_0_row_bytes(k) : bitnet_tq1_0_row_bytes(k);
            ck_assert_uint_eq(t->nbytes, rb * (uint64_t)t->ne[1]);
            float *row = malloc((size_t)k * sizeof(float));
            int64_t bad = 0, bad_at = -1;
            for (int64_t r = 0; r < t->ne[1]; r++) {
                if (ty == 0)
                    bitnet_tq2_0_unpack_row(t->data + (size_t)r * rb, k, row);
                else
                    bitnet_tq1_0_unpack_row(t->data + (size_t)r * rb, k, row);
                for (int64_t j = 0; j < k; j++) {
                    float ref;
                    memcpy(&ref, g->data + 4 * ((size_t)r * (size_t)k + (size_t)j), 4);
                    float want = ref == 0.0f ? 0.0f : f16_to_f32(f32_to_f16(fabsf(ref)));
                    if (row[j] != (ref < 0 ? -want : want) && bad++ == 0)
                        bad_at = r * k + j;
                }
            }
            ck_assert_msg(bad == 0, "%s: %lld elements differ, first at %lld", t->name,
                          (long long)bad, (long long)bad_at);
            free(row);
            checked++;
        }
        ck_assert_int_eq(checked, 14);
        gguf_close(fq);
    }
    gguf_close(ff);
}
END_TEST

START_TEST(builtin_vocab_is_byte_level_bpe)
{
    gguf_file *f = open_path(make("v.gguf", "bitnet", "f16", "1"));
    const char *s;
    size_t len;
    ck_assert_int_eq(gguf_get_str(f, "tokenizer.ggml.model", &s, &len), 0);
    ck_assert(len == 4 && memcmp(s, "gpt2", 4) == 0);
    int64_t ti = gguf_kv_find(f, "tokenizer.ggml.tokens");
    uint64_t n = gguf_kv_array_count(f, ti);
    ck_assert_uint_ge(n, 259);
    /* Bytes map as GPT-2 does: 'A' is itself, space is U+0120, 0 is U+0100. */
    ck_assert_int_eq(gguf_get_array_str(f, "tokenizer.ggml.tokens", 'A', &s, &len), 0);
    ck_assert(len == 1 && s[0] == 'A');
    ck_assert_int_eq(gguf_get_array_str(f, "tokenizer.ggml.tokens", ' ', &s, &len), 0);
    ck_assert(len == 2 && memcmp(s, "\xc4\xa0", 2) == 0);
    ck_assert_int_eq(gguf_get_array_str(f, "tokenizer.ggml.tokens", 0, &s, &len), 0);
    ck_assert(len == 2 && memcmp(s, "\xc4\x80", 2) == 0);
    /* Every token is distinct, and both sides of every merge are tokens. */
    int dups = 0;
    for (uint64_t i = 0; i < n; i++) {
        const char *a;
        size_t al;
        gguf_get_array_str(f, "tokenizer.ggml.tokens", i, &a, &al);
        for (uint64_t j = i + 1; j < n; j++) {
            const char *b;
            size_t bl;
            gguf_get_array_str(f, "tokenizer.ggml.tokens", j, &b, &bl);
            dups += al == bl && memcmp(a, b, al) == 0;
        }
    }
    ck_assert_int_eq(dups, 0);
    uint64_t nm = gguf_kv_array_count(f, gguf_kv_find(f, "tokenizer.ggml.merges"));
    ck_assert_uint_gt(nm, 0);
    for (uint64_t i = 0; i < nm; i++) {
        const char *m;
        size_t ml;
        ck_assert_int_eq(gguf_get_array_str(f, "tokenizer.ggml.merges", i, &m, &ml), 0);
        const char *sp = memchr(m, ' ', ml);
        ck_assert_ptr_nonnull(sp);
        size_t parts[2][2] = {{0, (size_t)(sp - m)}, {(size_t)(sp - m) + 1, ml}};
        for (int p = 0; p < 2; p++) {
            bool found = false;
            for (uint64_t t = 0; t < n && !found; t++) {
                const char *tok;
                size_t tl;
                gguf_get_array_str(f, "tokenizer.ggml.tokens", t, &tok, &tl);
                found = tl == parts[p][1] - parts[p][0] && memcmp(tok, m + parts[p][0], tl) == 0;
            }
            ck_assert_msg(found, "merge %llu '%.*s' has a part that is no token",
                          (unsigned long long)i, (int)ml, m);
        }
    }
    uint32_t bos = 0, eos = 0, eot = 0;
    ck_assert_int_eq(gguf_get_u32(f, "tokenizer.ggml.bos_token_id", &bos), 0);
    ck_assert_int_eq(gguf_get_u32(f, "tokenizer.ggml.eos_token_id", &eos), 0);
    ck_assert_int_eq(gguf_get_u32(f, "tokenizer.ggml.eot_token_id", &eot), 0);
    ck_assert_int_eq(gguf_get_array_str(f, "tokenizer.ggml.tokens", bos, &s, &len), 0);
    ck_assert(len == 17 && memcmp(s, "<|begin_of_text|>", 17) == 0);
    ck_assert_int_eq(gguf_get_array_str(f, "tokenizer.ggml.tokens", eos, &s, &len), 0);
    ck_assert(len == 15 && memcmp(s, "<|end_of_text|>", 15) == 0);
    ck_assert_int_eq(gguf_get_array_str(f, "tokenizer.ggml.tokens", eot, &s, &len), 0);
    ck_assert(len == 10 && memcmp(s, "<|eot_id|>", 10) == 0);
    gguf_type et;
    uint64_t cnt;
    const void *types;
    ck_assert_int_eq(gguf_get_array(f, "tokenizer.ggml.token_type", &et, &cnt, &types), 0);
    ck_assert_uint_eq(cnt, n);
    int32_t tt;
    memcpy(&tt, (const uint8_t *)types + 4 * bos, 4);
    ck_assert_int_eq(tt, 3);
    memcpy(&tt, (const uint8_t *)types + 4 * 'A', 4);
    ck_assert_int_eq(tt, 1);
    ck_assert_int_eq(gguf_tensor_find(f, "token_embd.weight")->ne[1], (int64_t)n);
    gguf_close(f);
}
END_TEST

START_TEST(vocab_file_is_copied)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/spm.gguf", dir);
    ck_assert_int_eq(mkmodel_run("--arch", "bitnet", "--preset", "tiny", "--type", "tq2_0",
                                 "--seed", "1", "--vocab",
                                 BITNET_REFERENCE_DIR "/llama.cpp/models/ggml-vocab-llama-spm.gguf",
                                 "-o", path, NULL),
                     0);
    gguf_file *f = open_path(path);
    gguf_file *v = open_path(BITNET_REFERENCE_DIR "/llama.cpp/models/ggml-vocab-llama-spm.gguf");
    int copied = 0;
    for (int64_t i = 0; i < gguf_kv_count(v); i++) {
        const char *key = gguf_kv_key(v, i);
        if (strncmp(key, "tokenizer.", 10) != 0)
            continue;
        int64_t j = gguf_kv_find(f, key);
        ck_assert_msg(j >= 0, "%s not copied", key);
        const void *a, *b;
        uint64_t la, lb;
        gguf_kv_raw(v, i, &a, &la);
        gguf_kv_raw(f, j, &b, &lb);
        ck_assert(la == lb && memcmp(a, b, la) == 0);
        copied++;
    }
    ck_assert_int_gt(copied, 5);
    model_meta *m = NULL;
    ck_assert_int_eq(model_meta_load(f, &m, err, sizeof(err)), 0);
    ck_assert_uint_eq(m->n_vocab, 32000);
    ck_assert_int_eq(m->token_embd->ne[1], 32000);
    model_meta_free(m);
    gguf_close(v);
    gguf_close(f);
}
END_TEST

START_TEST(preset_2b4t_has_the_official_shapes)
{
    /* One layer and a small vocabulary keep this fast; the rest is 2B4T. */
    char path[128];
    snprintf(path, sizeof(path), "%s/2b4t.gguf", dir);
    ck_assert_int_eq(mkmodel_run("--arch", "bitnet-b1.58", "--preset", "2b4t", "--type", "i2s",
                                 "--seed", "1", "--n-layer", "1", "--n-vocab", "1024", "-o", path,
                                 NULL),
                     0);
    gguf_file *f = open_path(path);
    model_meta *m = NULL;
    ck_assert_int_eq(model_meta_load(f, &m, err, sizeof(err)), 0);
    ck_assert_uint_eq(m->n_embd, 2560);
    ck_assert_uint_eq(m->n_ff, 6912);
    ck_assert_uint_eq(m->n_head, 20);
    ck_assert_uint_eq(m->n_head_kv, 5);
    ck_assert_uint_eq(m->head_dim, 128);
    ck_assert_uint_eq(m->n_ctx_train, 4096);
    ck_assert(m->rope_freq_base == 500000.0f);
    ck_assert(m->rms_eps == 1e-5f);
    ck_assert_uint_eq(m->n_vocab, 1024);
    /* Byte sizes of the official file's tensors (FORMATS 4.2). */
    ck_assert_uint_eq(m->layers[0].wq->nbytes, 1638432);
    ck_assert_uint_eq(m->layers[0].wk->nbytes, 409632);
    ck_assert_uint_eq(m->layers[0].ffn_down->nbytes, 4423712);
    ck_assert_int_eq(m->token_embd->dtype, GGUF_DTYPE_F16);
    uint32_t ft = 0;
    ck_assert_int_eq(gguf_get_u32(f, "general.file_type", &ft), 0);
    ck_assert_uint_eq(ft, 40);
    model_meta_free(m);
    gguf_close(f);
}
END_TEST

START_TEST(bad_arguments_fail_without_output)
{
    char path[128];
    struct stat st;
    snprintf(path, sizeof(path), "%s/bad.gguf", dir);
    ck_assert_int_eq(mkmodel_run("--arch", "llama", "--preset", "tiny", "--type", "i2s", "--seed",
                                 "1", "-o", path, NULL),
                     2);
    ck_assert_int_eq(mkmodel_run("--arch", "bitnet", "--preset", "huge", "--type", "i2s", "--seed",
                                 "1", "-o", path, NULL),
                     2);
    ck_assert_int_eq(mkmodel_run("--arch", "bitnet", "--preset", "tiny", "--type", "q4", "--seed",
                                 "1", "-o", path, NULL),
                     2);
    /* n_embd 320 is not a multiple of 256, as TQ2_0 needs. */
    ck_assert_int_eq(mkmodel_run("--arch", "bitnet", "--preset", "tiny", "--type", "tq2_0",
                                 "--n-embd", "320", "--n-head", "5", "--n-head-kv", "5", "--seed",
                                 "1", "-o", path, NULL),
                     2);
    ck_assert_int_eq(mkmodel_run("--arch", "bitnet", "--preset", "tiny", "--type", "i2s", "--seed",
                                 "1", "--vocab", "/nonexistent.gguf", "-o", path, NULL),
                     1);
    ck_assert_int_ne(stat(path, &st), 0);
    /* The same shape with f16 is fine. */
    ck_assert_int_eq(mkmodel_run("--arch", "bitnet", "--preset", "tiny", "--type", "f16",
                                 "--n-embd", "320", "--n-head", "5", "--n-head-kv", "5", "--seed",
                                 "1", "-o", path, NULL),
                     0);
    ck_assert_int_eq(stat(path, &st), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mkmodel");
    TCase *tc = tcase_create("mkmodel");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, same_seed_gives_identical_bytes);
    tcase_add_test(tc, i2s_layout_unpacks_to_the_f32_weights);
    tcase_add_test(tc, tq_layouts_unpack_to_the_f32_weights);
    tcase_add_test(tc, builtin_vocab_is_byte_level_bpe);
    tcase_add_test(tc, vocab_file_is_copied);
    tcase_add_test(tc, preset_2b4t_has_the_official_shapes);
    tcase_add_test(tc, bad_arguments_fail_without_output);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
