/*
 * tests/kernels/i2s_cuda_ops.h - i2s_qk256.cuda seen as CPU kernel ops, so
 * test_i2s.c runs its random and edge cases against it.
 *
 * i2s_cuda_lanes_ops: the product exactly as the device kernel walks a row
 * (32 lanes, 16 bytes per lane per step, four words each through
 * i2s_word_dot(), lane sums added), run on this CPU. It checks the decoding
 * and indexing the GPU executes, here, without a GPU. Its quantization is
 * the scalar one (the device's quantization needs the GPU test).
 *
 * i2s_cuda_gpu_ops (test_i2s_cuda, built with -DI2S_TEST_CUDA): the real
 * kernels of libbitnet-kernels-cuda.so, inputs uploaded and results
 * downloaded around each call.
 */
#ifndef BITNET_TESTS_KERNELS_I2S_CUDA_OPS_H
#define BITNET_TESTS_KERNELS_I2S_CUDA_OPS_H

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/i2s_word.h"
#include "kernels/i2s.h"

#ifndef I2S_TEST_CUDA
#define LANES_PER_WARP 32

static void lanes_matmul(const bitnet_matmul_args *a)
{
    const int64_t n_vec = a->k / (I2S_WORD_ELEMS * I2S_LANE_WORDS);
    for (int64_t r = 0; r < a->n_rows; r++) {
        const uint8_t *wrow = a->w + (size_t)r * a->w_row_bytes;
        for (int t = 0; t < a->n_act; t++) {
            const uint8_t *act = a->act + (size_t)t * a->act_row_bytes;
            int32_t lane_sum[LANES_PER_WARP] = {0};
            for (int lane = 0; lane < LANES_PER_WARP; lane++) {
                for (int64_t v = lane; v < n_vec; v += LANES_PER_WARP) {
                    for (int u = 0; u < I2S_LANE_WORDS; u++) {
                        uint32_t word;
                        memcpy(&word, wrow + (size_t)v * 16 + (size_t)u * 4, sizeof(word));
                        lane_sum[lane] += i2s_word_dot(word, act, a->k, v * I2S_LANE_WORDS + u);
                    }
                }
            }
            /* The warp's butterfly: lane 0 ends with the sum of all lanes. */
            for (int off = LANES_PER_WARP / 2; off > 0; off /= 2) {
                int32_t next[LANES_PER_WARP];
                for (int lane = 0; lane < LANES_PER_WARP; lane++)
                    next[lane] = lane_sum[lane] + lane_sum[lane ^ off];
                memcpy(lane_sum, next, sizeof(next));
            }
            a->y[(size_t)t * (size_t)a->y_stride + (size_t)r] = i2s_output(
                lane_sum[0], i2s_act_get_sum(act, a->k), i2s_act_get_scale(act, a->k), a->w_scale);
        }
    }
}

static const bitnet_kernel_ops i2s_cuda_lanes_ops = {
    .act_row_bytes = i2s_scalar_act_row_bytes,
    .quantize_act = i2s_scalar_quantize_act,
    .matmul = lanes_matmul,
};
#endif

#if defined(I2S_TEST_CUDA) && !defined(I2S_CUDA_NOT_BUILT)
#include "kernels/cuda/i2s_cuda.h"

static void *gpu_copy_in(const void *src, size_t n)
{
    char err[256];
    void *dev = NULL;
    ck_assert_msg(bitnet_cuda_alloc(&dev, n, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(bitnet_cuda_upload(dev, src, n, err, sizeof(err)) == 0, "%s", err);
    return dev;
}

static void gpu_quantize_act(const float *x, int64_t k, uint8_t *act)
{
    char err[256];
    size_t rb = i2s_act_row_bytes(k);
    void *x_dev = gpu_copy_in(x, (size_t)(k > 0 ? k : 1) * sizeof(float));
    void *act_dev = NULL;
    ck_assert_msg(bitnet_cuda_alloc(&act_dev, rb, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(bitnet_cuda_i2s_quantize_act(x_dev, k, 1, act_dev, err, sizeof(err)) == 0, "%s",
                  err);
    ck_assert_msg(bitnet_cuda_download(act, act_dev, rb, err, sizeof(err)) == 0, "%s", err);
    bitnet_cuda_free(x_dev);
    bitnet_cuda_free(act_dev);
}

static void gpu_matmul(const bitnet_matmul_args *a)
{
    char err[256];
    size_t y_n = (size_t)a->n_act * (size_t)a->n_rows;
    bitnet_matmul_args d = *a;
    d.w = gpu_copy_in(a->w, (size_t)a->n_rows * a->w_row_bytes);
    d.act = gpu_copy_in(a->act, (size_t)a->n_act * a->act_row_bytes);
    d.y_stride = a->n_rows; /* compact on the device, spread out below */
    void *y_dev = NULL;
    ck_assert_msg(bitnet_cuda_alloc(&y_dev, y_n * sizeof(float), err, sizeof(err)) == 0, "%s", err);
    d.y = y_dev;
    ck_assert_msg(bitnet_cuda_i2s_matmul(&d, err, sizeof(err)) == 0, "%s", err);
    float *y = malloc(y_n * sizeof(float) + 1);
    ck_assert_ptr_nonnull(y);
    ck_assert_msg(bitnet_cuda_download(y, y_dev, y_n * sizeof(float), err, sizeof(err)) == 0, "%s",
                  err);
    for (int t = 0; t < a->n_act; t++)
        memcpy(a->y + (size_t)t * (size_t)a->y_stride, y + (size_t)t * (size_t)a->n_rows,
               (size_t)a->n_rows * sizeof(float));
    free(y);
    bitnet_cuda_free((void *)d.w);
    bitnet_cuda_free((void *)d.act);
    bitnet_cuda_free(y_dev);
}

static const bitnet_kernel_ops i2s_cuda_gpu_ops = {
    .act_row_bytes = i2s_scalar_act_row_bytes,
    .quantize_act = gpu_quantize_act,
    .matmul = gpu_matmul,
};
#endif

#endif
