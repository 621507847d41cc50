#!/bin/sh
# Fetches the reference llama.cpp release that tests and benchmarks compare
# against, into a git-ignored cache. Nothing here is ever committed.
#
#   @node-llama-cpp/linux-x64@3.22.1       prebuilt CPU libllama + libggml*
#   node-llama-cpp@3.22.1                  llama/gitRelease.bundle: the matching
#                                          llama.cpp source (llama.h, vocab test files)
#   @node-llama-cpp/linux-x64-cuda@3.22.1  the CUDA build (libggml-cuda.so, about
#                                          143 MB packed; skip it with FETCH_CUDA=0)
#
# Each tarball is fetched with `npm pack` and checked against the sha512 pinned
# below before it is unpacked. Re-running is cheap: finished steps are skipped.
# Usage: [FETCH_CUDA=0] scripts/fetch-reference.sh [DEST]   (default: .cache/reference)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-${BITNET_REFERENCE_DIR:-$top/.cache/reference}}
mkdir -p "$dest/npm"

if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
    else
        echo "fetch-reference: npm is needed. Run as root: apt-get install -y npm"
        exit 1
    fi
fi

# name version sha512(base64) directory
fetch() {
    name=$1 version=$2 sum=$3 dir=$4
    [ -f "$dest/$dir/.complete" ] && return 0
    tgz=$(echo "$name" | sed 's/^@//; s#/#-#')-$version.tgz
    if [ ! -f "$dest/npm/$tgz" ]; then
        echo "fetch-reference: npm pack $name@$version"
        (cd "$dest/npm" && npm pack --silent "$name@$version" >/dev/null)
    fi
    got=$(python3 -c 'import base64, hashlib, sys
print(base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$dest/npm/$tgz")
    if [ "$got" != "$sum" ]; then
        echo "fetch-reference: checksum mismatch for $tgz (got sha512-$got)"
        rm -f "$dest/npm/$tgz"
        exit 1
    fi
    rm -rf "$dest/$dir"
    mkdir -p "$dest/$dir"
    tar xzf "$dest/npm/$tgz" -C "$dest/$dir" --strip-components=1
    touch "$dest/$dir/.complete"
}

fetch @node-llama-cpp/linux-x64 3.22.1 \
    5uCCDNqWCNfaAm8aR/Uzxbo4HBpKgNF91kCHPepKhgMgV2OAmatoefbOlMihsqCiH2Od35E/eUHQCFbfRBJuOg== \
    linux-x64
fetch node-llama-cpp 3.22.1 \
    bltIipuWmc123H7tMIgDGKSsSrhmhlQYeVUC48XTjVW7XGJJiJJyCdlTMzQ/LiWoPkGDpcL4FviDpgw7qfTiDw== \
    node-llama-cpp
if [ "${FETCH_CUDA:-1}" != 0 ]; then
    fetch @node-llama-cpp/linux-x64-cuda 3.22.1 \
        8rQCjyNNLZJUFit+YpjwlC4hwkKgOMIkB2wuycKBf8NU2O3ySKbiWZQ8aw9ku2nUTXjSnUIrE6KB88itduTBuA== \
        linux-x64-cuda
fi

# The llama.cpp source matching the prebuilt libraries.
if [ ! -f "$dest/llama.cpp/.complete" ]; then
    rm -rf "$dest/llama.cpp"
    git clone -q "$dest/node-llama-cpp/llama/gitRelease.bundle" "$dest/llama.cpp" 2>/dev/null
    touch "$dest/llama.cpp/.complete"
fi
