#!/bin/sh
# `make bench`: runs the benchmarks and writes bench/REPORT.md. Models are
# written by bitnet-mkmodel into .cache/models (2b4t shapes: about 1.2 GB
# each) the first time. Figures depend on the machine being otherwise idle.
set -eu
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
ref=$top/.cache/reference
models=$top/.cache/models
out=$top/bench/REPORT.md
mkdir -p "$models"
mk=$build/tools/bitnet-mkmodel
vocab=$ref/llama.cpp/models/ggml-vocab-llama-bpe.gguf
[ -f "$models/2b4t-i2s.gguf" ] ||
    "$mk" --arch bitnet-b1.58 --preset 2b4t --type i2s --seed 1 --vocab "$vocab" -o "$models/2b4t-i2s.gguf"
[ -f "$models/2b4t-tq2_0.gguf" ] ||
    "$mk" --arch bitnet --preset 2b4t --type tq2_0 --seed 1 --vocab "$vocab" -o "$models/2b4t-tq2_0.gguf"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "== kernels"
"$build/bench/bench-kernels" --out "$tmp/kernels.md"
echo "== tokenizer"
"$build/bench/bench-tokenizer" > "$tmp/tokenizer.txt"
echo "== end to end: I2_S 2b4t"
"$build/bench/bench-e2e" --model "$models/2b4t-i2s.gguf" --out "$tmp/e2e-i2s.md"
echo "== end to end: I2_S 2b4t, Q8_0 LM head"
"$build/bench/bench-e2e" --model "$models/2b4t-i2s.gguf" --lm-head q8_0 --seqs 1,8 \
    --out "$tmp/e2e-i2s-q8.md"
echo "== end to end: TQ2_0 2b4t, bitnetd and llama.cpp"
"$build/bench/bench-e2e" --model "$models/2b4t-tq2_0.gguf" --llama-model "$models/2b4t-tq2_0.gguf" \
    --backends "$ref/linux-x64/bins/linux-x64" --seqs 1,8 --out "$tmp/e2e-tq2.md"
echo "== protocol: Varlink round trips and streaming overhead (tiny model)"
"$build/bench/bench-protocol" --out "$tmp/protocol.md"
echo "== protocol: streaming overhead, I2_S 2b4t"
"$build/bench/bench-protocol" --model "$models/2b4t-i2s.gguf" --conns 0 --tokens 32 --runs 3 \
    --out "$tmp/protocol-2b4t.md"
echo "== load: bitnet-load against bitnetd, large I2_S model, 2 threads, 1/8/32 generations"
[ -f "$models/large-i2s.gguf" ] ||
    "$mk" --arch bitnet-b1.58 --preset large --type i2s --seed 1 \
        --vocab "$ref/llama.cpp/models/ggml-vocab-llama-spm.gguf" -o "$models/large-i2s.gguf"
mkdir -p "$tmp/load"
printf 'n_seq_max = 8\nmax_queued_jobs = 16\nmax_jobs_per_uid = 64\n' > "$tmp/load/bitnetd.conf"
"$build/daemon/bitnetd" --socket "$tmp/load/bitnetd.sock" --config "$tmp/load/bitnetd.conf" \
    --model "$models/large-i2s.gguf" --threads 2 --log-level warning 2> "$tmp/load/bitnetd.log" &
loadd=$!
i=0
until [ -S "$tmp/load/bitnetd.sock" ] || [ $i -ge 600 ]; do sleep 0.1; i=$((i + 1)); done
load_failed=
for g in 1 8 32; do
    "$build/bench/bitnet-load" --socket "$tmp/load/bitnetd.sock" --generations $g --seconds 30 \
        --label "large I2_S, $g concurrent generations" --out "$tmp/load-$g.md" > /dev/null ||
        load_failed="$load_failed $g"
done
kill -TERM $loadd
wait $loadd
{
    echo "# bitnetd benchmark report"
    echo
    echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs."
    echo "Command: make bench ($(date -u +%Y-%m-%d))."
    echo
    for f in kernels.md e2e-i2s.md e2e-i2s-q8.md e2e-tq2.md protocol.md protocol-2b4t.md \
        load-1.md load-8.md load-32.md; do
        sed 's/^# /## /' "$tmp/$f"
        echo
    done
    echo "## tokenizer"
    echo
    echo '```'
    cat "$tmp/tokenizer.txt"
    echo '```'
} > "$out"
echo "wrote $out"
if [ -n "$load_failed" ]; then
    echo "bitnet-load lost calls with$load_failed concurrent generations: see the report" >&2
    exit 1
fi
