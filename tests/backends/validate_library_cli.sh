#!/bin/sh
# bitnetctl validate-library against real libraries: a fixture backend is
# accepted and described, one without bitnet_eval is refused with the symbol
# named and the BITNET_ELIB_SYMBOL code in --json, exit codes 0 and 1.
# Usage: validate_library_cli.sh BITNETCTL GOOD_LIB NOEVAL_LIB
set -eu
ctl=$1 good=$2 noeval=$3
out=$("$ctl" validate-library "$good")
echo "$out" | grep -q "ok, backend fixture fixture-1" || { echo "FAIL: $out"; exit 1; }
if "$ctl" validate-library "$noeval" 2>/dev/null; then
    echo "FAIL: a library without bitnet_eval was accepted"; exit 1
fi
msg=$("$ctl" validate-library "$noeval" 2>&1 || true)
echo "$msg" | grep -q "bitnet_eval" || { echo "FAIL: no symbol named: $msg"; exit 1; }
json=$("$ctl" validate-library --json "$noeval" || true)
echo "$json" | python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["ok"] is False and r["error"]=="BITNET_ELIB_SYMBOL", r'
echo "ok"
