/*
 * kernels/i2s.h - what every I2_S kernel shares: the weight block layout, the
 * quantized activation row, and the numerics that make the kernels agree to
 * the bit.
 *
 * Weights (docs/formats.md, section 2.7): 128 consecutive elements of a row
 * in 32 bytes; byte p holds elements p, p+32, p+64, p+96 in bits 7:6, 5:4,
 * 3:2, 1:0 (MSB first). Codes 0, 1, 2 are -1, 0, +1; code 3 is never written
 * by the packer and every kernel reads it as 1 (a zero weight), like
 * bitnet.cpp's dequantize_row_i2_s.
 *
 * Activation row (one token of k elements), the same for every I2_S kernel so
 * the engine quantizes once and reuses the row for Q, K and V:
 *
 *   [ qa: k int8, in kernel order, zero-padded to a multiple of 64 bytes ]
 *   [ f32 act_scale ][ i32 act_sum ][ 56 zero bytes ]
 *
 * "Kernel order" puts the activations where one 64-byte weight load (two
 * 128-blocks, A and B, of a 256-element chunk) needs them: for each full
 * 256-element chunk c, the 64 bytes at 256c + 64j hold elements
 * 256c + 32j .. +31 (block A, field j) then 256c + 128 + 32j .. +31 (block B,
 * field j), for j = 0..3. A trailing 128-element block (k % 256 == 128) is
 * stored as is. So an AVX-512 kernel multiplies field j of a zmm of weights
 * by one contiguous zmm of activations, and AVX2 does the same per ymm.
 *
 * Numerics (bitnet.cpp's quantize_row_i8_s and its I2_S matmul):
 *   act_scale = (float)(127 / max(max|a|, 1e-5))   (the division in double)
 *   qa        = nearest_int(clamp(a * act_scale, -128, 127)), ties to even
 *   act_sum   = sum of qa
 *   y         = ((float)sumi - (float)act_sum) / act_scale * w_scale
 * where sumi = sum of code * qa over the row (codes 0..2), exact in int32.
 * NaN activations are ignored by the max and quantize to -128; an infinite
 * one makes act_scale 0. The outputs are then meaningless but the same in
 * every kernel, and nothing faults.
 */
#ifndef BITNET_KERNELS_I2S_H
#define BITNET_KERNELS_I2S_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bitnet/kernels.h"

/* The helpers below that the CUDA kernels (kernels/cuda/) share with the CPU
 * kernels are compiled for both host and device by nvcc, so the GPU rounds
 * exactly as the CPU does; for a C compiler the mark is empty. */
#ifdef __CUDACC__
#define I2S_HD __host__ __device__
#else
#define I2S_HD
#endif

#define I2S_BLOCK       128 /* elements per packed block */
#define I2S_BLOCK_BYTES 32  /* bytes per packed block */
#define I2S_CHUNK       256 /* elements per kernel step (two blocks, one zmm) */
#define I2S_TAIL_BYTES  32  /* f32 scale + 28 bytes after the packed codes */
#define I2S_ACT_ALIGN   64  /* activation values are padded to this */
#define I2S_ACT_TRAILER 64  /* bytes of the scale/sum trailer */

/* The code of element e (counted from the start of the packed data), as
 * stored: 0..3. */
static inline unsigned i2s_code_at(const uint8_t *packed, size_t e)
{
    const uint8_t *blk = packed + e / I2S_BLOCK * I2S_BLOCK_BYTES;
    size_t i = e % I2S_BLOCK;
    return (blk[i % 32] >> (6 - 2 * (i / 32))) & 3u;
}

/* Bytes of the padded int8 part of an activation row. */
I2S_HD static inline size_t i2s_act_values_bytes(int64_t k)
{
    return ((size_t)k + I2S_ACT_ALIGN - 1) / I2S_ACT_ALIGN * I2S_ACT_ALIGN;
}

/* Bytes of one activation row of k elements (ops->act_row_bytes). */
static inline size_t i2s_act_row_bytes(int64_t k)
{
    return k > 0 ? i2s_act_values_bytes(k) + I2S_ACT_TRAILER : I2S_ACT_TRAILER;
}

/* Where element i of the token goes in the kernel-ordered values. */
I2S_HD static inline size_t i2s_act_pos(int64_t k, int64_t i)
{
    int64_t full = k / I2S_CHUNK * I2S_CHUNK;
    if (i >= full)
        return (size_t)i;
    int64_t c = i / I2S_CHUNK, r = i % I2S_CHUNK;
    int64_t half = r / I2S_BLOCK, j = r % I2S_BLOCK / 32, p = r % 32;
    return (size_t)(c * I2S_CHUNK + j * 64 + half * 32 + p);
}

/* Where field j (elements 32j..32j+31) of 128-weight block b of a row of k
 * elements starts in the kernel-ordered activations: *base for field 0 and
 * *step from one field to the next. */
I2S_HD static inline void i2s_block_fields(int64_t k, int64_t b, int64_t *base, int64_t *step)
{
    if (b / 2 < k / I2S_CHUNK) {
        *base = b / 2 * I2S_CHUNK + (b % 2) * 32;
        *step = 64;
    } else {
        *base = b * I2S_BLOCK;
        *step = 32;
    }
}

/* act_scale from the largest |a| of the row, as bitnet.cpp computes it. */
I2S_HD static inline float i2s_act_scale(float max_abs)
{
    double m = (double)max_abs;
    return (float)(127.0 / (m > 1e-5 ? m : 1e-5));
}

/* Rounds one scaled activation: clamp to [-128, 127] (NaN -> -128), then to
 * nearest with ties to even, the way ggml's nearest_int and the SIMD
 * cvtps2dq with the default rounding mode both do. */
I2S_HD static inline int i2s_round_clamp(float v)
{
    if (!(v >= -128.0f))
        v = -128.0f;
    if (v > 127.0f)
        v = 127.0f;
    float t = v + 12582912.0f; /* 1.5 * 2^23: the mantissa now holds round(v) */
    int32_t bits;
    memcpy(&bits, &t, sizeof(bits));
    return (bits & 0x007fffff) - 0x00400000;
}

/* The trailer of an activation row. */
I2S_HD static inline float i2s_act_get_scale(const uint8_t *act, int64_t k)
{
    float s;
    memcpy(&s, act + i2s_act_values_bytes(k), sizeof(s));
    return s;
}

I2S_HD static inline int32_t i2s_act_get_sum(const uint8_t *act, int64_t k)
{
    int32_t s;
    memcpy(&s, act + i2s_act_values_bytes(k) + sizeof(float), sizeof(s));
    return s;
}

/* Writes the trailer and zeroes the padding after the k values. */
I2S_HD static inline void i2s_act_set_trailer(uint8_t *act, int64_t k, float scale, int32_t sum)
{
    size_t vb = i2s_act_values_bytes(k);
    memset(act + k, 0, vb - (size_t)k);
    memset(act + vb, 0, I2S_ACT_TRAILER);
    memcpy(act + vb, &scale, sizeof(scale));
    memcpy(act + vb + sizeof(scale), &sum, sizeof(sum));
}

/* The float post-scaling, written once so every kernel rounds alike. */
I2S_HD static inline float i2s_output(int32_t sumi, int32_t act_sum, float act_scale, float w_scale)
{
    return ((float)sumi - (float)act_sum) / act_scale * w_scale;
}

/* The scalar reference kernel's functions, also used by the SIMD kernels for
 * shapes they do not specialise. */
size_t i2s_scalar_act_row_bytes(int64_t k);
void i2s_scalar_quantize_act(const float *x, int64_t k, uint8_t *act);
void i2s_scalar_matmul(const bitnet_matmul_args *args);

#if defined(__x86_64__)
/* The AVX-512 kernel with its VNNI path chosen by the caller (the registry's
 * ops pick by CPUID); tests run both halves on a VNNI machine. */
void i2s_avx512_matmul_path(const bitnet_matmul_args *args, bool vnni);
#endif
#if defined(__aarch64__)
/* The NEON kernel with its SDOT path chosen by the caller. */
void i2s_neon_matmul_path(const bitnet_matmul_args *args, bool dotprod);
#endif

#endif
