#!/bin/sh
# bitnetctl inspect on real files: a valid mkmodel file (exit 0, its shapes
# and kernels shown), a truncated copy and a vocab-only file (exit 1 with the
# reason), and a missing argument (exit 2).
#   inspect.sh BITNETCTL MKMODEL VOCAB.gguf
set -u
ctl=$1 mkmodel=$2 vocab=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$mkmodel" --arch bitnet-b1.58 --preset tiny --type i2s --seed 1 -o "$dir/m.gguf" || fail mkmodel
out=$("$ctl" inspect "$dir/m.gguf") || fail "valid file: exit $?"
echo "$out" | grep -q '^architecture:  bitnet-b1.58' || fail "no architecture line: $out"
echo "$out" | grep -q 'n_embd 256, n_layer 2, n_ff 768' || fail "no hparams: $out"
echo "$out" | grep -q 'blk.0.attn_k.weight  *I2_S  *\[256, 128\]  *8224' || fail "no attn_k: $out"
echo "$out" | grep -q '^valid:         yes' || fail "not valid: $out"
json=$("$ctl" inspect "$dir/m.gguf" --json) || fail "json: exit $?"
echo "$json" | grep -q '"valid": true' || fail "json not valid: $json"
n=$(echo "$json" | grep -c '"offset":')
[ "$n" -eq 24 ] || fail "json lists $n tensors, not 24"

head -c 4000 "$dir/m.gguf" > "$dir/cut.gguf"
"$ctl" inspect "$dir/cut.gguf" > /dev/null 2> "$dir/err"
rc=$?
[ $rc -eq 1 ] || fail "truncated file: exit $rc"
grep -q 'cut.gguf: byte ' "$dir/err" || fail "truncated file message: $(cat "$dir/err")"

"$ctl" inspect "$vocab" > "$dir/out" 2> "$dir/err"
rc=$?
[ $rc -eq 1 ] || fail "vocab-only file: exit $rc"
grep -q "architecture 'llama' is not supported" "$dir/err" || fail "vocab message: $(cat "$dir/err")"
grep -q '128256 tokens, 280147 merges' "$dir/out" || fail "vocab summary: $(cat "$dir/out")"

"$ctl" inspect > /dev/null 2>&1
rc=$?
[ $rc -eq 2 ] || fail "no argument: exit $rc"
echo "inspect: ok"
