/* kernels/cpu_generic.c - detection for architectures without SIMD kernels. */
#include <string.h>

#include "kernels/cpu_internal.h"

void cpu_arch_detect(bitnet_cpu_features *out)
{
    strcpy(out->arch, "unknown");
    out->detected = BITNET_SIMD_SCALAR;
}
