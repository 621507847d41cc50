/*
 * bitnet/quant.h - reference packers and unpackers for the ternary formats.
 *
 * These write and read the exact bytes the reference tools do (FORMATS.md in
 * docs/formats.md): bitnet.cpp's quantize_i2_s for I2_S and llama.cpp's
 * quantize_row_tq{1,2}_0_ref for TQ1_0/TQ2_0. bitnet-mkmodel writes model
 * files with them; tests check them byte for byte against the real libraries.
 * Not hot paths.
 */
#ifndef BITNET_QUANT_H
#define BITNET_QUANT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Ternarizes a float matrix in place the way BitNet's converter does:
 * s = max(mean|w|, 1e-5); w = clamp(round(w / s), -1, 1) * s. Returns s. */
float bitnet_ternarize_absmean(float *w, size_t n);

/* ---- I2_S: whole tensor = ne0*ne1/4 packed bytes + f32 scale + 28 bytes ---- */

/* Bytes of an I2_S tensor with ne0 x ne1 elements (ne0 % 128 == 0). */
size_t bitnet_i2s_tensor_bytes(int64_t ne0, int64_t ne1);

/* Packs already-ternarized floats (values in {-s, 0, +s}) into an I2_S
 * tensor: scale = max|x|, code 1 where |x| < 1e-6, else 2 for x > 0, 0 for
 * x < 0. out must hold bitnet_i2s_tensor_bytes(ne0, ne1) bytes; the padding
 * after the scale is zeroed. Returns 0 or -EINVAL when ne0 % 128 != 0. */
int bitnet_i2s_pack(const float *x, int64_t ne0, int64_t ne1, uint8_t *out);

/* Unpacks an I2_S tensor to floats: scale * {-1, 0, +1, 0} for codes 0..3. */
void bitnet_i2s_unpack(const uint8_t *in, int64_t ne0, int64_t ne1, float *out);

/* The per-tensor scale stored after the packed codes. */
float bitnet_i2s_scale(const uint8_t *in, int64_t ne0, int64_t ne1);

/* ---- TQ2_0 (66-byte blocks of 256) and TQ1_0 (54-byte blocks of 256) ---- */

/* Bytes of one row of k elements (k % 256 == 0). */
size_t bitnet_tq2_0_row_bytes(int64_t k);
size_t bitnet_tq1_0_row_bytes(int64_t k);

/* Quantize k floats (k % 256 == 0) exactly as quantize_row_tq2_0_ref /
 * quantize_row_tq1_0_ref do. */
void bitnet_tq2_0_pack_row(const float *x, int64_t k, uint8_t *out);
void bitnet_tq1_0_pack_row(const float *x, int64_t k, uint8_t *out);

/* Dequantize one row, as dequantize_row_tq2_0 / dequantize_row_tq1_0 do. */
void bitnet_tq2_0_unpack_row(const uint8_t *in, int64_t k, float *out);
void bitnet_tq1_0_unpack_row(const uint8_t *in, int64_t k, float *out);

#ifdef __cplusplus
}
#endif

#endif
