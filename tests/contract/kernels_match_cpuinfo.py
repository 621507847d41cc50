#!/usr/bin/env python3
"""Contract: `bitnetctl kernels --json` agrees with what /proc/cpuinfo says.

Every bitnetd CPU kernel that is compiled must be supported exactly when the
CPU flags its instruction set needs are in /proc/cpuinfo (BITNET_SIMD unset).
"""
import json
import os
import subprocess
import sys

ctl = sys.argv[1]
env = dict(os.environ)
env.pop("BITNET_SIMD", None)
kernels = json.loads(subprocess.check_output([ctl, "kernels", "--json"], env=env))
caps = json.loads(subprocess.check_output([ctl, "capabilities", "--json"], env=env))

flags = set()
with open("/proc/cpuinfo") as f:
    for line in f:
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())

need = {
    "scalar": set(),
    "avx2": {"avx2", "fma"},
    "avx512": {"avx512f", "avx512bw", "avx512vl"},
    "neon": {"asimd"},
}
machine = os.uname().machine
failures = []
for k in kernels:
    if k["provider"] != "bitnetd":
        if k["available"]:
            failures.append(f"{k['id']}: external/CUDA kernel claims available with nothing loaded")
        continue
    isa = k["isa"]
    arch_ok = (isa in ("avx2", "avx512") and machine == "x86_64") or \
              (isa == "neon" and machine == "aarch64") or isa == "scalar"
    expect = arch_ok and need[isa] <= flags
    if k["supported"] != expect:
        failures.append(f"{k['id']}: supported={k['supported']} but /proc/cpuinfo says {expect}")
    if k["available"] != (k["compiled"] and k["supported"]):
        failures.append(f"{k['id']}: available is not compiled and supported")

cpu = caps["cpu"]
for feat, flag in [("avx2", "avx2"), ("avx512f", "avx512f"), ("avx512bw", "avx512bw"),
                   ("avx512_vnni", "avx512_vnni"), ("fma", "fma"), ("gfni", "gfni")]:
    if machine == "x86_64" and cpu["features"][feat] != (flag in flags):
        failures.append(f"cpu feature {feat}={cpu['features'][feat]} but cpuinfo has {flag in flags}")
if cpu["logical_cpus"] != os.cpu_count():
    failures.append(f"logical_cpus {cpu['logical_cpus']} != os.cpu_count() {os.cpu_count()}")

for f in failures:
    print("FAIL:", f)
print(f"checked {len(kernels)} kernels against {len(flags)} cpuinfo flags")
sys.exit(1 if failures else 0)
