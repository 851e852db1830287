#!/usr/bin/env bash
# Guard rails that CI runs before the tests (tests/run.sh calls this first):
#  1. formatting: `cargo fmt --check` over the whole workspace;
#  2. pure cores stay pure: no tokio, hyper, kube-client, reqwest or AWS SDK in the normal
#     dependency tree of a decision crate (docs/ARCHITECTURE.md, "the rule");
#  3. cargo deny (deny.toml): only the licenses listed, no banned crate, no duplicate crate but
#     the listed ones, crates from crates.io only (offline: advisories are not checked);
#  4. clippy over every target with warnings as errors (the lints of [workspace.lints]).
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

# cargo-deny, pinned in tests/testbed/versions.env, installed once into the cache (like the bed's
# Go tools in tests/testbed.sh) with `cargo install --locked`.
# shellcheck source=testbed/versions.env
source "$ROOT/tests/testbed/versions.env"
CACHE="${BALLAST_CACHE:-$HOME/.cache/ballast}"
CARGO_DENY_BIN="$CACHE/bin/cargo-deny-$CARGO_DENY_VERSION/bin/cargo-deny"
cargo_deny_ok() {
  [[ -x $CARGO_DENY_BIN && "$("$CARGO_DENY_BIN" --version 2>/dev/null)" == "cargo-deny $CARGO_DENY_VERSION" ]]
}
if ! cargo_deny_ok; then
  log "installing cargo-deny $CARGO_DENY_VERSION into $CACHE/bin"
  tmp="$CACHE/bin/cargo-deny-$CARGO_DENY_VERSION.tmp.$$"
  # Its own target dir: the workspace's would mix its artifacts with ours.
  CARGO_TARGET_DIR="$tmp/target" cargo install cargo-deny --version "$CARGO_DENY_VERSION" --locked --root "$tmp" --quiet
  rm -rf "$tmp/target" "$CACHE/bin/cargo-deny-$CARGO_DENY_VERSION"
  mv "$tmp" "$CACHE/bin/cargo-deny-$CARGO_DENY_VERSION"
  cargo_deny_ok || { log "FAILED: the installed cargo-deny does not report $CARGO_DENY_VERSION"; exit 1; }
fi
log "cargo deny check licenses bans sources (deny.toml)"
if ! out=$("$CARGO_DENY_BIN" --offline --locked --color never \
  check licenses bans sources 2>&1); then
  printf '%s\n' "$out" >&2
  log "FAILED: cargo deny (above; the allowed licenses, bans and duplicate skips are in deny.toml)"
  exit 1
fi
log "$(tail -1 <<<"$out")"

log "cargo clippy --workspace --all-targets --features ballast/aws -- -D warnings"
cargo clippy --workspace --all-targets --features ballast/aws --quiet -- -D warnings
log "all guards passed"
