#!/bin/sh
# Builds the libFuzzer targets with clang (ASan+UBSan) and runs each for a
# while: `make fuzz FUZZ_SECONDS=N` (default 60 s per target).
#   tests/fuzz/run.sh BUILD_DIR SECONDS [TARGET...]
# Each target starts from its seed corpus (made at build time from real
# files), its regression inputs and what earlier runs found (kept in
# BUILD_DIR/fuzz-work/TARGET), with its dictionary. Prints, per target, the
# executions, the coverage (edges) and features libFuzzer reports, and the
# corpus size; fails when a target crashes, leaks, hangs or trips a sanitizer,
# leaving the input in BUILD_DIR/fuzz-crashes/TARGET/ and the log beside it.
# A crash input belongs in tests/fuzz/regressions/TARGET/ once fixed.
set -eu
build=${1:?usage: run.sh BUILD_DIR SECONDS [TARGET...]}
seconds=${2:?usage: run.sh BUILD_DIR SECONDS [TARGET...]}
shift 2
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
jobs=${JOBS:-2}
targets=${*:-fuzz_varlink fuzz_gguf fuzz_elf fuzz_tokenizer fuzz_config}

cmake -S "$src" -B "$build" -DCMAKE_C_COMPILER=clang -DBITNET_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo ${CMAKE_ARGS:-} > /dev/null
# shellcheck disable=SC2086
cmake --build "$build" -j"$jobs" --target fuzz_corpora $targets

status=0
summary=""
for t in $targets; do
    case $t in
    fuzz_varlink) bin=$build/tests/daemon/$t dict=json.dict opts="-max_len=65536" ;;
    fuzz_gguf) bin=$build/tests/fuzz/$t dict=gguf.dict opts="-max_len=65536" ;;
    fuzz_elf) bin=$build/tests/fuzz/$t dict=elf.dict opts="-max_len=65536" ;;
    fuzz_tokenizer) bin=$build/tests/fuzz/$t dict=tokenizer.dict opts="-max_len=4096" ;;
    fuzz_config) bin=$build/tests/fuzz/$t dict=config.dict opts="-max_len=8192" ;;
    *) echo "run.sh: unknown target $t" >&2; exit 2 ;;
    esac
    work=$build/fuzz-work/$t
    crashes=$build/fuzz-crashes/$t
    log=$build/fuzz-logs/$t.log
    mkdir -p "$work" "$crashes" "$(dirname "$log")"
    echo "== $t: $seconds s"
    rc=0
    # The first directory receives new inputs; the seeds and regressions are
    # only read. -timeout makes a hang a failure; -rss_limit_mb one that grows.
    # shellcheck disable=SC2086
    "$bin" $opts -dict="$here/$dict" -max_total_time="$seconds" -timeout=20 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$crashes/" \
        "$work" "$build/fuzz-corpus/$t" "$here/regressions/$t" > "$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
    line=$(printf '%-15s %4ss  execs %-10s (%s/s)  cov %-6s ft %-7s corpus %s' "$t" \
        "$seconds" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}")
    if [ "$rc" -ne 0 ]; then
        line="$line  FAILED (exit $rc)"
        status=1
        echo "$t failed; the log is $log, the input in $crashes/:"
        grep -E 'ERROR|SUMMARY|Test unit written|deadly signal|timeout' "$log" | head -n 20 || true
    fi
    echo "$line"
    summary="$summary$line
"
done
echo "== fuzz summary ($seconds s per target; logs in $build/fuzz-logs)"
printf '%s' "$summary"
exit $status
