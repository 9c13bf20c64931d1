#!/usr/bin/env bash
# Times our executor interleaved with the peer frameworks in one run (../shared/peers):
#   Benchmarks/peers.sh                 # SIZES=128 by default; SIZES="128 400" WORKLOADS="W1 W2 W3" MODES=... as run_all.sh
#   SETTLE_MS=100 Benchmarks/peers.sh   # our worker waits 100 ms (untimed) before each call: the driver runs us
#                                       # right after the previous round's last worker, whose threads may still spin
# Needs the peers' Python environment (../shared/peers/setup.sh, about 8 GB). Results in $OUT_DIR (default /tmp/peer-results).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
swift build -c release --product stegastamp >/dev/null
export SIZES="${SIZES:-128}"
export OURS="$PWD/.build/release/stegastamp bench --worker --settle-ms ${SETTLE_MS:-0}"
peers="$(cd ../shared/peers && pwd)"
[ -x "${PEERS_VENV:-/tmp/peers}/bin/python" ] || bash "$peers/setup.sh"
bash "$peers/run_all.sh"
cat "${OUT_DIR:-/tmp/peer-results}/results.md"
