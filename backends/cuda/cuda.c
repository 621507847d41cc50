/*
 * backends/cuda/cuda.c - the cuda backend library, libbitnet-cuda.so.
 *
 * This is the library's skeleton: it implements the backend ABI, finds the
 * CUDA driver at run time (dlopen of libcuda.so.1, never a link-time
 * dependency) and counts the devices. Model loading then fails cleanly:
 * BITNET_ENO_DEVICE without a driver or a device, BITNET_ENOT_COMPILED on a
 * machine that has both, until the i2s_qk256.cuda kernels and the forward
 * pass on the device arrive (docs/backends.md). It must never crash on a
 * machine without a GPU.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bitnet/backend.h"
#include "bitnet/config.h"
#include "bitnet/error.h"

/* The two driver entry points the probe needs (CUDA driver API, cuda.h);
 * declared here so no CUDA header or library is needed to build. */
typedef int (*cu_init_fn)(unsigned int flags);
typedef int (*cu_device_get_count_fn)(int *count);
typedef int (*cu_driver_get_version_fn)(int *version);
typedef int (*cu_device_get_fn)(int *device, int ordinal);
typedef int (*cu_device_get_name_fn)(char *name, int len, int device);
typedef int (*cu_device_total_mem_fn)(size_t *bytes, int device);

/* What the driver probe found, once per process. */
static struct {
    pthread_once_t once;
    int rc;            /* 0 when a driver and at least one device exist */
    int n_devices;     /* CUDA devices the driver reports */
    char detail[1024]; /* why not, or what was found */
} probe = {.once = PTHREAD_ONCE_INIT};

static void probe_driver(void)
{
    /* The driver stays loaded for the life of the process: CUDA cannot be
     * unloaded and initialised again safely. */
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        probe.rc = BITNET_ENO_DEVICE;
        snprintf(probe.detail, sizeof(probe.detail),
                 "no CUDA driver: libcuda.so.1 not found (%s); install the NVIDIA driver or use "
                 "the native backend",
                 why ? why : "dlopen failed");
        return;
    }
    cu_init_fn cu_init = (cu_init_fn)dlsym(h, "cuInit");
    cu_device_get_count_fn cu_count = (cu_device_get_count_fn)dlsym(h, "cuDeviceGetCount");
    if (!cu_init || !cu_count) {
        probe.rc = BITNET_ENO_DEVICE;
        snprintf(probe.detail, sizeof(probe.detail),
                 "no CUDA driver: libcuda.so.1 lacks cuInit/cuDeviceGetCount");
        return;
    }
    int cr = cu_init(0);
    if (cr != 0) {
        probe.rc = BITNET_ENO_DEVICE;
        snprintf(probe.detail, sizeof(probe.detail),
                 "no CUDA device: cuInit failed with CUDA error %d", cr);
        return;
    }
    int n = 0;
    cr = cu_count(&n);
    if (cr != 0 || n <= 0) {
        probe.rc = BITNET_ENO_DEVICE;
        snprintf(probe.detail, sizeof(probe.detail),
                 "no CUDA device: the driver reports %d (error %d)", n, cr);
        return;
    }
    probe.n_devices = n;
    probe.rc = 0;
    /* The driver's version and each device's name and memory, where the
     * driver has the calls (cuDeviceTotalMem_v2 is the 64-bit one). */
    cu_driver_get_version_fn cu_version = (cu_driver_get_version_fn)dlsym(h, "cuDriverGetVersion");
    cu_device_get_fn cu_get = (cu_device_get_fn)dlsym(h, "cuDeviceGet");
    cu_device_get_name_fn cu_name = (cu_device_get_name_fn)dlsym(h, "cuDeviceGetName");
    cu_device_total_mem_fn cu_mem = (cu_device_total_mem_fn)dlsym(h, "cuDeviceTotalMem_v2");
    int version = 0;
    if (cu_version && cu_version(&version) != 0)
        version = 0;
    size_t used =
        (size_t)snprintf(probe.detail, sizeof(probe.detail), "CUDA driver %d.%d with %d device(s)",
                         version / 1000, version % 1000 / 10, n);
    for (int i = 0; i < n && cu_get && cu_name && used < sizeof(probe.detail); i++) {
        int dev = 0;
        char name[128] = "?";
        size_t mem = 0;
        if (cu_get(&dev, i) != 0)
            break;
        if (cu_name(name, (int)sizeof(name), dev) != 0)
            snprintf(name, sizeof(name), "?");
        if (!cu_mem || cu_mem(&mem, dev) != 0)
            mem = 0;
        used += (size_t)snprintf(probe.detail + used, sizeof(probe.detail) - used,
                                 "%s %d: %.100s, %.1f GiB", i ? ";" : ":", i, name,
                                 (double)mem / (1024.0 * 1024 * 1024));
    }
}

uint32_t bitnet_abi_version(void)
{
    return BITNET_ABI_VERSION;
}

int32_t bitnet_backend_info(bitnet_backend_desc *out)
{
    if (!out)
        return -EINVAL;
    pthread_once(&probe.once, probe_driver);
    *out = (bitnet_backend_desc){
        .abi_version = BITNET_ABI_VERSION,
        .struct_size = sizeof(bitnet_backend_desc),
        .name = "cuda",
        .version = BITNET_VERSION,
        .device = "cuda",
        .detail = probe.detail,
    };
    return 0;
}

static int32_t fail(int32_t code, char *err, size_t err_len, const char *fmt, ...)
{
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return code;
}

int32_t bitnet_model_new_from_file(const char *path, const bitnet_model_params *params,
                                   bitnet_model **out, char *err, size_t err_len)
{
    if (!path || !out)
        return fail(BITNET_EPARAM, err, err_len, "cuda: no model path or output");
    pthread_once(&probe.once, probe_driver);
    if (probe.rc)
        return fail(probe.rc, err, err_len, "cuda: cannot load %s: %s", path, probe.detail);
    return fail(BITNET_ENOT_COMPILED, err, err_len,
                "cuda: cannot load %s: %s, but this libbitnet-cuda.so has no device kernels yet; "
                "use the native backend",
                path, probe.detail);
}

/* No model or context can exist yet, so the rest of the ABI only refuses. */
void bitnet_model_free(bitnet_model *model)
{
    (void)model;
}

int32_t bitnet_model_describe(const bitnet_model *model, bitnet_model_desc *out)
{
    return -EINVAL;
}

int32_t bitnet_context_new(bitnet_model *model, bitnet_context **out, char *err, size_t err_len)
{
    return fail(BITNET_EPARAM, err, err_len, "cuda: no model");
}

void bitnet_context_free(bitnet_context *ctx)
{
    (void)ctx;
}

int32_t bitnet_tokenize(bitnet_model *model, const char *text, size_t len, uint32_t flags,
                        int32_t *tokens, size_t cap, size_t *n_out, char *err, size_t err_len)
{
    return fail(BITNET_EPARAM, err, err_len, "cuda: no model");
}

int32_t bitnet_eval(bitnet_context *ctx, const int32_t *tokens, size_t n, float *logits,
                    size_t logits_cap, char *err, size_t err_len)
{
    return fail(BITNET_EPARAM, err, err_len, "cuda: no context");
}

int32_t bitnet_decode_greedy(bitnet_context *ctx, const int32_t *prompt, size_t n_prompt,
                             uint32_t flags, int32_t *out, size_t cap, size_t *n_out, char *err,
                             size_t err_len)
{
    return fail(BITNET_EPARAM, err, err_len, "cuda: no context");
}

int32_t bitnet_context_reset(bitnet_context *ctx)
{
    return -EINVAL;
}
