/*
 * bitnet/kernels.h - CPU features, the kernel registry and the kernel ABI.
 *
 * A kernel is one implementation of ternary matrix x activation products for
 * one weight format on one instruction set ("i2s_qk256.avx512"). The registry
 * lists every kernel id bitnetd knows, whether this binary carries it
 * (compiled), whether this machine can run it (supported) and both
 * (available). Kernels not yet written or not built are listed too, as not
 * compiled, with the build option that would add them.
 */
#ifndef BITNET_KERNELS_H
#define BITNET_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Weight formats. Names as in bitnet_format_name(). */
typedef enum bitnet_format {
    BITNET_FORMAT_I2S =
        0,               /* bitnet.cpp I2_S: 128-weight blocks in 32 bytes, per-tensor f32 scale */
    BITNET_FORMAT_TQ1_0, /* llama.cpp TQ1_0: base-3 packed, 256-blocks of 54 bytes */
    BITNET_FORMAT_TQ2_0, /* llama.cpp TQ2_0: 2-bit, 256-blocks of 66 bytes */
    BITNET_FORMAT_TL1,   /* lookup-table layout over pairs of weights, built at load */
    BITNET_FORMAT_TL2,   /* lookup-table layout over triples of weights, built at load */
    BITNET_FORMAT_ANY,   /* whatever an external library loads */
    BITNET_FORMAT_COUNT
} bitnet_format;

/* Instruction sets a kernel is written for. */
typedef enum bitnet_isa {
    BITNET_ISA_SCALAR = 0,
    BITNET_ISA_AVX2,
    BITNET_ISA_AVX512,
    BITNET_ISA_NEON,
    BITNET_ISA_CUDA,
    BITNET_ISA_EXTERNAL, /* chosen by an external library */
    BITNET_ISA_COUNT
} bitnet_isa;

/*
 * SIMD levels of the host CPU, ordered within a family: scalar < avx2 <
 * avx512 on x86-64, scalar < neon on ARM64. bitnet_simd_at_most() compares
 * them.
 */
typedef enum bitnet_simd_level {
    BITNET_SIMD_SCALAR = 0,
    BITNET_SIMD_AVX2,
    BITNET_SIMD_AVX512,
    BITNET_SIMD_NEON,
    BITNET_SIMD_COUNT
} bitnet_simd_level;

typedef enum bitnet_device { BITNET_DEVICE_CPU = 0, BITNET_DEVICE_CUDA } bitnet_device;

typedef enum bitnet_provider {
    BITNET_PROVIDER_BITNETD = 0,  /* compiled into bitnetd itself */
    BITNET_PROVIDER_CUDA_LIBRARY, /* bitnetd's own libbitnet-cuda.so */
    BITNET_PROVIDER_EXTERNAL      /* an external llama.cpp / bitnet.cpp library */
} bitnet_provider;

/* CPU features that kernels depend on, detected at run time. */
typedef struct bitnet_cpu_features {
    char arch[16];   /* "x86_64" or "aarch64" */
    char vendor[16]; /* CPUID vendor string, or "" */
    char brand[64];  /* CPUID brand string or /proc/cpuinfo model name, or "" */
    int logical_cpus;
    int physical_cores;
    /* x86-64 */
    bool sse42, avx, fma, f16c, avx2;
    bool avx512f, avx512bw, avx512vl, avx512dq, avx512_vnni, avx_vnni;
    bool gfni;         /* Galois-field affine instructions (the TQ2_0 AVX-512 decode) */
    bool os_saves_ymm; /* XGETBV: the OS saves AVX state */
    bool os_saves_zmm; /* XGETBV: the OS saves AVX-512 state */
    /* ARM64 */
    bool neon, dotprod;
    /* The best level the hardware and OS allow, and the one in force after
     * BITNET_SIMD (which can lower it, never raise it). */
    bitnet_simd_level detected;
    bitnet_simd_level active;
    /* What BITNET_SIMD asked for ("" when unset) and, when it could not be
     * honoured, why (it is then ignored). */
    char simd_override[16];
    char simd_override_error[128];
} bitnet_cpu_features;

/*
 * Returns the features of this CPU, detected once and cached (thread-safe).
 * BITNET_SIMD is read at the first call.
 */
const bitnet_cpu_features *bitnet_cpu_features_get(void);

/* Detects features into *out, reading the override from simd_env (may be
 * NULL). Exposed so tests can try overrides without touching the cache. */
void bitnet_cpu_features_detect(bitnet_cpu_features *out, const char *simd_env);

/* True when level a is the same as or below level b in b's family. */
bool bitnet_simd_at_most(bitnet_simd_level a, bitnet_simd_level b);

const char *bitnet_format_name(bitnet_format f);
const char *bitnet_isa_name(bitnet_isa isa);
const char *bitnet_simd_level_name(bitnet_simd_level level);
const char *bitnet_device_name(bitnet_device d);
const char *bitnet_provider_name(bitnet_provider p);
/* Parses a SIMD level name; returns 0 or BITNET_EUNKNOWN_ID. */
int bitnet_simd_level_parse(const char *name, bitnet_simd_level *out);

/* ---- kernel ABI ---------------------------------------------------------- */

/*
 * Arguments of one product y = W x over a range of weight rows and a batch of
 * activation rows. Integer sums are exact; the float post-scaling follows the
 * reference engine of the format (see docs/kernels.md).
 */
typedef struct bitnet_matmul_args {
    const uint8_t *w;     /* first weight row to compute, in the kernel's layout */
    size_t w_row_bytes;   /* bytes from one weight row to the next */
    float w_scale;        /* per-tensor weight scale (I2_S); 1 where blocks carry scales */
    int64_t k;            /* elements per row */
    int64_t n_rows;       /* weight rows to compute */
    const uint8_t *act;   /* n_act quantized activation rows, act_row_bytes apart */
    size_t act_row_bytes; /* from ops->act_row_bytes(k) */
    int n_act;            /* activation rows: 1 for decode, more for prefill/batches */
    float *y;             /* output: y[t * y_stride + r] for row r and activation t */
    int64_t y_stride;
} bitnet_matmul_args;

/* The functions one compiled kernel provides. Hot paths: no allocation, no locks. */
typedef struct bitnet_kernel_ops {
    /* Bytes of one quantized activation row of k elements. */
    size_t (*act_row_bytes)(int64_t k);
    /* Quantizes k floats into one activation row in this format's layout. */
    void (*quantize_act)(const float *x, int64_t k, uint8_t *act);
    /* y = W x for args->n_rows rows and args->n_act activation rows. */
    void (*matmul)(const bitnet_matmul_args *args);
    /* Kernels whose weight layout is built at load: repacks n_rows I2_S rows
     * of k elements (row r at src + r*k/4, the I2_S tensor layout,
     * k % 128 == 0) into a newly allocated buffer (*out, freed with free())
     * whose rows are *out_row_bytes apart; the engine then passes that buffer
     * as args->w. NULL for kernels that read the file's layout directly.
     * Returns 0 or -ENOMEM/-EINVAL. */
    int (*repack)(const uint8_t *src, int64_t k, int64_t n_rows, uint8_t **out,
                  size_t *out_row_bytes);
} bitnet_kernel_ops;

/* ---- kernel registry ----------------------------------------------------- */

typedef enum bitnet_kernel_id {
    BITNET_KERNEL_I2S_QK256_SCALAR = 0,
    BITNET_KERNEL_I2S_QK256_AVX2,
    BITNET_KERNEL_I2S_QK256_AVX512,
    BITNET_KERNEL_I2S_QK256_NEON,
    BITNET_KERNEL_I2S_QK256_CUDA,
    BITNET_KERNEL_TL1_NEON,
    BITNET_KERNEL_TL1_AVX2,
    BITNET_KERNEL_TL1_AVX512,
    BITNET_KERNEL_TL2_AVX512,
    BITNET_KERNEL_TQ2_0_SCALAR,
    BITNET_KERNEL_TQ2_0_AVX2,
    BITNET_KERNEL_TQ2_0_AVX512,
    BITNET_KERNEL_TQ2_0_NEON,
    BITNET_KERNEL_TQ1_0_SCALAR,
    BITNET_KERNEL_TQ1_0_AVX2,
    BITNET_KERNEL_TQ1_0_AVX512,
    BITNET_KERNEL_TQ1_0_NEON,
    BITNET_KERNEL_IQ2S_GGML_CPU,
    BITNET_KERNEL_IQ2S_GGML_CUDA,
    BITNET_KERNEL_LLAMA_CPU,
    BITNET_KERNEL_LLAMA_CUDA,
    BITNET_KERNEL_COUNT
} bitnet_kernel_id;

/* One registry entry. Entries are static; never free them. */
typedef struct bitnet_kernel {
    bitnet_kernel_id id;
    const char *name;         /* "i2s_qk256.avx2" */
    const char *roadmap_name; /* "I2S_QK256_AVX2" */
    bitnet_format format;
    bitnet_isa isa;
    bitnet_device device;
    bitnet_provider provider;
    const char *build_option;     /* how a build gets this kernel */
    const bitnet_kernel_ops *ops; /* NULL unless compiled into this binary */
} bitnet_kernel;

/* Why a kernel is or is not available on this machine. */
typedef struct bitnet_kernel_status {
    bool compiled;
    bool supported;
    bool available;   /* compiled && supported */
    char reason[160]; /* empty when available; else what is missing */
} bitnet_kernel_status;

/* Returns the entry for id, or NULL when id is out of range. */
const bitnet_kernel *bitnet_kernel_get(bitnet_kernel_id id);

/* Looks a kernel up by its id string. Returns 0, or BITNET_EUNKNOWN_ID and, if
 * err is not NULL, a message listing the valid ids. */
int bitnet_kernel_lookup(const char *name, const bitnet_kernel **out, char *err, size_t err_len);

/* Whether this CPU (cpu may be NULL for the cached host features) can run k. */
void bitnet_kernel_status_get(const bitnet_kernel *k, const bitnet_cpu_features *cpu,
                              bitnet_kernel_status *out);

/* Shorthand: compiled and supported on the host. */
bool bitnet_kernel_is_capable_of(const bitnet_kernel *k);

/*
 * Checks that the kernel named name can run here. Returns 0 and sets *out, or
 * BITNET_EUNKNOWN_ID, BITNET_ENOT_COMPILED (the message names the build option
 * that adds it) or BITNET_ENOT_SUPPORTED (the message names the missing CPU
 * feature or device), with the message in err.
 */
int bitnet_kernel_require(const char *name, const bitnet_kernel **out, char *err, size_t err_len);

/*
 * Picks the best available bitnetd CPU kernel for a weight format on cpu (NULL:
 * host): the highest SIMD level first, scalar last. Returns NULL when none is
 * available.
 */
const bitnet_kernel *bitnet_kernel_select(bitnet_format format, const bitnet_cpu_features *cpu);

#ifdef __cplusplus
}
#endif

#endif
