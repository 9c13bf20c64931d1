#!/usr/bin/env bash
# The main job on its built-in default: installs what is missing, builds, and runs `stegastamp demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PATH:/opt/swift/usr/bin"
swift build -c release --product stegastamp
exec .build/release/stegastamp demo "$@"
