#!/usr/bin/env bash
# Fetches real photographs from Debian packages into a cache outside git (the packages' licences do
# not allow committing copies): training photos from wallpaper packages, evaluation photos from
# disjoint sources. Only photographs are kept; illustrations and renders are skipped by name.
#   scripts/fetch-photos.sh [--all] [CACHE]      (default CACHE: ${STEGASTAMP_PHOTOS:-$HOME/.cache/stegastamp/photos})
# --all adds the large packages (plasma-workspace-wallpapers, mate-backgrounds, libjxl-testdata).
set -euo pipefail
all=0
if [ "${1:-}" = "--all" ]; then all=1; shift; fi
cache="${1:-${STEGASTAMP_PHOTOS:-$HOME/.cache/stegastamp/photos}}"
mkdir -p "$cache/train" "$cache/eval" "$cache/debs"
train_pkgs="lomiri-wallpapers-16.04 lomiri-wallpapers-20.04"
eval_pkgs="palapeli-data"
if [ $all = 1 ]; then train_pkgs="$train_pkgs plasma-workspace-wallpapers mate-backgrounds"; eval_pkgs="$eval_pkgs libjxl-testdata"; fi

SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
fetch() {  # package -> extracted tree under $cache/debs/<package>
  local pkg="$1" dir="$cache/debs/$1"
  [ -d "$dir" ] && return 0
  ( cd "$cache/debs" && { apt-get download -qq "$pkg" 2>/dev/null || { $SUDO apt-get update -qq && apt-get download -qq "$pkg"; }; } )
  mkdir -p "$dir" && dpkg-deb -x "$cache/debs/${pkg}"_*.deb "$dir" && rm -f "$cache/debs/${pkg}"_*.deb
}
# Names that are not photographs in these packages (abstract art, renders, logos, gradients).
skip='(abstract|gradient|logo|pattern|render|vector|illustration|cartoon|texture|stripes|flat|default|mate-.*(stripes|blue|green)|Next|Cluster|Kite|Elarun|Opal|Path|ColdRipple|Flow|Volna|Shell|Canopee|Altai|Autumn|Cascade|Honeycomb|IceCold|MilkyWay|Patak|SafeLanding|summer_1am|FlyingKonqui|Bamboo|Grey|Sea_of_Conifers|puzzletable|background|Painting)'
collect() {  # package, destination folder
  local pkg="$1" dest="$2" n=0
  while IFS= read -r -d '' f; do
    base="$(basename "$f")"
    if echo "$base" | grep -Eqi "$skip"; then continue; fi
    # Keep reasonably large images only (icons and thumbnails are not photos).
    size=$(stat -c %s "$f"); [ "$size" -gt 60000 ] || continue
    cp -n "$f" "$dest/${pkg}__${base}"; n=$((n + 1))
  done < <(find "$cache/debs/$pkg" -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) -not -path '*/contents/screenshot*' -print0)
  echo "$pkg: $n photos -> $dest"
}
for p in $train_pkgs; do fetch "$p"; collect "$p" "$cache/train"; done
for p in $eval_pkgs; do fetch "$p"; collect "$p" "$cache/eval"; done
echo "photos in $cache: $(ls "$cache/train" | wc -l) for training, $(ls "$cache/eval" | wc -l) for evaluation"
