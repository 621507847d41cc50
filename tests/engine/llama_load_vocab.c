/*
 * tests/engine/llama_load_vocab.c - reads our own view of a model file's
 * vocabulary for test_llama_load.c, which cannot include engine/gguf.h next
 * to ggml.h (both name the GGML_TYPE_* ids).
 */
#include <string.h>

#include "engine/gguf.h"

long vocab_count(const char *path);
int vocab_token_is(const char *path, long id, const char *text);

/* Entries of tokenizer.ggml.tokens, or -1. */
long vocab_count(const char *path)
{
    gguf_file *f = NULL;
    char err[256];
    if (gguf_open(path, &f, err, sizeof(err)) < 0)
        return -1;
    long n = (long)gguf_kv_array_count(f, gguf_kv_find(f, "tokenizer.ggml.tokens"));
    gguf_close(f);
    return n;
}

/* 1 when token id of the file is spelled text, 0 when not, -1 on error. */
int vocab_token_is(const char *path, long id, const char *text)
{
    gguf_file *f = NULL;
    char err[256];
    if (gguf_open(path, &f, err, sizeof(err)) < 0)
        return -1;
    const char *s;
    size_t len;
    int rc = gguf_get_array_str(f, "tokenizer.ggml.tokens", (uint64_t)id, &s, &len);
    int same = rc == 0 && len == strlen(text) && memcmp(s, text, len) == 0;
    gguf_close(f);
    return rc < 0 ? -1 : same;
}
