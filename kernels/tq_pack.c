/*
 * kernels/tq_pack.c - TQ1_0 / TQ2_0 row packers and the Q8_K activation
 * quantizer, byte for byte what llama.cpp writes.
 *
 * The packers follow quantize_row_tq{1,2}_0_ref (FORMATS.md sections 2.4 and
 * 2.5): per 256-block d = max|x| stored as f16, each element rounded to the
 * nearest of {-1, 0, +1} after dividing by d (through the f32 d, not the
 * rounded f16 one, as the reference does). The Q8_K quantizer follows
 * quantize_row_q8_K_ref (section 2.3). tests/kernels/test_tq.c checks all of
 * them against the real libggml-base.so.
 *
 * These files are compiled with -ffp-contract=off so that no compiler fuses
 * a multiply and an add that the reference rounds twice.
 */
#include <math.h>
#include <string.h>

#include "bitnet/quant.h"
#include "common/f16.h"
#include "kernels/tq.h"

size_t bitnet_tq2_0_row_bytes(int64_t k)
{
    return (size_t)(k / TQ_QK) * TQ2_0_BYTES;
}

size_t bitnet_tq1_0_row_bytes(int64_t k)
{
    return (size_t)(k / TQ_QK) * TQ1_0_BYTES;
}

size_t tq_act_row_bytes(int64_t k)
{
    return (size_t)(k / TQ_QK) * TQ_Q8K_BYTES;
}

/* The block's largest |x|, compared the way the reference's MAX() macro
 * does, so that a NaN lands where it lands there. */
static float block_absmax(const float *x)
{
    float amax = 0.0f;
    for (int j = 0; j < TQ_QK; j++) {
        float v = fabsf(x[j]);
        amax = amax > v ? amax : v;
    }
    return amax;
}

/* Ternary code 0, 1 or 2 of x scaled by id, as the reference rounds it. */
static int tq_code(float x, float id)
{
    return (int)lroundf(x * id) + 1;
}

void bitnet_tq2_0_pack_row(const float *x, int64_t k, uint8_t *out)
{
    for (int64_t b = 0; b < k / TQ_QK; b++, x += TQ_QK, out += TQ2_0_BYTES) {
        const float d = block_absmax(x);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        /* Half h holds elements 128h..128h+127; byte m of it holds element
         * 128h + 32l + m in bits 2l..2l+1. */
        for (int h = 0; h < 2; h++) {
            for (int m = 0; m < 32; m++) {
                uint8_t q = 0;
                for (int l = 0; l < 4; l++)
                    q += (uint8_t)((tq_code(x[128 * h + 32 * l + m], id) & 3) << (2 * l));
                out[TQ2_0_QS + 32 * h + m] = q;
            }
        }
        uint16_t dh = f32_to_f16(d);
        memcpy(out + TQ2_0_D, &dh, sizeof(dh));
    }
}

/* Packs n trits of x[0], x[stride], ... (most significant first) into one
 * byte: the base-3 number, shifted up to five digits, times 256/243 rounded
 * up. The arithmetic wraps in 8 bits as the reference's does. */
static uint8_t tq1_0_pack_byte(const float *x, int stride, int n, float id)
{
    uint8_t q = 0;
    for (int i = 0; i < n; i++) {
        q = (uint8_t)(q * 3);
        q = (uint8_t)(q + tq_code(x[i * stride], id));
    }
    for (int i = n; i < 5; i++)
        q = (uint8_t)(q * 3);
    return (uint8_t)(((uint16_t)q * 256 + (243 - 1)) / 243);
}

void bitnet_tq1_0_pack_row(const float *x, int64_t k, uint8_t *out)
{
    for (int64_t b = 0; b < k / TQ_QK; b++, x += TQ_QK, out += TQ1_0_BYTES) {
        const float d = block_absmax(x);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int m = 0; m < 32; m++) /* elements m + 32n, n < 5 */
            out[TQ1_0_QS + m] = tq1_0_pack_byte(x + m, 32, 5, id);
        for (int m = 0; m < 16; m++) /* elements 160 + m + 16n */
            out[TQ1_0_QS + 32 + m] = tq1_0_pack_byte(x + 160 + m, 16, 5, id);
        for (int j = 0; j < 4; j++) /* elements 240 + j + 4n, n < 4 */
            out[TQ1_0_QH + j] = tq1_0_pack_byte(x + 240 + j, 4, 4, id);
        uint16_t dh = f32_to_f16(d);
        memcpy(out + TQ1_0_D, &dh, sizeof(dh));
    }
}

void bitnet_tq2_0_unpack_row(const uint8_t *in, int64_t k, float *out)
{
    for (int64_t b = 0; b < k / TQ_QK; b++, in += TQ2_0_BYTES, out += TQ_QK) {
        const float d = f16_to_f32(tq_load_u16(in + TQ2_0_D));
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 4; l++)
                for (int m = 0; m < 32; m++) {
                    int q = (in[TQ2_0_QS + 32 * h + m] >> (2 * l)) & 3;
                    out[128 * h + 32 * l + m] = (float)(q - 1) * d;
                }
    }
}

/* Trit n (0 = most significant) of a TQ1_0 byte: multiply by 3^n with 8-bit
 * wraparound to bring it to the top, then take the top "digit" as
 * (v * 3) >> 8, which is 0, 1 or 2 for every byte value. */
static int tq1_0_trit(uint8_t byte, int n)
{
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    uint8_t v = (uint8_t)(byte * pow3[n]);
    return ((uint16_t)v * 3) >> 8;
}

void bitnet_tq1_0_unpack_row(const uint8_t *in, int64_t k, float *out)
{
    for (int64_t b = 0; b < k / TQ_QK; b++, in += TQ1_0_BYTES, out += TQ_QK) {
        const float d = f16_to_f32(tq_load_u16(in + TQ1_0_D));
        for (int n = 0; n < 5; n++)
            for (int m = 0; m < 32; m++)
                out[32 * n + m] = (float)(tq1_0_trit(in[TQ1_0_QS + m], n) - 1) * d;
        for (int n = 0; n < 5; n++)
            for (int m = 0; m < 16; m++)
                out[160 + 16 * n + m] = (float)(tq1_0_trit(in[TQ1_0_QS + 32 + m], n) - 1) * d;
        for (int n = 0; n < 4; n++)
            for (int j = 0; j < 4; j++)
                out[240 + 4 * n + j] = (float)(tq1_0_trit(in[TQ1_0_QH + j], n) - 1) * d;
    }
}

/*
 * TQ1_0 -> TQ2_0, block by block: the same codes and the same f16 d, so
 * every product is the same. TQ2_0 byte 32h + m holds the codes of elements
 * 128h + m + 32l in bits 2l; for each of its four elements the table below
 * names the TQ1_0 byte and trit that hold it (layouts: docs/kernels-tq.md).
 *
 *   h = 0, m < 32:   trits 0..3 of qs[m]                (elements m + 32n)
 *   h = 1, m < 16:   trit 4 of qs[m], trits 0, 2, 4 of qs[32 + m]
 *   h = 1, m >= 16:  trit 4 of qs[m], trits 1, 3 of qs[16 + m],
 *                    trit (m - 16) / 4 of qh[(m - 16) % 4]  (elements 240..255)
 *
 * Per byte value, the trits are looked up in tables packed already in
 * their TQ2_0 bit positions.
 */
void tq1_0_to_tq2_0(const uint8_t *in, size_t in_row_bytes, int64_t k, int64_t n_rows, uint8_t *out,
                    size_t out_row_bytes)
{
    uint8_t lo4[256], t4[256], even[256], odd[256], tr[4][256];
    for (int v = 0; v < 256; v++) {
        int d[5];
        for (int n = 0; n < 5; n++)
            d[n] = tq1_0_trit((uint8_t)v, n);
        lo4[v] = (uint8_t)(d[0] | d[1] << 2 | d[2] << 4 | d[3] << 6);
        t4[v] = (uint8_t)d[4];
        even[v] = (uint8_t)(d[0] << 2 | d[2] << 4 | d[4] << 6);
        odd[v] = (uint8_t)(d[1] << 2 | d[3] << 4);
        for (int n = 0; n < 4; n++)
            tr[n][v] = (uint8_t)(d[n] << 6);
    }
    for (int64_t r = 0; r < n_rows; r++) {
        const uint8_t *src = in + (size_t)r * in_row_bytes;
        uint8_t *dst = out + (size_t)r * out_row_bytes;
        for (int64_t b = 0; b < k / TQ_QK; b++, src += TQ1_0_BYTES, dst += TQ2_0_BYTES) {
            const uint8_t *qs = src + TQ1_0_QS, *qh = src + TQ1_0_QH;
            uint8_t *q2 = dst + TQ2_0_QS;
            for (int m = 0; m < 32; m++)
                q2[m] = lo4[qs[m]];
            for (int m = 0; m < 16; m++)
                q2[32 + m] = (uint8_t)(t4[qs[m]] | even[qs[32 + m]]);
            for (int m = 16; m < 32; m++)
                q2[32 + m] =
                    (uint8_t)(t4[qs[m]] | odd[qs[16 + m]] | tr[(m - 16) / 4][qh[(m - 16) % 4]]);
            memcpy(dst + TQ2_0_D, src + TQ1_0_D, 2);
        }
    }
}

/* Round to nearest, ties to even, through the 1.5 * 2^23 constant: the same
 * integer the reference's nearest_int() returns for |f| < 2^22. */
static int q8k_nearest_int(float f)
{
    float v = f + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, sizeof(i));
    return (i & 0x007fffff) - 0x00400000;
}

void tq_quantize_q8k(const float *x, int64_t k, uint8_t *act)
{
    for (int64_t b = 0; b < k / TQ_QK; b++, x += TQ_QK, act += TQ_Q8K_BYTES) {
        tq_block_q8k blk;
        float max = 0.0f, amax = 0.0f;
        for (int j = 0; j < TQ_QK; j++) {
            float ax = fabsf(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            memset(&blk, 0, sizeof(blk));
        } else {
            const float iscale = -127.0f / max;
            for (int j = 0; j < TQ_QK; j++) {
                int v = q8k_nearest_int(iscale * x[j]);
                blk.qs[j] = (int8_t)(v < 127 ? v : 127);
            }
            for (int j = 0; j < TQ_QK / 16; j++) {
                int sum = 0;
                for (int i = 0; i < 16; i++)
                    sum += blk.qs[16 * j + i];
                blk.bsums[j] = (int16_t)sum;
            }
            blk.d = 1.0f / iscale;
        }
        memcpy(act, &blk, sizeof(blk));
    }
}
