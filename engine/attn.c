/* engine/attn.c - picks the attention implementation at run time, and names
 * the KV cache types. */
#include <string.h>

#include "bitnet/error.h"
#include "bitnet/kernels.h"
#include "engine/attn.h"

static const struct attn_ops *const all_ops[] = {
#if defined(__x86_64__)
    &attn_avx512,
    &attn_avx2,
#endif
#if defined(__aarch64__)
    &attn_neon,
#endif
    &attn_scalar,
};

const struct attn_ops *const *attn_all(int *n)
{
    *n = (int)(sizeof(all_ops) / sizeof(all_ops[0]));
    return all_ops;
}

int attn_supported(const struct attn_ops *ops)
{
    const bitnet_cpu_features *cpu = bitnet_cpu_features_get();
#if defined(__x86_64__)
    /* Both read half caches with vcvtph2ps (F16C). */
    if (ops == &attn_avx512)
        return cpu->active == BITNET_SIMD_AVX512 && cpu->f16c;
    if (ops == &attn_avx2)
        return bitnet_simd_at_most(BITNET_SIMD_AVX2, cpu->active) && cpu->f16c;
#endif
#if defined(__aarch64__)
    if (ops == &attn_neon)
        return cpu->active == BITNET_SIMD_NEON;
#endif
    (void)cpu;
    return ops == &attn_scalar;
}

const struct attn_ops *attn_select(void)
{
    int n;
    const struct attn_ops *const *all = attn_all(&n);
    for (int i = 0; i < n; i++)
        if (attn_supported(all[i]))
            return all[i];
    return &attn_scalar;
}

int attn_kv_type_parse(const char *s, attn_kv_type *out)
{
    if (!s || strcmp(s, "f32") == 0) {
        *out = ATTN_KV_F32;
        return 0;
    }
    if (strcmp(s, "f16") == 0) {
        *out = ATTN_KV_F16;
        return 0;
    }
    return BITNET_EPARAM;
}

const char *attn_kv_type_name(attn_kv_type t)
{
    return t == ATTN_KV_F16 ? "f16" : "f32";
}
