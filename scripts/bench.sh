#!/bin/sh
# `make bench`: runs the benchmarks and writes bench/REPORT.md, with PNG
# charts in bench/charts/ drawn by scripts/bench_charts.py (gnuplot). Models
# are written by bitnet-mkmodel into .cache/models (2b4t shapes: about 1.2 GB
# each) the first time. Figures depend on the machine being otherwise idle.
# Every benchmark writes markdown (the report's tables) and tab-separated
# values (the charts' data); every table and chart names the command that
# produced it, the machine and the run count.
#
# BENCH_SMOKE=1 runs everything on tiny models with one run each and short
# timings, and writes BUILD/bench-smoke/REPORT.md: a check that the
# pipeline works (tables, charts), its figures meaningless.
# shellcheck disable=SC2086 # the *_args are lists of words, split on purpose
set -eu
build=${1:-build}
started=$(date +%s)
top=$(cd "$(dirname "$0")/.." && pwd)
ref=$top/.cache/reference
vocab=$ref/llama.cpp/models/ggml-vocab-llama-bpe.gguf
spm_vocab=$ref/llama.cpp/models/ggml-vocab-llama-spm.gguf
mk=$build/tools/bitnet-mkmodel
sh "$top/scripts/deps.sh" # gnuplot-nox for the charts, among the rest
if [ -n "${BENCH_SMOKE:-}" ]; then
    models=$build/bench-smoke/models
    out=$build/bench-smoke/REPORT.md
    charts=$build/bench-smoke/charts
    preset=tiny load_preset=tiny load_seconds=2
    kernels_args="--quick"
    e2e_args="--runs 1 --agg-runs 1 --pp 32,64 --tg 16 --bw-mib 64"
    protocol_args="--calls 200 --runs 2"
    protocol_2b4t_args="--runs 2"
    reload_args="--preset tiny --seconds 2 --reloads 2"
    q8_pp=''
else
    models=$top/.cache/models
    out=$top/bench/REPORT.md
    charts=$top/bench/charts
    preset=2b4t load_preset=large load_seconds=30
    kernels_args='' protocol_args='' reload_args=''
    e2e_args="--agg-runs 5"
    q8_pp="--pp 128" # the head matters for decode; pp512 again would add minutes
    protocol_2b4t_args="--runs 5"
fi
mkdir -p "$models" "$(dirname "$out")"
m_i2s=$models/$preset-i2s.gguf
m_tq2=$models/$preset-tq2_0.gguf
m_load=$models/$load_preset-i2s.gguf
[ -f "$m_i2s" ] ||
    "$mk" --arch bitnet-b1.58 --preset $preset --type i2s --seed 1 --vocab "$vocab" -o "$m_i2s"
[ -f "$m_tq2" ] ||
    "$mk" --arch bitnet --preset $preset --type tq2_0 --seed 1 --vocab "$vocab" -o "$m_tq2"

tmp=$(mktemp -d)
loadd=
trap 'rm -rf "$tmp"; [ -z "$loadd" ] || kill -TERM "$loadd" 2>/dev/null' EXIT

# stage TEXT: what runs next, and the seconds since the start.
stage() {
    echo "== $* ($(($(date +%s) - started)) s)"
}

# record NAME COMMAND...: keeps COMMAND's line in $tmp/NAME.cmd, for the
# report and the charts to quote (paths in the checkout made relative, the
# temporary directory shown as $tmp). bench NAME COMMAND...: records and runs.
record() {
    name=$1
    shift
    line=
    for a in "$@"; do
        case $a in
        *[!A-Za-z0-9_./,=:+@%-]* | '') a="'$a'" ;;
        esac
        line="$line${line:+ }$a"
    done
    printf '%s\n' "$line" | sed "s|$top/||g; s|$tmp/|\$tmp/|g" > "$tmp/$name.cmd"
}
bench() {
    record "$@"
    shift
    "$@"
}

# Run counts: bench-kernels and bench-e2e default to medians of 5 runs (the
# S-sequence figures too, with --agg-runs 5), bench-protocol to 15 on the tiny
# model (5 on 2b4t), bench_reload.py to 10 reloads; bitnet-load makes one
# timed run per point. The stages print the seconds since the start, the
# end the total (estimated at 25 to 30 minutes on 2 cores).
stage "kernels"
bench kernels "$build/bench/bench-kernels" $kernels_args --out "$tmp/kernels.md" \
    --tsv "$tmp/kernels.tsv"
stage "tokenizer"
bench tokenizer "$build/bench/bench-tokenizer" > "$tmp/tokenizer.txt"
stage "end to end: I2_S $preset"
bench e2e-i2s "$build/bench/bench-e2e" --model "$m_i2s" --seqs 1,2,4,8 $e2e_args \
    --out "$tmp/e2e-i2s.md" --tsv "$tmp/e2e-i2s.tsv"
stage "end to end: I2_S $preset, Q8_0 LM head"
bench e2e-i2s-q8 "$build/bench/bench-e2e" --model "$m_i2s" --lm-head q8_0 \
    --seqs 1,8 $e2e_args $q8_pp --out "$tmp/e2e-i2s-q8.md" --tsv "$tmp/e2e-i2s-q8.tsv"
stage "end to end: TQ2_0 $preset, bitnetd and llama.cpp"
bench e2e-tq2 "$build/bench/bench-e2e" --model "$m_tq2" \
    --llama-model "$m_tq2" --backends "$ref/linux-x64/bins/linux-x64" \
    --seqs 1,8 $e2e_args --out "$tmp/e2e-tq2.md" --tsv "$tmp/e2e-tq2.tsv"
# The issue's second shape for TQ2_0 against llama.cpp (the smaller `large`
# model: 24 layers, decode far from the 2b4t file's memory ceiling).
stage "end to end: TQ2_0 $load_preset, bitnetd and llama.cpp"
m_tq2_load=$models/$load_preset-tq2_0.gguf
[ -f "$m_tq2_load" ] ||
    "$mk" --arch bitnet --preset $load_preset --type tq2_0 --seed 1 --vocab "$vocab" \
        -o "$m_tq2_load"
bench e2e-tq2-$load_preset "$build/bench/bench-e2e" --model "$m_tq2_load" \
    --llama-model "$m_tq2_load" --backends "$ref/linux-x64/bins/linux-x64" \
    --seqs 1 $e2e_args --out "$tmp/e2e-tq2-$load_preset.md" --tsv "$tmp/e2e-tq2-$load_preset.tsv"
stage "protocol: Varlink round trips and streaming overhead (tiny model)"
bench protocol "$build/bench/bench-protocol" $protocol_args --out "$tmp/protocol.md" \
    --tsv "$tmp/protocol.tsv"
stage "protocol: streaming overhead, I2_S $preset"
bench protocol-2b4t "$build/bench/bench-protocol" --model "$m_i2s" --conns 0 \
    --tokens 32 $protocol_2b4t_args --out "$tmp/protocol-2b4t.md" --tsv "$tmp/protocol-2b4t.tsv"
stage "load: bitnet-load against bitnetd, $load_preset I2_S model, 2 threads, 1/8/32 generations"
[ -f "$m_load" ] ||
    "$mk" --arch bitnet-b1.58 --preset $load_preset --type i2s --seed 1 --vocab "$spm_vocab" \
        -o "$m_load"
mkdir -p "$tmp/load"
printf 'n_seq_max = 8\nmax_queued_jobs = 16\nmax_jobs_per_uid = 64\n' > "$tmp/load/bitnetd.conf"
set -- "$build/daemon/bitnetd" --socket "$tmp/load/bitnetd.sock" --config "$tmp/load/bitnetd.conf" \
    --model "$m_load" --threads 2 --log-level warning
record load-daemon "$@"
"$@" 2> "$tmp/load/bitnetd.log" &
loadd=$!
i=0
until [ -S "$tmp/load/bitnetd.sock" ] || [ $i -ge 600 ]; do sleep 0.1; i=$((i + 1)); done
# The daemon's command and configuration, for the load chart's caption.
printf '%s (%s)\n' "$(cat "$tmp/load-daemon.cmd")" \
    "$(tr '\n' ';' < "$tmp/load/bitnetd.conf" | sed 's/;$//; s/;/, /g')" > "$tmp/load.daemon"
load_failed=
for g in 1 8 32; do
    bench load-$g "$build/bench/bitnet-load" --socket "$tmp/load/bitnetd.sock" --generations $g \
        --seconds $load_seconds --label "$load_preset I2_S, $g concurrent generations" \
        --out "$tmp/load-$g.md" --tsv "$tmp/load-$g.tsv" > /dev/null ||
        load_failed="$load_failed $g"
done
kill -TERM $loadd
wait $loadd
loadd=
stage "reload: ReloadLibrary latency and stream gaps (llama shim, TQ2_0)"
shim=$build/backends/llama/libbitnet-llama.so
reload_failed=
if [ -f "$shim" ]; then
    bench reload python3 "$top/bench/bench_reload.py" --bitnetd "$build/daemon/bitnetd" \
        --mkmodel "$mk" --shim "$shim" --vocab "$spm_vocab" $reload_args --out "$tmp/reload.md" ||
        reload_failed=1
else
    printf '# Library reload\n\nNot run: %s is missing (built without the llama shim).\n' \
        "$shim" > "$tmp/reload.md"
fi
[ -f "$tmp/reload.md" ] || printf '# Library reload\n\nbench_reload.py failed.\n' > "$tmp/reload.md"

stage "charts"
rm -rf "$charts"
charts_failed=
python3 "$top/scripts/bench_charts.py" "$tmp" "$charts" --md "$tmp/charts.md" || charts_failed=1
[ -f "$tmp/charts.md" ] ||
    printf '## Charts\n\nNot drawn: scripts/bench_charts.py failed.\n' > "$tmp/charts.md"

# section FILE NAME NOTE [WHAT]: FILE (markdown) as a section of the report:
# its title at level 2 (": WHAT" added), the command that produced it (NAME)
# and NOTE after the title, its own headings one level down.
section() {
    awk -v cmd="$(cat "$tmp/$2.cmd" 2>/dev/null || echo '(not recorded)')" -v note="$3" \
        -v what="${4:-}" '
        NR == 1 && /^#+ / { sub(/^#+ /, "## "); print $0 (what == "" ? "" : ": " what); print "";
                            print "Command: `" cmd "`." (note == "" ? "" : " " note); next }
        /^#+ / { sub(/^#/, "##") }
        { print }' "$tmp/$1"
    echo
}

elapsed=$(($(date +%s) - started))
total=$(printf '%dm%02ds' $((elapsed / 60)) $((elapsed % 60)))
{
    echo "# bitnetd benchmark report"
    echo
    echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')," \
        "$(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo) GiB RAM," \
        "Linux $(uname -r)."
    echo "Command: \`make bench\` (scripts/bench.sh $build)," \
        "$(date -u '+%Y-%m-%d %H:%M UTC'); total $total."
    echo "Each section names the command that produced it (\`\$tmp\` is the run's temporary"
    echo "directory) and its run count: medians of at least 5 runs, except where a section says"
    echo "otherwise. The charts' data and gnuplot scripts are in charts/ beside this report;"
    echo "charts/ is written by each run and kept out of git (run \`make bench\` to draw them)."
    echo
    cat "$tmp/charts.md"
    echo
    section kernels.md kernels ""
    section e2e-i2s.md e2e-i2s "" "I2_S $preset"
    section e2e-i2s-q8.md e2e-i2s-q8 "" "I2_S $preset, Q8_0 LM head"
    section e2e-tq2.md e2e-tq2 "" "TQ2_0 $preset, bitnetd and llama.cpp"
    section e2e-tq2-$load_preset.md e2e-tq2-$load_preset "" \
        "TQ2_0 $load_preset, bitnetd and llama.cpp"
    section protocol.md protocol "" "round trips and streaming, tiny model"
    section protocol-2b4t.md protocol-2b4t "" "streaming, I2_S $preset"
    for g in 1 8 32; do
        section load-$g.md load-$g "One run of $load_seconds s against the daemon started with \
\`$(cat "$tmp/load-daemon.cmd")\`; the percentiles are over every call of that run."
    done
    section reload.md reload "Medians over the reloads of one run."
    echo "## tokenizer"
    echo
    echo "Command: \`$(cat "$tmp/tokenizer.cmd")\`. Encode: the best of the runs it names."
    echo
    echo '```'
    cat "$tmp/tokenizer.txt"
    echo '```'
} > "$out"
echo "wrote $out"
echo "make bench: total time $total"
status=0
if [ -n "$load_failed" ]; then
    echo "bitnet-load lost calls with$load_failed concurrent generations: see the report" >&2
    status=1
fi
if [ -n "$reload_failed" ]; then
    echo "bench_reload.py failed: see above" >&2
    status=1
fi
if [ -n "$charts_failed" ]; then
    echo "scripts/bench_charts.py failed: see above" >&2
    status=1
fi
exit $status
