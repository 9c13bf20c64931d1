#!/usr/bin/env bash
# Times the small model's training step (batch 16, 32x32, 16 bits: forward + backward + Adam)
# on both backends, through `stegastamp train-small`. Prints ms per step (wall clock, including
# the synthetic-data generation and one evaluation pass); quote medians of several runs.
#   Benchmarks/small_train_step.sh [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-20}"
export PATH="$PATH:/opt/swift/usr/bin"
swift build -c release --product stegastamp >/dev/null
for backend in cpu interpreter; do
  start=$(date +%s.%N)
  .build/release/stegastamp train-small --steps "$steps" --eval-every "$steps" --backend "$backend" >/dev/null
  end=$(date +%s.%N)
  echo "$backend: $(echo "($end - $start) * 1000 / $steps" | bc -l | xargs printf '%.1f') ms/step over $steps steps"
done
