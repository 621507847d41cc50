/*
 * engine/fmat.h - float matrix products for the non-ternary weights.
 *
 * The LM head (the F16 token embedding, about half the bytes a 2B4T decode
 * step reads) and F16/F32 weight files go through these. Each has a scalar
 * version and AVX2/AVX-512 versions compiled with their own flags and chosen
 * at run time from the CPU features, like the ternary kernels.
 */
#ifndef BITNET_ENGINE_FMAT_H
#define BITNET_ENGINE_FMAT_H

#include <stddef.h>
#include <stdint.h>

/*
 * y[t * y_stride + r] = sum_k W[r][k] * x[t * k_len + k] for rows [0, n_rows)
 * and activation rows t in [0, n_act). W rows are w_stride elements apart.
 * One pass over the weights serves every activation row.
 */
typedef void (*fmat_f16_fn)(const uint16_t *w, long w_stride, long n_rows, long k_len,
                            const float *x, int n_act, float *y, long y_stride);
typedef void (*fmat_f32_fn)(const float *w, long w_stride, long n_rows, long k_len, const float *x,
                            int n_act, float *y, long y_stride);

/*
 * Q8_0 weights (blocks of 32: f16 scale then 32 int8, 34 bytes, as llama.cpp
 * stores them) against float activations: w_stride is in bytes, k_len a
 * multiple of 32. Used for the optional in-memory copy of the LM head.
 */
typedef void (*fmat_q8_0_fn)(const uint8_t *w, long w_stride, long n_rows, long k_len,
                             const float *x, int n_act, float *y, long y_stride);

#define FMAT_Q8_0_BLOCK 32
#define FMAT_Q8_0_BYTES 34

struct fmat_ops {
    const char *name; /* "scalar", "avx2", "avx512" */
    fmat_f16_fn f16;
    fmat_f32_fn f32;
    fmat_q8_0_fn q8_0;
};

/* Quantizes k floats (k % 32 == 0) to Q8_0 as llama.cpp's reference does:
 * d = max|x| / 127, q = round(x / d) (half away from zero). */
void fmat_quantize_q8_0(const float *x, long k, uint8_t *out);

/* The best implementation for this CPU (respecting BITNET_SIMD). */
const struct fmat_ops *fmat_select(void);

/* Whether this CPU can run ops (always true for scalar). */
int fmat_supported(const struct fmat_ops *ops);

/* Every implementation compiled here, for tests: *n set to the count. */
const struct fmat_ops *const *fmat_all(int *n);

/* Per-ISA tables, defined in fmat_scalar.c, fmat_avx2.c, fmat_avx512.c. */
extern const struct fmat_ops fmat_scalar;
extern const struct fmat_ops fmat_avx2;
extern const struct fmat_ops fmat_avx512;

#endif
