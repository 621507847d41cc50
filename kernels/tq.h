/*
 * kernels/tq.h - internal layouts and helpers of the TQ1_0 / TQ2_0 kernels.
 *
 * Weights are llama.cpp's TQ2_0 and TQ1_0 rows, read as they are stored in
 * GGUF files (FORMATS.md sections 2.4 and 2.5). Activations are Q8_K rows
 * (section 2.3): per 256 elements one f32 scale, 256 int8 and 16 int16
 * partial sums, 292 bytes, byte for byte llama.cpp's block_q8_K, so the same
 * rows can be handed to the real library in tests.
 *
 * Blocks sit at any byte offset (a TQ2_0 row is 66 bytes a block), so code
 * reads the float and half fields with memcpy, never through a cast pointer.
 */
#ifndef BITNET_KERNELS_TQ_H
#define BITNET_KERNELS_TQ_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bitnet/kernels.h"

#define TQ_QK 256 /* elements per block, in weights and activations */

/* Weight rows the batched x86 kernels take through one group of activation
 * rows before the next group: the group's activations stay in L1/L2 across
 * those rows instead of coming from L3 again for every row (tq2_0_avx512.c). */
#define TQ_ROW_GROUP 16

/* Byte offsets inside one Q8_K activation block of 292 bytes. */
#define TQ_Q8K_D     0   /* f32 d: x = d * qs */
#define TQ_Q8K_QS    4   /* int8 qs[256] */
#define TQ_Q8K_BSUMS 260 /* int16 bsums[16]: sums of 16 consecutive qs */
#define TQ_Q8K_BYTES 292

/* TQ2_0 block: u8 qs[64] (four 2-bit codes a byte), then f16 d. */
#define TQ2_0_QS    0
#define TQ2_0_D     64
#define TQ2_0_BYTES 66

/* TQ1_0 block: u8 qs[48] (five base-3 digits a byte), u8 qh[4] (four), f16 d. */
#define TQ1_0_QS    0
#define TQ1_0_QH    48
#define TQ1_0_D     52
#define TQ1_0_BYTES 54

/* The Q8_K block as a struct, for tests and for code that owns aligned
 * storage; its layout is llama.cpp's block_q8_K. */
typedef struct tq_block_q8k {
    float d;
    int8_t qs[TQ_QK];
    int16_t bsums[TQ_QK / 16];
} tq_block_q8k;

_Static_assert(sizeof(tq_block_q8k) == TQ_Q8K_BYTES, "Q8_K block is 292 bytes");
_Static_assert(offsetof(tq_block_q8k, bsums) == TQ_Q8K_BSUMS, "Q8_K bsums offset");

static inline float tq_load_f32(const uint8_t *p)
{
    float f;
    memcpy(&f, p, sizeof(f));
    return f;
}

static inline uint16_t tq_load_u16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* Bytes of one Q8_K activation row of k elements (k % 256 == 0). */
size_t tq_act_row_bytes(int64_t k);

/* Quantizes k floats (k % 256 == 0) into one Q8_K row exactly as llama.cpp's
 * quantize_row_q8_K_ref does; an all-zero block gets d = 0, qs = 0 and
 * bsums = 0 (the reference leaves bsums unwritten there). */
void tq_quantize_q8k(const float *x, int64_t k, uint8_t *act);

/* Rewrites n_rows TQ1_0 rows of k elements (k % 256 == 0; rows
 * in_row_bytes apart) as TQ2_0 rows (out_row_bytes apart): the same trits
 * as 2-bit codes and the same f16 d, so every kernel product is unchanged
 * (the engine uses it to run TQ1_0 models on the faster TQ2_0 kernels).
 * Every input byte decodes to codes 0..2, so no code 3 appears. */
void tq1_0_to_tq2_0(const uint8_t *in, size_t in_row_bytes, int64_t k, int64_t n_rows, uint8_t *out,
                    size_t out_row_bytes);

/* Exact integer dot of one weight block with one Q8_K block:
 * sum over 256 elements of (code - 1) * qa. Codes are read the way llama.cpp
 * reads them, so a stray code 3 in TQ2_0 counts as +2. */
int32_t tq2_0_block_dot(const uint8_t *wblock, const uint8_t *ablock);
int32_t tq1_0_block_dot(const uint8_t *wblock, const uint8_t *ablock);

/* One weight row with one activation row, as llama.cpp's generic
 * ggml_vec_dot_tq{1,2}_0_q8_K: sumf += (float)isum * (d_a * d_w) block by block. */
float tq2_0_row_dot(const uint8_t *w, const uint8_t *act, int64_t k);
float tq1_0_row_dot(const uint8_t *w, const uint8_t *act, int64_t k);

/* The AVX-512 kernels' path for CPUs without AVX512-VNNI. The kernels pick it
 * at run time; tests call it directly so that VNNI machines test it too.
 * Compiled on x86-64 only. */
void tq2_0_avx512_matmul_novnni(const bitnet_matmul_args *a);
void tq1_0_avx512_matmul_novnni(const bitnet_matmul_args *a);

/* The TQ2_0 AVX-512 kernel's VNNI path for CPUs without GFNI (shifts and
 * masks instead of affine maps), exported for the same reason; it needs
 * AVX512-VNNI. Compiled on x86-64 only. */
void tq2_0_avx512_matmul_nogfni(const bitnet_matmul_args *a);

/* The NEON kernels' path for CPUs without the DotProd extension, exported for
 * the same reason. Compiled on aarch64 only. */
void tq2_0_neon_matmul_nodotprod(const bitnet_matmul_args *a);
void tq1_0_neon_matmul_nodotprod(const bitnet_matmul_args *a);

#endif
