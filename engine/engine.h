/*
 * engine/engine.h - the native engine: a model, its compute pool and its
 * sequences, evaluated one batch at a time.
 *
 * A batch holds tokens of one or more sequences; each sequence's tokens are
 * appended at its next positions. One pass over the weights serves every
 * token in the batch, so a prompt's prefill and other sequences' decode
 * steps can share a step (continuous batching). The engine is not
 * thread-safe: one caller thread drives it (the daemon's scheduler).
 */
#ifndef BITNET_ENGINE_ENGINE_H
#define BITNET_ENGINE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bitnet/kernels.h"

/* The GGUF file type (engine/gguf.h); declared here so this header does not
 * pull the reader's names in (they would clash with ggml's gguf.h). */
struct gguf_file;

typedef struct engine_opts {
    int n_threads;      /* compute threads; <= 0: physical cores */
    int n_seq_max;      /* sequences that may exist at once; <= 0: 1 */
    int n_ctx;          /* positions per sequence; <= 0: the model's, capped at 4096 */
    const char *kernel; /* a kernel id to force, or NULL for the registry's choice */
    /* The LM head: NULL or "native" uses the file's tensor as stored;
     * "q8_0" multiplies with an in-memory Q8_0 copy made at load (about half
     * the bytes of an F16 head read per token; logits change slightly). */
    const char *lm_head;
    /* The KV cache: NULL or "f32" stores keys and values as float (what
     * crossval compares with llama.cpp's F32 cache); "f16" as IEEE half,
     * half the memory and the bytes attention reads, rounded to nearest. */
    const char *kv_type;
} engine_opts;

typedef struct engine engine;

/* A batch: n tokens, token i belonging to sequence seq[i]; logits[i] says
 * whether its logits are wanted. */
typedef struct engine_batch {
    int n;
    const int32_t *tokens;
    const int *seq;
    const bool *logits;
} engine_batch;

/* Facts about the loaded model and how it runs. */
typedef struct engine_info {
    const char *arch;          /* general.architecture */
    const char *weight_type;   /* "i2s", "tq2_0", "tq1_0", "f16", "f32" */
    const char *kernel;        /* kernel id used for the ternary matrices, or "fmat.<isa>" */
    const char *kernel_reason; /* why this kernel: chosen by the registry, or forced */
    const char *lm_head;       /* how the LM head runs, e.g. "f16 (token_embd, tied) fmat.avx512" */
    const char *kv_cache;      /* how the KV cache stores K and V: "f32" or "f16" */
    const char *attention; /* the attention code that runs: "scalar", "avx2", "avx512", "neon" */
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx, n_threads, n_seq_max;
    uint64_t weight_bytes; /* bytes of weights a decode step reads */
} engine_info;

/*
 * Loads the model at path. Returns 0 and sets *out, or a negative code with
 * a message in err (a file problem, a shape that does not fit the
 * architecture, a forced kernel that cannot run here or does not match the
 * weight format).
 */
int engine_new(const char *path, const engine_opts *opts, engine **out, char *err, size_t err_len);

/* Frees the engine and unmaps the model; NULL is fine. */
void engine_free(engine *e);

const engine_info *engine_get_info(const engine *e);

/* The GGUF file the model came from (for the tokenizer). */
const struct gguf_file *engine_gguf(const engine *e);

/* Starts a sequence at position 0. Returns 0 and its id, or BITNET_ELIMIT
 * when n_seq_max sequences exist. */
int engine_seq_new(engine *e, int *seq);

/* Ends a sequence and frees its slot; unknown ids are ignored. */
void engine_seq_free(engine *e, int seq);

/* Positions filled so far in a sequence, or -1 for an unknown id. */
int engine_seq_len(const engine *e, int seq);

/* Drops positions >= len from a sequence (e.g. to reuse a prompt prefix). */
int engine_seq_truncate(engine *e, int seq, int len);

/*
 * Evaluates a batch. For each token with logits[i] set, writes n_vocab
 * logits to out_logits in batch order (the j-th such token at
 * out_logits + j * n_vocab). Returns 0, BITNET_ECONTEXT when a sequence
 * would pass n_ctx (nothing is evaluated then), or BITNET_EPARAM for an
 * unknown sequence or a token id out of range, with err set.
 */
int engine_eval(engine *e, const engine_batch *batch, float *out_logits, char *err, size_t err_len);

#endif
