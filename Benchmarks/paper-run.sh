#!/usr/bin/env bash
# The `paper` preset to 5k steps (issue 10's proof), in the background, resumable:
#   Benchmarks/paper-run.sh [RUN_DIR] [STEPS]        (default /work/runs/paper 5000)
# Starts the run, or continues it with --resume when RUN_DIR holds a checkpoint. The binary is
# copied first, so rebuilding the checkout does not touch the running one. About 1.9 s per step on
# a 2-core Zen 5 (2.6 h for 5k), 3.4 s on Zen 4. Stop it with kill -TERM (it writes a checkpoint).
# Afterwards: python3 Benchmarks/run-summary.py RUN_DIR 500
set -euo pipefail
cd "$(dirname "$0")/.."
run="${1:-/work/runs/paper}"; steps="${2:-5000}"
export PATH="$PATH:/opt/swift/usr/bin"
swift build -c release --product stegastamp >/dev/null
mkdir -p "$(dirname "$run")"
bin="$(dirname "$run")/stegastamp-paper-bin"
cp .build/release/stegastamp "$bin"
resume=(); [ -f "$run/checkpoint.safetensors" ] && resume=(--resume)
nohup "$bin" train --preset paper --run "$run" --steps "$steps" --checkpoint-every 250 --eval-every 1000 --log-every 25 \
  --no-progress "${resume[@]}" >> "$run.log" 2>&1 &
echo "paper run in the background (pid $!): $run, log $run.log"
