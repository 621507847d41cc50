/* protocol/report.c - builds the kernels and capabilities JSON reports. */
#include <string.h>

#include "bitnet/config.h"
#include "protocol/report.h"

json_t *report_kernels(const bitnet_cpu_features *cpu)
{
    json_t *arr = json_array();
    for (int i = 0; i < BITNET_KERNEL_COUNT; i++) {
        const bitnet_kernel *k = bitnet_kernel_get((bitnet_kernel_id)i);
        bitnet_kernel_status st;
        bitnet_kernel_status_get(k, cpu, &st);
        json_t *o =
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:b}", "id", k->name,
                      "roadmap_name", k->roadmap_name, "format", bitnet_format_name(k->format),
                      "isa", bitnet_isa_name(k->isa), "device", bitnet_device_name(k->device),
                      "provider", bitnet_provider_name(k->provider), "compiled", st.compiled,
                      "supported", st.supported, "available", st.available);
        json_object_set_new(o, "reason", st.reason[0] ? json_string(st.reason) : json_null());
        json_array_append_new(arr, o);
    }
    return arr;
}

json_t *report_cpu(const bitnet_cpu_features *cpu)
{
    if (!cpu)
        cpu = bitnet_cpu_features_get();
    json_t *feat = json_pack(
        "{s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b}",
        "sse4_2", cpu->sse42, "avx", cpu->avx, "fma", cpu->fma, "f16c", cpu->f16c, "avx2",
        cpu->avx2, "avx512f", cpu->avx512f, "avx512bw", cpu->avx512bw, "avx512vl", cpu->avx512vl,
        "avx512dq", cpu->avx512dq, "avx512_vnni", cpu->avx512_vnni, "avx_vnni", cpu->avx_vnni,
        "gfni", cpu->gfni, "os_saves_ymm", cpu->os_saves_ymm, "os_saves_zmm", cpu->os_saves_zmm,
        "neon", cpu->neon, "asimddp", cpu->dotprod);
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:i, s:s, s:s, s:o}", "arch", cpu->arch, "vendor",
                          cpu->vendor, "brand", cpu->brand, "logical_cpus", cpu->logical_cpus,
                          "physical_cores", cpu->physical_cores, "simd_detected",
                          bitnet_simd_level_name(cpu->detected), "simd_active",
                          bitnet_simd_level_name(cpu->active), "features", feat);
    json_object_set_new(o, "simd_override",
                        cpu->simd_override[0] ? json_string(cpu->simd_override) : json_null());
    json_object_set_new(o, "simd_override_error",
                        cpu->simd_override_error[0] ? json_string(cpu->simd_override_error)
                                                    : json_null());
    return o;
}

/* Splits the space-separated BITNET_COMPILED_KERNELS into a JSON array. */
static json_t *compiled_kernel_list(void)
{
    json_t *arr = json_array();
    const char *s = BITNET_COMPILED_KERNELS;
    while (*s) {
        while (*s == ' ')
            s++;
        size_t n = strcspn(s, " ");
        if (n)
            json_array_append_new(arr, json_stringn(s, n));
        s += n;
    }
    return arr;
}

json_t *report_build(void)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:{s:b, s:s}, s:{s:b, s:s}}", "version",
                     BITNET_VERSION, "compiler", BITNET_COMPILER, "build_type", BITNET_BUILD_TYPE,
                     "target_arch", BITNET_TARGET_ARCH, "sanitize", BITNET_SANITIZE,
                     "compiled_kernels", compiled_kernel_list(), "cuda_backend", "built",
                     BITNET_CUDA_BUILT, "reason", BITNET_CUDA_REASON, "llama_shim", "built",
                     BITNET_LLAMA_BUILT, "reason", BITNET_LLAMA_REASON);
}

json_t *report_capabilities(const bitnet_cpu_features *cpu)
{
    if (!cpu)
        cpu = bitnet_cpu_features_get();
    json_t *best = json_object();
    static const bitnet_format formats[] = {BITNET_FORMAT_I2S, BITNET_FORMAT_TQ2_0,
                                            BITNET_FORMAT_TQ1_0, BITNET_FORMAT_TL1,
                                            BITNET_FORMAT_TL2};
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        const bitnet_kernel *k = bitnet_kernel_select(formats[i], cpu);
        json_object_set_new(best, bitnet_format_name(formats[i]),
                            k ? json_string(k->name) : json_null());
    }
    json_t *cuda = json_pack("{s:[], s:s}", "devices", "reason",
                             BITNET_CUDA_BUILT ? "the CUDA backend library is not loaded"
                                               : "this build has no CUDA backend library");
    json_t *native = json_pack("{s:s, s:s, s:b, s:s}", "id", "native", "provider", "bitnetd",
                               "available", 1, "library", "(built in)");
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:[o]}", "build", report_build(), "cpu",
                     report_cpu(cpu), "cuda", cuda, "kernels", report_kernels(cpu), "best_kernel",
                     best, "backends", native);
}

/* ---- the backend compatibility matrix ------------------------------------ */

/*
 * The matrix crosses weight formats, instruction sets and providers. The
 * cells of bitnetd's own providers come from the kernel registry's static
 * table; the external library families (llama.cpp, bitnet.cpp) are described
 * by the facts below, each checked against their source (named in the note).
 * Nothing here depends on the build or the machine, so the generated
 * docs/backend-compatibility-matrix.md is the same everywhere.
 */

#define FMT_BIT(f) (1u << BITNET_FORMAT_##f)
#define ISA_BIT(i) (1u << BITNET_ISA_##i)
#define CPU_ISAS   (ISA_BIT(SCALAR) | ISA_BIT(AVX2) | ISA_BIT(AVX512) | ISA_BIT(NEON))
#define ALL_ISAS   (CPU_ISAS | ISA_BIT(CUDA))
#define NO_KERNEL  (-1)
#define KERNEL(id) ((int)BITNET_KERNEL_##id)

static const bitnet_format matrix_formats[] = {BITNET_FORMAT_I2S, BITNET_FORMAT_TQ2_0,
                                               BITNET_FORMAT_TQ1_0, BITNET_FORMAT_TL1,
                                               BITNET_FORMAT_TL2};
static const bitnet_isa matrix_isas[] = {BITNET_ISA_SCALAR, BITNET_ISA_AVX2, BITNET_ISA_AVX512,
                                         BITNET_ISA_NEON, BITNET_ISA_CUDA};

/* What each format row is, for people. */
static const char *const matrix_format_notes[BITNET_FORMAT_COUNT] = {
    [BITNET_FORMAT_I2S] = "bitnet.cpp's I2_S, the format of the official BitNet b1.58 2B4T file",
    [BITNET_FORMAT_TQ2_0] = "llama.cpp's 2-bit ternary type",
    [BITNET_FORMAT_TQ1_0] = "llama.cpp's base-3 ternary type (1.69 bits a weight); the native "
                            "engine converts it to TQ2_0 codes at load and runs tq2_0.* unless "
                            "a tq1_0.* kernel is asked for (docs/kernels-tq.md)",
    [BITNET_FORMAT_TL1] = "lookup tables over pairs of weights: in bitnetd a layout built at load "
                          "from I2_S weights, in bitnet.cpp a file type (38) with code generated "
                          "per model shape; the two are not interchangeable",
    [BITNET_FORMAT_TL2] = "lookup tables over triples of weights: in bitnetd a layout built at "
                          "load from I2_S weights, in bitnet.cpp a file type (39) with code "
                          "generated per model shape; the two are not interchangeable",
};

static const char *const matrix_format_titles[BITNET_FORMAT_COUNT] = {
    [BITNET_FORMAT_I2S] = "I2_S", [BITNET_FORMAT_TQ2_0] = "TQ2_0", [BITNET_FORMAT_TQ1_0] = "TQ1_0",
    [BITNET_FORMAT_TL1] = "TL1",  [BITNET_FORMAT_TL2] = "TL2",
};

static const char *const matrix_isa_titles[BITNET_ISA_COUNT] = {
    [BITNET_ISA_SCALAR] = "scalar", [BITNET_ISA_AVX2] = "AVX2", [BITNET_ISA_AVX512] = "AVX-512",
    [BITNET_ISA_NEON] = "NEON",     [BITNET_ISA_CUDA] = "CUDA",
};

/* A provider: who computes the cell. registry: its cells come from the kernel
 * registry (entries of that provider), not from matrix_facts. */
struct matrix_provider {
    const char *id;
    const char *name;
    const char *backend; /* the bitnetd backend that reaches it */
    const char *library;
    bool registry;
    bitnet_provider registry_provider;
};

static const struct matrix_provider matrix_providers[] = {
    {"native", "bitnetd's native engine", "native", "built into bitnetd (kernels/)", true,
     BITNET_PROVIDER_BITNETD},
    {"cuda", "bitnetd's CUDA backend library", "cuda", "libbitnet-cuda.so (backends/cuda/)", true,
     BITNET_PROVIDER_CUDA_LIBRARY},
    {"llama.cpp", "llama.cpp, an external libllama through the llama shim", "llama",
     "libllama and the ggml libraries beside it, reached through libbitnet-llama.so", false,
     BITNET_PROVIDER_EXTERNAL},
    {"bitnet.cpp", "bitnet.cpp's libraries (its llama.cpp fork) through the llama shim", "llama",
     "bitnet.cpp's libllama and libggml (I2_S code in src/ggml-bitnet-*.cpp), reached through "
     "libbitnet-llama.so",
     false, BITNET_PROVIDER_EXTERNAL},
};

enum matrix_coverage { MATRIX_NO, MATRIX_YES, MATRIX_PARTIAL, MATRIX_PLANNED };
static const char *const matrix_coverage_names[] = {"no", "yes", "partial", "planned"};

/* What a provider does for some formats on some instruction sets. */
struct matrix_fact {
    const char *provider;
    unsigned formats; /* FMT_BIT mask */
    unsigned isas;    /* ISA_BIT mask */
    int kernel;       /* a bitnet_kernel_id, or NO_KERNEL */
    enum matrix_coverage coverage;
    const char *note;
};

#define TQ_FORMATS (FMT_BIT(TQ1_0) | FMT_BIT(TQ2_0))
#define TL_FORMATS (FMT_BIT(TL1) | FMT_BIT(TL2))
#define TQ_ON_CUDA                                                                                 \
    "ggml-cuda has no TQ1_0/TQ2_0 matrix product, so llama.cpp keeps these "                       \
    "weights in CPU memory and multiplies them on the CPU; the rest of the "                       \
    "graph may run on the GPU"

static const struct matrix_fact matrix_facts[] = {
    /* bitnetd's own providers: only where the registry alone would say too little. */
    {"native", TL_FORMATS, ISA_BIT(SCALAR), NO_KERNEL, MATRIX_NO,
     "not written: a lookup-table layout only pays off with SIMD lookups; its scalar reference "
     "(kernels/tl_pack.c) checks the kernels in tests, and I2_S weights run on "
     "i2s_qk256.scalar"},
    {"cuda", FMT_BIT(I2S), ISA_BIT(CUDA), KERNEL(I2S_QK256_CUDA), MATRIX_PLANNED,
     "the kernels exist (kernels/cuda/, in libbitnet-kernels-cuda.so: I2_S products and "
     "activation quantization, checked lane by lane on the CPU and on a GPU by test_i2s_cuda), "
     "but the forward pass on the device is not written, so libbitnet-cuda.so refuses models "
     "with BITNET_ENOT_COMPILED"},

    /* llama.cpp: ggml-cpu's quants.c and arch/{x86,arm}/quants.c, ggml-cuda.cu's supports_op,
     * src/llama-model-loader.cpp's select_weight_buft. */
    {"llama.cpp", FMT_BIT(I2S), ALL_ISAS, NO_KERNEL, MATRIX_NO,
     "llama.cpp has no I2_S type (its type id 36 is unused); convert the model to TQ2_0, "
     "whose codes are the same (docs/formats.md)"},
    {"llama.cpp", TQ_FORMATS, ISA_BIT(SCALAR), KERNEL(LLAMA_CPU), MATRIX_YES,
     "ggml-cpu's portable C code"},
    {"llama.cpp", TQ_FORMATS, ISA_BIT(AVX2), KERNEL(LLAMA_CPU), MATRIX_YES, "ggml-cpu's AVX2 code"},
    {"llama.cpp", TQ_FORMATS, ISA_BIT(AVX512), KERNEL(LLAMA_CPU), MATRIX_YES,
     "runs ggml-cpu's AVX2 code: there is no AVX-512 code for TQ1_0/TQ2_0"},
    {"llama.cpp", TQ_FORMATS, ISA_BIT(NEON), KERNEL(LLAMA_CPU), MATRIX_YES,
     "ggml-cpu's NEON code, DOTPROD where the build enables it"},
    {"llama.cpp", TQ_FORMATS, ISA_BIT(CUDA), KERNEL(LLAMA_CUDA), MATRIX_PARTIAL, TQ_ON_CUDA},
    {"llama.cpp", TL_FORMATS, ALL_ISAS, NO_KERNEL, MATRIX_NO,
     "not a llama.cpp type: TL1/TL2 are bitnet.cpp's file types 38/39 (39 is MXFP4 in "
     "llama.cpp)"},

    /* bitnet.cpp (microsoft/BitNet): src/ggml-bitnet-mad.cpp (I2_S), src/ggml-bitnet-lut.cpp
     * and utils/codegen_tl{1,2}.py (TL1/TL2), setup_env.py (which type on which CPU). */
    {"bitnet.cpp", FMT_BIT(I2S), ISA_BIT(SCALAR), NO_KERNEL, MATRIX_NO,
     "bitnet.cpp's I2_S code is written for AVX2 and NEON only (src/ggml-bitnet-mad.cpp)"},
    {"bitnet.cpp", FMT_BIT(I2S), ISA_BIT(AVX2), KERNEL(IQ2S_GGML_CPU), MATRIX_YES,
     "src/ggml-bitnet-mad.cpp's AVX2 code"},
    {"bitnet.cpp", FMT_BIT(I2S), ISA_BIT(AVX512), KERNEL(IQ2S_GGML_CPU), MATRIX_YES,
     "runs the AVX2 code: there is no AVX-512 code for I2_S"},
    {"bitnet.cpp", FMT_BIT(I2S), ISA_BIT(NEON), KERNEL(IQ2S_GGML_CPU), MATRIX_YES,
     "NEON code, DOTPROD where enabled; but ARM builds pack I2_S in 64-weight blocks, so files "
     "made on x86 (the official 2B4T file among them) give wrong results (docs/formats.md)"},
    {"bitnet.cpp", FMT_BIT(I2S), ISA_BIT(CUDA), KERNEL(IQ2S_GGML_CUDA), MATRIX_PARTIAL,
     "what symbol analysis calls a CUDA build of bitnet.cpp's libggml; but bitnet.cpp's I2_S "
     "code (src/) is CPU code and its CUDA W2A8 kernel (gpu/) is a separate PyTorch program, "
     "so expect the I2_S products on the CPU"},
    {"bitnet.cpp", TQ_FORMATS, CPU_ISAS, KERNEL(LLAMA_CPU), MATRIX_YES,
     "llama.cpp's TQ1_0/TQ2_0 code, which its llama.cpp fork carries (file types 36/37 there); "
     "not checked against the fork's kernels"},
    {"bitnet.cpp", TQ_FORMATS, ISA_BIT(CUDA), KERNEL(LLAMA_CUDA), MATRIX_PARTIAL,
     "as llama.cpp: " TQ_ON_CUDA},
    {"bitnet.cpp", FMT_BIT(TL1), ISA_BIT(NEON), KERNEL(LLAMA_CPU), MATRIX_YES,
     "bitnet.cpp's TL1 file type (38), built with BITNET_ARM_TL1 from code generated for the "
     "model's shapes (utils/codegen_tl1.py)"},
    {"bitnet.cpp", FMT_BIT(TL1), ALL_ISAS & ~ISA_BIT(NEON), NO_KERNEL, MATRIX_NO,
     "bitnet.cpp has TL1 code for ARM NEON only (setup_env.py, utils/codegen_tl1.py)"},
    {"bitnet.cpp", FMT_BIT(TL2), ISA_BIT(AVX2) | ISA_BIT(AVX512), KERNEL(LLAMA_CPU), MATRIX_YES,
     "bitnet.cpp's TL2 file type (39), built with BITNET_X86_TL2 from AVX2 code generated for "
     "the model's shapes (utils/codegen_tl2.py)"},
    {"bitnet.cpp", FMT_BIT(TL2), ISA_BIT(SCALAR) | ISA_BIT(NEON) | ISA_BIT(CUDA), NO_KERNEL,
     MATRIX_NO, "bitnet.cpp has TL2 code for x86 AVX2 only (setup_env.py, utils/codegen_tl2.py)"},
};

/* Fills one cell that no fact describes, from the registry. */
static void matrix_registry_cell(const struct matrix_provider *p, bitnet_format format,
                                 bitnet_isa isa, json_t *cell)
{
    for (int i = 0; i < BITNET_KERNEL_COUNT; i++) {
        const bitnet_kernel *k = bitnet_kernel_get((bitnet_kernel_id)i);
        if (k->provider == p->registry_provider && k->format == format && k->isa == isa) {
            json_object_set_new(cell, "kernel", json_string(k->name));
            json_object_set_new(cell, "coverage", json_string("yes"));
            json_object_set_new(cell, "note", json_null());
            return;
        }
    }
    char why[160];
    if (p->registry_provider == BITNET_PROVIDER_BITNETD && isa == BITNET_ISA_CUDA)
        snprintf(why, sizeof(why), "CUDA kernels live in bitnetd's cuda backend library");
    else if (p->registry_provider == BITNET_PROVIDER_CUDA_LIBRARY && isa != BITNET_ISA_CUDA)
        snprintf(why, sizeof(why), "the cuda backend runs on CUDA devices only");
    else
        snprintf(why, sizeof(why), "not written: the registry has no %s kernel for %s",
                 matrix_format_titles[format], matrix_isa_titles[isa]);
    json_object_set_new(cell, "kernel", json_null());
    json_object_set_new(cell, "coverage", json_string("no"));
    json_object_set_new(cell, "note", json_string(why));
}

static json_t *matrix_cell(const struct matrix_provider *p, bitnet_format format, bitnet_isa isa)
{
    json_t *cell = json_pack("{s:s, s:s, s:s}", "provider", p->id, "format",
                             bitnet_format_name(format), "isa", bitnet_isa_name(isa));
    for (size_t i = 0; i < sizeof(matrix_facts) / sizeof(matrix_facts[0]); i++) {
        const struct matrix_fact *f = &matrix_facts[i];
        if (strcmp(f->provider, p->id) != 0 || !(f->formats & (1u << format)) ||
            !(f->isas & (1u << isa)))
            continue;
        const bitnet_kernel *k =
            f->kernel == NO_KERNEL ? NULL : bitnet_kernel_get((bitnet_kernel_id)f->kernel);
        json_object_set_new(cell, "kernel", k ? json_string(k->name) : json_null());
        json_object_set_new(cell, "coverage", json_string(matrix_coverage_names[f->coverage]));
        json_object_set_new(cell, "note", json_string(f->note));
        return cell;
    }
    if (p->registry) {
        matrix_registry_cell(p, format, isa, cell);
    } else {
        json_object_set_new(cell, "kernel", json_null());
        json_object_set_new(cell, "coverage", json_string("no"));
        json_object_set_new(cell, "note", json_string("not described"));
    }
    return cell;
}

json_t *report_matrix(void)
{
    json_t *formats = json_array();
    for (size_t i = 0; i < sizeof(matrix_formats) / sizeof(matrix_formats[0]); i++) {
        bitnet_format f = matrix_formats[i];
        json_array_append_new(formats,
                              json_pack("{s:s, s:s, s:s}", "id", bitnet_format_name(f), "name",
                                        matrix_format_titles[f], "note", matrix_format_notes[f]));
    }
    json_t *isas = json_array();
    for (size_t i = 0; i < sizeof(matrix_isas) / sizeof(matrix_isas[0]); i++) {
        bitnet_isa isa = matrix_isas[i];
        json_array_append_new(isas, json_pack("{s:s, s:s, s:s}", "id", bitnet_isa_name(isa), "name",
                                              matrix_isa_titles[isa], "device",
                                              isa == BITNET_ISA_CUDA ? "cuda" : "cpu"));
    }
    json_t *providers = json_array();
    json_t *cells = json_array();
    for (size_t p = 0; p < sizeof(matrix_providers) / sizeof(matrix_providers[0]); p++) {
        const struct matrix_provider *mp = &matrix_providers[p];
        json_array_append_new(providers,
                              json_pack("{s:s, s:s, s:s, s:s}", "id", mp->id, "name", mp->name,
                                        "backend", mp->backend, "library", mp->library));
        for (size_t f = 0; f < sizeof(matrix_formats) / sizeof(matrix_formats[0]); f++)
            for (size_t i = 0; i < sizeof(matrix_isas) / sizeof(matrix_isas[0]); i++)
                json_array_append_new(cells, matrix_cell(mp, matrix_formats[f], matrix_isas[i]));
    }
    json_t *kernels = json_array();
    for (int i = 0; i < BITNET_KERNEL_COUNT; i++) {
        const bitnet_kernel *k = bitnet_kernel_get((bitnet_kernel_id)i);
        json_array_append_new(
            kernels,
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id", k->name, "roadmap_name",
                      k->roadmap_name, "format", bitnet_format_name(k->format), "isa",
                      bitnet_isa_name(k->isa), "device", bitnet_device_name(k->device), "provider",
                      bitnet_provider_name(k->provider), "build_option", k->build_option));
    }
    return json_pack("{s:o, s:o, s:o, s:o, s:o}", "formats", formats, "isas", isas, "providers",
                     providers, "cells", cells, "kernels", kernels);
}
