/*
 * kernels/cpu_arm.c - ARM64 feature detection through getauxval().
 *
 * NEON (ASIMD) is part of every ARMv8-A CPU; DOTPROD (SDOT/UDOT) is optional
 * and read from HWCAP_ASIMDDP.
 */
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>

#include "kernels/cpu_internal.h"

#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif

void cpu_arch_detect(bitnet_cpu_features *out)
{
    strcpy(out->arch, "aarch64");
    unsigned long hw = getauxval(AT_HWCAP);
    out->neon = hw & HWCAP_ASIMD;
    out->dotprod = hw & HWCAP_ASIMDDP;
    out->detected = out->neon ? BITNET_SIMD_NEON : BITNET_SIMD_SCALAR;
}
