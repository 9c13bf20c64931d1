#!/usr/bin/env bash
# Installs the Debian packages the build needs, only if one is missing.
# Safe to run again: it does nothing when everything is present.
set -euo pipefail
need=()
for pkg in libopenblas-dev libpng-dev llvm-14-dev libturbojpeg0-dev zlib1g-dev libopenmpi-dev openmpi-bin pkg-config; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v swift >/dev/null 2>&1 && [ ! -x /opt/swift/usr/bin/swift ]; then
  echo "setup: swift not found (looked on PATH and in /opt/swift/usr/bin); install Swift 6 first" >&2
  exit 1
fi
