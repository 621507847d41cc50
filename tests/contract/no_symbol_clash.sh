#!/bin/sh
# Contract: no global symbol defined in bitnetd's libraries has the name of a
# symbol exported by the reference llama.cpp libraries. A process that loads
# libllama (the llama shim, crossval, bench-e2e) holds both; a clash lets one
# definition interpose on the other (ggml's gguf_get_arr_str once crashed
# inside llama_model_load this way).
# Usage: no_symbol_clash.sh BUILD_DIR REFERENCE_LIB_DIR
set -eu
build=$1 ref=$2
ours=$(mktemp) theirs=$(mktemp)
trap 'rm -f "$ours" "$theirs"' EXIT
find "$build" -name 'libbitnet_*.a' -exec nm -g --defined-only {} + 2>/dev/null |
    awk 'NF == 3 && $2 ~ /[TDRBV]/ {print $3}' | sort -u > "$ours"
for f in "$ref"/*.so; do nm -D --defined-only "$f"; done 2>/dev/null |
    awk 'NF == 3 {print $3}' | sort -u > "$theirs"
[ -s "$ours" ] || { echo "FAIL: no symbols found in $build"; exit 1; }
[ -s "$theirs" ] || { echo "FAIL: no symbols found in $ref"; exit 1; }
clash=$(comm -12 "$ours" "$theirs")
if [ -n "$clash" ]; then
    echo "FAIL: symbols defined both by bitnetd and by llama.cpp:"
    echo "$clash"
    exit 1
fi
echo "$(wc -l < "$ours") bitnetd symbols, $(wc -l < "$theirs") llama.cpp symbols: no clash"
