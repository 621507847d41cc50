/*
 * tests/engine/test_model_meta.c - model metadata: files from bitnet-mkmodel
 * validate for every architecture and type, and every inconsistency in a
 * model file gives an error naming the key or tensor at fault.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/error.h"
#include "engine/gguf.h"
#include "engine/gguf_write.h"
#include "engine/model_meta.h"
#include "mkmodel_run.h"

static char err[512];

/* ---- a synthetic model built with the writer ------------------------------ */

/* What to build: a valid model unless a field says otherwise. */
typedef struct spec {
    const char *arch;
    uint32_t n_embd, n_ff, n_layer, n_head, n_head_kv, n_vocab;
    uint32_t matrix_type;    /* ggml id of the ternary matrices */
    const char *drop;        /* leave out this tensor */
    const char *reshape;     /* give this tensor ne1 + 1 rows */
    const char *retype;      /* give this tensor type F16 */
    const char *extra;       /* add this tensor, F32 [n_embd] */
    bool no_ctx;             /* leave out {arch}.context_length */
    uint32_t n_rot;          /* 0: head_dim */
    bool head_count_array;   /* write head_count as a per-layer array */
    int32_t head_count_diff; /* add this to the last layer's head_count */
    uint32_t vocab_size;     /* 0: none written */
    bool scales;             /* add .scale tensors */
    bool output;             /* add output.weight */
} spec;

static spec base_spec(void)
{
    spec s = {.arch = "bitnet-b1.58",
              .n_embd = 256,
              .n_ff = 512,
              .n_layer = 2,
              .n_head = 4,
              .n_head_kv = 2,
              .n_vocab = 300,
              .matrix_type = GGML_TYPE_I2_S};
    return s;
}

static uint64_t tensor_bytes(uint32_t type, int64_t ne0, int64_t ne1)
{
    switch (type) {
    case GGML_TYPE_I2_S:
    case GGML_TYPE_TL1:
        return (uint64_t)(ne0 * ne1 / 4 + 32);
    case GGML_TYPE_TQ2_0:
        return (uint64_t)(ne0 / 256 * 66 * ne1);
    case GGML_TYPE_TQ1_0:
        return (uint64_t)(ne0 / 256 * 54 * ne1);
    case GGML_TYPE_F16:
        return (uint64_t)(ne0 * ne1 * 2);
    default:
        return (uint64_t)(ne0 * ne1 * 4);
    }
}

static void add(gguf_writer *w, const spec *s, const char *name, uint32_t type, int64_t ne0,
                int64_t ne1)
{
    if (s->drop && strcmp(name, s->drop) == 0)
        return;
    if (s->reshape && strcmp(name, s->reshape) == 0)
        ne1 += 1;
    if (s->retype && strcmp(name, s->retype) == 0)
        type = GGML_TYPE_F16;
    int64_t ne[2] = {ne0, ne1};
    ck_assert_int_ge(
        gguf_writer_add_tensor(w, name, ne1 == 1 ? 1 : 2, ne, type, tensor_bytes(type, ne0, ne1)),
        0);
}

/* Builds the model file of s in memory and opens it. */
static gguf_file *build_model(const spec *s, uint8_t **buf)
{
    gguf_writer *w = NULL;
    ck_assert_int_eq(gguf_writer_new(&w), 0);
    char key[128];
#define KEY(suffix) (snprintf(key, sizeof(key), "%s." suffix, s->arch), key)
    gguf_writer_add_str(w, "general.architecture", s->arch);
    if (!s->no_ctx)
        gguf_writer_add_u32(w, KEY("context_length"), 1024);
    gguf_writer_add_u32(w, KEY("embedding_length"), s->n_embd);
    gguf_writer_add_u32(w, KEY("block_count"), s->n_layer);
    gguf_writer_add_u32(w, KEY("feed_forward_length"), s->n_ff);
    if (s->head_count_array) {
        uint32_t hc[64];
        for (uint32_t l = 0; l < s->n_layer; l++)
            hc[l] = s->n_head;
        hc[s->n_layer - 1] += (uint32_t)s->head_count_diff;
        gguf_writer_add_array(w, KEY("attention.head_count"), GGUF_TYPE_UINT32, hc, s->n_layer);
    } else {
        gguf_writer_add_u32(w, KEY("attention.head_count"), s->n_head);
    }
    gguf_writer_add_u32(w, KEY("attention.head_count_kv"), s->n_head_kv);
    gguf_writer_add_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
    gguf_writer_add_f32(w, KEY("rope.freq_base"), 500000.0f);
    if (s->n_rot)
        gguf_writer_add_u32(w, KEY("rope.dimension_count"), s->n_rot);
    if (s->vocab_size)
        gguf_writer_add_u32(w, KEY("vocab_size"), s->vocab_size);
#undef KEY
    const char **toks = calloc(s->n_vocab, sizeof(char *));
    for (uint32_t i = 0; i < s->n_vocab; i++)
        toks[i] = "t";
    gguf_writer_add_array_str(w, "tokenizer.ggml.tokens", toks, NULL, s->n_vocab);
    free(toks);

    const int64_t E = s->n_embd, F = s->n_ff, KV = s->n_embd / s->n_head * s->n_head_kv;
    const uint32_t M = s->matrix_type;
    add(w, s, "token_embd.weight", GGML_TYPE_F16, E, s->n_vocab);
    if (s->output)
        add(w, s, "output.weight", GGML_TYPE_F16, E, s->n_vocab);
    add(w, s, "output_norm.weight", GGML_TYPE_F32, E, 1);
    char name[64];
    for (uint32_t l = 0; l < s->n_layer; l++) {
#define T(suffix, type, ne0, ne1)                                                                  \
    (snprintf(name, sizeof(name), "blk.%u.%s.weight", l, suffix), add(w, s, name, type, ne0, ne1))
        T("attn_norm", GGML_TYPE_F32, E, 1);
        T("attn_q", M, E, E);
        T("attn_k", M, E, KV);
        T("attn_v", M, E, KV);
        T("attn_sub_norm", GGML_TYPE_F32, E, 1);
        T("attn_output", M, E, E);
        T("ffn_norm", GGML_TYPE_F32, E, 1);
        T("ffn_gate", M, E, F);
        T("ffn_up", M, E, F);
        T("ffn_sub_norm", GGML_TYPE_F32, F, 1);
        T("ffn_down", M, F, E);
#undef T
        if (s->scales) {
            snprintf(name, sizeof(name), "blk.%u.attn_q.scale", l);
            add(w, s, name, GGML_TYPE_F32, 1, 1);
            snprintf(name, sizeof(name), "blk.%u.ffn_down.scale", l);
            add(w, s, name, GGML_TYPE_F32, 1, 1);
        }
    }
    if (s->extra)
        add(w, s, s->extra, GGML_TYPE_F32, E, 1);

    size_t len;
    ck_assert_int_eq(gguf_writer_to_memory(w, NULL, buf, &len), 0);
    gguf_writer_free(w);
    gguf_file *f = NULL;
    int rc = gguf_open_memory(*buf, len, "m.gguf", &f, err, sizeof(err));
    ck_assert_msg(rc == 0, "synthetic model does not parse: %s", err);
    return f;
}

/* Builds s and expects model_meta_load to fail with code and message parts. */
static void expect_meta_error(const spec *s, int code, const char *what, const char *what2)
{
    uint8_t *buf;
    gguf_file *f = build_model(s, &buf);
    model_meta *m = (model_meta *)0x1;
    err[0] = '\0';
    int rc = model_meta_load(f, &m, err, sizeof(err));
    ck_assert_msg(rc == code, "expected %s, got %d: %s", bitnet_error_name(code), rc, err);
    ck_assert_ptr_eq(m, (model_meta *)0x1);
    ck_assert_msg(strncmp(err, "m.gguf: ", 8) == 0, "message lacks the file name: %s", err);
    ck_assert_msg(strstr(err, what), "message '%s' lacks '%s'", err, what);
    if (what2)
        ck_assert_msg(strstr(err, what2), "message '%s' lacks '%s'", err, what2);
    gguf_close(f);
    free(buf);
}

/* ---- valid models --------------------------------------------------------- */

START_TEST(synthetic_model_loads_with_its_hyperparameters)
{
    spec s = base_spec();
    uint8_t *buf;
    gguf_file *f = build_model(&s, &buf);
    model_meta *m = NULL;
    int rc = model_meta_load(f, &m, err, sizeof(err));
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_int_eq(m->arch, MODEL_ARCH_BITNET_B158);
    ck_assert_uint_eq(m->n_vocab, 300);
    ck_assert_uint_eq(m->n_ctx_train, 1024);
    ck_assert_uint_eq(m->n_embd, 256);
    ck_assert_uint_eq(m->n_layer, 2);
    ck_assert_uint_eq(m->n_ff, 512);
    ck_assert_uint_eq(m->n_head, 4);
    ck_assert_uint_eq(m->n_head_kv, 2);
    ck_assert_uint_eq(m->head_dim, 64);
    ck_assert_uint_eq(m->n_rot, 64);
    ck_assert_uint_eq(m->n_embd_kv, 128);
    ck_assert(m->rms_eps == 1e-5f);
    ck_assert(m->rope_freq_base == 500000.0f);
    ck_assert(m->rope_freq_scale == 1.0f);
    ck_assert_int_eq(m->rope_type, MODEL_ROPE_NEOX);
    ck_assert_int_eq(m->ffn_act, MODEL_FFN_RELU2);
    ck_assert_int_eq(m->weight_dtype, GGUF_DTYPE_I2_S);
    ck_assert(m->tied_output);
    ck_assert_ptr_null(m->output);
    ck_assert(!m->has_scales);
    ck_assert_ptr_eq(m->token_embd, gguf_tensor_find(f, "token_embd.weight"));
    ck_assert_ptr_eq(m->layers[1].ffn_down, gguf_tensor_find(f, "blk.1.ffn_down.weight"));
    ck_assert_ptr_eq(m->layers[0].attn_sub_norm, gguf_tensor_find(f, "blk.0.attn_sub_norm.weight"));
    ck_assert_ptr_null(m->layers[0].wq_scale);
    model_meta_free(m);
    gguf_close(f);
    free(buf);
}
END_TEST

START_TEST(bitnet_arch_uses_silu_and_optional_scales)
{
    spec s = base_spec();
    s.arch = "bitnet";
    s.matrix_type = GGML_TYPE_TQ2_0;
    s.scales = true;
    s.output = true;
    s.head_count_array = true;
    s.vocab_size = 300;
    uint8_t *buf;
    gguf_file *f = build_model(&s, &buf);
    model_meta *m = NULL;
    int rc = model_meta_load(f, &m, err, sizeof(err));
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_int_eq(m->arch, MODEL_ARCH_BITNET);
    ck_assert_int_eq(m->ffn_act, MODEL_FFN_SILU);
    ck_assert_int_eq(m->weight_dtype, GGUF_DTYPE_TQ2_0);
    ck_assert(m->has_scales);
    ck_assert_ptr_eq(m->layers[1].wq_scale, gguf_tensor_find(f, "blk.1.attn_q.scale"));
    ck_assert_ptr_null(m->layers[1].wk_scale);
    ck_assert(!m->tied_output);
    ck_assert_ptr_eq(m->output, gguf_tensor_find(f, "output.weight"));
    ck_assert_uint_eq(m->n_head, 4);
    model_meta_free(m);
    gguf_close(f);
    free(buf);
}
END_TEST

START_TEST(mkmodel_files_validate_for_every_arch_and_type)
{
    static const char *archs[] = {"bitnet", "bitnet-b1.58"};
    static const char *types[] = {"i2s", "tq2_0", "tq1_0", "f16", "f32"};
    static const gguf_dtype dtypes[] = {GGUF_DTYPE_I2_S, GGUF_DTYPE_TQ2_0, GGUF_DTYPE_TQ1_0,
                                        GGUF_DTYPE_F16, GGUF_DTYPE_F32};
    char dir[64], path[128];
    mkmodel_tmpdir(dir, sizeof(dir));
    ck_assert(dir[0]);
    for (int a = 0; a < 2; a++) {
        for (int t = 0; t < 5; t++) {
            snprintf(path, sizeof(path), "%s/%s-%s.gguf", dir, archs[a], types[t]);
            ck_assert_int_eq(mkmodel_run("--arch", archs[a], "--preset", "tiny", "--type", types[t],
                                         "--seed", "3", "-o", path, NULL),
                             0);
            gguf_file *f = NULL;
            int rc = gguf_open(path, &f, err, sizeof(err));
            ck_assert_msg(rc == 0, "%s", err);
            model_meta *m = NULL;
            rc = model_meta_load(f, &m, err, sizeof(err));
            ck_assert_msg(rc == 0, "%s %s: %s", archs[a], types[t], err);
            ck_assert_str_eq(model_arch_name(m->arch), archs[a]);
            ck_assert_int_eq(m->weight_dtype, dtypes[t]);
            ck_assert_int_eq(m->ffn_act, a == 0 ? MODEL_FFN_SILU : MODEL_FFN_RELU2);
            ck_assert_uint_eq(m->n_embd, 256);
            ck_assert_uint_eq(m->n_ff, 768);
            ck_assert_uint_eq(m->n_layer, 2);
            ck_assert_uint_eq(m->head_dim, 64);
            ck_assert_uint_eq(m->n_head_kv, 2);
            ck_assert(m->tied_output);
            ck_assert_int_eq(m->token_embd->dtype, t == 4 ? GGUF_DTYPE_F32 : GGUF_DTYPE_F16);
            model_meta_free(m);
            gguf_close(f);
            unlink(path);
        }
    }
    rmdir(dir);
}
END_TEST

/* ---- invalid models ------------------------------------------------------- */

START_TEST(missing_tensor_is_named)
{
    spec s = base_spec();
    s.drop = "blk.1.ffn_up.weight";
    expect_meta_error(&s, BITNET_EMISSING, "tensor 'blk.1.ffn_up.weight' is missing",
                      "expected shape [256, 512]");
    s.drop = "output_norm.weight";
    expect_meta_error(&s, BITNET_EMISSING, "tensor 'output_norm.weight' is missing", NULL);
}
END_TEST

START_TEST(wrong_shape_is_named_with_expected_and_found)
{
    spec s = base_spec();
    s.reshape = "blk.0.attn_k.weight";
    expect_meta_error(&s, BITNET_ESHAPE, "tensor 'blk.0.attn_k.weight'",
                      "expected shape [256, 128], found [256, 129]");
    s.reshape = "blk.1.ffn_sub_norm.weight";
    expect_meta_error(&s, BITNET_ESHAPE, "expected shape [512], found [512, 2]", NULL);
    s.reshape = "token_embd.weight";
    expect_meta_error(&s, BITNET_ESHAPE, "token_embd.weight", "[256, 301]");
}
END_TEST

START_TEST(wrong_type_is_named)
{
    spec s = base_spec();
    s.retype = "blk.0.attn_norm.weight";
    expect_meta_error(&s, BITNET_ETYPE, "tensor 'blk.0.attn_norm.weight'",
                      "expected type F32, found F16");
    s.retype = "blk.1.ffn_gate.weight"; /* F16 among I2_S */
    expect_meta_error(&s, BITNET_ETYPE, "blk.1.ffn_gate.weight", "mixed ternary formats");
    s.retype = NULL;
    s.matrix_type = GGML_TYPE_TL1;
    expect_meta_error(&s, BITNET_ETYPE, "TL1 is a lookup-table layout", NULL);
}
END_TEST

START_TEST(ternary_input_dims_must_fit_the_format_blocks)
{
    spec s = base_spec();
    s.n_embd = 192; /* 3 heads of 64: not a multiple of 128 */
    s.n_head = 3;
    s.n_head_kv = 3;
    expect_meta_error(&s, BITNET_ESHAPE, "I2_S needs the input dimension (ne0 = 192)",
                      "multiple of 128");
}
END_TEST

START_TEST(inconsistent_hyperparameters_are_rejected)
{
    spec s = base_spec();
    s.no_ctx = true;
    expect_meta_error(&s, BITNET_EMISSING, "'bitnet-b1.58.context_length' is missing", NULL);
    s = base_spec();
    s.n_rot = 32;
    expect_meta_error(&s, BITNET_EFORMAT, "rope.dimension_count = 32 but head_dim = 64", NULL);
    s = base_spec();
    s.head_count_array = true;
    s.head_count_diff = 4;
    expect_meta_error(&s, BITNET_EFORMAT, "per-layer values differ (4 and 8)", NULL);
    s = base_spec();
    s.vocab_size = 299;
    expect_meta_error(&s, BITNET_EFORMAT, "vocab_size' = 299 but tokenizer.ggml.tokens has 300",
                      NULL);
    s = base_spec();
    s.arch = "llama";
    expect_meta_error(&s, BITNET_EARCH, "architecture 'llama' is not supported", NULL);
}
END_TEST

START_TEST(unexpected_tensor_is_named)
{
    spec s = base_spec();
    s.extra = "blk.0.attn_q.bias";
    expect_meta_error(&s, BITNET_EFORMAT, "tensor 'blk.0.attn_q.bias' is not part of", NULL);
    /* .scale tensors belong to the `bitnet` arch only. */
    s = base_spec();
    s.scales = true;
    expect_meta_error(&s, BITNET_EFORMAT, ".scale' is not part of the bitnet-b1.58", NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model_meta");
    TCase *ok = tcase_create("valid");
    tcase_add_test(ok, synthetic_model_loads_with_its_hyperparameters);
    tcase_add_test(ok, bitnet_arch_uses_silu_and_optional_scales);
    tcase_add_test(ok, mkmodel_files_validate_for_every_arch_and_type);
    suite_add_tcase(s, ok);
    TCase *bad = tcase_create("invalid");
    tcase_add_test(bad, missing_tensor_is_named);
    tcase_add_test(bad, wrong_shape_is_named_with_expected_and_found);
    tcase_add_test(bad, wrong_type_is_named);
    tcase_add_test(bad, ternary_input_dims_must_fit_the_format_blocks);
    tcase_add_test(bad, inconsistent_hyperparameters_are_rejected);
    tcase_add_test(bad, unexpected_tensor_is_named);
    suite_add_tcase(s, bad);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
