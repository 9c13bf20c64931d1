#!/usr/bin/env bash
# The main job on its built-in default: installs what is missing, builds, fetches the photos
# (Debian packages, into a cache outside git), and runs `stegastamp demo`: the 16-bit check, then
# a message hidden in a real photo, JPEG-damaged and decoded. Extra arguments go to `stegastamp demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PATH:/opt/swift/usr/bin"
swift build -c release --product stegastamp
cache="${STEGASTAMP_CACHE:-$HOME/.cache/stegastamp}"
photos=()
if bash scripts/fetch-photos.sh "$cache/photos"; then
  photos=(--photos "$cache/photos" --small-model "$cache/small-100bit.safetensors")
else
  echo "demo: could not fetch the photos; running the synthetic part only" >&2
fi
exec .build/release/stegastamp demo "${photos[@]}" "$@"
