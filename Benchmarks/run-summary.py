#!/usr/bin/env python3
"""Summary of one `stegastamp train` run folder as Markdown: its configuration, every held-out
evaluation (eval.jsonl), the training metrics every EVERY steps (metrics.jsonl) and the step rate
before and after the secret-only phase (median of the logged windows' steps_per_s).

    python3 Benchmarks/run-summary.py RUN [EVERY]      (EVERY default 500)
"""
import json
import os
import statistics
import sys

run = sys.argv[1]
every = int(sys.argv[2]) if len(sys.argv) > 2 else 500
config = json.load(open(os.path.join(run, "config.json")))
metrics = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))]
evals = [json.loads(l) for l in open(os.path.join(run, "eval.jsonl"))] if os.path.exists(os.path.join(run, "eval.jsonl")) else []

print(f"Run `{run}`: preset {config['preset']}, {config['size']}x{config['size']}, {config['bits']} bits, batch {config['batch']}, "
      f"seed {config['seed']}, {metrics[-1]['step'] if metrics else 0} of {config['steps']} steps logged.\n")

if evals:
    print("| step | bit accuracy | decoded | PSNR dB | SSIM | JPEG q50 bit accuracy | JPEG q50 decoded |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for e in evals:
        print(f"| {e['step']} | {e.get('eval_bit_accuracy', 0):.3f} | {100 * e.get('eval_decoded_rate', 0):.1f} % | "
              f"{e.get('eval_psnr', 0):.2f} | {e.get('eval_ssim', 0):.4f} | {e.get('eval_jpeg50_bit_accuracy', 0):.3f} | "
              f"{100 * e.get('eval_jpeg50_decoded_rate', 0):.1f} % |")
    print()

print("| step | loss | secret loss | bit accuracy (train) | PSNR dB (train) | d loss | steps/s |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for m in metrics:
    if m["step"] % every == 0 or m is metrics[-1]:
        print(f"| {m['step']} | {m['loss']:.4f} | {m['secret_loss']:.4f} | {m['bit_accuracy']:.3f} | {m['psnr']:.2f} | "
              f"{m.get('d_loss', 0):.4f} | {m['steps_per_s']:.3f} |")
print()

phase = config.get("no_image_loss_steps", 0)
for name, rows in (("secret-only phase (generator step only)", [m for m in metrics if m["step"] <= phase]),
                   ("after it (generator + critic)", [m for m in metrics if m["step"] > phase])):
    rates = [m["steps_per_s"] for m in rows if m.get("steps_per_s", 0) > 0]
    if rates:
        r = statistics.median(rates)
        share = statistics.median([m.get("host_share", 0) for m in rows])
        print(f"- {name}: median {r:.3f} steps/s = {1 / r:.2f} s per step over {len(rates)} log windows "
              f"(fastest window {1 / max(rates):.2f} s); outside the compiled steps: median {100 * share:.1f} %")
