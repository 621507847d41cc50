#!/bin/sh
# Contract: the CPU binaries (bitnetctl, bitnetd, and every library they
# install apart from libbitnet-cuda.so) carry no CUDA: neither a CUDA library
# in DT_NEEDED nor a CUDA symbol. Installs the build into a scratch prefix and
# reads every ELF file there.
set -eu
build=$1
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
cmake --install "$build" --prefix "$dest" >/dev/null
n=0
for f in $(find "$dest" -type f); do
    head -c 4 "$f" | grep -q 'ELF' || continue
    case $(basename "$f") in libbitnet-cuda.so*) continue ;; esac
    n=$((n + 1))
    if readelf -d "$f" | grep NEEDED | grep -Eiq 'cuda|cublas|nvrtc|libnv'; then
        echo "FAIL: $f needs a CUDA library"; readelf -d "$f" | grep NEEDED; exit 1
    fi
    if readelf -W --dyn-syms "$f" | awk '{print $8}' | grep -Eq '^(cuda|cublas|__cudaRegister)'; then
        echo "FAIL: $f has CUDA symbols"; exit 1
    fi
done
[ "$n" -gt 0 ] || { echo "FAIL: no ELF files installed"; exit 1; }
echo "checked $n installed ELF files: no CUDA"
