#!/usr/bin/env python3
"""Reads a run folder's event files with TensorBoard's own reader and checks what a user sees.

    pip install tensorboard      # PyPI; an oracle for our writer, not a dependency of the product
    python3 scripts/check-tensorboard.py RUN

Prints every scalar tag with its number of points and last value, and every image tag; exits 1
if a tag that `stegastamp train` writes is missing or an image does not decode as PNG.
"""
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

run = sys.argv[1] if len(sys.argv) > 1 else "runs/stegastamp"
acc = EventAccumulator(run, size_guidance={"scalars": 0, "images": 0})
acc.Reload()
tags = acc.Tags()
for tag in sorted(tags["scalars"]):
    events = acc.Scalars(tag)
    print(f"scalar {tag}: {len(events)} points, last step {events[-1].step} value {events[-1].value:.6g}")
for tag in sorted(tags["images"]):
    images = acc.Images(tag)
    ok = all(im.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n" for im in images)
    print(f"image {tag}: {len(images)} images, {images[-1].width}x{images[-1].height}, PNG: {ok}")
    if not ok:
        sys.exit(1)
need = ["train/loss", "train/secret_loss", "train/bit_accuracy", "train/psnr", "train/steps_per_s",
        "schedule/l2_loss_scale", "eval/bit_accuracy", "eval/psnr", "eval/jpeg50_bit_accuracy"]
missing = [t for t in need if t not in tags["scalars"]]
if missing or not tags["images"]:
    print("missing:", missing, "" if tags["images"] else "(no sample images)")
    sys.exit(1)
print(f"ok: {len(tags['scalars'])} scalar tags, {len(tags['images'])} image tag(s) read by TensorBoard's EventAccumulator")
