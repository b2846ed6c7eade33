#!/usr/bin/env bash
# Vendors the browser libraries of the upload page into assets/vendor/: installs the pinned npm
# versions into a temporary directory and copies their minified dist files, with their licences,
# and writes assets/vendor/VERSIONS. The results are committed: building or testing sfx never
# needs npm; only this script does, when a version changes.
set -euo pipefail

# name version dist-file-in-package vendored-file
LIBS=(
  "tus-js-client 4.3.1 dist/tus.min.js tus.min.js"
  "hash-wasm 4.13.0 dist/sha256.umd.min.js sha256.umd.min.js"
)

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/assets/vendor"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

specs=()
for lib in "${LIBS[@]}"; do
  read -r name version _ _ <<<"$lib"
  specs+=("$name@$version")
done
(cd "$tmp" && npm init -y >/dev/null && npm install --no-audit --no-fund --ignore-scripts --save-exact "${specs[@]}" >/dev/null)

mkdir -p "$out"
{
  echo "# Browser libraries vendored by scripts/vendor-assets.sh (do not edit by hand)."
  echo "# name version licence file sha256"
} >"$out/VERSIONS"
for lib in "${LIBS[@]}"; do
  read -r name version dist file <<<"$lib"
  pkg="$tmp/node_modules/$name"
  got=$(node -p "require('$pkg/package.json').version")
  [ "$got" = "$version" ] || { echo "$name: got $got, wanted $version" >&2; exit 1; }
  licence=$(node -p "require('$pkg/package.json').license")
  cp "$pkg/$dist" "$out/$file"
  # The licence text travels with the file (the minified files keep no full notice).
  cp "$pkg/LICENSE" "$out/$name.LICENSE" 2>/dev/null || cp "$pkg"/LICEN[CS]E* "$out/$name.LICENSE"
  sum=$(sha256sum "$out/$file" | cut -d' ' -f1)
  echo "$name $version $licence $file $sum" >>"$out/VERSIONS"
done

{
  echo "# Vendored browser libraries"
  echo
  echo "Copied from npm by \`scripts/vendor-assets.sh\`; embedded in the sfx binary and served under"
  echo "\`/+static/<file>\`. Do not edit: change the pinned version in the script and run it again."
  echo
  echo "| name | version | licence | file |"
  echo "| --- | --- | --- | --- |"
  grep -v '^#' "$out/VERSIONS" | while read -r name version licence file _; do
    echo "| $name | $version | $licence | \`assets/vendor/$file\` (licence: \`$name.LICENSE\`) |"
  done
} >"$out/README.md"
echo "vendored into $out:"
cat "$out/VERSIONS"
