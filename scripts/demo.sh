#!/bin/sh
# `make demo`: shows what bitnetd can do on this machine. It grows as the
# project does: today it builds, then shows the capabilities and the kernel
# registry from bitnetctl.
set -eu
build=${1:-build}
ctl="$build/client/bitnetctl"

echo "== bitnetctl --version"
"$ctl" --version
echo
echo "== bitnetctl capabilities"
"$ctl" capabilities
echo
echo "== bitnetctl kernels"
"$ctl" kernels
