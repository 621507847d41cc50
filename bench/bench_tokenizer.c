/*
 * bench/bench_tokenizer.c - how fast the tokenizer loads, encodes and
 * decodes. A report, never a test.
 *
 * Usage: bench-tokenizer [VOCAB.gguf [TEXT_FILE]]
 * Defaults: the reference llama-bpe vocab, and its test strings repeated to
 * about 1 MiB as the text.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/gguf.h"
#include "engine/tokenizer.h"

#ifndef BITNET_REFERENCE_DIR
#define BITNET_REFERENCE_DIR ".cache/reference"
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(fp);
    *len = buf ? (size_t)n : 0;
    return buf;
}

int main(int argc, char **argv)
{
    const char *vocab_path =
        argc > 1 ? argv[1] : BITNET_REFERENCE_DIR "/llama.cpp/models/ggml-vocab-llama-bpe.gguf";
    char text_default[1024];
    snprintf(text_default, sizeof(text_default), "%s.inp", vocab_path);
    const char *text_path = argc > 2 ? argv[2] : text_default;

    char err[256];
    gguf_file *f;
    if (gguf_open(vocab_path, &f, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench-tokenizer: %s\n", err);
        return 1;
    }
    double t0 = now();
    tokenizer *t;
    if (tokenizer_load(f, NULL, &t, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench-tokenizer: %s\n", err);
        return 1;
    }
    double load_s = now() - t0;
    gguf_close(f);

    size_t seed_len;
    char *seed = read_all(text_path, &seed_len);
    if (!seed || seed_len == 0) {
        fprintf(stderr, "bench-tokenizer: cannot read %s\n", text_path);
        return 1;
    }
    size_t len = 0, cap = 1 << 20;
    char *text = malloc(cap + seed_len);
    while (len < cap) {
        memcpy(text + len, seed, seed_len);
        len += seed_len;
    }

    size_t n = 0;
    tokenizer_encode(t, text, len, false, false, NULL, 0, &n);
    int32_t *ids = malloc(n * sizeof(int32_t));
    int reps = 5;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double s = now();
        if (tokenizer_encode(t, text, len, false, false, ids, n, &n) != 0)
            return 1;
        double e = now() - s;
        if (e < best)
            best = e;
    }

    size_t dlen = 0;
    tokenizer_decode(t, ids, n, false, NULL, 0, &dlen);
    char *dec = malloc(dlen + 1);
    double ds = now();
    tokenizer_decode(t, ids, n, false, dec, dlen, &dlen);
    double decode_s = now() - ds;

    printf("vocab            %s (%d tokens, pre-tokenizer %s)\n", vocab_path, tokenizer_n_vocab(t),
           tokenizer_pre_name(tokenizer_pre_type(t)));
    printf("load             %.1f ms\n", load_s * 1e3);
    printf("text             %zu bytes -> %zu tokens (%.2f bytes/token)\n", len, n,
           (double)len / (double)n);
    printf("encode (best/%d)  %.1f ms  %.1f MB/s  %.2f M tokens/s\n", reps, best * 1e3,
           (double)len / best / 1e6, (double)n / best / 1e6);
    printf("decode           %.1f ms  %.1f MB/s\n", decode_s * 1e3, (double)dlen / decode_s / 1e6);
    free(dec);
    free(ids);
    free(text);
    free(seed);
    tokenizer_free(t);
    return 0;
}
