/*
 * kernels/cuda/i2s_cuda.h - the i2s_qk256.cuda kernels: I2_S products and
 * activation quantization on an NVIDIA GPU, in libbitnet-kernels-cuda.so.
 *
 * Built only when the build finds nvcc (BITNET_CUDA); nothing that runs on a
 * CPU-only machine links it. The library carries the CUDA runtime
 * statically and the runtime opens the driver (libcuda.so.1) only when the
 * first call needs it, so the library loads anywhere and bitnet_cuda_probe()
 * says why there is no device instead of failing to load.
 *
 * Numerics are those of kernels/i2s.h, to the bit: the same activation row
 * layout (kernel order, scale and sum trailer), integer sums exact, and the
 * float rounding of the CPU kernels (built with --fmad=false so no multiply
 * and add are fused). A row quantized on the GPU is byte-identical to one
 * quantized by i2s_scalar_quantize_act(); y equals the scalar kernel's y.
 *
 * Pointers named *_dev are device memory. Functions return 0 or a negative
 * BITNET_E* code and write what went wrong into err.
 */
#ifndef BITNET_KERNELS_CUDA_I2S_CUDA_H
#define BITNET_KERNELS_CUDA_I2S_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 0 when a CUDA device can run the kernels: desc then names it (device 0,
 * its compute capability and memory). Otherwise BITNET_ENO_DEVICE and desc
 * says why (no driver, no device, a device too old for DP4A). */
int bitnet_cuda_probe(char *desc, size_t desc_len);

/* Device memory and copies, so C callers need no CUDA header. */
int bitnet_cuda_alloc(void **dev, size_t bytes, char *err, size_t err_len);
void bitnet_cuda_free(void *dev);
int bitnet_cuda_upload(void *dst_dev, const void *src, size_t bytes, char *err, size_t err_len);
int bitnet_cuda_download(void *dst, const void *src_dev, size_t bytes, char *err, size_t err_len);

/* Quantizes n_rows rows of k floats (x_dev, row r at x_dev + r*k) into
 * activation rows of i2s_act_row_bytes(k) bytes each at act_dev. */
int bitnet_cuda_i2s_quantize_act(const float *x_dev, int64_t k, int n_rows, uint8_t *act_dev,
                                 char *err, size_t err_len);

/* y = W x with args->w, args->act and args->y in device memory; the same
 * arguments and preconditions as the CPU kernels (k a positive multiple of
 * 128, rows args->w_row_bytes apart and 16-byte aligned). Waits for the
 * result. */
int bitnet_cuda_i2s_matmul(const bitnet_matmul_args *args, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif

#endif
