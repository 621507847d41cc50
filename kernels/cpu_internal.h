/* kernels/cpu_internal.h - the architecture-specific half of CPU detection. */
#ifndef BITNET_KERNELS_CPU_INTERNAL_H
#define BITNET_KERNELS_CPU_INTERNAL_H

#include "bitnet/kernels.h"

/* Fills the hardware fields of *out (features, vendor, brand, detected level).
 * Implemented once per architecture: cpu_x86.c, cpu_arm.c or cpu_generic.c. */
void cpu_arch_detect(bitnet_cpu_features *out);

#endif
