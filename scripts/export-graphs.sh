#!/usr/bin/env bash
# Regenerates every file of Graphs/ from Graphs/MANIFEST with `stegastamp graph export`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
swift build -c release --product stegastamp >/dev/null
grep -v '^#' Graphs/MANIFEST | while read -r file args; do
  [ -n "$file" ] || continue
  # shellcheck disable=SC2086
  .build/release/stegastamp graph export $args --out "Graphs/$file"
  echo "wrote Graphs/$file"
done
