#!/usr/bin/env bash
# The FMA peak of this machine (all cores), the figure the kernels' GFLOP/s are a share of.
set -euo pipefail
cd "$(dirname "$0")"
cc=$(command -v clang || echo /opt/swift/usr/bin/clang)
"$cc" -O2 -pthread fma-peak.c -o /tmp/fma-peak
lscpu | grep "Model name"
/tmp/fma-peak "$(nproc)"
