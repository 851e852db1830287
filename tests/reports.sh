#!/usr/bin/env bash
# Writes the reports of the bundled scenarios into DIR/<scenario>/, to compare two builds byte for
# byte (`diff -r`). A change that must not move a decision (a refactor) leaves them identical.
#
#   tests/reports.sh DIR          release build of this checkout, then every simulations/*.yaml
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:?usage: tests/reports.sh DIR}"
cd "$ROOT"
cargo build --release -q -p ballast
bin="${CARGO_TARGET_DIR:-$ROOT/target}/release/ballast"
for s in simulations/*.yaml; do
  name="$(basename "$s" .yaml)"
  rm -rf "${out:?}/$name"
  mkdir -p "$out/$name"
  # the speed line (wall time) and the output folder are what differ between two runs
  "$bin" simulate "$s" --quiet --out "$out/$name" | grep -v "real time" |
    sed "s|$out/$name|OUT|g" >"$out/$name/stdout.txt"
done
echo "reports of $(ls simulations/*.yaml | wc -l) scenarios in $out"
