#!/bin/sh
# Cross-builds test_i2s for aarch64 and runs it under qemu-aarch64.
# usage: run_aarch64.sh SOURCE_ROOT BUILD_DIR [CMAKE [CTEST]]
set -eu
src=$1
build=$2
cmake=${3:-cmake}
ctest=${4:-ctest}
"$cmake" -S "$src/tests/kernels/aarch64" -B "$build" \
    -DCMAKE_TOOLCHAIN_FILE="$src/cmake/aarch64.cmake" >"$build.configure.log" 2>&1 ||
    { cat "$build.configure.log"; exit 1; }
"$cmake" --build "$build" -j2
"$ctest" --test-dir "$build" --output-on-failure
