/*
 * backends/symbols.h - what a library's dynamic symbols say about it.
 *
 * Defined dynamic symbols are sorted into categories by name (bitnet_*,
 * llama_*, ggml_*, CUDA) and into the ternary quantization families they
 * mention (i2_s, i2_i8_s, tq1_0, tq2_0, tl1, tl2). Undefined symbols that
 * name the CUDA runtime, driver or libraries are counted as CUDA imports.
 * The rules are in docs/library-analysis.md; the functions here are the
 * single place that implements them.
 */
#ifndef BITNET_BACKENDS_SYMBOLS_H
#define BITNET_BACKENDS_SYMBOLS_H

#include <stdbool.h>
#include <stddef.h>

#include "backends/elf.h"

/* Name categories of defined symbols. One symbol may be in several
 * (ggml_backend_cuda_init is ggml and CUDA). */
typedef enum symbol_category {
    SYMBOL_CAT_BITNET = 0, /* bitnet_* */
    SYMBOL_CAT_LLAMA,      /* llama_* */
    SYMBOL_CAT_GGML,       /* ggml_*, gguf_* */
    SYMBOL_CAT_CUDA,       /* see symbols_is_cuda_name() */
    SYMBOL_CAT_COUNT
} symbol_category;

/* Ternary quantization families, found by name. */
typedef enum symbol_quant {
    SYMBOL_QUANT_I2_S = 0,
    SYMBOL_QUANT_I2_I8_S,
    SYMBOL_QUANT_TQ1_0,
    SYMBOL_QUANT_TQ2_0,
    SYMBOL_QUANT_TL1,
    SYMBOL_QUANT_TL2,
    SYMBOL_QUANT_COUNT
} symbol_quant;

/* How many example names a summary keeps per category. */
#define SYMBOLS_EXAMPLES 4

/* Counts and a few example names. Names point into the elf_file that was
 * summarised and are valid until it is closed. */
typedef struct symbol_group {
    size_t count;
    const char *examples[SYMBOLS_EXAMPLES];
    size_t n_examples;
} symbol_group;

typedef struct symbols_summary {
    size_t defined;   /* defined dynamic symbols (the null symbol excluded) */
    size_t undefined; /* undefined dynamic symbols (imports) */
    symbol_group category[SYMBOL_CAT_COUNT];
    symbol_group quant[SYMBOL_QUANT_COUNT];
    symbol_group cuda_imports;    /* undefined symbols with CUDA names */
    bool bitnet_abi;              /* defines bitnet_abi_version: a bitnetd backend library */
    bool llama_api;               /* defines llama_backend_init: a libllama */
    bool ggml_core;               /* defines ggml_init: a libggml(-base) */
    bool ggml_backend;            /* defines ggml_backend_init: a ggml backend that ggml
                                     loads at run time (libggml-cpu-*.so, libggml-cuda.so) */
    const char *ggml_backend_reg; /* its ggml_backend_<name>_reg symbol, or NULL */
} symbols_summary;

/* The lowercase name of a category ("bitnet", "llama", "ggml", "cuda"). */
const char *symbols_category_name(symbol_category cat);

/* The name of a quantization family ("i2_s", "tq1_0", ...). */
const char *symbols_quant_name(symbol_quant q);

/* The model format a family is loaded as ("i2s", "tq1_0", ...). */
const char *symbols_quant_format(symbol_quant q);

/*
 * True when a symbol name belongs to CUDA: it starts with cuda, cublas,
 * cudnn, cufft, curand, cusparse, cusolver, nvrtc, nvjitlink, __cuda,
 * __device_stub or cu followed by an uppercase letter (the driver API:
 * cuMemCreate); or it contains "cuda" in any case (ggml_backend_cuda_init,
 * mangled host code such as _ZN18ggml_cuda_pool_vmm5allocEmPm); or it is a
 * mangled C++ name whose signature uses CUDA's own types (CUstream_st,
 * __nv_bfloat16), which is how nvcc's kernel launch stubs look.
 */
bool symbols_is_cuda_name(const char *name);

/* True when a DT_NEEDED name is a CUDA library (libcudart, libcuda,
 * libcublas, libcublasLt, libnvrtc, libcudnn, ...). */
bool symbols_is_cuda_library(const char *needed);

/* Bit (1u << symbol_quant) set for each family the name mentions. */
unsigned symbols_quant_mask(const char *name);

/* Bit (1u << symbol_category) set for each category of the name. */
unsigned symbols_category_mask(const char *name);

/* Summarises the dynamic symbols of elf into *out (fully overwritten). */
void symbols_summarize(const elf_file *elf, symbols_summary *out);

#endif
