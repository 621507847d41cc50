/*
 * engine/model_meta.h - a model's hyperparameters and tensors, validated.
 *
 * model_meta_load() reads the hyperparameters of a `bitnet`, `bitnet-b1.58`
 * or `bitnet-25` GGUF file into one struct, finds every tensor the
 * architecture uses and checks its presence, type and shape against the
 * hyperparameters (docs/formats.md, sections 5 and 6). Nothing is copied:
 * tensor pointers refer into the gguf_file, which must outlive the meta.
 */
#ifndef BITNET_ENGINE_MODEL_META_H
#define BITNET_ENGINE_MODEL_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bitnet/kernels.h"
#include "engine/gguf.h"

typedef enum model_arch {
    MODEL_ARCH_BITNET = 0,  /* llama.cpp's `bitnet` (1bitLLM): SiLU-gated FFN */
    MODEL_ARCH_BITNET_B158, /* bitnet.cpp `bitnet-b1.58` (2B4T): ReLU² FFN */
    MODEL_ARCH_BITNET_25,   /* bitnet.cpp `bitnet-25`: the same model, older name */
    MODEL_ARCH_COUNT
} model_arch;

typedef enum model_rope_type {
    MODEL_ROPE_NORM = 0, /* rotate adjacent pairs (x0,x1), (x2,x3), ... */
    MODEL_ROPE_NEOX      /* rotate halves (x_i, x_{i+d/2}); what these archs use */
} model_rope_type;

typedef enum model_ffn_act {
    MODEL_FFN_SILU = 0, /* f = silu(gate) * up */
    MODEL_FFN_RELU2     /* f = relu(gate)^2 * up */
} model_ffn_act;

/* One transformer block's tensors. The .scale tensors are optional (`bitnet`
 * arch only: y = (W x) * s) and NULL when absent. */
typedef struct model_layer {
    const gguf_tensor *attn_norm;                                 /* [n_embd] F32 */
    const gguf_tensor *attn_sub_norm;                             /* [n_embd] F32 */
    const gguf_tensor *wq;                                        /* [n_embd, n_embd] ternary */
    const gguf_tensor *wk;                                        /* [n_embd, n_embd_kv] ternary */
    const gguf_tensor *wv;                                        /* [n_embd, n_embd_kv] ternary */
    const gguf_tensor *wo;                                        /* [n_embd, n_embd] ternary */
    const gguf_tensor *ffn_norm;                                  /* [n_embd] F32 */
    const gguf_tensor *ffn_sub_norm;                              /* [n_ff] F32 */
    const gguf_tensor *ffn_gate;                                  /* [n_embd, n_ff] ternary */
    const gguf_tensor *ffn_up;                                    /* [n_embd, n_ff] ternary */
    const gguf_tensor *ffn_down;                                  /* [n_ff, n_embd] ternary */
    const gguf_tensor *wq_scale, *wk_scale, *wv_scale, *wo_scale; /* [1] F32 or NULL */
    const gguf_tensor *ffn_gate_scale, *ffn_up_scale, *ffn_down_scale;
} model_layer;

typedef struct model_meta {
    model_arch arch;
    uint32_t n_vocab;      /* tokenizer.ggml.tokens length, or {arch}.vocab_size */
    uint32_t n_ctx_train;  /* {arch}.context_length */
    uint32_t n_embd;       /* model width */
    uint32_t n_layer;      /* transformer blocks */
    uint32_t n_ff;         /* FFN hidden width */
    uint32_t n_head;       /* query heads */
    uint32_t n_head_kv;    /* key/value heads (GQA) */
    uint32_t head_dim;     /* n_embd / n_head */
    uint32_t n_embd_kv;    /* head_dim * n_head_kv: K and V width */
    uint32_t n_rot;        /* rotary dimensions (== head_dim) */
    float rms_eps;         /* RMSNorm epsilon */
    float rope_freq_base;  /* default 10000 */
    float rope_freq_scale; /* 1 / linear scaling factor; 1 when none */
    model_rope_type rope_type;
    model_ffn_act ffn_act;
    gguf_dtype weight_dtype;        /* of every ternary matrix (all the same) */
    bool has_scales;                /* some .scale tensor is present */
    bool tied_output;               /* the LM head is token_embd (no output.weight) */
    const gguf_tensor *token_embd;  /* [n_embd, n_vocab] */
    const gguf_tensor *output_norm; /* [n_embd] F32 */
    const gguf_tensor *output;      /* [n_embd, n_vocab], or NULL when tied */
    const gguf_tensor *rope_freqs;  /* [n_rot/2] F32, optional, NULL when absent */
    model_layer *layers;            /* n_layer entries */
} model_meta;

/*
 * Reads and validates the model in f. Returns 0 and sets *out, or
 * BITNET_EARCH (architecture not one of ours), BITNET_EMISSING (a key or
 * tensor absent), BITNET_ETYPE (a value or tensor of the wrong type, or a
 * format the engine cannot run such as TL1/TL2), BITNET_ESHAPE (a shape that
 * does not match the hyperparameters), BITNET_EFORMAT (inconsistent
 * hyperparameters), -ENOMEM; the message in err names the file and the key
 * or tensor, with what was expected and what was found.
 */
int model_meta_load(const gguf_file *f, model_meta **out, char *err, size_t err_len);

/* NULL is fine. */
void model_meta_free(model_meta *m);

/* "bitnet", "bitnet-b1.58", "bitnet-25". */
const char *model_arch_name(model_arch a);
/* Parses an architecture name; 0 or BITNET_EARCH. */
int model_arch_parse(const char *name, model_arch *out);
/* "silu", "relu2" / "norm", "neox". */
const char *model_ffn_act_name(model_ffn_act a);
const char *model_rope_type_name(model_rope_type r);

/* The ternary kernel format of a weight dtype: true for I2_S, TQ1_0 and
 * TQ2_0; false for float types, which no ternary kernel reads directly. */
bool model_dtype_format(gguf_dtype d, bitnet_format *out);

#endif
