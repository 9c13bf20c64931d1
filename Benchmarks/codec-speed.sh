#!/usr/bin/env bash
# encode / decode speed and memory on a large photo, end to end through the command line (wall
# time and peak RSS from /usr/bin/time, the process's start and the model's load included), then
# each phase alone (`stegastamp bench-codec`). The photo: an evaluation photo of
# scripts/fetch-photos.sh upscaled to 6028x3391 (20 megapixels), unless PHOTO is given.
#   Benchmarks/codec-speed.sh [MODEL]        (default: the shipped model)
# Do not run it while a training run holds the cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
swift build -c release --product stegastamp >/dev/null
bin=.build/release/stegastamp
model=(); [ $# -ge 1 ] && model=(--model "$1")
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
photo="${PHOTO:-$work/big.jpg}"
if [ -z "${PHOTO:-}" ]; then
  src="$(ls "${STEGASTAMP_CACHE:-$HOME/.cache/stegastamp}"/photos/eval/*flower* 2>/dev/null | head -1)"
  [ -n "$src" ] || { echo "no evaluation photos: run scripts/fetch-photos.sh --all, or set PHOTO" >&2; exit 1; }
  # Pillow resizes it: the system python3's, or the peers' environment's (../shared/peers/setup.sh).
  py=""
  for c in python3 "${PEERS_VENV:-/tmp/peers}/bin/python"; do
    if "$c" -c "import PIL" 2>/dev/null; then py="$c"; break; fi
  done
  [ -n "$py" ] || { echo "making the 20-megapixel photo needs Pillow (pip install pillow, or ../shared/peers/setup.sh), or set PHOTO" >&2; exit 1; }
  "$py" -c "
from PIL import Image
Image.open('$src').convert('RGB').resize((6028, 3391), Image.BICUBIC).save('$photo', quality=95)"
fi
echo "# codec speed, $(date -u +%Y-%m-%d), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
echo
echo "| command | wall s (median of 3) | peak RSS MiB |"
echo "| --- | --- | --- |"
t() {
  local name="$1"; shift
  local times=() rss=0
  for _ in 1 2 3; do
    /usr/bin/time -o "$work/time" -f '%e %M' "$@" >/dev/null 2>&1 || true  # decode exits 1 when nothing decodes
    times+=("$(awk 'END {print $1}' "$work/time")"); rss="$(awk 'END {print int($2 / 1024)}' "$work/time")"
  done
  echo "| $name | $(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p) | $rss |"
}
t "encode -> JPEG q95" "$bin" encode "${model[@]}" --image "$photo" --secret Bench --out "$work/enc.jpg"
t "encode -> PNG" "$bin" encode "${model[@]}" --image "$photo" --secret Bench --out "$work/enc.png"
t "decode JPEG" "$bin" decode "${model[@]}" --image "$work/enc.jpg"
t "decode PNG" "$bin" decode "${model[@]}" --image "$work/enc.png"
echo
"$bin" bench-codec "${model[@]}" --image "$photo"
