/* protocol/report.c - builds the kernels and capabilities JSON reports. */
#include <string.h>

#include "bitnet/config.h"
#include "protocol/report.h"

json_t *report_kernels(const bitnet_cpu_features *cpu)
{
    json_t *arr = json_array();
    for (int i = 0; i < BITNET_KERNEL_COUNT; i++) {
        const bitnet_kernel *k = bitnet_kernel_get((bitnet_kernel_id)i);
        bitnet_kernel_status st;
        bitnet_kernel_status_get(k, cpu, &st);
        json_t *o =
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:b}", "id", k->name,
                      "roadmap_name", k->roadmap_name, "format", bitnet_format_name(k->format),
                      "isa", bitnet_isa_name(k->isa), "device", bitnet_device_name(k->device),
                      "provider", bitnet_provider_name(k->provider), "compiled", st.compiled,
                      "supported", st.supported, "available", st.available);
        json_object_set_new(o, "reason", st.reason[0] ? json_string(st.reason) : json_null());
        json_array_append_new(arr, o);
    }
    return arr;
}

json_t *report_cpu(const bitnet_cpu_features *cpu)
{
    if (!cpu)
        cpu = bitnet_cpu_features_get();
    json_t *feat =
        json_pack("{s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b}",
                  "sse4_2", cpu->sse42, "avx", cpu->avx, "fma", cpu->fma, "f16c", cpu->f16c, "avx2",
                  cpu->avx2, "avx512f", cpu->avx512f, "avx512bw", cpu->avx512bw, "avx512vl",
                  cpu->avx512vl, "avx512dq", cpu->avx512dq, "avx512_vnni", cpu->avx512_vnni,
                  "avx_vnni", cpu->avx_vnni, "os_saves_ymm", cpu->os_saves_ymm, "os_saves_zmm",
                  cpu->os_saves_zmm, "neon", cpu->neon, "asimddp", cpu->dotprod);
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:i, s:s, s:s, s:o}", "arch", cpu->arch, "vendor",
                          cpu->vendor, "brand", cpu->brand, "logical_cpus", cpu->logical_cpus,
                          "physical_cores", cpu->physical_cores, "simd_detected",
                          bitnet_simd_level_name(cpu->detected), "simd_active",
                          bitnet_simd_level_name(cpu->active), "features", feat);
    json_object_set_new(o, "simd_override",
                        cpu->simd_override[0] ? json_string(cpu->simd_override) : json_null());
    json_object_set_new(o, "simd_override_error",
                        cpu->simd_override_error[0] ? json_string(cpu->simd_override_error)
                                                    : json_null());
    return o;
}

/* Splits the space-separated BITNET_COMPILED_KERNELS into a JSON array. */
static json_t *compiled_kernel_list(void)
{
    json_t *arr = json_array();
    const char *s = BITNET_COMPILED_KERNELS;
    while (*s) {
        while (*s == ' ')
            s++;
        size_t n = strcspn(s, " ");
        if (n)
            json_array_append_new(arr, json_stringn(s, n));
        s += n;
    }
    return arr;
}

json_t *report_build(void)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:{s:b, s:s}, s:{s:b, s:s}}", "version",
                     BITNET_VERSION, "compiler", BITNET_COMPILER, "build_type", BITNET_BUILD_TYPE,
                     "target_arch", BITNET_TARGET_ARCH, "sanitize", BITNET_SANITIZE,
                     "compiled_kernels", compiled_kernel_list(), "cuda_backend", "built",
                     BITNET_CUDA_BUILT, "reason", BITNET_CUDA_REASON, "llama_shim", "built",
                     BITNET_LLAMA_BUILT, "reason", BITNET_LLAMA_REASON);
}

json_t *report_capabilities(const bitnet_cpu_features *cpu)
{
    if (!cpu)
        cpu = bitnet_cpu_features_get();
    json_t *best = json_object();
    static const bitnet_format formats[] = {BITNET_FORMAT_I2S, BITNET_FORMAT_TQ2_0,
                                            BITNET_FORMAT_TQ1_0, BITNET_FORMAT_TL1,
                                            BITNET_FORMAT_TL2};
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        const bitnet_kernel *k = bitnet_kernel_select(formats[i], cpu);
        json_object_set_new(best, bitnet_format_name(formats[i]),
                            k ? json_string(k->name) : json_null());
    }
    json_t *cuda = json_pack("{s:[], s:s}", "devices", "reason",
                             BITNET_CUDA_BUILT ? "the CUDA backend library is not loaded"
                                               : "this build has no CUDA backend library");
    json_t *native = json_pack("{s:s, s:s, s:b, s:s}", "id", "native", "provider", "bitnetd",
                               "available", 1, "library", "(built in)");
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:[o]}", "build", report_build(), "cpu",
                     report_cpu(cpu), "cuda", cuda, "kernels", report_kernels(cpu), "best_kernel",
                     best, "backends", native);
}
