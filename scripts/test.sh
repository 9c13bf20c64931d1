#!/usr/bin/env bash
# The test suite: installs what is missing, builds, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PATH:/opt/swift/usr/bin"
exec swift test --disable-swift-testing "$@"
