/* kernels/kernel_table.h - the kernels this build compiled (generated table). */
#ifndef BITNET_KERNELS_KERNEL_TABLE_H
#define BITNET_KERNELS_KERNEL_TABLE_H

#include <stddef.h>

#include "bitnet/kernels.h"

struct bitnet_compiled_kernel {
    const char *name;             /* registry id, "i2s_qk256.avx2" */
    const bitnet_kernel_ops *ops; /* the kernel's functions */
};

/* Defined in the generated kernel_table.c (see kernels/CMakeLists.txt). */
extern const struct bitnet_compiled_kernel bitnet_compiled_kernels[];
extern const size_t bitnet_compiled_kernel_count;

#endif
