/*
 * common/f16.h - IEEE half and bfloat16 conversions in portable C.
 *
 * Round to nearest even on the way down, exact on the way up, NaN and
 * infinity preserved: the same results as F16C's vcvtps2ph with rounding
 * mode 0 and as ggml's GGML_FP32_TO_FP16.
 */
#ifndef BITNET_COMMON_F16_H
#define BITNET_COMMON_F16_H

#include <stdint.h>
#include <string.h>

static inline uint32_t f16_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float f16_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Half (as its 16 bits) to float. */
static inline float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0x1f)
        return f16_bits_f32(sign | 0x7f800000 | (man << 13));
    if (exp == 0) {
        if (man == 0)
            return f16_bits_f32(sign);
        /* Subnormal: value = man * 2^-24. */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return f16_bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

/* Float to half, round to nearest even. */
static inline uint16_t f32_to_f16(float f)
{
    uint32_t x = f16_f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t abs = x & 0x7fffffff;
    if (abs > 0x7f800000) /* NaN: keep it quiet and non-zero */
        return (uint16_t)(sign | 0x7e00 | ((abs >> 13) & 0x3ff));
    if (abs >= 0x477ff000) /* rounds to or above 65520: infinity */
        return (uint16_t)(sign | 0x7c00);
    if (abs < 0x38800000) {
        /* Result is subnormal or zero: add a magic number so the FPU rounds. */
        float v = f16_bits_f32(abs) + 0.5f;
        return (uint16_t)(sign | (f16_f32_bits(v) - 0x3f000000));
    }
    uint32_t mant_odd = (abs >> 13) & 1;
    abs += 0xc8000fff + mant_odd; /* rebias exponent (-112 << 23) and round */
    return (uint16_t)(sign | (abs >> 13));
}

/* bfloat16 to float: the top 16 bits of a float. */
static inline float bf16_to_f32(uint16_t h)
{
    return f16_bits_f32((uint32_t)h << 16);
}

/* Float to bfloat16, round to nearest even (NaN stays NaN), as ggml does. */
static inline uint16_t f32_to_bf16(float f)
{
    uint32_t x = f16_f32_bits(f);
    if ((x & 0x7fffffff) > 0x7f800000)
        return (uint16_t)((x >> 16) | 0x40);
    return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

#endif
