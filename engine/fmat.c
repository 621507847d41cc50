/* engine/fmat.c - picks the float matrix product implementation at run time. */
#include "bitnet/kernels.h"
#include "engine/fmat.h"

static const struct fmat_ops *const all_ops[] = {
#if defined(__x86_64__)
    &fmat_avx512,
    &fmat_avx2,
#endif
    &fmat_scalar,
};

const struct fmat_ops *const *fmat_all(int *n)
{
    *n = (int)(sizeof(all_ops) / sizeof(all_ops[0]));
    return all_ops;
}

int fmat_supported(const struct fmat_ops *ops)
{
#if defined(__x86_64__)
    const bitnet_cpu_features *cpu = bitnet_cpu_features_get();
    if (ops == &fmat_avx512)
        return cpu->active == BITNET_SIMD_AVX512 && cpu->f16c;
    if (ops == &fmat_avx2)
        return bitnet_simd_at_most(BITNET_SIMD_AVX2, cpu->active) && cpu->f16c;
#endif
    return ops == &fmat_scalar;
}

const struct fmat_ops *fmat_select(void)
{
    int n;
    const struct fmat_ops *const *all = fmat_all(&n);
    for (int i = 0; i < n; i++)
        if (fmat_supported(all[i]))
            return all[i];
    return &fmat_scalar;
}
