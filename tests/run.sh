#!/usr/bin/env bash
# The single test command: builds (or reuses) the test bed, runs the guards (tests/guards.sh:
# rustfmt, pure cores' dependency trees, clippy), starts the bed, runs the Helm chart's tests
# (tests/chart.sh) and every unit and integration test of the workspace against it, and stops
# what it started, also on failure or interrupt. A test target that fails is run once more alone
# and, if it then passes, named FLAKY in the log. The exit code is the tests' result.
#
#   tests/run.sh                       cargo test --workspace --features ballast/aws --no-fail-fast
#   tests/run.sh -p ballast-testbed    other cargo test arguments instead of --workspace
#
# Environment: BALLAST_CACHE (default ~/.cache/ballast), CARGO_TARGET_DIR (default
# $BALLAST_CACHE/target), BALLAST_TESTBED_DIR (default /tmp/ballast-testbed),
# BALLAST_RUN_COMPONENTS (default: kube metrics-server custom-metrics prometheus redis rabbitmq postgres moto kafka).
#
# Sharing: a bed that was already running (a developer's `tests/testbed.sh up`) is reused and left
# running. Components this script starts are recorded; concurrent runs share the bed, and the
# last run to finish stops what any run started.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TB="$ROOT/tests/testbed.sh"
export BALLAST_CACHE="${BALLAST_CACHE:-$HOME/.cache/ballast}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$BALLAST_CACHE/target}"
export BALLAST_TESTBED_DIR="${BALLAST_TESTBED_DIR:-/tmp/ballast-testbed}"
read -r -a COMPONENTS <<<"${BALLAST_RUN_COMPONENTS:-kube metrics-server custom-metrics prometheus redis rabbitmq postgres moto kafka}"
RT="$BALLAST_TESTBED_DIR"
STARTED="$RT/.started-by-run"

log() { printf '[run %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

CHILD=
# Long steps run in the background and are waited for, so that a signal is handled at once.
run() {
  "$@" 8>&- &
  CHILD=$!
  local rc=0
  wait "$CHILD" || rc=$?
  CHILD=
  return "$rc"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -z $CHILD ]] || kill -TERM "$CHILD" 2>/dev/null || true
  # Last user of the bed out (exclusive lock granted) stops whatever runs started.
  if flock -xn 8 2>/dev/null; then
    if [[ -s $STARTED ]]; then
      local comps
      mapfile -t comps < <(sort -u "$STARTED")
      log "stopping ${comps[*]}"
      "$TB" down "${comps[@]}" || rc=$((rc ? rc : 1))
      rm -f "$STARTED"
    fi
  else
    log "the test bed is still in use by another tests/run.sh; leaving it running"
  fi
  log "exit $rc ($((SECONDS / 60))m$((SECONDS % 60))s)"
  exit "$rc"
}
# The bed's tests wait on real servers sharing the machine's cores, so a target can fail once on
# timing. Each target cargo names as failed (`-p CRATE --test NAME`, `--lib`, `--doc`) runs once
# more, alone; the run passes only if every one of them passes then, and each is named as FLAKY
# in the log so that it gets looked at. A run whose failure is not a list of targets (a build
# error) is not retried.
retry_failed_targets() {
  local log_file=$1 target still=()
  local -a failed=()
  mapfile -t failed < <(sed -n '/^error: [0-9]* targets\{0,1\} failed:/,$p' "$log_file" |
    grep -o '`-p [^`]*`' | tr -d '`')
  ((${#failed[@]})) || return 1
  for target in "${failed[@]}"; do
    local -a targs
    read -r -a targs <<<"$target"
    # The binary's EC2 provider, as in the full run.
    [[ ${targs[1]} == ballast ]] && targs+=(--features aws)
    log "retrying once, alone: cargo test ${targs[*]}"
    if run cargo test "${targs[@]}"; then
      log "FLAKY: cargo test $target failed in the full run and passed alone"
    else
      still+=("$target")
    fi
  done
  ((${#still[@]} == 0)) || { log "FAILED twice: ${still[*]}"; return 101; }
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$RT"
exec 8>"$RT/.users"
flock -s 8 # "a run is using the bed" (waits while a finishing run is stopping it)

log "build (cache: $BALLAST_CACHE)"
run "$TB" build

# Cargo keys a workspace member's build by paths relative to the workspace, so a target folder
# last filled from another checkout (CI's clone, a worktree) counts as fresh here, and tests keep
# the other checkout's CARGO_MANIFEST_DIR (files they read would not be found). Touching the
# sources once per change of checkout recompiles the workspace's crates, not their dependencies.
marker="$CARGO_TARGET_DIR/.ballast-checkout"
if [[ "$(cat "$marker" 2>/dev/null)" != "$ROOT" ]]; then
  log "target folder last built from another checkout: recompiling the workspace crates"
  find "$ROOT/crates" -name '*.rs' -exec touch {} +
  mkdir -p "$CARGO_TARGET_DIR"
  printf '%s\n' "$ROOT" >"$marker"
fi

log "guards: rustfmt, pure cores' dependency trees, clippy -D warnings"
run "$ROOT/tests/guards.sh"

for c in "${COMPONENTS[@]}"; do
  "$TB" is-up "$c" || echo "$c" >>"$STARTED"
done
log "up ${COMPONENTS[*]}"
run "$TB" up "${COMPONENTS[@]}"

eval "$("$TB" env)"
export BALLAST_REQUIRE_TESTBED=1
# Everything the tests dial is loopback: never through a proxy.
export NO_PROXY="127.0.0.1,localhost,::1${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost,::1${no_proxy:+,$no_proxy}"

# The Helm chart against the bed (lint, kubeconform, dry-run, install, RBAC); the cargo tests run
# even when it fails, and the run then fails with its status.
log "chart: helm lint, helm template | kubeconform -strict, dry-run, helm install, RBAC"
chart_rc=0
run "$ROOT/tests/chart.sh" || chart_rc=$?

args=("$@")
# --features ballast/aws: the binary with its EC2 provider (off by default so that `ballast simulate`
# does not compile aws-sdk-ec2).
((${#args[@]})) || args=(--workspace --features ballast/aws)
log "cargo test --no-fail-fast ${args[*]} (target: $CARGO_TARGET_DIR)"
test_log="$RT/cargo-test.$$.log"
test_rc=0
run bash -o pipefail -c 'cargo test --no-fail-fast "$@" 2>&1 | tee "$0"' "$test_log" "${args[@]}" || test_rc=$?
if ((test_rc != 0)); then
  test_rc=0
  retry_failed_targets "$test_log" || test_rc=$?
  ((test_rc == 0)) || { rm -f "$test_log"; exit "$test_rc"; }
fi
rm -f "$test_log"
((chart_rc == 0)) || { log "FAILED: tests/chart.sh (exit $chart_rc)"; exit "$chart_rc"; }
