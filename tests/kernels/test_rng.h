/*
 * tests/kernels/test_rng.h - the kernel tests' random numbers: a seeded
 * xorshift64* generator, so every run of a test sees the same inputs.
 */
#ifndef BITNET_TESTS_KERNELS_TEST_RNG_H
#define BITNET_TESTS_KERNELS_TEST_RNG_H

#include <stdint.h>

static uint64_t rng_state;

static inline void rng_seed(uint64_t s)
{
    rng_state = s * 0x9E3779B97F4A7C15ull + 1;
}

static inline uint32_t rng_u32(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

/* Uniform in [-1, 1). */
static inline float rng_float(void)
{
    return (float)((double)rng_u32() / 2147483648.0 - 1.0);
}

#endif
