#!/bin/sh
# Contract: asking for a kernel this build lacks names the build option that
# would add it; an unknown id is a usage error listing the valid ids.
set -u
ctl=$1
fail() { echo "FAIL: $*"; exit 1; }

case $(uname -m) in aarch64) absent=i2s_qk256.avx2; option=x86-64 ;; *) absent=i2s_qk256.neon; option=aarch64 ;; esac
msg=$("$ctl" kernels "$absent" 2>&1); rc=$?
[ $rc -eq 1 ] || fail "kernels $absent exited $rc, want 1"
echo "$msg" | grep -q "not compiled" || fail "no 'not compiled' in: $msg"
echo "$msg" | grep -q "$option" || fail "no build option in: $msg"

msg=$("$ctl" kernels i2s_qk256.cuda 2>&1); rc=$?
[ $rc -eq 1 ] || fail "kernels i2s_qk256.cuda exited $rc, want 1"
echo "$msg" | grep -q "BITNET_CUDA" || fail "no BITNET_CUDA in: $msg"

msg=$("$ctl" kernels no_such.kernel 2>&1); rc=$?
[ $rc -eq 2 ] || fail "unknown id exited $rc, want 2"
echo "$msg" | grep -q "i2s_qk256.scalar" || fail "valid ids not listed: $msg"
echo "missing kernel errors ok"
