/*
 * tests/support/ggml_ref.h - the real llama.cpp CPU code, loaded with dlopen,
 * as a reference for tests and benchmarks.
 *
 * It opens libggml-base.so and the most capable libggml-cpu-*.so variant that
 * this CPU can run (each variant scores itself through ggml_backend_score();
 * libggml-cpu-x64.so is the always-safe baseline) from one directory of the
 * reference release (BITNET_REFERENCE_DIR/linux-x64/bins/linux-x64). Nothing
 * here is linked against ggml, so a build without the release still links.
 */
#ifndef BITNET_TESTS_GGML_REF_H
#define BITNET_TESTS_GGML_REF_H

#include <stddef.h>
#include <stdint.h>

/* ggml type ids (lc:ggml/include/ggml.h) of the types the wrapper serves. */
#define GGML_REF_TYPE_Q8_K  15
#define GGML_REF_TYPE_TQ1_0 34
#define GGML_REF_TYPE_TQ2_0 35

/*
 * Loads the libraries from libdir (once; later calls return 0 at once).
 * Returns 0, or a negative error with a message in err: BITNET_ELIB_LOAD when
 * a library does not load, BITNET_ELIB_SYMBOL when one lacks a symbol,
 * BITNET_ENOT_SUPPORTED when no CPU variant can run here.
 */
int ggml_ref_open(const char *libdir, char *err, size_t n);

/* The CPU variant in use, e.g. "zen4" for libggml-cpu-zen4.so; "" if none. */
const char *ggml_ref_cpu_variant(void);

/* quantize_row_tq1_0_ref / quantize_row_tq2_0_ref of libggml-base.so; k % 256 == 0. */
void ggml_ref_quantize_row(int ggml_type, const float *x, void *out, int64_t k);

/* dequantize_row_tq1_0 / dequantize_row_tq2_0 of libggml-base.so. */
void ggml_ref_dequantize_row(int ggml_type, const void *in, float *out, int64_t k);

/* The activation quantizer llama.cpp's mul_mat uses for TQ weights: the CPU
 * type traits' from_float of GGML_TYPE_Q8_K. An all-zero block leaves its
 * bsums unwritten, so callers should clear out first. */
void ggml_ref_quantize_q8_k(const float *x, void *out, int64_t k);

/* The CPU type traits' vec_dot of TQ1_0 or TQ2_0: *s = dot of one weight row
 * and one Q8_K row of k elements. */
void ggml_ref_vec_dot(int ggml_type, int64_t k, float *s, const void *w_row, const void *q8k_row);

#endif
