/*
 * kernels/cuda/i2s_qk256.cu - i2s_qk256.cuda: I2_S activation quantization
 * and products on an NVIDIA GPU (compute capability 7.5 and later).
 *
 * The product gives each weight row to one warp. The lanes stream the row
 * 16 bytes each per step (512 coalesced bytes per warp), decode the 2-bit
 * codes with shifts and masks and multiply them into up to ACT_TILE
 * activation rows with DP4A (i2s_word.h), so a batch reads the weights once
 * per tile; the warp then adds its lanes' int32 sums (exact in any order)
 * and lane 0 scales the result with i2s_output(), the CPU kernels' own
 * rounding. Quantization gives each activation row to one thread block:
 * the largest |x| (a maximum, exact in any order), the scale and the
 * rounding by the kernels/i2s.h helpers, and an int32 sum.
 */
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <stdio.h>

#include "bitnet/error.h"
#include "kernels/cuda/i2s_cuda.h"
#include "kernels/cuda/i2s_word.h"

#define WARP_LANES      32
#define WARPS_PER_BLOCK 4   /* weight rows per thread block */
#define ACT_TILE        8   /* activation rows per pass over a weight row */
#define QUANT_THREADS   256 /* threads per activation row */
#define LANE_BYTES      16  /* weight bytes one lane loads per step */

/* The compute capability the library is built for (CMakeLists.txt). */
#define MIN_MAJOR 7
#define MIN_MINOR 5

static int cuda_error(cudaError_t e, const char *what, char *err, size_t err_len)
{
    int rc = (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) ? BITNET_ENO_DEVICE
                                                                          : BITNET_EBACKEND;
    if (err && err_len)
        snprintf(err, err_len, "%s: CUDA error %s (%s)", what, cudaGetErrorName(e),
                 cudaGetErrorString(e));
    return rc;
}

static int param_error(const char *what, char *err, size_t err_len)
{
    if (err && err_len)
        snprintf(err, err_len, "%s", what);
    return BITNET_EPARAM;
}

/* ---- device code --------------------------------------------------------- */

__global__ void __launch_bounds__(QUANT_THREADS)
    quantize_kernel(const float *x, int64_t k, uint8_t *act, size_t row_bytes)
{
    __shared__ float max_part[QUANT_THREADS];
    __shared__ int32_t sum_part[QUANT_THREADS];
    const float *xr = x + (size_t)blockIdx.x * (size_t)k;
    uint8_t *ar = act + (size_t)blockIdx.x * row_bytes;
    const int tid = (int)threadIdx.x;

    float m = 0.0f;
    for (int64_t i = tid; i < k; i += QUANT_THREADS) {
        float a = fabsf(xr[i]);
        m = a > m ? a : m; /* a NaN never wins, as on the CPU */
    }
    max_part[tid] = m;
    __syncthreads();
    for (int half = QUANT_THREADS / 2; half > 0; half /= 2) {
        if (tid < half && max_part[tid + half] > max_part[tid])
            max_part[tid] = max_part[tid + half];
        __syncthreads();
    }
    const float scale = i2s_act_scale(max_part[0]);

    int32_t s = 0;
    for (int64_t i = tid; i < k; i += QUANT_THREADS) {
        int q = i2s_round_clamp(xr[i] * scale);
        ar[i2s_act_pos(k, i)] = (uint8_t)(int8_t)q;
        s += q;
    }
    sum_part[tid] = s;
    __syncthreads();
    for (int half = QUANT_THREADS / 2; half > 0; half /= 2) {
        if (tid < half)
            sum_part[tid] += sum_part[tid + half];
        __syncthreads();
    }
    if (tid == 0)
        i2s_act_set_trailer(ar, k, scale, sum_part[0]);
}

__global__ void __launch_bounds__(WARP_LANES *WARPS_PER_BLOCK) matmul_kernel(bitnet_matmul_args a)
{
    const int64_t row = (int64_t)blockIdx.x * WARPS_PER_BLOCK + threadIdx.y;
    if (row >= a.n_rows)
        return; /* the whole warp: threadIdx.y is the warp's row */
    const int lane = (int)threadIdx.x;
    const uint4 *wrow = (const uint4 *)(a.w + (size_t)row * a.w_row_bytes);
    const int64_t n_vec = a.k / (I2S_WORD_ELEMS * I2S_LANE_WORDS); /* 16-byte loads per row */

    for (int t0 = 0; t0 < a.n_act; t0 += ACT_TILE) {
        const int nt = a.n_act - t0 < ACT_TILE ? a.n_act - t0 : ACT_TILE;
        const uint8_t *act0 = a.act + (size_t)t0 * a.act_row_bytes;
        int32_t acc[ACT_TILE];
#pragma unroll
        for (int t = 0; t < ACT_TILE; t++)
            acc[t] = 0;
        for (int64_t v = lane; v < n_vec; v += WARP_LANES) {
            const uint4 q = __ldg(wrow + v);
            const uint32_t words[I2S_LANE_WORDS] = {q.x, q.y, q.z, q.w};
#pragma unroll
            for (int t = 0; t < ACT_TILE; t++) {
                if (t >= nt)
                    break;
                const uint8_t *act = act0 + (size_t)t * a.act_row_bytes;
#pragma unroll
                for (int u = 0; u < I2S_LANE_WORDS; u++)
                    acc[t] += i2s_word_dot(words[u], act, a.k, v * I2S_LANE_WORDS + u);
            }
        }
        for (int t = 0; t < nt; t++) {
            int32_t s = acc[t];
            for (int off = WARP_LANES / 2; off > 0; off /= 2)
                s += __shfl_xor_sync(0xffffffffu, s, off);
            if (lane == 0) {
                const uint8_t *act = act0 + (size_t)t * a.act_row_bytes;
                a.y[(size_t)(t0 + t) * (size_t)a.y_stride + (size_t)row] = i2s_output(
                    s, i2s_act_get_sum(act, a.k), i2s_act_get_scale(act, a.k), a.w_scale);
            }
        }
    }
}

/* ---- host API ------------------------------------------------------------ */

extern "C" int bitnet_cuda_probe(char *desc, size_t desc_len)
{
    /* Without a driver the runtime only says its version is "insufficient";
     * name what is really missing. The driver stays loaded (the runtime
     * opens it too). */
    if (!dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL)) {
        const char *why = dlerror();
        snprintf(desc, desc_len, "no CUDA driver: libcuda.so.1 not found (%s)",
                 why ? why : "dlopen failed");
        return BITNET_ENO_DEVICE;
    }
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        snprintf(desc, desc_len, "no usable CUDA device: %s (%s)", cudaGetErrorName(e),
                 cudaGetErrorString(e));
        return BITNET_ENO_DEVICE;
    }
    if (n <= 0) {
        snprintf(desc, desc_len, "no CUDA device: the driver reports none");
        return BITNET_ENO_DEVICE;
    }
    cudaDeviceProp p;
    e = cudaGetDeviceProperties(&p, 0);
    if (e != cudaSuccess) {
        snprintf(desc, desc_len, "CUDA device 0 unreadable: %s (%s)", cudaGetErrorName(e),
                 cudaGetErrorString(e));
        return BITNET_ENO_DEVICE;
    }
    if (p.major < MIN_MAJOR || (p.major == MIN_MAJOR && p.minor < MIN_MINOR)) {
        snprintf(desc, desc_len,
                 "CUDA device 0 (%s) has compute capability %d.%d; the kernels are built for "
                 "%d.%d and later",
                 p.name, p.major, p.minor, MIN_MAJOR, MIN_MINOR);
        return BITNET_ENO_DEVICE;
    }
    snprintf(desc, desc_len, "%s (compute capability %d.%d, %zu MiB)", p.name, p.major, p.minor,
             (size_t)(p.totalGlobalMem >> 20));
    return 0;
}

extern "C" int bitnet_cuda_alloc(void **dev, size_t bytes, char *err, size_t err_len)
{
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess)
        return cuda_error(e, "cudaMalloc", err, err_len);
    *dev = p;
    return 0;
}

extern "C" void bitnet_cuda_free(void *dev)
{
    if (dev)
        cudaFree(dev);
}

extern "C" int bitnet_cuda_upload(void *dst_dev, const void *src, size_t bytes, char *err,
                                  size_t err_len)
{
    cudaError_t e = cudaMemcpy(dst_dev, src, bytes, cudaMemcpyHostToDevice);
    return e == cudaSuccess ? 0 : cuda_error(e, "upload", err, err_len);
}

extern "C" int bitnet_cuda_download(void *dst, const void *src_dev, size_t bytes, char *err,
                                    size_t err_len)
{
    cudaError_t e = cudaMemcpy(dst, src_dev, bytes, cudaMemcpyDeviceToHost);
    return e == cudaSuccess ? 0 : cuda_error(e, "download", err, err_len);
}

/* Launch errors first, then errors while the kernel ran. */
static int finish(const char *what, char *err, size_t err_len)
{
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess)
        e = cudaDeviceSynchronize();
    return e == cudaSuccess ? 0 : cuda_error(e, what, err, err_len);
}

extern "C" int bitnet_cuda_i2s_quantize_act(const float *x_dev, int64_t k, int n_rows,
                                            uint8_t *act_dev, char *err, size_t err_len)
{
    if (k < 0 || n_rows < 0)
        return param_error("i2s_qk256.cuda quantize: negative k or row count", err, err_len);
    if (n_rows == 0)
        return 0;
    quantize_kernel<<<n_rows, QUANT_THREADS>>>(x_dev, k, act_dev, i2s_act_row_bytes(k));
    return finish("i2s_qk256.cuda quantize", err, err_len);
}

extern "C" int bitnet_cuda_i2s_matmul(const bitnet_matmul_args *args, char *err, size_t err_len)
{
    const bitnet_matmul_args a = *args;
    if (a.k <= 0 || a.k % I2S_BLOCK != 0)
        return param_error("i2s_qk256.cuda: k must be a positive multiple of 128", err, err_len);
    if (a.n_rows < 0 || a.n_act < 0 || (a.n_act > 1 && a.y_stride < a.n_rows))
        return param_error("i2s_qk256.cuda: bad row counts or output stride", err, err_len);
    if (a.w_row_bytes < (size_t)a.k / 4 || a.w_row_bytes % LANE_BYTES != 0 ||
        (uintptr_t)a.w % LANE_BYTES != 0)
        return param_error("i2s_qk256.cuda: weight rows must hold k/4 bytes, 16-byte aligned", err,
                           err_len);
    if (a.act_row_bytes < i2s_act_row_bytes(a.k) || a.act_row_bytes % 4 != 0 ||
        (uintptr_t)a.act % 4 != 0)
        return param_error("i2s_qk256.cuda: activation rows too short or misaligned", err, err_len);
    if (a.n_rows == 0 || a.n_act == 0)
        return 0;
    const int64_t blocks = (a.n_rows + WARPS_PER_BLOCK - 1) / WARPS_PER_BLOCK;
    if (blocks > 0x7fffffff)
        return param_error("i2s_qk256.cuda: too many weight rows", err, err_len);
    matmul_kernel<<<(unsigned)blocks, dim3(WARP_LANES, WARPS_PER_BLOCK)>>>(a);
    return finish("i2s_qk256.cuda", err, err_len);
}
