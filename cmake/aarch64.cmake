# Toolchain file for cross-compiling to 64-bit ARM Linux with Debian's
# gcc-aarch64-linux-gnu; programs run under qemu-aarch64 (qemu-user).
#
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64.cmake
#
# Link statically (-static) to run without an arm64 sysroot; otherwise give
# qemu the sysroot with QEMU_LD_PREFIX=/usr/aarch64-linux-gnu.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(BITNET_AARCH64_PREFIX "aarch64-linux-gnu-" CACHE STRING "Cross toolchain prefix")
set(CMAKE_C_COMPILER "${BITNET_AARCH64_PREFIX}gcc")
set(CMAKE_CXX_COMPILER "${BITNET_AARCH64_PREFIX}g++")

set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

find_program(BITNET_QEMU_AARCH64 qemu-aarch64)
if(BITNET_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${BITNET_QEMU_AARCH64};-L;/usr/aarch64-linux-gnu")
endif()
