#!/bin/sh
# Writes the models the forward-pass tests use, with bitnet-mkmodel, into
# OUTDIR. Skips files that already exist and are newer than the tool.
# Usage: make_models.sh MKMODEL OUTDIR VOCABDIR
set -eu
mk=$1 out=$2 vocab=$3
mkdir -p "$out"
make_one() {
    name=$1; shift
    if [ ! -f "$out/$name" ] || [ "$mk" -nt "$out/$name" ]; then
        "$mk" "$@" -o "$out/$name.tmp"
        mv "$out/$name.tmp" "$out/$name"
    fi
}
# bitnet-b1.58 with I2_S weights: the engine against the float reference.
make_one tiny-b158-i2s.gguf --arch bitnet-b1.58 --preset tiny --type i2s --seed 7
# bitnet (llama.cpp's arch) with real vocabularies: the engine against llama.cpp.
for t in tq2_0 tq1_0 f16; do
    make_one tiny-bitnet-$t-bpe.gguf --arch bitnet --preset tiny --type $t --seed 11 \
        --vocab "$vocab/ggml-vocab-llama-bpe.gguf"
    make_one tiny-bitnet-$t-spm.gguf --arch bitnet --preset tiny --type $t --seed 12 \
        --vocab "$vocab/ggml-vocab-llama-spm.gguf"
done
# The `large` shape (bitnet_b1_58-large: 1536/4096, 24 layers) with the SPM
# vocabulary: crossval on a real model size, not only the tiny one.
for t in tq2_0 tq1_0 ${BITNET_SLOW_TESTS:+f16}; do
    make_one large-bitnet-$t-spm.gguf --arch bitnet --preset large --type $t --seed 13 \
        --vocab "$vocab/ggml-vocab-llama-spm.gguf"
done
