#!/usr/bin/env bash
# Data-parallel training on this machine: steps/s of `stegastamp train` as 1 rank x 2 threads
# against 2 ranks x 1 thread (mpirun on localhost), at the cpu and paper sizes, with the bytes
# all-reduced per step and the share of the step loop spent in collectives; a third run (2x1,
# --measure-waiting) splits that share into waiting for the slower rank (a barrier before each
# all_reduce) and the transfer after it: only the transfer is what overlapping the collectives
# with the backward pass could hide. Each run trains a few
# steps with the critic on from step 1 (no secret-only phase), no evaluation; the rate is that of
# the last log window (after the loader's warm-up).
#   Benchmarks/data-parallel.sh [PRESET ...]      (default: cpu paper)
# Needs Open MPI (scripts/setup.sh) and the photos of scripts/fetch-photos.sh; do not run it while
# a training run holds the cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
swift build -c release --product stegastamp >/dev/null
bin="$PWD/.build/release/stegastamp"
presets=("$@"); [ $# -eq 0 ] && presets=(cpu paper)
echo "# data-parallel speed, $(date -u +%Y-%m-%d), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(mpirun --version | head -1)"
echo
echo "| preset | layout | steps | global batch | steps/s (last window) | MB all-reduced / step | share in collectives | of it: waiting / transfer |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for p in "${presets[@]}"; do
  case "$p" in cpu) n=60; every=30;; paper) n=12; every=6;; *) n=40; every=20;; esac
  for layout in "1x2" "2x1" "2x1 measured"; do
    run="$(mktemp -d)/run"
    args=(train --preset "$p" --run "$run" --steps "$n" --no-image-loss-steps 0 --log-every "$every" --eval-every 1000000
          --checkpoint-every 1000000 --no-progress)
    if [ "$layout" = 1x2 ]; then
      out="$("$bin" "${args[@]}" 2>&1)"
    elif [ "$layout" = 2x1 ]; then
      out="$(mpirun --allow-run-as-root --oversubscribe -np 2 "$bin" "${args[@]}" --threads 1 2>&1)"
    else
      out="$(mpirun --allow-run-as-root --oversubscribe -np 2 "$bin" "${args[@]}" --threads 1 --measure-waiting 2>&1)"
    fi
    rate="$(grep -o '"steps_per_s":[0-9.e-]*' "$run/metrics.jsonl" | tail -1 | cut -d: -f2)"
    mb="$(echo "$out" | sed -nE 's/.* ([0-9.]+) MB all-reduced per step.*/\1/p')"
    share="$(echo "$out" | sed -nE 's/.*step, ([0-9.]+) % of the step loop in collectives.*/\1 %/p')"
    batch="$(echo "$out" | sed -nE 's/^training .* batch ([0-9]+)\).*/\1/p')"
    split="$(echo "$out" | sed -nE 's/^collectives: ([0-9.]+) % of the step loop waiting .*, ([0-9.]+) % transferring.*/\1 % \/ \2 %/p')"
    echo "| $p | $layout (ranks x threads) | $n | $batch | $rate | ${mb:--} | ${share:--} | ${split:--} |"
    rm -rf "$(dirname "$run")"
  done
done
