#!/bin/sh
# `make demo`: shows what bitnetd does on this machine, end to end. make has
# built everything; this script writes a tiny random model, starts bitnetd
# as a user instance on a private socket with it, talks to it with
# bitnetctl (status, capabilities, a streamed generation, ps during a longer
# one), then stops it with SIGTERM and checks that it exited 0.
set -eu
build=${1:-build}
ctl="$build/client/bitnetctl"
daemon="$build/daemon/bitnetd"
mkmodel="$build/tools/bitnet-mkmodel"

step() {
    printf '\n== %s\n' "$*"
}

for tool in "$ctl" "$daemon" "$mkmodel"; do
    if [ ! -x "$tool" ]; then
        echo "demo: $tool is missing: build first (make build)" >&2
        exit 1
    fi
done

runtime=$(mktemp -d "${TMPDIR:-/tmp}/bitnetd-demo.XXXXXX")
pid=
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$runtime"
}
trap cleanup EXIT INT TERM

model="$(cd "$build" && pwd)/demo-model.gguf"
step "bitnetctl --version"
"$ctl" --version

step "Writing a small model (8 layers, 1024 wide, random ternary weights): $model"
"$mkmodel" --arch bitnet-b1.58 --preset tiny --type i2s --seed 2 --n-ctx 4096 --n-layer 8 \
    --n-embd 1024 --n-ff 2816 -o "$model"
echo "NOTE: the weights are random, so every generated text below is noise;"
echo "      the demo shows the machinery, not a language model's output."

step "Starting bitnetd --user (XDG_RUNTIME_DIR=$runtime) with that model"
export XDG_RUNTIME_DIR="$runtime"
export BITNETD_SOCKET="$runtime/bitnetd.sock"
"$daemon" --user --config /dev/null --threads 1 --model "$model" 2>"$runtime/bitnetd.log" &
pid=$!
tries=0
until "$ctl" status >/dev/null 2>&1; do
    tries=$((tries + 1))
    if ! kill -0 "$pid" 2>/dev/null || [ "$tries" -gt 100 ]; then
        echo "demo: bitnetd did not start; its log:" >&2
        cat "$runtime/bitnetd.log" >&2
        exit 1
    fi
    sleep 0.1
done
echo "bitnetd (pid $pid) answers on $BITNETD_SOCKET"

step "bitnetctl status"
"$ctl" status

step "bitnetctl capabilities"
"$ctl" capabilities

step "bitnetctl models"
"$ctl" models

step "bitnetctl tokenize 'Hello world'"
"$ctl" tokenize "Hello world"

step "bitnetctl generate -n 32 'Once upon a time' (streamed as it is generated)"
"$ctl" generate -n 32 "Once upon a time"

step "A longer generation in the background, and bitnetctl ps while it runs"
"$ctl" generate -n 3000 "Count" >"$runtime/long.txt" 2>"$runtime/long.err" &
gen=$!
tries=0
until "$ctl" --json ps | grep -q '"decode"'; do
    tries=$((tries + 1))
    if [ "$tries" -gt 200 ]; then
        break
    fi
    sleep 0.05
done
"$ctl" ps
job=$("$ctl" --json ps | sed -n 's/.*"id": *\([0-9]*\).*/\1/p' | head -n 1)
if [ -n "$job" ]; then
    step "bitnetctl call io.bitnetd.Inference.Cancel '{\"job\": $job}'"
    "$ctl" call io.bitnetd.Inference.Cancel "{\"job\": $job}"
fi
wait "$gen" || true
echo "the background generation ended: $(cat "$runtime/long.err")"

step "Stopping bitnetd with SIGTERM"
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=
if [ "$status" -ne 0 ]; then
    echo "demo: bitnetd exited with status $status; its log:" >&2
    cat "$runtime/bitnetd.log" >&2
    exit 1
fi
echo "bitnetd exited with status 0. Its log:"
sed 's/^/  /' "$runtime/bitnetd.log"
