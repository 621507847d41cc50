#!/bin/sh
# Writes a seed corpus for fuzz_gguf: small models from bitnet-mkmodel of
# every architecture and type, a vocab-only file, and a few edge cases.
#   tests/fuzz/make_gguf_corpus.sh BUILD_DIR OUT_DIR
set -eu
build=${1:?usage: make_gguf_corpus.sh BUILD_DIR OUT_DIR}
out=${2:?usage: make_gguf_corpus.sh BUILD_DIR OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
ref=${BITNET_REFERENCE_DIR:-$here/../../.cache/reference}
mkmodel=$build/tools/bitnet-mkmodel
mkdir -p "$out"
# Small shapes keep inputs short: one layer, the narrowest width each
# format allows, 8 tokens and no tokenizer; one file with the built-in vocab.
for arch in bitnet bitnet-b1.58; do
  for type in i2s tq2_0 tq1_0 f16 f32; do
    case $type in i2s | f16 | f32) w=128 ;; *) w=256 ;; esac
    "$mkmodel" --arch "$arch" --preset tiny --type "$type" --seed 1 \
      --n-embd $w --n-ff $w --n-layer 1 --n-head 2 --n-head-kv 1 --n-vocab 8 --vocab none \
      -o "$out/$arch-$type.gguf"
  done
done
"$mkmodel" --arch bitnet-b1.58 --preset tiny --type i2s --seed 1 \
  --n-embd 128 --n-ff 128 --n-layer 1 --n-head 2 --n-head-kv 1 -o "$out/builtin-vocab.gguf"
if [ -f "$ref/llama.cpp/models/ggml-vocab-llama-spm.gguf" ]; then
  cp "$ref/llama.cpp/models/ggml-vocab-llama-spm.gguf" "$out/vocab-spm.gguf"
fi
# The header alone, and a file with no KVs and no tensors.
head -c 24 "$out/bitnet-f32.gguf" > "$out/header-only.gguf"
printf 'GGUF\003\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000' \
  > "$out/empty.gguf"
echo "corpus: $(ls "$out" | wc -l) files in $out"
