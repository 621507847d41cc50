/*
 * tests/fuzz/fuzz_gguf.c - libFuzzer target for the GGUF reader and the
 * model metadata validation.
 *
 * The input is a GGUF file. When it opens, every value, array element,
 * string and tensor is read back through the public API (so ASan sees any
 * index that points outside the buffer), and model_meta_load validates it
 * as a model. Nothing may crash, leak or read out of bounds.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "engine/gguf.h"
#include "engine/model_meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Touches every byte a pointer claims, so ASan checks the bounds. */
static unsigned touch(const void *p, size_t n)
{
    const volatile uint8_t *b = p;
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += b[i];
    return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gguf_file *f = NULL;
    char err[256];
    if (gguf_open_memory(data, size, "fuzz.gguf", &f, err, sizeof(err)) < 0)
        return 0;
    unsigned sum = 0;
    for (int64_t i = 0; i < gguf_kv_count(f); i++) {
        const char *key = gguf_kv_key(f, i);
        sum += touch(key, strlen(key));
        gguf_value v;
        if (gguf_kv_type(f, i) != GGUF_TYPE_ARRAY) {
            if (gguf_kv_value(f, i, &v) == 0 && v.type == GGUF_TYPE_STRING)
                sum += touch(v.s, v.len);
            continue;
        }
        uint64_t n = gguf_kv_array_count(f, i);
        /* Every element of small arrays, the ends of large ones. */
        for (uint64_t k = 0; k < n; k += (n > 4096 && k >= 64 && k + 64 < n) ? n / 64 : 1) {
            if (gguf_kv_array_value(f, i, k, &v) == 0 && v.type == GGUF_TYPE_STRING)
                sum += touch(v.s, v.len);
        }
        const void *raw;
        uint64_t raw_len;
        if (gguf_kv_raw(f, i, &raw, &raw_len) == 0)
            sum += touch(raw, (size_t)raw_len);
    }
    for (int64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        sum += touch(t->name, strlen(t->name));
        if (t->nbytes)
            sum += touch(t->data, 1) + touch(t->data + t->nbytes - 1, 1);
        if (gguf_tensor_find(f, t->name) != t)
            __builtin_trap();
    }
    model_meta *m = NULL;
    if (model_meta_load(f, &m, err, sizeof(err)) == 0)
        model_meta_free(m);
    gguf_close(f);
    return (int)(sum & 0);
}
