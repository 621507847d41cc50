# The kernels this tree carries, one bitnet_add_kernel() per registry id
# (see kernels/CMakeLists.txt for the contract).

# TQ2_0 / TQ1_0 (llama.cpp formats). -ffp-contract=off keeps the float
# rounding of the packers and of the per-block scaling what the reference does.
bitnet_add_kernel(tq2_0.scalar any SOURCES tq2_0_scalar.c tq_pack.c FLAGS -ffp-contract=off)
bitnet_add_kernel(tq1_0.scalar any SOURCES tq1_0_scalar.c FLAGS -ffp-contract=off)
bitnet_add_kernel(tq2_0.avx2 x86 SOURCES tq2_0_avx2.c FLAGS ${BITNET_FLAGS_AVX2})
bitnet_add_kernel(tq2_0.avx512 x86 SOURCES tq2_0_avx512.c FLAGS ${BITNET_FLAGS_AVX512})
bitnet_add_kernel(tq1_0.avx2 x86 SOURCES tq1_0_avx2.c FLAGS ${BITNET_FLAGS_AVX2})
bitnet_add_kernel(tq1_0.avx512 x86 SOURCES tq1_0_avx512.c FLAGS ${BITNET_FLAGS_AVX512})
bitnet_add_kernel(tq2_0.neon arm64 SOURCES tq2_0_neon.c FLAGS ${BITNET_FLAGS_NEON} -ffp-contract=off)
bitnet_add_kernel(tq1_0.neon arm64 SOURCES tq1_0_neon.c FLAGS ${BITNET_FLAGS_NEON} -ffp-contract=off)

# I2_S (bitnet.cpp's format), walked 256 weights at a step. -ffp-contract=off
# keeps the post-scaling in i2s_output() rounding the same in every kernel.
bitnet_add_kernel(i2s_qk256.scalar any SOURCES i2s_scalar.c i2s_pack.c FLAGS -ffp-contract=off)
bitnet_add_kernel(i2s_qk256.avx2 x86 SOURCES i2s_avx2.c FLAGS ${BITNET_FLAGS_AVX2} -ffp-contract=off)
bitnet_add_kernel(i2s_qk256.avx512 x86 SOURCES i2s_avx512.c FLAGS ${BITNET_FLAGS_AVX512} -ffp-contract=off)
bitnet_add_kernel(i2s_qk256.neon arm64 SOURCES i2s_neon.c FLAGS -ffp-contract=off)

# Lookup-table kernels (T-MAC style) over weights repacked from I2_S at load;
# activations and numerics are I2_S's. tl_pack.c (the repack and the scalar
# references) is shared by all of them and built without instruction-set
# flags, so it is added to the library's sources directly.
list(APPEND _kernel_sources tl_pack.c)
set_property(SOURCE tl_pack.c APPEND PROPERTY COMPILE_OPTIONS -ffp-contract=off)
bitnet_add_kernel(tl1.avx2 x86 SOURCES tl1_avx2.c FLAGS ${BITNET_FLAGS_AVX2} -ffp-contract=off)
bitnet_add_kernel(tl1.avx512 x86 SOURCES tl1_avx512.c FLAGS ${BITNET_FLAGS_AVX512} -ffp-contract=off)
bitnet_add_kernel(tl2.avx512 x86 SOURCES tl2_avx512.c FLAGS ${BITNET_FLAGS_AVX512} -ffp-contract=off)
bitnet_add_kernel(tl1.neon arm64 SOURCES tl1_neon.c FLAGS ${BITNET_FLAGS_NEON} -ffp-contract=off)
