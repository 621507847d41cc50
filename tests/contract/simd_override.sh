#!/bin/sh
# Contract: BITNET_SIMD lowers the SIMD level (never raises it), and the
# registry then reports only scalar kernels as supported.
set -eu
ctl=$1
out=$(BITNET_SIMD=scalar "$ctl" capabilities --json)
echo "$out" | python3 -c '
import json, sys
c = json.load(sys.stdin)
assert c["cpu"]["simd_active"] == "scalar", c["cpu"]
assert c["cpu"]["simd_override"] == "scalar"
for k in c["kernels"]:
    if k["provider"] == "bitnetd" and k["isa"] != "scalar":
        assert not k["supported"], k
        if k["compiled"]:
            assert "BITNET_SIMD" in k["reason"] or "lacks" in k["reason"], k
for fmt, kid in c["best_kernel"].items():
    assert kid is None or kid.endswith(".scalar"), (fmt, kid)
'
# Raising is refused: on x86 ask for neon, on ARM for avx512.
case $(uname -m) in aarch64) high=avx512 ;; *) high=neon ;; esac
out=$(BITNET_SIMD=$high "$ctl" capabilities --json)
echo "$out" | python3 -c '
import json, sys
c = json.load(sys.stdin)["cpu"]
assert c["simd_active"] == c["simd_detected"], c
assert "ignored" in c["simd_override_error"], c
'
# The human output says so too (its table may wrap the line).
BITNET_SIMD=$high "$ctl" capabilities | tr -s ' \n' '  ' | grep -q "warning BITNET_SIMD=$high .*ignored"
echo "simd override ok"
