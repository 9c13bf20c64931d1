#!/usr/bin/env bash
# Seconds per full training step (generator + critic) of each preset, the GFLOP/s of that step,
# peak memory, and the share of the step loop spent outside the compiled steps (data, schedules,
# logging). Runs each preset for a few steps with the critic on from step 1 and no evaluation; the
# "steady" columns are the second half of the run (metrics.jsonl's last window), after the first
# steps have decoded the photos into the loader's cache.
#   Benchmarks/train-speed.sh [PRESET ...]      (default: tiny cpu paper)
# Needs the photos of scripts/fetch-photos.sh; do not run it while a training run holds the cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
swift build -c release --product stegastamp >/dev/null
presets=("${@:-tiny cpu paper}")
[ $# -eq 0 ] && presets=(tiny cpu paper)
echo "# train speed, $(date -u +%Y-%m-%d), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
echo
echo "| preset | size | batch | steps | s / full step (all) | outside compiled steps (all) | s / full step (steady) | outside (steady) | GFLOP / step | GFLOP/s (steady) | compile s | peak RSS MiB |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for p in "${presets[@]}"; do
  case "$p" in tiny) n=400;; cpu) n=100;; paper) n=20;; *) n=40;; esac
  run="$(mktemp -d)/run"
  out="$( { /usr/bin/time -v .build/release/stegastamp train --preset "$p" --run "$run" --steps "$n" --no-image-loss-steps 0 \
          --log-every $((n / 2)) --eval-every 1000000 --checkpoint-every 1000000 --no-progress; } 2>&1 )"
  line="$(echo "$out" | grep '^trained steps')"
  sps="$(echo "$line" | sed -E 's/.*: ([0-9.]+) s per step.*/\1/')"
  gf="$(echo "$line" | sed -E 's/.* ([0-9.]+) GFLOP per full step.*/\1/')"
  rate="$(echo "$line" | sed -E 's/.*\(([0-9.]+) GFLOP\/s\).*/\1/')"
  host="$(echo "$line" | sed -E 's/.*GFLOP\/s\), ([0-9.]+) %.*/\1/')"
  comp="$(echo "$line" | sed -E 's/.*compiling took ([0-9.]+) s.*/\1/')"
  size="$(echo "$out" | sed -nE 's/^training [a-z]+ \([a-z]+, ([0-9]+x[0-9]+), .* batch ([0-9]+)\).*/\1 \2/p')"
  rss="$(echo "$out" | sed -nE 's/.*Maximum resident set size \(kbytes\): ([0-9]+)/\1/p')"
  steady="$(tail -1 "$run/metrics.jsonl" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.3f %.1f" % (1 / d["steps_per_s"], 100 * d["host_share"]))')"
  ss="${steady% *}"; sh="${steady#* }"
  srate="$(python3 -c "print('%.1f' % ($gf / $ss))")"
  echo "| $p | ${size% *} | ${size#* } | $n | $sps | $host % | $ss | $sh % | $gf | $srate | $comp | $((rss / 1024)) |"
  rm -rf "$(dirname "$run")"
  : "$rate"
done
