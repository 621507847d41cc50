/*
 * backends/symbols.c - symbol categories, quantization families and CUDA
 * names (the rules are documented in symbols.h and docs/library-analysis.md).
 */
#include "backends/symbols.h"

#include <string.h>

static const char *const category_names[SYMBOL_CAT_COUNT] = {
    [SYMBOL_CAT_BITNET] = "bitnet",
    [SYMBOL_CAT_LLAMA] = "llama",
    [SYMBOL_CAT_GGML] = "ggml",
    [SYMBOL_CAT_CUDA] = "cuda",
};

/* Family name as it appears in symbols, and the format it loads as. */
static const struct {
    const char *pattern;
    const char *format;
} quants[SYMBOL_QUANT_COUNT] = {
    [SYMBOL_QUANT_I2_S] = {"i2_s", "i2s"},     [SYMBOL_QUANT_I2_I8_S] = {"i2_i8_s", "i2s"},
    [SYMBOL_QUANT_TQ1_0] = {"tq1_0", "tq1_0"}, [SYMBOL_QUANT_TQ2_0] = {"tq2_0", "tq2_0"},
    [SYMBOL_QUANT_TL1] = {"tl1", "tl1"},       [SYMBOL_QUANT_TL2] = {"tl2", "tl2"},
};

/* Prefixes of CUDA API and library symbols (case-sensitive). */
static const char *const cuda_prefixes[] = {
    "cuda",     "cublas", "cudnn",     "cufft",  "curand",        "cusparse",
    "cusolver", "nvrtc",  "nvJitLink", "__cuda", "__device_stub", "__nv_",
};

/* CUDA types that show up in the mangled signatures of nvcc host code. */
static const char *const cuda_mangled_types[] = {"CUstream_st", "CUevent_st", "__nv_bfloat16",
                                                 "__nv_fp8", "cudaError"};

/* Sonames (prefixes of the DT_NEEDED name) of CUDA libraries. */
static const char *const cuda_libraries[] = {
    "libcuda.",     "libcudart",   "libcublas",     "libcufft", "libcurand",
    "libcusparse",  "libcusolver", "libcudnn",      "libcupti", "libnvrtc",
    "libnvJitLink", "libnvidia-",  "libnvToolsExt", "libnccl",  "libnvblas",
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

const char *symbols_category_name(symbol_category cat)
{
    return (unsigned)cat < SYMBOL_CAT_COUNT ? category_names[cat] : "?";
}

const char *symbols_quant_name(symbol_quant q)
{
    return (unsigned)q < SYMBOL_QUANT_COUNT ? quants[q].pattern : "?";
}

const char *symbols_quant_format(symbol_quant q)
{
    return (unsigned)q < SYMBOL_QUANT_COUNT ? quants[q].format : "?";
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Case-insensitive search for an all-lowercase needle. */
static bool contains_nocase(const char *s, const char *needle)
{
    size_t n = strlen(needle);
    for (; *s; s++) {
        size_t i = 0;
        while (i < n && s[i] && lower(s[i]) == needle[i])
            i++;
        if (i == n)
            return true;
    }
    return false;
}

bool symbols_is_cuda_name(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(cuda_prefixes); i++)
        if (starts_with(name, cuda_prefixes[i]))
            return true;
    if (name[0] == 'c' && name[1] == 'u' && name[2] >= 'A' && name[2] <= 'Z')
        return true;
    if (contains_nocase(name, "cuda"))
        return true;
    if (starts_with(name, "_Z")) {
        for (size_t i = 0; i < ARRAY_SIZE(cuda_mangled_types); i++)
            if (strstr(name, cuda_mangled_types[i]))
                return true;
    }
    return false;
}

bool symbols_is_cuda_library(const char *needed)
{
    /* Match on the file name part, whatever directory a DT_NEEDED carries. */
    const char *base = strrchr(needed, '/');
    base = base ? base + 1 : needed;
    for (size_t i = 0; i < ARRAY_SIZE(cuda_libraries); i++)
        if (starts_with(base, cuda_libraries[i]))
            return true;
    return false;
}

static bool is_lower_or_digit(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_letter(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/*
 * A family matches where its pattern occurs (case-insensitively) not preceded
 * by a letter and not followed by a lowercase letter or digit: "tq1_0" in
 * dequantize_row_tq1_0 and in _Z22dequantize_row_tq1_0PKv, but "tl1" not in
 * "ctl1" and "i2_s" not in "i2_scale".
 */
static bool mentions(const char *name, const char *pattern)
{
    size_t n = strlen(pattern);
    for (const char *s = name; *s; s++) {
        size_t i = 0;
        while (i < n && s[i] && lower(s[i]) == pattern[i])
            i++;
        if (i < n)
            continue;
        if (s > name && is_letter(s[-1]))
            continue;
        if (is_lower_or_digit(s[n]))
            continue;
        return true;
    }
    return false;
}

unsigned symbols_quant_mask(const char *name)
{
    unsigned mask = 0;
    for (unsigned q = 0; q < SYMBOL_QUANT_COUNT; q++)
        if (mentions(name, quants[q].pattern))
            mask |= 1u << q;
    return mask;
}

unsigned symbols_category_mask(const char *name)
{
    unsigned mask = 0;
    if (starts_with(name, "bitnet_"))
        mask |= 1u << SYMBOL_CAT_BITNET;
    if (starts_with(name, "llama_"))
        mask |= 1u << SYMBOL_CAT_LLAMA;
    if (starts_with(name, "ggml_") || starts_with(name, "gguf_"))
        mask |= 1u << SYMBOL_CAT_GGML;
    if (symbols_is_cuda_name(name))
        mask |= 1u << SYMBOL_CAT_CUDA;
    return mask;
}

/* Counts a name and keeps it as an example. Plain C names make better
 * examples than mangled C++ ones, so a C name displaces a mangled example
 * once the list is full. */
static void group_add(symbol_group *g, const char *name)
{
    g->count++;
    if (g->n_examples < SYMBOLS_EXAMPLES) {
        g->examples[g->n_examples++] = name;
        return;
    }
    if (starts_with(name, "_Z"))
        return;
    for (size_t i = 0; i < g->n_examples; i++) {
        if (starts_with(g->examples[i], "_Z")) {
            g->examples[i] = name;
            return;
        }
    }
}

void symbols_summarize(const elf_file *elf, symbols_summary *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < elf->n_symbols; i++) {
        const elf_symbol *sym = &elf->symbols[i];
        if (sym->name[0] == '\0')
            continue;
        if (!sym->defined) {
            out->undefined++;
            if (symbols_is_cuda_name(sym->name))
                group_add(&out->cuda_imports, sym->name);
            continue;
        }
        out->defined++;
        unsigned cats = symbols_category_mask(sym->name);
        for (unsigned c = 0; c < SYMBOL_CAT_COUNT; c++)
            if (cats & (1u << c))
                group_add(&out->category[c], sym->name);
        unsigned qs = symbols_quant_mask(sym->name);
        for (unsigned q = 0; q < SYMBOL_QUANT_COUNT; q++)
            if (qs & (1u << q))
                group_add(&out->quant[q], sym->name);
        if (strcmp(sym->name, "bitnet_abi_version") == 0)
            out->bitnet_abi = true;
        else if (strcmp(sym->name, "llama_backend_init") == 0)
            out->llama_api = true;
        else if (strcmp(sym->name, "ggml_init") == 0)
            out->ggml_core = true;
        else if (strcmp(sym->name, "ggml_backend_init") == 0)
            out->ggml_backend = true;
        if (!out->ggml_backend_reg && starts_with(sym->name, "ggml_backend_")) {
            size_t n = strlen(sym->name);
            const char *mid = sym->name + strlen("ggml_backend_");
            /* ggml_backend_<name>_reg with a one-word name (cpu, cuda, vulkan). */
            if (n > strlen("ggml_backend__reg") && strcmp(sym->name + n - 4, "_reg") == 0 &&
                memchr(mid, '_', (size_t)(sym->name + n - 4 - mid)) == NULL)
                out->ggml_backend_reg = sym->name;
        }
    }
}
