/*
 * kernels/cpu.c - host CPU features, SIMD levels and the BITNET_SIMD override.
 *
 * The instruction-set specific probing lives in cpu_x86.c / cpu_arm.c; this
 * file adds what is common: core counts, names, and the override that may
 * lower (never raise) the SIMD level kernels are chosen for.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet/error.h"
#include "bitnet/kernels.h"
#include "kernels/cpu_internal.h"

static const char *const simd_names[BITNET_SIMD_COUNT] = {"scalar", "avx2", "avx512", "neon"};
static const char *const isa_names[BITNET_ISA_COUNT] = {"scalar", "avx2", "avx512",
                                                        "neon",   "cuda", "external"};
static const char *const format_names[BITNET_FORMAT_COUNT] = {"i2s", "tq1_0", "tq2_0",
                                                              "tl1", "tl2",   "any"};

const char *bitnet_simd_level_name(bitnet_simd_level level)
{
    return (unsigned)level < BITNET_SIMD_COUNT ? simd_names[level] : "unknown";
}

const char *bitnet_isa_name(bitnet_isa isa)
{
    return (unsigned)isa < BITNET_ISA_COUNT ? isa_names[isa] : "unknown";
}

const char *bitnet_format_name(bitnet_format f)
{
    return (unsigned)f < BITNET_FORMAT_COUNT ? format_names[f] : "unknown";
}

const char *bitnet_device_name(bitnet_device d)
{
    return d == BITNET_DEVICE_CUDA ? "cuda" : "cpu";
}

const char *bitnet_provider_name(bitnet_provider p)
{
    switch (p) {
    case BITNET_PROVIDER_BITNETD:
        return "bitnetd";
    case BITNET_PROVIDER_CUDA_LIBRARY:
        return "libbitnet-cuda";
    case BITNET_PROVIDER_EXTERNAL:
        return "external";
    }
    return "unknown";
}

int bitnet_simd_level_parse(const char *name, bitnet_simd_level *out)
{
    for (int i = 0; i < BITNET_SIMD_COUNT; i++) {
        if (strcmp(name, simd_names[i]) == 0) {
            *out = (bitnet_simd_level)i;
            return 0;
        }
    }
    return BITNET_EUNKNOWN_ID;
}

bool bitnet_simd_at_most(bitnet_simd_level a, bitnet_simd_level b)
{
    if (a == BITNET_SIMD_SCALAR || a == b)
        return true;
    return a == BITNET_SIMD_AVX2 && b == BITNET_SIMD_AVX512;
}

/* Counts distinct (physical id, core id) pairs in /proc/cpuinfo; falls back
 * to the logical count where the file does not say. */
static int count_physical_cores(int logical)
{
    FILE *f = fopen("/proc/cpuinfo", "re");
    if (!f)
        return logical;
    char line[256];
    int phys = -1, cores = 0;
    long seen[1024];
    int n_seen = 0;
    while (fgets(line, sizeof(line), f)) {
        int v;
        /* The kernel writes these small numbers: sscanf cannot overflow here. */
        /* NOLINTBEGIN(cert-err34-c) */
        if (sscanf(line, "physical id : %d", &v) == 1)
            phys = v;
        else if (sscanf(line, "core id : %d", &v) == 1) {
            /* NOLINTEND(cert-err34-c) */
            long key = (long)phys * 65536 + v;
            int dup = 0;
            for (int i = 0; i < n_seen; i++)
                dup |= seen[i] == key;
            if (!dup && n_seen < 1024) {
                seen[n_seen++] = key;
                cores++;
            }
        }
    }
    fclose(f);
    return cores > 0 && cores <= logical ? cores : logical;
}

void bitnet_cpu_features_detect(bitnet_cpu_features *out, const char *simd_env)
{
    memset(out, 0, sizeof(*out));
    cpu_arch_detect(out);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    out->logical_cpus = n > 0 ? (int)n : 1;
    out->physical_cores = count_physical_cores(out->logical_cpus);
    out->active = out->detected;

    if (!simd_env || !*simd_env)
        return;
    snprintf(out->simd_override, sizeof(out->simd_override), "%s", simd_env);
    bitnet_simd_level want;
    if (bitnet_simd_level_parse(simd_env, &want) != 0) {
        snprintf(out->simd_override_error, sizeof(out->simd_override_error),
                 "BITNET_SIMD=%s is not one of scalar, avx2, avx512, neon; ignored", simd_env);
    } else if (!bitnet_simd_at_most(want, out->detected)) {
        snprintf(out->simd_override_error, sizeof(out->simd_override_error),
                 "BITNET_SIMD=%s would raise the level above what this CPU supports (%s); ignored",
                 simd_env, bitnet_simd_level_name(out->detected));
    } else {
        out->active = want;
    }
}

static bitnet_cpu_features host_features;
static pthread_once_t host_once = PTHREAD_ONCE_INIT;

static void host_detect(void)
{
    bitnet_cpu_features_detect(&host_features, getenv("BITNET_SIMD"));
}

const bitnet_cpu_features *bitnet_cpu_features_get(void)
{
    pthread_once(&host_once, host_detect);
    return &host_features;
}
