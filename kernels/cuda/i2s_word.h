/*
 * kernels/cuda/i2s_word.h - one step of the i2s_qk256.cuda product: the
 * ternary codes of one 32-bit word of I2_S weights multiplied into one
 * activation row.
 *
 * A warp reads a weight row 16 bytes per lane at a time; each 4-byte word
 * holds bytes p..p+3 of a 128-weight block, so fields j = 0..3 of those
 * bytes are elements p..p+3 + 32j of the block (docs/formats.md, 2.7). One
 * shift and mask gives a field's four codes as four bytes, and one DP4A
 * (four int8 products and a sum) multiplies them into the four activations
 * that kernel order puts side by side for them.
 *
 * Shared by the device kernel and by test_i2s_cuda_lanes, which runs this
 * same code on the CPU lane by lane (the DP4A then in plain C), so the
 * decoding and indexing the GPU executes are checked against the scalar
 * reference on machines without a GPU.
 */
#ifndef BITNET_KERNELS_CUDA_I2S_WORD_H
#define BITNET_KERNELS_CUDA_I2S_WORD_H

#include <stdint.h>
#include <string.h>

#include "kernels/i2s.h"

/* Weights in one 32-bit word, and words in one 16-byte lane load. */
#define I2S_WORD_ELEMS 16
#define I2S_LANE_WORDS 4

/* acc + the sum of the four signed byte products of a and b. */
I2S_HD static inline int32_t i2s_dp4a(uint32_t a, uint32_t b, int32_t acc)
{
#ifdef __CUDA_ARCH__
    return __dp4a((int)a, (int)b, acc);
#else
    for (int i = 0; i < 4; i++)
        acc += (int32_t)(int8_t)(uint8_t)(a >> (8 * i)) * (int32_t)(int8_t)(uint8_t)(b >> (8 * i));
    return acc;
#endif
}

/* Four int8 activations at act + off (off is a multiple of 4). */
I2S_HD static inline uint32_t i2s_act_word(const uint8_t *act, int64_t off)
{
#ifdef __CUDA_ARCH__
    return *(const uint32_t *)(act + off);
#else
    uint32_t v;
    memcpy(&v, act + off, sizeof(v));
    return v;
#endif
}

/* sum of code * qa over the 16 elements that word wi of a row stores. */
I2S_HD static inline int32_t i2s_word_dot(uint32_t word, const uint8_t *act, int64_t k, int64_t wi)
{
    int64_t b = wi / 8, p = wi % 8 * 4;
    /* Code 3 reads as 1 (a zero weight): clear the high bit of a field
     * whose two bits are both set, as every I2_S kernel does. */
    word &= ~((word & (word >> 1) & 0x55555555u) << 1);
    int64_t base, step;
    i2s_block_fields(k, b, &base, &step);
    int32_t acc = 0;
    for (int j = 0; j < 4; j++) {
        uint32_t codes = (word >> (6 - 2 * j)) & 0x03030303u;
        acc = i2s_dp4a(codes, i2s_act_word(act, base + j * step + p), acc);
    }
    return acc;
}

#endif
