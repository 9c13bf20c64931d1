#!/usr/bin/env bash
# Fetches real photographs from Debian packages into a cache outside git (the packages' licences do
# not allow committing copies): training photos from wallpaper packages, evaluation photos from
# disjoint sources. Only photographs are kept: the rules below were made by looking at every image
# of these package versions (renders, paintings, gradients and test patterns are left out).
#   scripts/fetch-photos.sh [--all] [CACHE]      (default CACHE: ${STEGASTAMP_PHOTOS:-$HOME/.cache/stegastamp/photos})
# --all adds the large packages (plasma-workspace-wallpapers, mate-backgrounds, libjxl-testdata).
set -euo pipefail
all=0
if [ "${1:-}" = "--all" ]; then all=1; shift; fi
cache="${1:-${STEGASTAMP_PHOTOS:-$HOME/.cache/stegastamp/photos}}"
mkdir -p "$cache/train" "$cache/eval" "$cache/debs"

SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
fetch() {  # package -> extracted tree under $cache/debs/<package>
  local pkg="$1" dir="$cache/debs/$1"
  [ -d "$dir" ] && return 0
  ( cd "$cache/debs" && { apt-get download -qq "$pkg" 2>/dev/null || { $SUDO apt-get update -qq && apt-get download -qq "$pkg"; }; } )
  mkdir -p "$dir" && dpkg-deb -x "$cache/debs/${pkg}"_*.deb "$dir" && rm -f "$cache/debs/${pkg}"_*.deb
}

# collect PACKAGE DEST INCLUDE EXCLUDE: image files (not symlinks) whose path inside the package
# matches INCLUDE and whose name does not match EXCLUDE (extended regexes); with LARGEST=1 only
# the largest file of each directory (wallpapers ship one picture in several sizes).
collect() {
  local pkg="$1" dest="$2" include="$3" exclude="$4" n=0 root="$cache/debs/$1"
  local list
  list="$(cd "$root" && find . -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) -printf '%s %P\n' \
    | grep -E " .*(${include})" | { [ -n "$exclude" ] && grep -Ev "/[^/]*(${exclude})[^/]*$" || cat; } | sort -k2)"
  if [ "${LARGEST:-0}" = 1 ]; then
    list="$(echo "$list" | awk '{ d=$2; sub(/\/[^\/]*$/, "", d); if ($1 > best[d]) { best[d]=$1; file[d]=$0 } } END { for (d in file) print file[d] }' | sort -k2)"
  fi
  while read -r size path; do
    [ -n "$path" ] || continue
    cp -n "$root/$path" "$dest/${pkg}__$(echo "$path" | sed 's|^usr/share/||; s|/|_|g')"
    n=$((n + 1))
  done <<< "$list"
  echo "$pkg: $n photos -> $dest"
}

fetch lomiri-wallpapers-16.04; collect lomiri-wallpapers-16.04 "$cache/train" 'usr/share/backgrounds/' 'umang|Painting'
fetch lomiri-wallpapers-20.04; collect lomiri-wallpapers-20.04 "$cache/train" 'usr/share/backgrounds/' 'Fossa|Infinite-Sea|Painting'
fetch palapeli-data; collect palapeli-data "$cache/eval" 'palapeli/collection/' ''
if [ $all = 1 ]; then
  fetch plasma-workspace-wallpapers
  LARGEST=1 collect plasma-workspace-wallpapers "$cache/train" \
    'wallpapers/(BytheWater|ColdRipple|ColorfulCups|DarkestHour|EveningGlow|FallenLeaf|Grey|OneStandsOut|Path|summer_1am)/contents/images/' ''
  fetch mate-backgrounds; collect mate-backgrounds "$cache/train" 'backgrounds/mate/nature/' ''
  fetch libjxl-testdata
  collect libjxl-testdata "$cache/eval" '(jxl/flower/flower\.png|jxl/hdr_room\.png|wesaturate/500px/[^/]*_srgb8\.png)$' ''
fi
echo "photos in $cache: $(ls "$cache/train" | wc -l) for training, $(ls "$cache/eval" | wc -l) for evaluation"
