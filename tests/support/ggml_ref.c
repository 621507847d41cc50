/*
 * tests/support/ggml_ref.c - dlopen wrapper around the reference llama.cpp
 * CPU libraries (see ggml_ref.h).
 */
#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "bitnet/error.h"
#include "tests/support/ggml_ref.h"

typedef void (*ref_from_float_fn)(const float *x, void *y, int64_t k);
typedef void (*ref_to_float_fn)(const void *x, float *y, int64_t k);
typedef void (*ref_vec_dot_fn)(int n, float *s, size_t bs, const void *x, size_t bx, const void *y,
                               size_t by, int nrc);

/* struct ggml_type_traits_cpu as this release declares it (ggml-cpu.h). */
struct ref_type_traits_cpu {
    ref_from_float_fn from_float;
    ref_vec_dot_fn vec_dot;
    int vec_dot_type; /* enum ggml_type */
    int64_t nrows;
};

typedef const struct ref_type_traits_cpu *(*ref_get_traits_fn)(int type);

static struct {
    int opened;
    void *base;
    void *cpu;
    char variant[64];
    ref_from_float_fn quantize_tq1_0, quantize_tq2_0, quantize_q8_k;
    ref_to_float_fn dequantize_tq1_0, dequantize_tq2_0;
    ref_vec_dot_fn vec_dot_tq1_0, vec_dot_tq2_0;
} ref;

/* Looks a symbol up; on failure writes the message and returns NULL. */
static void *ref_sym(void *lib, const char *libname, const char *name, char *err, size_t n)
{
    void *p = dlsym(lib, name);
    if (!p && err && n)
        snprintf(err, n, "%s lacks symbol %s", libname, name);
    return p;
}

/* Opens every libggml-cpu-*.so in libdir, asks each for its score on this CPU
 * and keeps the best one open. Returns 0 or a negative error. */
static int ref_open_best_cpu(const char *libdir, char *err, size_t n)
{
    DIR *dir = opendir(libdir);
    if (!dir) {
        snprintf(err, n, "cannot open directory %s", libdir);
        return BITNET_ELIB_LOAD;
    }
    int best_score = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        const char *name = de->d_name;
        size_t len = strlen(name);
        if (strncmp(name, "libggml-cpu-", 12) != 0 || len < 16 || strcmp(name + len - 3, ".so"))
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", libdir, name);
        void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!lib)
            continue;
        int (*score)(void) = (int (*)(void))dlsym(lib, "ggml_backend_score");
        int s = score ? score() : 0;
        if (s > best_score) {
            if (ref.cpu)
                dlclose(ref.cpu);
            ref.cpu = lib;
            best_score = s;
            snprintf(ref.variant, sizeof(ref.variant), "%.*s", (int)(len - 15), name + 12);
        } else {
            dlclose(lib);
        }
    }
    closedir(dir);
    if (!ref.cpu) {
        snprintf(err, n, "no libggml-cpu-*.so in %s can run on this CPU", libdir);
        return BITNET_ENOT_SUPPORTED;
    }
    return 0;
}

int ggml_ref_open(const char *libdir, char *err, size_t n)
{
    char dummy[8];
    if (!err || !n) {
        err = dummy;
        n = sizeof(dummy);
    }
    if (ref.opened)
        return 0;
    char path[4096];
    snprintf(path, sizeof(path), "%s/libggml-base.so", libdir);
    ref.base = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (!ref.base) {
        snprintf(err, n, "cannot load %s: %s", path, dlerror());
        return BITNET_ELIB_LOAD;
    }
    int rc = ref_open_best_cpu(libdir, err, n);
    if (rc)
        return rc;

    ref.quantize_tq1_0 =
        (ref_from_float_fn)ref_sym(ref.base, "libggml-base.so", "quantize_row_tq1_0_ref", err, n);
    ref.quantize_tq2_0 =
        (ref_from_float_fn)ref_sym(ref.base, "libggml-base.so", "quantize_row_tq2_0_ref", err, n);
    ref.dequantize_tq1_0 =
        (ref_to_float_fn)ref_sym(ref.base, "libggml-base.so", "dequantize_row_tq1_0", err, n);
    ref.dequantize_tq2_0 =
        (ref_to_float_fn)ref_sym(ref.base, "libggml-base.so", "dequantize_row_tq2_0", err, n);
    void (*cpu_init)(void) =
        (void (*)(void))ref_sym(ref.cpu, "libggml-cpu", "ggml_cpu_init", err, n);
    ref_get_traits_fn traits =
        (ref_get_traits_fn)ref_sym(ref.cpu, "libggml-cpu", "ggml_get_type_traits_cpu", err, n);
    if (!ref.quantize_tq1_0 || !ref.quantize_tq2_0 || !ref.dequantize_tq1_0 ||
        !ref.dequantize_tq2_0 || !cpu_init || !traits)
        return BITNET_ELIB_SYMBOL;

    cpu_init();
    const struct ref_type_traits_cpu *t1 = traits(GGML_REF_TYPE_TQ1_0);
    const struct ref_type_traits_cpu *t2 = traits(GGML_REF_TYPE_TQ2_0);
    const struct ref_type_traits_cpu *tk = traits(GGML_REF_TYPE_Q8_K);
    if (!t1 || !t2 || !tk || !t1->vec_dot || !t2->vec_dot || !tk->from_float ||
        t1->vec_dot_type != GGML_REF_TYPE_Q8_K || t2->vec_dot_type != GGML_REF_TYPE_Q8_K) {
        snprintf(err, n, "libggml-cpu-%s.so has unexpected type traits for TQ1_0/TQ2_0/Q8_K",
                 ref.variant);
        return BITNET_ELIB_SYMBOL;
    }
    ref.vec_dot_tq1_0 = t1->vec_dot;
    ref.vec_dot_tq2_0 = t2->vec_dot;
    ref.quantize_q8_k = tk->from_float;
    ref.opened = 1;
    return 0;
}

const char *ggml_ref_cpu_variant(void)
{
    return ref.variant;
}

void ggml_ref_quantize_row(int ggml_type, const float *x, void *out, int64_t k)
{
    if (ggml_type == GGML_REF_TYPE_TQ1_0)
        ref.quantize_tq1_0(x, out, k);
    else if (ggml_type == GGML_REF_TYPE_TQ2_0)
        ref.quantize_tq2_0(x, out, k);
}

void ggml_ref_dequantize_row(int ggml_type, const void *in, float *out, int64_t k)
{
    if (ggml_type == GGML_REF_TYPE_TQ1_0)
        ref.dequantize_tq1_0(in, out, k);
    else if (ggml_type == GGML_REF_TYPE_TQ2_0)
        ref.dequantize_tq2_0(in, out, k);
}

void ggml_ref_quantize_q8_k(const float *x, void *out, int64_t k)
{
    ref.quantize_q8_k(x, out, k);
}

void ggml_ref_vec_dot(int ggml_type, int64_t k, float *s, const void *w_row, const void *q8k_row)
{
    ref_vec_dot_fn f = ggml_type == GGML_REF_TYPE_TQ1_0 ? ref.vec_dot_tq1_0 : ref.vec_dot_tq2_0;
    f((int)k, s, 0, w_row, 0, q8k_row, 0, 1);
}
