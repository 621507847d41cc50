/*
 * bitnet/backend.h - the backend ABI: the C functions a backend library
 * exports so that bitnetd can load a model in it and evaluate tokens.
 *
 * Three backends implement it (docs/backends.md): `native` (bitnetd's own
 * engine, in-process), `llama` (libbitnet-llama.so, a shim over an external
 * libllama) and `cuda` (libbitnet-cuda.so). bitnetd validates a library
 * before it calls anything in it, and the first function it calls is
 * bitnet_abi_version(): a library whose answer differs from the
 * BITNET_ABI_VERSION bitnetd was built with is refused and never called
 * again. Any change to a signature, a struct or a meaning below bumps
 * BITNET_ABI_VERSION.
 *
 * Conventions:
 *   - Handles are opaque. Integers in the interface have fixed sizes.
 *   - Functions that can fail return int32_t: 0 or a negative code, either
 *     -errno or a BITNET_E* value of bitnet/error.h. On failure, output
 *     parameters are left untouched and a one-line message (always
 *     NUL-terminated, truncated to fit) is written to err when err_len > 0.
 *   - Strings the library returns are owned by the library: those of
 *     bitnet_backend_info() live until the library is unloaded, those of
 *     bitnet_model_describe() until the model is freed.
 *   - *_free functions accept NULL.
 *   - Threading: a model and every context made from it form one unit that
 *     one thread at a time may call (the native engine evaluates all of a
 *     model's contexts in one pass over the weights, so they share state).
 *     Different models are independent and may be driven from different
 *     threads at once. bitnet_abi_version() and bitnet_backend_info() may be
 *     called from any thread at any time.
 *
 * This header compiles as C99 and as C++.
 */
#ifndef BITNET_BACKEND_H
#define BITNET_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI version this header describes. */
#define BITNET_ABI_VERSION 1u

/* Marks the ABI functions a backend library exports (the libraries are
 * built with hidden visibility, so only these are visible). */
#if defined(__GNUC__) || defined(__clang__)
#define BITNET_ABI_EXPORT __attribute__((visibility("default")))
#else
#define BITNET_ABI_EXPORT
#endif

typedef struct bitnet_model bitnet_model;
typedef struct bitnet_context bitnet_context;

/* What a backend library says about itself. */
typedef struct bitnet_backend_desc {
    uint32_t abi_version; /* BITNET_ABI_VERSION the library was built with */
    uint32_t struct_size; /* sizeof(bitnet_backend_desc) the library was built with */
    const char *name;     /* backend id: "native", "llama", "cuda" */
    const char *version;  /* the library's own version, e.g. "0.1.0" */
    const char *device;   /* where it computes: "cpu" or "cuda" */
    const char *detail;   /* one line, e.g. "libllama 6789 (ggml 0.9.4 abc1234), CPU build" */
} bitnet_backend_desc;

/* How a model is loaded. Zero-filled fields take the defaults. */
typedef struct bitnet_model_params {
    uint32_t struct_size; /* sizeof(bitnet_model_params); must be set */
    int32_t n_threads;    /* compute threads; <= 0: the backend's default */
    int32_t n_ctx;        /* positions per context; <= 0: the model's, capped at 4096 */
    int32_t n_ctx_max;    /* contexts that may exist at once; <= 0: 1 */
    const char *kernel;   /* a kernel id to force (native, cuda), or NULL */
} bitnet_model_params;

/* Facts about a loaded model. */
typedef struct bitnet_model_desc {
    uint32_t struct_size; /* sizeof(bitnet_model_desc) the library was built with */
    int32_t n_vocab;      /* logits per evaluated token */
    int32_t n_ctx;        /* positions per context */
    int32_t bos;          /* beginning-of-sequence token, or -1 */
    int32_t eos;          /* end-of-sequence token, or -1 */
    const char *arch;     /* general.architecture */
    const char *kernel;   /* what runs the ternary products, in the backend's words */
} bitnet_model_desc;

/* bitnet_tokenize flags. */
#define BITNET_TOKENIZE_ADD_SPECIAL   1u /* BOS/EOS around the text when the vocab asks */
#define BITNET_TOKENIZE_PARSE_SPECIAL 2u /* control-token text becomes that token */

/* bitnet_decode_greedy flags. */
#define BITNET_DECODE_STOP_AT_EOG 1u /* stop after an end-of-generation token */

/* Returns BITNET_ABI_VERSION as the library was built. Never fails. */
BITNET_ABI_EXPORT uint32_t bitnet_abi_version(void);

/* Fills *out. Returns 0, or -EINVAL for a NULL out. Cheap; loads no model. */
BITNET_ABI_EXPORT int32_t bitnet_backend_info(bitnet_backend_desc *out);

/*
 * Loads the GGUF model at path. params may be NULL (defaults). Returns 0 and
 * a new model in *out (free it with bitnet_model_free), or a negative code:
 * a file problem (-errno, BITNET_EFORMAT, BITNET_EARCH, ...), BITNET_EPARAM
 * for bad params, BITNET_ENO_DEVICE when the backend's device is missing.
 */
BITNET_ABI_EXPORT int32_t bitnet_model_new_from_file(const char *path,
                                                     const bitnet_model_params *params,
                                                     bitnet_model **out, char *err, size_t err_len);

/* Frees a model. Its contexts must be freed first. NULL is fine. */
BITNET_ABI_EXPORT void bitnet_model_free(bitnet_model *model);

/* Fills *out with facts about model; strings live as long as the model.
 * Returns 0 or -EINVAL. */
BITNET_ABI_EXPORT int32_t bitnet_model_describe(const bitnet_model *model, bitnet_model_desc *out);

/*
 * Makes a context: one token sequence with its KV cache, starting empty.
 * Returns 0 and *out, or BITNET_ELIMIT when n_ctx_max contexts exist, or
 * another negative code. The context borrows model, which must outlive it.
 */
BITNET_ABI_EXPORT int32_t bitnet_context_new(bitnet_model *model, bitnet_context **out, char *err,
                                             size_t err_len);

/* Frees a context. NULL is fine. */
BITNET_ABI_EXPORT void bitnet_context_free(bitnet_context *ctx);

/*
 * Encodes text[0..len) with the model's tokenizer (flags: BITNET_TOKENIZE_*).
 * Returns 0 and the count in *n_out; -ENOSPC when cap is too small, with the
 * needed count in *n_out and tokens untouched (cap 0 asks for the count).
 */
BITNET_ABI_EXPORT int32_t bitnet_tokenize(bitnet_model *model, const char *text, size_t len,
                                          uint32_t flags, int32_t *tokens, size_t cap,
                                          size_t *n_out, char *err, size_t err_len);

/*
 * Appends tokens[0..n) (n >= 1) to the context's sequence and writes the
 * logits that follow the last one to logits (n_vocab floats; logits_cap is
 * its length in floats). Returns 0, BITNET_ECONTEXT when the sequence would
 * pass n_ctx (nothing is appended), BITNET_EPARAM for a token out of range or
 * a short buffer, or another negative code.
 */
BITNET_ABI_EXPORT int32_t bitnet_eval(bitnet_context *ctx, const int32_t *tokens, size_t n,
                                      float *logits, size_t logits_cap, char *err, size_t err_len);

/*
 * Appends prompt[0..n_prompt) (n_prompt >= 1) and then generates up to cap
 * tokens, each the argmax of the logits (ties: the lowest id), appending each
 * as it goes. With BITNET_DECODE_STOP_AT_EOG it stops after emitting an
 * end-of-generation token; it also stops when the context is full. Returns
 * 0 and the count written to out in *n_out; BITNET_ECONTEXT when the prompt
 * itself does not fit, or another negative code (*n_out untouched; out may
 * hold the tokens made before the failure).
 */
BITNET_ABI_EXPORT int32_t bitnet_decode_greedy(bitnet_context *ctx, const int32_t *prompt,
                                               size_t n_prompt, uint32_t flags, int32_t *out,
                                               size_t cap, size_t *n_out, char *err,
                                               size_t err_len);

/* Empties the context's sequence so it can start again at position 0.
 * Returns 0 or a negative code. */
BITNET_ABI_EXPORT int32_t bitnet_context_reset(bitnet_context *ctx);

#ifdef __cplusplus
}
#endif

#endif
