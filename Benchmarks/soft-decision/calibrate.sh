#!/usr/bin/env bash
# Builds the calibrator against the codec's sources and runs it on eval's logits:
#   stegastamp eval --images DIR --secrets 3 --strength 0.25 --sweep 0.2,0.22,0.28,0.3 --logits logits.jsonl
#   Benchmarks/soft-decision/calibrate.sh logits.jsonl [NOISE_TRIALS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
codec="$here/../../Sources/StegaStamp/Codec"
[ $# -ge 1 ] || { echo "usage: $0 LOGITS.jsonl [NOISE_TRIALS]" >&2; exit 2; }
[ -f "$1" ] || { echo "$1: no such file (write it with stegastamp eval --logits)" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mkdir -p "$out/src"
cp "$here/calibrate.swift" "$out/src/main.swift"
swiftc -O "$codec/BCH.swift" "$codec/SecretCodec.swift" "$codec/SoftDecision.swift" "$out/src/main.swift" -o "$out/calibrate"
"$out/calibrate" "$@"
