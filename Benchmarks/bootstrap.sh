#!/usr/bin/env bash
# The original author's bootstrap criterion: with the cpu preset, bit accuracy > 0.8 within the
# first 5k steps, seed after seed. Each seed trains (or resumes) its own run folder to STEPS, then
# the summary reads metrics.jsonl / eval.jsonl: the first logged step whose training bit accuracy
# (mean of the log window) exceeds 0.8, the first evaluation above 0.8 on held-out photos, and
# the held-out figures at the last evaluation.
#   Benchmarks/bootstrap.sh [RUNS_DIR] [SEEDS] [STEPS]      (default: runs/bootstrap "1 2 3 4 5" 5000)
# Long: about 35 minutes per seed on 2 cores. Start it with nohup; rerunning resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-runs/bootstrap}"; seeds="${2:-1 2 3 4 5}"; steps="${3:-5000}"
bin="${STEGASTAMP:-.build/release/stegastamp}"
[ -x "$bin" ] || { export PATH="$PATH:/opt/swift/usr/bin"; swift build -c release --product stegastamp >/dev/null; }
mkdir -p "$runs"
for s in $seeds; do
  dir="$runs/cpu-seed$s"
  resume=(); [ -f "$dir/checkpoint.safetensors" ] && resume=(--resume)
  "$bin" train --preset cpu --seed "$s" --run "$dir" --steps "$steps" --no-progress "${resume[@]}" >> "$runs/cpu-seed$s.log" 2>&1 || true
done
python3 - "$runs" $seeds <<'PY'
import json, sys, os
runs, seeds = sys.argv[1], sys.argv[2:]
print("| seed | steps | first train bit acc > 0.8 | first held-out eval > 0.8 | last eval: step, bit acc, decoded, PSNR, SSIM, JPEG q50 bit acc |")
print("| --- | --- | --- | --- | --- |")
for s in seeds:
    d = os.path.join(runs, f"cpu-seed{s}")
    try:
        m = [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl"))]
        e = [json.loads(l) for l in open(os.path.join(d, "eval.jsonl"))]
    except FileNotFoundError:
        print(f"| {s} | - | - | - | not run |"); continue
    t = next((r["step"] for r in m if r["bit_accuracy"] > 0.8), None)
    v = next((r["step"] for r in e if r["eval_bit_accuracy"] > 0.8), None)
    last = e[-1] if e else {}
    print(f"| {s} | {m[-1]['step'] if m else 0} | {t} | {v} | {last.get('step')}, {last.get('eval_bit_accuracy', 0):.3f}, "
          f"{100*last.get('eval_decoded_rate', 0):.1f} %, {last.get('eval_psnr', 0):.2f} dB, {last.get('eval_ssim', 0):.4f}, "
          f"{last.get('eval_jpeg50_bit_accuracy', 0):.3f} |")
PY
