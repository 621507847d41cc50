/*
 * backends/api.h - a backend as the daemon sees it: the ABI functions of
 * include/bitnet/backend.h as a table of pointers.
 *
 * The native backend fills the table with functions compiled into the
 * daemon (backend_native_api()); a backend library fills it with the symbols
 * dlsym() found in it (backends/validate.h). Either way the caller uses the
 * same table, so the native engine is driven exactly like a loaded library.
 */
#ifndef BITNET_BACKENDS_API_H
#define BITNET_BACKENDS_API_H

#include "bitnet/backend.h"

typedef struct backend_api {
    uint32_t (*abi_version)(void);
    int32_t (*backend_info)(bitnet_backend_desc *out);
    int32_t (*model_new_from_file)(const char *path, const bitnet_model_params *params,
                                   bitnet_model **out, char *err, size_t err_len);
    void (*model_free)(bitnet_model *model);
    int32_t (*model_describe)(const bitnet_model *model, bitnet_model_desc *out);
    int32_t (*context_new)(bitnet_model *model, bitnet_context **out, char *err, size_t err_len);
    void (*context_free)(bitnet_context *ctx);
    int32_t (*tokenize)(bitnet_model *model, const char *text, size_t len, uint32_t flags,
                        int32_t *tokens, size_t cap, size_t *n_out, char *err, size_t err_len);
    int32_t (*eval)(bitnet_context *ctx, const int32_t *tokens, size_t n, float *logits,
                    size_t logits_cap, char *err, size_t err_len);
    int32_t (*decode_greedy)(bitnet_context *ctx, const int32_t *prompt, size_t n_prompt,
                             uint32_t flags, int32_t *out, size_t cap, size_t *n_out, char *err,
                             size_t err_len);
    int32_t (*context_reset)(bitnet_context *ctx);
} backend_api;

/* One required ABI symbol: its exported name and where its address goes in
 * a backend_api. */
typedef struct backend_api_symbol {
    const char *name;
    size_t offset; /* offsetof(backend_api, field) */
} backend_api_symbol;

/* The symbols every backend library must export, in the order they are
 * checked (bitnet_abi_version first). *n gets the count. */
const backend_api_symbol *backend_api_symbols(size_t *n);

/* The native backend: bitnetd's own engine, in-process. Never NULL. */
const backend_api *backend_native_api(void);

#endif
