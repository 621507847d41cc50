/*
 * kernels/cpu_x86.c - x86-64 feature detection with CPUID and XGETBV.
 *
 * AVX and AVX-512 count as supported only when the OS saves the wider
 * register state (XCR0), so a kernel never faults on a CPU whose kernel
 * leaves zmm registers off.
 */
#include <cpuid.h>
#include <string.h>

#include "kernels/cpu_internal.h"

static uint64_t read_xcr0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

void cpu_arch_detect(bitnet_cpu_features *out)
{
    unsigned a, b, c, d;
    strcpy(out->arch, "x86_64");
    if (!__get_cpuid(0, &a, &b, &c, &d))
        return;
    unsigned max_leaf = a;
    memcpy(out->vendor + 0, &b, 4);
    memcpy(out->vendor + 4, &d, 4);
    memcpy(out->vendor + 8, &c, 4);
    out->vendor[12] = 0;

    __cpuid(1, a, b, c, d);
    out->sse42 = c & bit_SSE4_2;
    out->fma = c & bit_FMA;
    out->f16c = c & bit_F16C;
    bool osxsave = c & bit_OSXSAVE;
    bool avx_hw = c & bit_AVX;
    uint64_t xcr0 = osxsave ? read_xcr0() : 0;
    out->os_saves_ymm = (xcr0 & 0x6) == 0x6;   /* SSE and AVX state */
    out->os_saves_zmm = (xcr0 & 0xe6) == 0xe6; /* plus opmask, ZMM_Hi256, Hi16_ZMM */
    out->avx = avx_hw && out->os_saves_ymm;

    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        out->avx2 = out->avx && (b & bit_AVX2);
        bool zmm = out->os_saves_zmm;
        out->avx512f = zmm && (b & bit_AVX512F);
        out->avx512dq = zmm && (b & bit_AVX512DQ);
        out->avx512bw = zmm && (b & bit_AVX512BW);
        out->avx512vl = zmm && (b & bit_AVX512VL);
        out->avx512_vnni = zmm && (c & bit_AVX512VNNI);
        out->gfni = c & bit_GFNI;
        __cpuid_count(7, 1, a, b, c, d);
        out->avx_vnni = out->avx && (a & (1u << 4));
    }

    unsigned ext_max = __get_cpuid_max(0x80000000, NULL);
    if (ext_max >= 0x80000004) {
        unsigned regs[12];
        for (unsigned i = 0; i < 3; i++)
            __cpuid(0x80000002 + i, regs[4 * i], regs[4 * i + 1], regs[4 * i + 2], regs[4 * i + 3]);
        memcpy(out->brand, regs, 48);
        out->brand[48] = 0;
        /* Trim the padding some CPUs put around the brand string. */
        char *s = out->brand;
        while (*s == ' ')
            s++;
        memmove(out->brand, s, strlen(s) + 1);
        for (size_t n = strlen(out->brand); n > 0 && out->brand[n - 1] == ' '; n--)
            out->brand[n - 1] = 0;
    }

    if (out->avx512f && out->avx512bw && out->avx512vl && out->avx2 && out->fma)
        out->detected = BITNET_SIMD_AVX512;
    else if (out->avx2 && out->fma)
        out->detected = BITNET_SIMD_AVX2;
    else
        out->detected = BITNET_SIMD_SCALAR;
}
