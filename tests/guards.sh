#!/usr/bin/env bash
# Guard rails that CI runs before the tests (tests/run.sh calls this first):
#  1. formatting: `cargo fmt --check` over the whole workspace;
#  2. pure cores stay pure: no tokio, hyper, kube-client, reqwest or AWS SDK in the normal
#     dependency tree of a decision crate (docs/ARCHITECTURE.md, "the rule");
#  3. clippy over every target with warnings as errors (the lints of [workspace.lints]).
# Each check names what failed; the script exits non-zero on the first failing check.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf '[guards %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

log "cargo fmt --check"
if ! cargo fmt --all -- --check >/dev/null; then
  cargo fmt --all -- --check | head -40 >&2 || true
  log "FAILED: the files above are not rustfmt-formatted (run: cargo fmt --all)"
  exit 1
fi

CORES=(ballast-quantity ballast-api ballast-horizontal ballast-scheduling ballast-nodes ballast-sim ballast-cloud ballast-vertical)
FORBIDDEN='^(tokio|hyper|hyper-util|kube-client|kube-runtime|reqwest|aws-sdk-[a-z0-9-]+|aws-config) '
log "pure cores' dependency trees: ${CORES[*]}"
bad=0
for c in "${CORES[@]}"; do
  # A failing `cargo tree` is a failed guard, never an empty (passing) list.
  if ! tree=$(cargo tree -e normal -p "$c" --prefix none 2>&1); then
    log "FAILED: cargo tree -p $c: $tree"
    exit 1
  fi
  found=$(grep -E "$FORBIDDEN" <<<"$tree" | sed "s/ (\*)$//" | sort -u || true)
  if [[ -n $found ]]; then
    log "FAILED: $c, a pure core, depends on: $(tr '\n' ' ' <<<"$found")"
    cargo tree -e normal -p "$c" -i "$(head -1 <<<"$found" | cut -d' ' -f1)" 2>&1 | head -20 >&2 || true
    bad=1
  fi
done
((bad == 0)) || exit 1

log "cargo clippy --workspace --all-targets --features ballast/aws -- -D warnings"
cargo clippy --workspace --all-targets --features ballast/aws --quiet -- -D warnings
log "all guards passed"
