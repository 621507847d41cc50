/*
 * tests/fuzz/fuzz_tokenizer.c - libFuzzer target for the tokenizers.
 *
 * The first byte picks a mode:
 *   0..1  text through the LLaMA-3 BPE vocab (parse_special off / on);
 *   2..3  the same through the LLaMA SentencePiece vocab;
 *   4     the rest of the input is a GGUF file: load a tokenizer from it
 *         and, when that works, encode and decode a fixed text.
 * Text modes check the invariants the daemon relies on: decoding an encoding
 * gives back the input with invalid UTF-8 replaced (BPE, specials not
 * parsed), and the streaming decoder only ever emits valid UTF-8.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "engine/unicode.h"

#ifndef BITNET_REFERENCE_DIR
#define BITNET_REFERENCE_DIR ".cache/reference"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tokenizer *vocab[2];

static tokenizer *load(const char *name)
{
    char path[512], err[256];
    snprintf(path, sizeof(path), "%s/llama.cpp/models/ggml-vocab-%s.gguf", BITNET_REFERENCE_DIR,
             name);
    gguf_file *f;
    tokenizer *t;
    if (gguf_open(path, &f, err, sizeof(err)) != 0 || tokenizer_load(f, NULL, &t, err, sizeof(err)))
        abort();
    gguf_close(f);
    return t;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    vocab[0] = load("llama-bpe");
    vocab[1] = load("llama-spm");
    return 0;
}

static void check_text(const tokenizer *t, const uint8_t *text, size_t len, bool parse_special)
{
    size_t n;
    int32_t *ids = malloc((4 * len + 4) * sizeof(int32_t));
    if (tokenizer_encode(t, (const char *)text, len, true, parse_special, ids, 4 * len + 4, &n))
        abort(); /* never more tokens than bytes, plus BOS/EOS */

    size_t dlen;
    char *dec = malloc(tokenizer_max_piece(t) * (n + 1) + 1);
    if (tokenizer_decode(t, ids, n, false, dec, tokenizer_max_piece(t) * (n + 1), &dlen))
        abort();
    if (tokenizer_model_type(t) == TOKENIZER_MODEL_BPE && !parse_special) {
        uint8_t *clean = malloc(3 * len + 1);
        size_t clen = unicode_utf8_sanitize(text, len, clean);
        if (clen != dlen || memcmp(clean, dec, clen) != 0)
            abort();
        free(clean);
    }

    tokenizer_stream s;
    tokenizer_stream_init(&s, t, parse_special, false);
    size_t cap = tokenizer_stream_bound(t);
    char *chunk = malloc(cap);
    for (size_t i = 0; i <= n; i++) {
        size_t k;
        int rc = i < n ? tokenizer_stream_feed(&s, ids[i], chunk, cap, &k)
                       : tokenizer_stream_flush(&s, chunk, cap, &k);
        if (rc || !unicode_utf8_valid((const uint8_t *)chunk, k))
            abort();
    }
    free(chunk);
    free(dec);
    free(ids);
}

static void check_file(const uint8_t *data, size_t size)
{
    char err[256];
    gguf_file *f;
    if (gguf_open_memory(data, size, "fuzz", &f, err, sizeof(err)) != 0)
        return;
    tokenizer *t;
    if (tokenizer_load(f, NULL, &t, err, sizeof(err)) == 0) {
        static const char text[] = "Hello <|eot_id|> w\xC3\xB6rld 12345 \xF0\x9F\xA6\x99!";
        check_text(t, (const uint8_t *)text, sizeof(text) - 1, true);
        chat_message m = {CHAT_ROLE_USER, text, sizeof(text) - 1};
        int32_t ids[256];
        size_t n;
        tokenizer_render_chat(t, &m, 1, true, ids, 256, &n);
        tokenizer_free(t);
    }
    gguf_close(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t mode = data[0] % 5;
    if (mode == 4)
        check_file(data + 1, size - 1);
    else
        check_text(vocab[mode / 2], data + 1, size - 1, mode & 1);
    return 0;
}
