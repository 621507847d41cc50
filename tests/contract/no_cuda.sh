#!/bin/sh
# Contract: the CPU binaries (bitnetctl, bitnetd, and every library they
# install apart from the CUDA ones, libbitnet-cuda.so and
# libbitnet-kernels-cuda.so) carry no CUDA: neither a CUDA library in
# DT_NEEDED (ours included) nor a CUDA symbol (defined or imported). Installs the build
# into a scratch prefix and reads every ELF file there with our own ELF
# reader, `bitnetctl analyze-library --json` (docs/library-analysis.md: the
# CUDA name rules are symbols_is_cuda_library and symbols_is_cuda_name).
set -eu
build=$1
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
cmake --install "$build" --prefix "$dest" >/dev/null
ctl="$dest/bin/bitnetctl"
[ -x "$ctl" ] || ctl="$build/client/bitnetctl"
n=0
for f in $(find "$dest" -type f); do
    head -c 4 "$f" | grep -q 'ELF' || continue
    case $(basename "$f") in libbitnet-cuda.so* | libbitnet-kernels-cuda.so*) continue ;; esac
    n=$((n + 1))
    if ! "$ctl" analyze-library --json "$f" >"$dest/report.json"; then
        echo "FAIL: bitnetctl analyze-library cannot read $f"; exit 1
    fi
    python3 - "$f" "$dest/report.json" <<'EOF'
import json, sys
path, report = sys.argv[1], json.load(open(sys.argv[2]))
needed = [n["name"] for n in report["needed"]
          if n["cuda"] or n["name"].startswith(("libbitnet-cuda", "libbitnet-kernels-cuda"))]
if needed:
    sys.exit("FAIL: %s needs a CUDA library: %s" % (path, ", ".join(needed)))
syms = report["symbols"]
cuda = syms["categories"]["cuda"]
if cuda["count"]:
    sys.exit("FAIL: %s defines %d CUDA symbols, e.g. %s"
             % (path, cuda["count"], ", ".join(cuda["examples"])))
imports = syms["cuda_imports"]
if imports["count"]:
    sys.exit("FAIL: %s imports %d CUDA symbols, e.g. %s"
             % (path, imports["count"], ", ".join(imports["examples"])))
EOF
done
rm -f "$dest/report.json"
[ "$n" -gt 0 ] || { echo "FAIL: no ELF files installed"; exit 1; }
echo "checked $n installed ELF files: no CUDA"
