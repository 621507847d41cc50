/*
 * tests/engine/test_gguf.c - the GGUF reader against the real llama.cpp
 * vocab files, against files from our writer (every value type round
 * trips), and against hostile input (each with its own clear error).
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet/error.h"
#include "engine/gguf.h"
#include "engine/gguf_write.h"

#ifndef BITNET_REFERENCE_DIR
#error "BITNET_REFERENCE_DIR must be defined by the build"
#endif
#define VOCAB_DIR BITNET_REFERENCE_DIR "/llama.cpp/models/"

static char err[512];

/* ---- helpers -------------------------------------------------------------- */

/* Builds the file described by w in memory (tensor data all zero unless
 * given) and frees w. */
static uint8_t *build(gguf_writer *w, const void *const *data, size_t *len)
{
    uint8_t *buf = NULL;
    ck_assert_int_eq(gguf_writer_to_memory(w, data, &buf, len), 0);
    gguf_writer_free(w);
    return buf;
}

static gguf_writer *writer(void)
{
    gguf_writer *w = NULL;
    ck_assert_int_eq(gguf_writer_new(&w), 0);
    return w;
}

/* Opens buf and expects failure with code and a message containing what. */
static void expect_error(const uint8_t *buf, size_t len, int code, const char *what)
{
    gguf_file *f = (gguf_file *)0x1; /* must stay untouched */
    err[0] = '\0';
    int rc = gguf_open_memory(buf, len, "t.gguf", &f, err, sizeof(err));
    ck_assert_msg(rc == code, "expected %d (%s), got %d: %s", code, bitnet_strerror(code), rc, err);
    ck_assert_ptr_eq(f, (gguf_file *)0x1);
    ck_assert_msg(strncmp(err, "t.gguf: byte ", 13) == 0, "message lacks 'FILE: byte': %s", err);
    ck_assert_msg(strstr(err, what) != NULL, "message '%s' lacks '%s'", err, what);
}

static gguf_file *open_ok(const uint8_t *buf, size_t len)
{
    gguf_file *f = NULL;
    int rc = gguf_open_memory(buf, len, "t.gguf", &f, err, sizeof(err));
    ck_assert_msg(rc == 0, "open failed: %d %s", rc, err);
    return f;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static void put_u64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

/* A small valid file: two KVs and two F32 tensors of 8 elements (32 bytes,
 * one alignment unit each), so the file ends exactly at the last tensor and
 * no byte of it is optional. */
static uint8_t *small_file(size_t *len)
{
    gguf_writer *w = writer();
    gguf_writer_add_str(w, "general.architecture", "bitnet");
    gguf_writer_add_u32(w, "bitnet.block_count", 1);
    int64_t ne[1] = {8};
    gguf_writer_add_tensor(w, "a.weight", 1, ne, GGML_TYPE_F32, 32);
    gguf_writer_add_tensor(w, "b.weight", 1, ne, GGML_TYPE_F32, 32);
    static float da[8] = {1, 2, 3, 4, 5, 6, 7, 8}, db[8] = {-1, -2, -3, -4, -5, -6, -7, -8};
    const void *data[2] = {da, db};
    return build(w, data, len);
}

/* A file with one tensor-info record: name, dims, type, offset as given. */
static uint8_t *one_tensor(const char *arch, const char *name, uint32_t n_dims, const int64_t *ne,
                           uint32_t type, uint64_t nbytes, uint64_t offset, size_t *len)
{
    gguf_writer *w = writer();
    if (arch)
        gguf_writer_add_str(w, "general.architecture", arch);
    gguf_writer_add_tensor_at(w, name, n_dims, ne, type, nbytes, offset);
    return build(w, NULL, len);
}

/* ---- real files ----------------------------------------------------------- */

START_TEST(reads_llama3_bpe_vocab)
{
    gguf_file *f = NULL;
    int rc = gguf_open(VOCAB_DIR "ggml-vocab-llama-bpe.gguf", &f, err, sizeof(err));
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_uint_eq(gguf_version(f), 3);
    ck_assert_int_eq(gguf_tensor_count(f), 0);
    ck_assert_uint_eq(gguf_file_size(f), 7818140);
    ck_assert_uint_eq(gguf_data_offset(f), 7818140);
    ck_assert_uint_eq(gguf_alignment(f), 32);
    ck_assert_str_eq(gguf_architecture(f), "llama");

    int64_t i = gguf_kv_find(f, "tokenizer.ggml.tokens");
    ck_assert_int_ge(i, 0);
    ck_assert_int_eq(gguf_kv_type(f, i), GGUF_TYPE_ARRAY);
    ck_assert_int_eq(gguf_kv_array_type(f, i), GGUF_TYPE_STRING);
    ck_assert_uint_eq(gguf_kv_array_count(f, i), 128256);
    ck_assert_uint_eq(gguf_kv_array_count(f, gguf_kv_find(f, "tokenizer.ggml.merges")), 280147);

    const char *s;
    size_t len;
    ck_assert_int_eq(gguf_get_array_str(f, "tokenizer.ggml.tokens", 128000, &s, &len), 0);
    ck_assert_int_eq(len, strlen("<|begin_of_text|>"));
    ck_assert(memcmp(s, "<|begin_of_text|>", len) == 0);
    ck_assert_int_eq(gguf_get_array_str(f, "tokenizer.ggml.tokens", 128009, &s, &len), 0);
    ck_assert(len == 10 && memcmp(s, "<|eot_id|>", 10) == 0);
    ck_assert_int_eq(gguf_get_array_str(f, "tokenizer.ggml.tokens", 220, &s, &len), 0);
    ck_assert(len == 2 && memcmp(s, "\xc4\xa0", 2) == 0); /* U+0120 'Ġ' */
    ck_assert_int_eq(gguf_get_array_str(f, "tokenizer.ggml.tokens", 128256, &s, &len), -ERANGE);
    ck_assert_int_eq(gguf_get_str(f, "tokenizer.ggml.pre", &s, &len), 0);
    ck_assert(len == 9 && memcmp(s, "llama-bpe", 9) == 0);

    /* token_type: 128000 normal, then 256 control. */
    gguf_type et;
    uint64_t count;
    const void *data;
    ck_assert_int_eq(gguf_get_array(f, "tokenizer.ggml.token_type", &et, &count, &data), 0);
    ck_assert_int_eq(et, GGUF_TYPE_INT32);
    ck_assert_uint_eq(count, 128256);
    int32_t t0, t1;
    memcpy(&t0, (const uint8_t *)data + 4 * 127999, 4);
    memcpy(&t1, (const uint8_t *)data + 4 * 128000, 4);
    ck_assert_int_eq(t0, 1);
    ck_assert_int_eq(t1, 3);
    /* A string array is not numeric data, and vice versa. */
    ck_assert_int_eq(gguf_get_array(f, "tokenizer.ggml.tokens", &et, &count, &data), BITNET_ETYPE);
    ck_assert_int_eq(gguf_get_array_str(f, "tokenizer.ggml.token_type", 0, &s, &len), BITNET_ETYPE);

    uint32_t bos = 0;
    ck_assert_int_eq(gguf_get_u32(f, "tokenizer.ggml.bos_token_id", &bos), 0);
    ck_assert_uint_eq(bos, 128000);
    ck_assert_int_eq(gguf_get_u32(f, "no.such.key", &bos), BITNET_EMISSING);
    ck_assert_uint_eq(bos, 128000);
    gguf_close(f);
}
END_TEST

START_TEST(reads_llama_spm_vocab)
{
    gguf_file *f = NULL;
    int rc = gguf_open(VOCAB_DIR "ggml-vocab-llama-spm.gguf", &f, err, sizeof(err));
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_int_eq(gguf_tensor_count(f), 0);
    ck_assert_uint_eq(gguf_data_offset(f), gguf_file_size(f));
    const char *s;
    size_t len;
    ck_assert_int_eq(gguf_get_str(f, "tokenizer.ggml.model", &s, &len), 0);
    ck_assert(len == 5 && memcmp(s, "llama", 5) == 0);
    ck_assert_uint_eq(gguf_kv_array_count(f, gguf_kv_find(f, "tokenizer.ggml.tokens")), 32000);
    ck_assert_int_eq(gguf_get_array_str(f, "tokenizer.ggml.tokens", 1, &s, &len), 0);
    ck_assert(len == 3 && memcmp(s, "<s>", 3) == 0);
    ck_assert_int_eq(gguf_get_array_str(f, "tokenizer.ggml.tokens", 3, &s, &len), 0);
    ck_assert(len == 6 && memcmp(s, "<0x00>", 6) == 0);
    gguf_type et;
    uint64_t count;
    const void *data;
    ck_assert_int_eq(gguf_get_array(f, "tokenizer.ggml.scores", &et, &count, &data), 0);
    ck_assert_int_eq(et, GGUF_TYPE_FLOAT32);
    ck_assert_uint_eq(count, 32000);
    bool add_bos = false;
    ck_assert_int_eq(gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &add_bos), 0);
    ck_assert(add_bos);
    gguf_close(f);
}
END_TEST

START_TEST(open_reports_missing_file_and_directory)
{
    gguf_file *f = NULL;
    ck_assert_int_eq(gguf_open("/nonexistent/x.gguf", &f, err, sizeof(err)), -ENOENT);
    ck_assert_ptr_null(f);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/x.gguf"));
    ck_assert_int_eq(gguf_open("/", &f, err, sizeof(err)), BITNET_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
}
END_TEST

START_TEST(open_maps_a_file_written_by_the_writer)
{
    char path[] = "/tmp/test_gguf_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *fp = fdopen(fd, "wb");
    gguf_writer *w = writer();
    gguf_writer_add_str(w, "general.architecture", "bitnet-b1.58");
    int64_t ne[2] = {128, 2};
    int t = gguf_writer_add_tensor(w, "w", 2, ne, GGML_TYPE_I2_S, 128 * 2 / 4 + 32);
    ck_assert_int_eq(t, 0);
    uint8_t data[96];
    for (int i = 0; i < 96; i++)
        data[i] = (uint8_t)(i * 7);
    ck_assert_int_eq(gguf_writer_write_header(w, fp), 0);
    ck_assert_int_eq(gguf_writer_begin_tensor(w, fp, 0), 0);
    ck_assert_int_eq(gguf_writer_write_data(w, fp, data, 40), 0);
    ck_assert_int_eq(gguf_writer_write_data(w, fp, data + 40, 56), 0);
    ck_assert_int_eq(gguf_writer_finish(w, fp), 0);
    uint64_t expect_size = gguf_writer_file_size(w);
    gguf_writer_free(w);
    fclose(fp);

    gguf_file *f = NULL;
    int rc = gguf_open(path, &f, err, sizeof(err));
    unlink(path);
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_uint_eq(gguf_file_size(f), expect_size);
    const gguf_tensor *g = gguf_tensor_find(f, "w");
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(g->dtype, GGUF_DTYPE_I2_S);
    ck_assert_uint_eq(g->nbytes, 96);
    ck_assert_int_eq(memcmp(g->data, data, 96), 0);
    ck_assert_str_eq(gguf_tensor_type_name(f, g), "I2_S");
    gguf_close(f);
}
END_TEST

/* ---- round trip ----------------------------------------------------------- */

START_TEST(every_value_type_round_trips)
{
    gguf_writer *w = writer();
    uint8_t u8 = 250;
    int8_t i8 = -120;
    uint16_t u16 = 65000;
    int16_t i16 = -32000;
    uint32_t u32 = 4000000000u;
    int32_t i32 = -2000000000;
    float f32 = 3.25f;
    bool b = true;
    uint64_t u64 = 18000000000000000000ull;
    int64_t i64 = -9000000000000000000ll;
    double f64 = -1.0 / 3.0;
    ck_assert_int_eq(gguf_writer_add_scalar(w, "u8", GGUF_TYPE_UINT8, &u8), 0);
    ck_assert_int_eq(gguf_writer_add_scalar(w, "i8", GGUF_TYPE_INT8, &i8), 0);
    ck_assert_int_eq(gguf_writer_add_scalar(w, "u16", GGUF_TYPE_UINT16, &u16), 0);
    ck_assert_int_eq(gguf_writer_add_scalar(w, "i16", GGUF_TYPE_INT16, &i16), 0);
    ck_assert_int_eq(gguf_writer_add_scalar(w, "u32", GGUF_TYPE_UINT32, &u32), 0);
    ck_assert_int_eq(gguf_writer_add_scalar(w, "i32", GGUF_TYPE_INT32, &i32), 0);
    ck_assert_int_eq(gguf_writer_add_scalar(w, "f32", GGUF_TYPE_FLOAT32, &f32), 0);
    ck_assert_int_eq(gguf_writer_add_scalar(w, "bool", GGUF_TYPE_BOOL, &b), 0);
    ck_assert_int_eq(gguf_writer_add_str(w, "str", "héllo"), 0);
    ck_assert_int_eq(gguf_writer_add_str_len(w, "empty", "", 0), 0);
    ck_assert_int_eq(gguf_writer_add_scalar(w, "u64", GGUF_TYPE_UINT64, &u64), 0);
    ck_assert_int_eq(gguf_writer_add_scalar(w, "i64", GGUF_TYPE_INT64, &i64), 0);
    ck_assert_int_eq(gguf_writer_add_scalar(w, "f64", GGUF_TYPE_FLOAT64, &f64), 0);
    ck_assert_int_eq(gguf_writer_add_str(w, "\xff\xfe-bytes", "not utf-8 key"), 0);
    /* Arrays of every element type. */
    uint8_t a_u8[3] = {1, 2, 255};
    int16_t a_i16[2] = {-5, 7};
    float a_f32[4] = {0.5f, -1.5f, 2.0f, 1e-5f};
    uint8_t a_bool[2] = {0, 1};
    double a_f64[2] = {1e300, -2.5};
    int64_t a_i64[1] = {-42};
    ck_assert_int_eq(gguf_writer_add_array(w, "a.u8", GGUF_TYPE_UINT8, a_u8, 3), 0);
    ck_assert_int_eq(gguf_writer_add_array(w, "a.i16", GGUF_TYPE_INT16, a_i16, 2), 0);
    ck_assert_int_eq(gguf_writer_add_array(w, "a.f32", GGUF_TYPE_FLOAT32, a_f32, 4), 0);
    ck_assert_int_eq(gguf_writer_add_array(w, "a.bool", GGUF_TYPE_BOOL, a_bool, 2), 0);
    ck_assert_int_eq(gguf_writer_add_array(w, "a.f64", GGUF_TYPE_FLOAT64, a_f64, 2), 0);
    ck_assert_int_eq(gguf_writer_add_array(w, "a.i64", GGUF_TYPE_INT64, a_i64, 1), 0);
    ck_assert_int_eq(gguf_writer_add_array(w, "a.empty", GGUF_TYPE_UINT32, NULL, 0), 0);
    const char *strs[3] = {"x", "", "zz z"};
    ck_assert_int_eq(gguf_writer_add_array_str(w, "a.str", strs, NULL, 3), 0);
    /* Tensors of several types, data distinguishable. */
    int64_t ne_f[2] = {4, 3}, ne_q[1] = {64}, ne_t[2] = {256, 2};
    ck_assert_int_eq(gguf_writer_add_tensor(w, "f32", 2, ne_f, GGML_TYPE_F32, 48), 0);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "f16", 2, ne_f, GGML_TYPE_F16, 24), 1);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "q8", 1, ne_q, GGML_TYPE_Q8_0, 68), 2);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "tq2", 2, ne_t, GGML_TYPE_TQ2_0, 132), 3);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "tq1", 2, ne_t, GGML_TYPE_TQ1_0, 108), 4);
    ck_assert_int_eq(gguf_writer_add_tensor(w, "bf16", 1, ne_q, GGML_TYPE_BF16, 128), 5);
    uint8_t blob[6][132];
    const void *data[6];
    for (int t = 0; t < 6; t++) {
        memset(blob[t], 0x11 * (t + 1), sizeof(blob[t]));
        data[t] = blob[t];
    }
    size_t len;
    uint8_t *buf = build(w, data, &len);
    gguf_file *f = open_ok(buf, len);

    ck_assert_int_eq(gguf_kv_count(f), 22);
    gguf_value v;
    ck_assert_int_eq(gguf_kv_value(f, gguf_kv_find(f, "u8"), &v), 0);
    ck_assert(v.type == GGUF_TYPE_UINT8 && v.u == 250);
    ck_assert_int_eq(gguf_kv_value(f, gguf_kv_find(f, "i8"), &v), 0);
    ck_assert(v.type == GGUF_TYPE_INT8 && v.i == -120);
    ck_assert_int_eq(gguf_kv_value(f, gguf_kv_find(f, "u16"), &v), 0);
    ck_assert(v.u == 65000);
    ck_assert_int_eq(gguf_kv_value(f, gguf_kv_find(f, "i16"), &v), 0);
    ck_assert(v.i == -32000);
    ck_assert_int_eq(gguf_kv_value(f, gguf_kv_find(f, "u32"), &v), 0);
    ck_assert(v.u == 4000000000u);
    ck_assert_int_eq(gguf_kv_value(f, gguf_kv_find(f, "i32"), &v), 0);
    ck_assert(v.i == -2000000000);
    ck_assert_int_eq(gguf_kv_value(f, gguf_kv_find(f, "f32"), &v), 0);
    ck_assert(v.type == GGUF_TYPE_FLOAT32 && v.f == 3.25);
    ck_assert_int_eq(gguf_kv_value(f, gguf_kv_find(f, "u64"), &v), 0);
    ck_assert(v.u == 18000000000000000000ull);
    ck_assert_int_eq(gguf_kv_value(f, gguf_kv_find(f, "i64"), &v), 0);
    ck_assert(v.i == -9000000000000000000ll);
    ck_assert_int_eq(gguf_kv_value(f, gguf_kv_find(f, "f64"), &v), 0);
    ck_assert(v.f == -1.0 / 3.0);
    ck_assert_int_eq(gguf_kv_value(f, gguf_kv_find(f, "\xff\xfe-bytes"), &v), 0);
    ck_assert(v.len == 13 && memcmp(v.s, "not utf-8 key", 13) == 0);

    /* Typed getters and their conversions. */
    uint32_t u = 7;
    int64_t i = 0;
    float fl = 0;
    bool bo = false;
    const char *s;
    size_t sl;
    ck_assert_int_eq(gguf_get_u32(f, "u8", &u), 0);
    ck_assert_uint_eq(u, 250);
    ck_assert_int_eq(gguf_get_u32(f, "i8", &u), BITNET_ETYPE);  /* negative */
    ck_assert_int_eq(gguf_get_u32(f, "u64", &u), BITNET_ETYPE); /* too big */
    ck_assert_int_eq(gguf_get_u32(f, "str", &u), BITNET_ETYPE);
    ck_assert_uint_eq(u, 250);
    ck_assert_int_eq(gguf_get_i64(f, "i64", &i), 0);
    ck_assert(i == -9000000000000000000ll);
    ck_assert_int_eq(gguf_get_i64(f, "u64", &i), BITNET_ETYPE);
    ck_assert_int_eq(gguf_get_i64(f, "i16", &i), 0);
    ck_assert_int_eq(i, -32000);
    ck_assert_int_eq(gguf_get_f32(f, "f64", &fl), 0);
    ck_assert(fl == (float)(-1.0 / 3.0));
    ck_assert_int_eq(gguf_get_f32(f, "u32", &fl), BITNET_ETYPE);
    ck_assert_int_eq(gguf_get_bool(f, "bool", &bo), 0);
    ck_assert(bo);
    ck_assert_int_eq(gguf_get_bool(f, "u8", &bo), BITNET_ETYPE);
    ck_assert_int_eq(gguf_get_str(f, "str", &s, &sl), 0);
    ck_assert(sl == strlen("héllo") && memcmp(s, "héllo", sl) == 0);
    ck_assert_int_eq(gguf_get_str(f, "empty", &s, &sl), 0);
    ck_assert_uint_eq(sl, 0);

    /* Arrays. */
    gguf_type et;
    uint64_t count;
    const void *p;
    ck_assert_int_eq(gguf_get_array(f, "a.u8", &et, &count, &p), 0);
    ck_assert(et == GGUF_TYPE_UINT8 && count == 3 && memcmp(p, a_u8, 3) == 0);
    ck_assert_int_eq(gguf_get_array(f, "a.i16", &et, &count, &p), 0);
    ck_assert(et == GGUF_TYPE_INT16 && count == 2 && memcmp(p, a_i16, 4) == 0);
    ck_assert_int_eq(gguf_get_array(f, "a.f32", &et, &count, &p), 0);
    ck_assert(et == GGUF_TYPE_FLOAT32 && count == 4 && memcmp(p, a_f32, 16) == 0);
    ck_assert_int_eq(gguf_get_array(f, "a.bool", &et, &count, &p), 0);
    ck_assert(et == GGUF_TYPE_BOOL && count == 2 && memcmp(p, a_bool, 2) == 0);
    ck_assert_int_eq(gguf_get_array(f, "a.f64", &et, &count, &p), 0);
    ck_assert(et == GGUF_TYPE_FLOAT64 && count == 2 && memcmp(p, a_f64, 16) == 0);
    ck_assert_int_eq(gguf_get_array(f, "a.empty", &et, &count, &p), 0);
    ck_assert(et == GGUF_TYPE_UINT32 && count == 0);
    int64_t ai = gguf_kv_find(f, "a.i64");
    ck_assert_int_eq(gguf_kv_array_value(f, ai, 0, &v), 0);
    ck_assert(v.type == GGUF_TYPE_INT64 && v.i == -42);
    ck_assert_int_eq(gguf_kv_array_value(f, ai, 1, &v), -ERANGE);
    ck_assert_int_eq(gguf_kv_value(f, ai, &v), BITNET_ETYPE);
    for (uint64_t k = 0; k < 3; k++) {
        ck_assert_int_eq(gguf_get_array_str(f, "a.str", k, &s, &sl), 0);
        ck_assert(sl == strlen(strs[k]) && memcmp(s, strs[k], sl) == 0);
    }
    ck_assert_int_eq(gguf_get_array_str(f, "a.str", 3, &s, &sl), -ERANGE);

    /* Tensors. */
    ck_assert_int_eq(gguf_tensor_count(f), 6);
    const char *names[6] = {"f32", "f16", "q8", "tq2", "tq1", "bf16"};
    const gguf_dtype dts[6] = {GGUF_DTYPE_F32,   GGUF_DTYPE_F16,   GGUF_DTYPE_Q8_0,
                               GGUF_DTYPE_TQ2_0, GGUF_DTYPE_TQ1_0, GGUF_DTYPE_BF16};
    const uint64_t sizes[6] = {48, 24, 68, 132, 108, 128};
    for (int t = 0; t < 6; t++) {
        const gguf_tensor *g = gguf_tensor_find(f, names[t]);
        ck_assert_ptr_nonnull(g);
        ck_assert_ptr_eq(g, gguf_tensor_at(f, t));
        ck_assert_int_eq(g->dtype, dts[t]);
        ck_assert_uint_eq(g->nbytes, sizes[t]);
        ck_assert_uint_eq(g->offset % 32, 0);
        ck_assert_int_eq(memcmp(g->data, blob[t], g->nbytes), 0);
        ck_assert_str_eq(gguf_tensor_type_name(f, g), gguf_dtype_name(dts[t]));
    }
    ck_assert_int_eq(gguf_tensor_at(f, 0)->ne[1], 3);
    ck_assert_int_eq(gguf_tensor_at(f, 0)->ne[2], 1);
    ck_assert_int_eq(gguf_tensor_at(f, 2)->n_dims, 1);
    ck_assert_ptr_null(gguf_tensor_find(f, "nope"));
    ck_assert_ptr_null(gguf_tensor_at(f, 6));

    /* Copying every KV into a new file gives the same bytes for each. */
    gguf_writer *w2 = writer();
    for (int64_t k = 0; k < gguf_kv_count(f); k++)
        ck_assert_int_eq(gguf_writer_copy_kv(w2, f, k), 0);
    size_t len2;
    uint8_t *buf2 = build(w2, NULL, &len2);
    gguf_file *f2 = open_ok(buf2, len2);
    ck_assert_int_eq(gguf_kv_count(f2), gguf_kv_count(f));
    for (int64_t k = 0; k < gguf_kv_count(f); k++) {
        const void *r1, *r2;
        uint64_t l1, l2;
        ck_assert_str_eq(gguf_kv_key(f, k), gguf_kv_key(f2, k));
        gguf_kv_raw(f, k, &r1, &l1);
        gguf_kv_raw(f2, k, &r2, &l2);
        ck_assert(l1 == l2 && memcmp(r1, r2, l1) == 0);
    }
    gguf_close(f2);
    free(buf2);
    gguf_close(f);
    free(buf);
}
END_TEST

START_TEST(version_2_and_custom_alignment_are_read)
{
    gguf_writer *w = writer();
    gguf_writer_set_version(w, 2);
    ck_assert_int_eq(gguf_writer_set_alignment(w, 64), 0);
    int64_t ne[1] = {4};
    gguf_writer_add_tensor(w, "a", 1, ne, GGML_TYPE_F32, 16);
    gguf_writer_add_tensor(w, "b", 1, ne, GGML_TYPE_F32, 16);
    size_t len;
    uint8_t *buf = build(w, NULL, &len);
    gguf_file *f = open_ok(buf, len);
    ck_assert_uint_eq(gguf_version(f), 2);
    ck_assert_uint_eq(gguf_alignment(f), 64);
    ck_assert_uint_eq(gguf_data_offset(f) % 64, 0);
    ck_assert_uint_eq(gguf_tensor_find(f, "b")->offset, 64);
    gguf_close(f);
    free(buf);
}
END_TEST

START_TEST(non_sequential_offsets_are_accepted)
{
    gguf_writer *w = writer();
    int64_t ne[1] = {8};
    gguf_writer_add_tensor_at(w, "late", 1, ne, GGML_TYPE_F32, 32, 96);
    gguf_writer_add_tensor_at(w, "early", 1, ne, GGML_TYPE_F32, 32, 0);
    size_t len;
    uint8_t *buf = build(w, NULL, &len);
    gguf_file *f = open_ok(buf, len);
    ck_assert_uint_eq(gguf_tensor_find(f, "late")->offset, 96);
    ck_assert_uint_eq(gguf_tensor_find(f, "early")->offset, 0);
    gguf_close(f);
    free(buf);
}
END_TEST

START_TEST(fork_type_ids_resolve_by_architecture)
{
    size_t len;
    int64_t ne[2] = {256, 4};
    /* 36 is I2_S in bitnet* and llama files, unknown elsewhere. */
    uint8_t *buf = one_tensor("bitnet-25", "w", 2, ne, 36, 256 * 4 / 4 + 32, 0, &len);
    gguf_file *f = open_ok(buf, len);
    ck_assert_int_eq(gguf_tensor_at(f, 0)->dtype, GGUF_DTYPE_I2_S);
    ck_assert_uint_eq(gguf_tensor_at(f, 0)->nbytes, 256 + 32);
    gguf_close(f);
    free(buf);
    buf = one_tensor("llama", "w", 2, ne, 36, 256 + 32, 0, &len);
    f = open_ok(buf, len);
    ck_assert_int_eq(gguf_tensor_at(f, 0)->dtype, GGUF_DTYPE_I2_S);
    gguf_close(f);
    free(buf);
    buf = one_tensor("qwen2", "w", 2, ne, 36, 256 + 32, 0, &len);
    expect_error(buf, len, BITNET_ETYPE, "unknown tensor type 36");
    free(buf);
    /* 38 is TL1 in bitnet files only. */
    buf = one_tensor("bitnet", "w", 2, ne, 38, 256 + 32, 0, &len);
    f = open_ok(buf, len);
    ck_assert_int_eq(gguf_tensor_at(f, 0)->dtype, GGUF_DTYPE_TL1);
    gguf_close(f);
    free(buf);
    /* 39 is TL2 in bitnet files, MXFP4 (17 bytes per 32) elsewhere. */
    buf = one_tensor("bitnet-b1.58", "w", 2, ne, 39, 4096, 0, &len);
    f = open_ok(buf, len);
    ck_assert_int_eq(gguf_tensor_at(f, 0)->dtype, GGUF_DTYPE_TL2);
    ck_assert_str_eq(gguf_tensor_type_name(f, gguf_tensor_at(f, 0)), "TL2");
    gguf_close(f);
    free(buf);
    buf = one_tensor("llama", "w", 2, ne, 39, 256 * 4 / 32 * 17, 0, &len);
    f = open_ok(buf, len);
    ck_assert_int_eq(gguf_tensor_at(f, 0)->dtype, GGUF_DTYPE_OTHER);
    ck_assert_uint_eq(gguf_tensor_at(f, 0)->nbytes, 256 * 4 / 32 * 17);
    ck_assert_str_eq(gguf_tensor_type_name(f, gguf_tensor_at(f, 0)), "MXFP4");
    gguf_close(f);
    free(buf);
    /* 37 (I8_S) is never stored. */
    buf = one_tensor("bitnet", "w", 2, ne, 37, 1024, 0, &len);
    expect_error(buf, len, BITNET_ETYPE, "I8_S");
    free(buf);
}
END_TEST

/* ---- hostile input -------------------------------------------------------- */

START_TEST(every_truncation_is_an_error)
{
    size_t len;
    uint8_t *buf = small_file(&len);
    gguf_file *f = open_ok(buf, len);
    gguf_close(f);
    for (size_t n = 0; n < len; n++) {
        /* A private copy of exactly n bytes so ASan sees any overread. */
        uint8_t *cut = malloc(n ? n : 1);
        memcpy(cut, buf, n);
        f = NULL;
        err[0] = '\0';
        int rc = gguf_open_memory(cut, n, "t.gguf", &f, err, sizeof(err));
        ck_assert_msg(rc < 0, "prefix of %zu bytes of %zu was accepted", n, len);
        ck_assert_ptr_null(f);
        ck_assert_msg(strncmp(err, "t.gguf: byte ", 13) == 0, "prefix %zu: '%s'", n, err);
        free(cut);
    }
    free(buf);
}
END_TEST

START_TEST(truncation_names_what_is_cut)
{
    size_t len;
    uint8_t *buf = small_file(&len);
    expect_error(buf, 2, BITNET_ETRUNCATED, "the magic");
    expect_error(buf, 6, BITNET_ETRUNCATED, "the version");
    expect_error(buf, len - 1, BITNET_ETRUNCATED, "tensor 'b.weight'");
    free(buf);
}
END_TEST

START_TEST(bad_magic_and_versions_are_rejected)
{
    size_t len;
    uint8_t *buf = small_file(&len);
    uint8_t *bad = malloc(len);
    memcpy(bad, buf, len);
    memcpy(bad, "GGML", 4);
    expect_error(bad, len, BITNET_EFORMAT, "not a GGUF file");
    memcpy(bad, buf, len);
    const uint32_t versions[] = {0, 1, 4, 0x7fffffff};
    for (size_t i = 0; i < 4; i++) {
        put_u32(bad + 4, versions[i]);
        expect_error(bad, len, BITNET_EVERSION, "byte 4: ");
    }
    put_u32(bad + 4, 1);
    expect_error(bad, len, BITNET_EVERSION, "GGUF version 1 is not supported");
    put_u32(bad + 4, 0x03000000); /* version 3 written big-endian */
    expect_error(bad, len, BITNET_EVERSION, "big-endian");
    free(bad);
    free(buf);
}
END_TEST

START_TEST(absurd_counts_are_rejected_before_allocating)
{
    size_t len;
    uint8_t *buf = small_file(&len);
    put_u64(buf + 16, 1ull << 62);
    expect_error(buf, len, BITNET_ELIMIT, "byte 16: 4611686018427387904 keys (limit 1048576)");
    put_u64(buf + 16, 1000); /* under the limit, but 14 bytes each do not fit */
    expect_error(buf, len, BITNET_ELIMIT, "1000 keys cannot fit");
    put_u64(buf + 16, 2);
    put_u64(buf + 8, 1ull << 62);
    expect_error(buf, len, BITNET_ELIMIT, "byte 8: 4611686018427387904 tensors (limit");
    put_u64(buf + 8, UINT64_MAX); /* -1 as int64 */
    expect_error(buf, len, BITNET_ELIMIT, "tensors (limit");
    put_u64(buf + 8, 100);
    expect_error(buf, len, BITNET_ELIMIT, "100 tensors cannot fit");
    free(buf);

    /* Array count 2^40: header 24 + key (8 + 1) + type 4 + elem type 4. */
    gguf_writer *w = writer();
    uint8_t one = 1;
    gguf_writer_add_array(w, "a", GGUF_TYPE_UINT8, &one, 1);
    buf = build(w, NULL, &len);
    put_u64(buf + 24 + 9 + 4 + 4, 1ull << 40);
    expect_error(buf, len, BITNET_ELIMIT, "array of 1099511627776 elements");
    /* Within the limit but more than the file holds. */
    put_u64(buf + 24 + 9 + 4 + 4, 1ull << 30);
    expect_error(buf, len, BITNET_ETRUNCATED, "needs 1073741824 bytes");
    free(buf);

    /* String arrays: the 8-byte minimum per element bounds the count. */
    w = writer();
    const char *s[1] = {"x"};
    gguf_writer_add_array_str(w, "a", s, NULL, 1);
    buf = build(w, NULL, &len);
    put_u64(buf + 24 + 9 + 4 + 4, 1ull << 29);
    expect_error(buf, len, BITNET_ETRUNCATED, "strings needs at least");
    free(buf);

    /* String length 2^63 and 2^30 + 1: over the limit; 1000: past the end. */
    w = writer();
    gguf_writer_add_str(w, "k", "value");
    buf = build(w, NULL, &len);
    put_u64(buf + 24 + 9 + 4, 1ull << 63);
    expect_error(buf, len, BITNET_ELIMIT, "string value is 9223372036854775808 bytes long");
    put_u64(buf + 24 + 9 + 4, (1ull << 30) + 1);
    expect_error(buf, len, BITNET_ELIMIT, "limit 1073741824");
    put_u64(buf + 24 + 9 + 4, 1000);
    expect_error(buf, len, BITNET_ETRUNCATED, "file ends inside string value");
    /* The key length too. */
    put_u64(buf + 24, 1ull << 63);
    expect_error(buf, len, BITNET_ELIMIT, "key is 9223372036854775808 bytes long");
    free(buf);
}
END_TEST

START_TEST(bad_value_types_are_rejected)
{
    size_t len;
    uint8_t raw[12];
    gguf_writer *w = writer();
    put_u32(raw, GGUF_TYPE_ARRAY); /* array of arrays */
    put_u64(raw + 4, 0);
    gguf_writer_add_raw(w, "nested", 6, GGUF_TYPE_ARRAY, raw, 12);
    uint8_t *buf = build(w, NULL, &len);
    expect_error(buf, len, BITNET_EFORMAT, "key 'nested': nested arrays are not allowed");
    free(buf);

    w = writer();
    gguf_writer_add_raw(w, "odd", 3, (gguf_type)13, raw, 4);
    buf = build(w, NULL, &len);
    expect_error(buf, len, BITNET_ETYPE, "key 'odd': unknown value type 13");
    free(buf);

    w = writer();
    put_u32(raw, 99);
    put_u64(raw + 4, 0);
    gguf_writer_add_raw(w, "arr", 3, GGUF_TYPE_ARRAY, raw, 12);
    buf = build(w, NULL, &len);
    expect_error(buf, len, BITNET_ETYPE, "unknown array element type 99");
    free(buf);
}
END_TEST

START_TEST(bad_alignment_is_rejected)
{
    size_t len;
    gguf_writer *w = writer();
    gguf_writer_add_u32(w, "general.alignment", 48);
    uint8_t *buf = build(w, NULL, &len);
    expect_error(buf, len, BITNET_EFORMAT, "general.alignment = 48 is not a non-zero power of two");
    free(buf);

    w = writer();
    gguf_writer_add_u32(w, "general.alignment", 0);
    buf = build(w, NULL, &len);
    expect_error(buf, len, BITNET_EFORMAT, "general.alignment = 0");
    free(buf);

    w = writer();
    uint64_t a64 = 32;
    gguf_writer_add_scalar(w, "general.alignment", GGUF_TYPE_UINT64, &a64);
    buf = build(w, NULL, &len);
    expect_error(buf, len, BITNET_ETYPE, "general.alignment must be u32, found u64");
    free(buf);

    w = writer();
    gguf_writer_add_u32(w, "general.architecture", 5);
    buf = build(w, NULL, &len);
    expect_error(buf, len, BITNET_ETYPE, "general.architecture must be a string");
    free(buf);
}
END_TEST

START_TEST(bad_keys_are_rejected)
{
    size_t len;
    gguf_writer *w = writer();
    gguf_writer_add_u32(w, "dup", 1);
    gguf_writer_add_u32(w, "other", 2);
    gguf_writer_add_u32(w, "dup", 3);
    uint8_t *buf = build(w, NULL, &len);
    expect_error(buf, len, BITNET_EFORMAT, "duplicate key 'dup'");
    free(buf);

    w = writer();
    uint32_t v = 1;
    gguf_writer_add_raw(w, "", 0, GGUF_TYPE_UINT32, &v, 4);
    buf = build(w, NULL, &len);
    expect_error(buf, len, BITNET_EFORMAT, "byte 24: key 0 is empty");
    free(buf);

    w = writer();
    gguf_writer_add_raw(w, "a\0b", 3, GGUF_TYPE_UINT32, &v, 4);
    buf = build(w, NULL, &len);
    expect_error(buf, len, BITNET_EFORMAT, "key contains a NUL byte");
    free(buf);
}
END_TEST

START_TEST(bad_tensor_infos_are_rejected)
{
    size_t len;
    int64_t ne[5] = {32, 1, 1, 1, 1};
    uint8_t *buf = one_tensor(NULL, "t", 0, ne, GGML_TYPE_F32, 0, 0, &len);
    expect_error(buf, len, BITNET_EFORMAT, "tensor 't': n_dims = 0 (must be 1..4)");
    free(buf);
    buf = one_tensor(NULL, "t", 5, ne, GGML_TYPE_F32, 128, 0, &len);
    expect_error(buf, len, BITNET_EFORMAT, "n_dims = 5");
    free(buf);

    int64_t neg[2] = {32, -1};
    buf = one_tensor(NULL, "t", 2, neg, GGML_TYPE_F32, 0, 0, &len);
    expect_error(buf, len, BITNET_EFORMAT, "tensor 't': ne[1] = -1 < 0");
    free(buf);

    int64_t big[3] = {1ll << 40, 1ll << 20, 1ll << 10};
    buf = one_tensor(NULL, "t", 3, big, GGML_TYPE_F32, 0, 0, &len);
    expect_error(buf, len, BITNET_ELIMIT, "element count overflows");
    free(buf);

    /* Fits int64 elements, but not bytes. */
    int64_t wide[2] = {1ll << 31, 1ll << 31};
    buf = one_tensor(NULL, "t", 2, wide, GGML_TYPE_F32, 0, 0, &len);
    expect_error(buf, len, BITNET_ELIMIT, "byte size overflows");
    free(buf);

    int64_t ok[1] = {32};
    buf = one_tensor(NULL, "t", 1, ok, 4, 0, 0, &len);
    expect_error(buf, len, BITNET_ETYPE, "tensor 't': unknown tensor type 4");
    free(buf);
    buf = one_tensor(NULL, "t", 1, ok, 1000, 0, 0, &len);
    expect_error(buf, len, BITNET_ETYPE, "unknown tensor type 1000");
    free(buf);

    int64_t odd[1] = {33};
    buf = one_tensor(NULL, "t", 1, odd, GGML_TYPE_Q8_0, 0, 0, &len);
    expect_error(buf, len, BITNET_ESHAPE, "not a multiple of the Q8_0 block size 32");
    free(buf);

    buf = one_tensor(NULL, "t", 1, ok, GGML_TYPE_F32, 128, 16, &len);
    expect_error(buf, len, BITNET_EFORMAT, "offset 16 is not a multiple of the alignment 32");
    free(buf);

    buf = one_tensor(NULL, "t", 1, ok, GGML_TYPE_F32, 128, 0, &len);
    gguf_file *f = open_ok(buf, len);
    gguf_close(f);
    expect_error(buf, len - 32, BITNET_ETRUNCATED, "extends past the end of the file");
    free(buf);

    /* Offset 2^62: patch the record (24 + name 9 + n_dims 4 + ne 8 + type 4). */
    buf = one_tensor(NULL, "t", 1, ok, GGML_TYPE_F32, 128, 0, &len);
    put_u64(buf + 24 + 9 + 4 + 8 + 4, 1ull << 62);
    expect_error(buf, len, BITNET_ETRUNCATED, "tensor 't' (128 bytes at data offset");
    free(buf);

    char longname[80];
    memset(longname, 'n', 64);
    longname[64] = '\0';
    buf = one_tensor(NULL, longname, 1, ok, GGML_TYPE_F32, 128, 0, &len);
    expect_error(buf, len, BITNET_ELIMIT, "name is 64 bytes long (limit 63)");
    free(buf);
    longname[63] = '\0';
    buf = one_tensor(NULL, longname, 1, ok, GGML_TYPE_F32, 128, 0, &len);
    f = open_ok(buf, len);
    ck_assert_ptr_nonnull(gguf_tensor_find(f, longname));
    gguf_close(f);
    free(buf);
}
END_TEST

START_TEST(duplicate_and_overlapping_tensors_are_rejected)
{
    size_t len;
    int64_t ne[1] = {16};
    gguf_writer *w = writer();
    gguf_writer_add_tensor(w, "same", 1, ne, GGML_TYPE_F32, 64);
    gguf_writer_add_tensor(w, "same", 1, ne, GGML_TYPE_F32, 64);
    uint8_t *buf = build(w, NULL, &len);
    expect_error(buf, len, BITNET_EFORMAT, "duplicate tensor name 'same'");
    free(buf);

    w = writer();
    gguf_writer_add_tensor_at(w, "a", 1, ne, GGML_TYPE_F32, 64, 0);
    gguf_writer_add_tensor_at(w, "b", 1, ne, GGML_TYPE_F32, 64, 32);
    buf = build(w, NULL, &len);
    expect_error(buf, len, BITNET_EFORMAT, "tensor 'b' (data offset 32) overlaps tensor 'a'");
    free(buf);

    /* Two tensors at the same offset overlap too, in either order. */
    w = writer();
    gguf_writer_add_tensor_at(w, "x", 1, ne, GGML_TYPE_F32, 64, 64);
    gguf_writer_add_tensor_at(w, "y", 1, ne, GGML_TYPE_F32, 64, 64);
    buf = build(w, NULL, &len);
    expect_error(buf, len, BITNET_EFORMAT, "overlaps");
    free(buf);

    /* Empty tensors take no bytes and overlap nothing. */
    int64_t zero[2] = {16, 0};
    w = writer();
    gguf_writer_add_tensor_at(w, "a", 1, ne, GGML_TYPE_F32, 64, 0);
    gguf_writer_add_tensor_at(w, "e", 2, zero, GGML_TYPE_F32, 0, 0);
    buf = build(w, NULL, &len);
    gguf_file *f = open_ok(buf, len);
    ck_assert_uint_eq(gguf_tensor_find(f, "e")->nbytes, 0);
    gguf_close(f);
    free(buf);
}
END_TEST

START_TEST(non_utf8_names_are_accepted_as_bytes)
{
    size_t len;
    int64_t ne[1] = {8};
    gguf_writer *w = writer();
    gguf_writer_add_u32(w, "k\xc3\x28", 1); /* invalid UTF-8 sequence */
    gguf_writer_add_tensor(w, "t\x80\xff", 1, ne, GGML_TYPE_F32, 32);
    uint8_t *buf = build(w, NULL, &len);
    gguf_file *f = open_ok(buf, len);
    uint32_t v = 0;
    ck_assert_int_eq(gguf_get_u32(f, "k\xc3\x28", &v), 0);
    ck_assert_uint_eq(v, 1);
    ck_assert_ptr_nonnull(gguf_tensor_find(f, "t\x80\xff"));
    gguf_close(f);
    free(buf);
}
END_TEST

START_TEST(many_keys_are_found_by_hash)
{
    gguf_writer *w = writer();
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "key.%d", i);
        gguf_writer_add_u32(w, key, (uint32_t)i * 3);
    }
    size_t len;
    uint8_t *buf = build(w, NULL, &len);
    gguf_file *f = open_ok(buf, len);
    for (int i = 0; i < 5000; i += 7) {
        uint32_t v;
        snprintf(key, sizeof(key), "key.%d", i);
        ck_assert_int_eq(gguf_kv_find(f, key), i);
        ck_assert_int_eq(gguf_get_u32(f, key, &v), 0);
        ck_assert_uint_eq(v, (uint32_t)i * 3);
    }
    ck_assert_int_eq(gguf_kv_find(f, "key.5000"), -1);
    gguf_close(f);
    free(buf);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gguf");
    TCase *real = tcase_create("real_files");
    tcase_add_test(real, reads_llama3_bpe_vocab);
    tcase_add_test(real, reads_llama_spm_vocab);
    tcase_add_test(real, open_reports_missing_file_and_directory);
    tcase_add_test(real, open_maps_a_file_written_by_the_writer);
    suite_add_tcase(s, real);
    TCase *rt = tcase_create("round_trip");
    tcase_add_test(rt, every_value_type_round_trips);
    tcase_add_test(rt, version_2_and_custom_alignment_are_read);
    tcase_add_test(rt, non_sequential_offsets_are_accepted);
    tcase_add_test(rt, fork_type_ids_resolve_by_architecture);
    tcase_add_test(rt, non_utf8_names_are_accepted_as_bytes);
    tcase_add_test(rt, many_keys_are_found_by_hash);
    suite_add_tcase(s, rt);
    TCase *hostile = tcase_create("hostile");
    tcase_add_test(hostile, every_truncation_is_an_error);
    tcase_add_test(hostile, truncation_names_what_is_cut);
    tcase_add_test(hostile, bad_magic_and_versions_are_rejected);
    tcase_add_test(hostile, absurd_counts_are_rejected_before_allocating);
    tcase_add_test(hostile, bad_value_types_are_rejected);
    tcase_add_test(hostile, bad_alignment_is_rejected);
    tcase_add_test(hostile, bad_keys_are_rejected);
    tcase_add_test(hostile, bad_tensor_infos_are_rejected);
    tcase_add_test(hostile, duplicate_and_overlapping_tensors_are_rejected);
    suite_add_tcase(s, hostile);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
