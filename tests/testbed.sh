#!/usr/bin/env bash
# Ballast test bed: a real Kubernetes control plane, kwok nodes and the real services, as plain local
# processes on 127.0.0.1 (no Docker, no kind).
#
#   tests/testbed.sh build                 build and cache etcd, kube-*, kubectl, kwok, metrics-server,
#                                          the custom metrics adapter, helm, kubeconform and the
#                                          Kafka broker's jars
#                                          (no-op when warm)
#   tests/testbed.sh up [COMPONENT...]     start components (default: kube metrics-server); waits until
#                                          each is ready
#   tests/testbed.sh down [COMPONENT...]   stop what this script started (pidfiles; default: all)
#   tests/testbed.sh is-up COMPONENT       exit status 0 if the component is running
#   tests/testbed.sh env                   print `export ...` lines for the running components
#   tests/testbed.sh status                show what is running
#   tests/testbed.sh kill PART [SIGNAL]    stop one process (e.g. kube-apiserver, redis; SIGNAL e.g. KILL);
#                                          `up` starts it again on the same ports and data
#   tests/testbed.sh freeze|thaw PART      SIGSTOP / SIGCONT one process (a hung server)
#   tests/testbed.sh clean                 down, then remove the runtime directory
#
# Components: kube (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok),
#             metrics-server (needs kube), custom-metrics (needs kube: custom.metrics.k8s.io and
#             external.metrics.k8s.io), prometheus, redis, rabbitmq, postgres, moto, kafka, or `all`.
#
# Network rule: every process started here listens on 127.0.0.1 and only ever dials 127.0.0.1.
# The API server is reached through kubeconfigs pointing at https://127.0.0.1:PORT, the endpoint
# reconciler is off (nothing routes to the `kubernetes` ClusterIP), kwok gives nodes 127.0.0.1 and pods
# fake IPs nobody dials, and Prometheus only keeps 127.0.0.1/localhost targets. metrics-server scrapes
# kwok's emulated kubelet endpoints on 127.0.0.1 (node InternalIP 127.0.0.1, kubelet port = kwok's
# port), and its APIService reaches it through an ExternalName `localhost` Service; so do the
# custom-metrics adapter's three APIServices (its write endpoint is plain HTTP on 127.0.0.1 too).
#
# Scrape targets of tests: Prometheus re-reads $BALLAST_TESTBED_DIR/prometheus/targets/*.json and
# *.yaml (file_sd, every 2s; `env` exports the folder as BALLAST_PROMETHEUS_TARGETS_DIR). A test
# writes `[{"targets": ["127.0.0.1:PORT"], "labels": {"run": "NAME"}}]` there to have its own
# endpoint (a controller's /metrics) scraped as job `testbed`, and removes the file when done.
#
# Paths (override with the environment):
#   BALLAST_CACHE        build cache, default ~/.cache/ballast (binaries under bin/<name>-<version>/)
#   BALLAST_TESTBED_DIR  runtime state (certs, data, logs, pidfiles, kubeconfig, env), default /tmp/ballast-testbed
# Ports: BALLAST_<NAME>_PORT, see the defaults below.
set -euo pipefail

TESTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TB_SRC="$TESTS_DIR/testbed"
# shellcheck source=testbed/versions.env
source "$TB_SRC/versions.env"

CACHE="${BALLAST_CACHE:-$HOME/.cache/ballast}"
RT="${BALLAST_TESTBED_DIR:-/tmp/ballast-testbed}"
# The ports a running bed was started with (written by `up`), so that a later call without the
# BALLAST_*_PORT variables (a test restarting one part) starts it on the same ports.
if [[ -f "$RT/ports" ]]; then
  while IFS='=' read -r var value; do
    [[ $var == BALLAST_*_PORT && -z ${!var:-} ]] && export "$var=$value"
  done <"$RT/ports"
fi
K8S_BIN="$CACHE/bin/kubernetes-$K8S_VERSION"
ETCD_BIN="$CACHE/bin/etcd-$ETCD_VERSION"
KWOK_BIN="$CACHE/bin/kwok-$KWOK_VERSION"
METRICS_SERVER_BIN="$CACHE/bin/metrics-server-$METRICS_SERVER_VERSION"
# Our wrapper's sources are part of the key: an edit of main.go builds a new binary.
CUSTOM_METRICS_BIN="$CACHE/bin/custom-metrics-$CUSTOM_METRICS_APISERVER_VERSION-$(
  cat "$TB_SRC/go/custom-metrics/"{go.mod,go.sum,main.go} | sha256sum | cut -c1-12)"
HELM_BIN="$CACHE/bin/helm-$HELM_VERSION"
KUBECONFORM_BIN="$CACHE/bin/kubeconform-$KUBECONFORM_VERSION"
MOTO_VENV="$CACHE/venv/moto-$MOTO_VERSION"
KAFKA_HOME="$CACHE/bin/kafka-$KAFKA_VERSION"

ETCD_PORT="${BALLAST_ETCD_PORT:-23790}"
ETCD_PEER_PORT="${BALLAST_ETCD_PEER_PORT:-23800}"
APISERVER_PORT="${BALLAST_APISERVER_PORT:-26443}"
KCM_PORT="${BALLAST_KCM_PORT:-20257}"
SCHEDULER_PORT="${BALLAST_SCHEDULER_PORT:-20259}"
KWOK_PORT="${BALLAST_KWOK_PORT:-20247}"
METRICS_SERVER_PORT="${BALLAST_METRICS_SERVER_PORT:-24443}"
# The custom metrics adapter: the aggregated APIs (HTTPS) and, next to it, where tests write values.
CUSTOM_METRICS_PORT="${BALLAST_CUSTOM_METRICS_PORT:-27443}"
CUSTOM_METRICS_WRITE_PORT="${BALLAST_CUSTOM_METRICS_WRITE_PORT:-$((CUSTOM_METRICS_PORT + 1))}"
PROMETHEUS_PORT="${BALLAST_PROMETHEUS_PORT:-29090}"
REDIS_PORT="${BALLAST_REDIS_PORT:-26379}"
REDIS_TLS_PORT="${BALLAST_REDIS_TLS_PORT:-$((REDIS_PORT + 1))}"
RABBITMQ_PORT="${BALLAST_RABBITMQ_PORT:-25672}"
RABBITMQ_MGMT_PORT="${BALLAST_RABBITMQ_MGMT_PORT:-25673}"
RABBITMQ_DIST_PORT="${BALLAST_RABBITMQ_DIST_PORT:-25674}"
RABBITMQ_TLS_PORT="${BALLAST_RABBITMQ_TLS_PORT:-$((RABBITMQ_PORT + 3))}"
RABBITMQ_MGMT_TLS_PORT="${BALLAST_RABBITMQ_MGMT_TLS_PORT:-$((RABBITMQ_PORT + 4))}"
EPMD_PORT="${BALLAST_EPMD_PORT:-24369}"
POSTGRES_PORT="${BALLAST_POSTGRES_PORT:-25432}"
MOTO_PORT="${BALLAST_MOTO_PORT:-25000}"
# Kafka: PLAINTEXT on KAFKA_PORT, SASL_PLAINTEXT (PLAIN, SCRAM-SHA-256/512) and SSL next to it, then
# the KRaft controller.
KAFKA_PORT="${BALLAST_KAFKA_PORT:-29092}"
KAFKA_SASL_PORT="${BALLAST_KAFKA_SASL_PORT:-$((KAFKA_PORT + 1))}"
KAFKA_TLS_PORT="${BALLAST_KAFKA_TLS_PORT:-$((KAFKA_PORT + 2))}"
KAFKA_CONTROLLER_PORT="${BALLAST_KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 3))}"
# The broker's users (test credentials of a bed on loopback, nothing else).
KAFKA_PLAIN_USER=ballast-plain KAFKA_PLAIN_PASSWORD=plain-secret
KAFKA_SCRAM_USER=ballast-scram KAFKA_SCRAM_PASSWORD=scram-secret

SERVICE_CIDR="10.96.0.0/16"  # allocated to Services only; nothing routes or dials it
POD_CIDR="10.128.0.0/16"     # kwok's fake pod IPs; nothing dials them
READY_TIMEOUT="${BALLAST_READY_TIMEOUT:-120}"

KUBE_PARTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
# The metrics APIs first: `up` starts SERVICES in this order after kube, `down` stops them before kube.
SERVICES=(metrics-server custom-metrics prometheus redis rabbitmq postgres moto kafka)
# Its resolution: the shortest metrics-server accepts (the delay from a usage change to the metric).
METRIC_RESOLUTION=10s

log() { printf '[testbed %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf '[testbed] error: %s\n' "$*" >&2; exit 1; }
is_root() { [[ "$(id -u)" == 0 ]]; }

# --------------------------------------------------------------------------------------------------
# build
# --------------------------------------------------------------------------------------------------

kube_ldflags() {
  local minor="${K8S_VERSION#v1.}" flags="-s -w" pkg
  minor="${minor%%.*}"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  echo "$flags"
}

kube_binaries_ok() {
  local b
  for b in kube-apiserver kube-controller-manager kube-scheduler; do
    [[ -x "$K8S_BIN/$b" ]] || return 1
    [[ "$("$K8S_BIN/$b" --version 2>/dev/null)" == "Kubernetes $K8S_VERSION" ]] || return 1
  done
  # (no `| grep -q`: with pipefail, grep exiting early makes the writer's SIGPIPE fail the check)
  [[ -x "$K8S_BIN/kubectl" && "$("$K8S_BIN/kubectl" version --client 2>/dev/null)" == *"Client Version: $K8S_VERSION"* ]]
}

etcd_binary_ok() {
  [[ -x "$ETCD_BIN/etcd" && "$("$ETCD_BIN/etcd" --version 2>/dev/null)" == *"etcd Version: ${ETCD_VERSION#v}"* ]]
}

kwok_binary_ok() {
  [[ -x "$KWOK_BIN/kwok" && "$("$KWOK_BIN/kwok" --version 2>/dev/null)" == *"version $KWOK_VERSION "* ]]
}

# The kwok configuration taken from its release: default stages and the kubelet resource-metrics
# endpoint (see build_kwok).
kwok_configs_ok() {
  [[ -s "$KWOK_BIN/stages.yaml" && -s "$KWOK_BIN/metrics-resource.yaml" ]]
}

metrics_server_binary_ok() {
  [[ -x "$METRICS_SERVER_BIN/metrics-server" &&
    "$("$METRICS_SERVER_BIN/metrics-server" --version 2>/dev/null)" == "$METRICS_SERVER_VERSION" ]]
}

go_env() {
  command -v go >/dev/null || die "go is not installed (needed to build the control plane once)"
  export CGO_ENABLED=0 GOFLAGS=-mod=readonly
}

build_kube() {
  if kube_binaries_ok; then log "kubernetes $K8S_VERSION: cached in $K8S_BIN"; return; fi
  go_env
  grep -q "^require k8s.io/kubernetes $K8S_VERSION\b" "$TB_SRC/go/kube/go.mod" ||
    die "tests/testbed/go/kube/go.mod does not pin k8s.io/kubernetes $K8S_VERSION: run tests/testbed/go/gen-gomod.sh kube"
  log "building kubernetes $K8S_VERSION (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl); cold: tens of minutes"
  local tmp="$K8S_BIN.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  # shellcheck disable=SC2086
  (cd "$TB_SRC/go/kube" && go build -trimpath -ldflags "$(kube_ldflags)" -o "$tmp/" $KUBE_TOOLS)
  rm -rf "$K8S_BIN"; mv "$tmp" "$K8S_BIN"
  kube_binaries_ok || die "built kubernetes binaries do not report $K8S_VERSION"
}

build_etcd() {
  if etcd_binary_ok; then log "etcd $ETCD_VERSION: cached in $ETCD_BIN"; return; fi
  go_env
  grep -q "^require go.etcd.io/etcd/server/v3 $ETCD_VERSION\b" "$TB_SRC/go/etcd/go.mod" ||
    die "tests/testbed/go/etcd/go.mod does not pin etcd $ETCD_VERSION: run tests/testbed/go/gen-gomod.sh etcd"
  log "building etcd $ETCD_VERSION"
  local tmp="$ETCD_BIN.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  (cd "$TB_SRC/go/etcd" && go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" .)
  rm -rf "$ETCD_BIN"; mv "$tmp" "$ETCD_BIN"
  etcd_binary_ok || die "built etcd does not report $ETCD_VERSION"
}

# kwok v0.8 has no built-in stages: it needs Stage objects through --config. We take the default
# ones ("fast" node initialisation, node heartbeat with lease, fast pod lifecycle) from the kwok
# module that was just downloaded, i.e. exactly what that release ships, rather than copies of ours.
# The same goes for the Metric object emulating each node's kubelet `/metrics/resource` endpoint
# (container/pod/node CPU and memory, from the ResourceUsage objects: tests/testbed/kwok/).
build_kwok() {
  if kwok_binary_ok && kwok_configs_ok; then log "kwok $KWOK_VERSION: cached in $KWOK_BIN"; return; fi
  go_env
  if kwok_binary_ok; then
    log "kwok $KWOK_VERSION: adding its release configuration to $KWOK_BIN"
    kwok_release_configs "$KWOK_BIN"
    kwok_configs_ok || die "kwok $KWOK_VERSION configuration incomplete in $KWOK_BIN"
    return
  fi
  log "building kwok $KWOK_VERSION"
  local tmp="$KWOK_BIN.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  GOFLAGS= GOBIN="$tmp" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  kwok_release_configs "$tmp"
  rm -rf "$KWOK_BIN"; mv "$tmp" "$KWOK_BIN"
  kwok_binary_ok && kwok_configs_ok || die "built kwok does not report $KWOK_VERSION"
}

kwok_release_configs() { # DIR: writes stages.yaml and metrics-resource.yaml from the kwok module
  local out="$1" dir f
  dir="$(GOFLAGS= go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -d "$dir/kustomize/stage" ]] || die "kwok module source not found (go mod download sigs.k8s.io/kwok@$KWOK_VERSION)"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [[ -s "$dir/kustomize/stage/$f" ]] || die "kwok $KWOK_VERSION has no stage $f"
    printf -- '---\n'; cat "$dir/kustomize/stage/$f"; printf '\n'
  done > "$out/stages.yaml.tmp"
  mv "$out/stages.yaml.tmp" "$out/stages.yaml"
  f="$dir/kustomize/metrics/resource/metrics-resource.yaml"
  [[ -s $f ]] || die "kwok $KWOK_VERSION has no $f"
  cp "$f" "$out/metrics-resource.yaml.tmp"
  mv "$out/metrics-resource.yaml.tmp" "$out/metrics-resource.yaml"
}

# metrics-server's go.mod has no replace directives: `go install module@version` builds it. The
# version is stamped where its `--version` reads it (client-go's version package).
build_metrics_server() {
  if metrics_server_binary_ok; then log "metrics-server $METRICS_SERVER_VERSION: cached in $METRICS_SERVER_BIN"; return; fi
  go_env
  log "building metrics-server $METRICS_SERVER_VERSION"
  local tmp="$METRICS_SERVER_BIN.tmp.$$" pkg=k8s.io/client-go/pkg/version
  rm -rf "$tmp"; mkdir -p "$tmp"
  GOFLAGS= GOBIN="$tmp" go install -trimpath \
    -ldflags "-s -w -X $pkg.gitVersion=$METRICS_SERVER_VERSION -X $pkg.gitTreeState=clean" \
    "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION"
  rm -rf "$METRICS_SERVER_BIN"; mv "$tmp" "$METRICS_SERVER_BIN"
  metrics_server_binary_ok || die "built metrics-server does not report $METRICS_SERVER_VERSION"
}

custom_metrics_binary_ok() { [[ -x "$CUSTOM_METRICS_BIN/custom-metrics" ]]; }

# The custom and external metrics adapter: tests/testbed/go/custom-metrics/main.go on upstream's
# adapter library and the test provider of the same module (what it adds and how values are written
# is said there), built from the pinned module like etcd's wrapper. Warm Kubernetes modules make it
# a build of minutes, not a download.
build_custom_metrics() {
  if custom_metrics_binary_ok; then log "custom-metrics: cached in $CUSTOM_METRICS_BIN"; return; fi
  go_env
  grep -q "sigs.k8s.io/custom-metrics-apiserver $CUSTOM_METRICS_APISERVER_VERSION\b" "$TB_SRC/go/custom-metrics/go.mod" ||
    die "tests/testbed/go/custom-metrics/go.mod does not pin $CUSTOM_METRICS_APISERVER_VERSION: run tests/testbed/go/gen-gomod.sh custom-metrics"
  log "building the custom metrics adapter (sigs.k8s.io/custom-metrics-apiserver $CUSTOM_METRICS_APISERVER_VERSION)"
  local tmp="$CUSTOM_METRICS_BIN.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  (cd "$TB_SRC/go/custom-metrics" && go build -trimpath -ldflags "-s -w" -o "$tmp/custom-metrics" .)
  rm -rf "$CUSTOM_METRICS_BIN"; mv "$tmp" "$CUSTOM_METRICS_BIN"
  custom_metrics_binary_ok || die "the custom metrics adapter was not built into $CUSTOM_METRICS_BIN"
}

helm_binary_ok() {
  [[ -x "$HELM_BIN/helm" && "$("$HELM_BIN/helm" version --short 2>/dev/null)" == "$HELM_VERSION" ]]
}

kubeconform_binary_ok() {
  [[ -x "$KUBECONFORM_BIN/kubeconform" && "$("$KUBECONFORM_BIN/kubeconform" -v 2>/dev/null)" == "$KUBECONFORM_VERSION" ]]
}

# Helm and kubeconform for tests/chart.sh: `go install module/cmd@version`, with the version each
# reports set by ldflags (neither reads it from the module's build information).
build_chart_tools() {
  if helm_binary_ok; then log "helm $HELM_VERSION: cached in $HELM_BIN"; else
    log "building helm $HELM_VERSION"
    local tmp="$HELM_BIN.tmp.$$"
    go_env
    GOFLAGS= GOBIN="$tmp" go install -trimpath \
      -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
      "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
    rm -rf "$HELM_BIN"; mv "$tmp" "$HELM_BIN"
    helm_binary_ok || die "built helm does not report $HELM_VERSION"
  fi
  if kubeconform_binary_ok; then log "kubeconform $KUBECONFORM_VERSION: cached in $KUBECONFORM_BIN"; else
    log "building kubeconform $KUBECONFORM_VERSION"
    local tmp="$KUBECONFORM_BIN.tmp.$$"
    go_env
    GOFLAGS= GOBIN="$tmp" go install -trimpath -ldflags "-s -w -X main.version=$KUBECONFORM_VERSION" \
      "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
    rm -rf "$KUBECONFORM_BIN"; mv "$tmp" "$KUBECONFORM_BIN"
    kubeconform_binary_ok || die "built kubeconform does not report $KUBECONFORM_VERSION"
  fi
}

ensure_moto() {
  [[ -x "$MOTO_VENV/bin/moto_server" ]] && return
  log "installing moto[server]==$MOTO_VERSION into $MOTO_VENV"
  command -v python3 >/dev/null || die "python3 is needed for moto"
  rm -rf "$MOTO_VENV"
  if ! python3 -m venv "$MOTO_VENV"; then
    is_root || die "python3 -m venv failed: apt-get install python3-venv"
    rm -rf "$MOTO_VENV"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$MOTO_VENV" || die "python3 -m venv failed"
  fi
  "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
}

kafka_java() { java -Xmx512m -Xms128m -XX:+UseSerialGC -cp "$1/libs/*" "${@:2}"; }

kafka_jars_ok() {
  [[ -s "$KAFKA_HOME/libs/kafka_2.13-$KAFKA_VERSION.jar" ]] &&
    [[ "$(kafka_java "$KAFKA_HOME" kafka.Kafka --version 2>/dev/null | tail -n 1)" == "$KAFKA_VERSION"* ]]
}

# The broker is org.apache.kafka:kafka_2.13 and its runtime dependencies, copied from Maven Central by
# mvn (tests/testbed/kafka/pom.xml) into $KAFKA_HOME/libs; Maven's own repository stays in the cache.
build_kafka() {
  if kafka_jars_ok; then log "kafka $KAFKA_VERSION: cached in $KAFKA_HOME"; return; fi
  local missing=()
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  if ((${#missing[@]})); then
    is_root || die "the Kafka broker needs java 17+ and mvn: apt-get install -y ${missing[*]}"
    log "installing ${missing[*]} with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  log "fetching kafka $KAFKA_VERSION and its dependencies with mvn"
  local tmp="$KAFKA_HOME.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp/libs"
  mvn -q -B -f "$TB_SRC/kafka/pom.xml" -Dmaven.repo.local="$CACHE/m2" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp/libs" >&2 ||
    die "mvn could not fetch kafka $KAFKA_VERSION"
  rm -rf "$KAFKA_HOME"; mv "$tmp" "$KAFKA_HOME"
  kafka_jars_ok || die "the fetched kafka does not report $KAFKA_VERSION"
}

# Debian packages for the services, installed on demand (as root, e.g. in CI).
ensure_packages() {
  local missing=() c
  for c in "$@"; do
    case "$c" in
      prometheus) command -v prometheus >/dev/null || missing+=(prometheus) ;;
      redis) command -v redis-server >/dev/null || missing+=(redis-server) ;;
      rabbitmq) [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || missing+=(rabbitmq-server) ;;
      postgres) pg_bindir >/dev/null 2>&1 || missing+=(postgresql) ;;
    esac
  done
  ((${#missing[@]})) || return 0
  is_root || die "missing packages ${missing[*]}: run as root or apt-get install -y ${missing[*]}"
  log "installing ${missing[*]} with apt-get"
  # Packaged services must not start system-wide instances: we run our own.
  local policy=/usr/sbin/policy-rc.d created=
  if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' > $policy; chmod +x $policy; created=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [[ -z $created ]] || rm -f $policy
}

pg_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [[ -x "$d/initdb" ]] && { echo "$d"; return 0; }; done
  command -v initdb >/dev/null && { dirname "$(readlink -f "$(command -v initdb)")"; return 0; }
  return 1
}

cmd_build() {
  local t0=$SECONDS
  mkdir -p "$CACHE/bin"
  build_etcd
  build_kube
  build_kwok
  build_metrics_server
  build_custom_metrics
  build_chart_tools
  build_kafka
  log "build done in $((SECONDS - t0))s"
}

# --------------------------------------------------------------------------------------------------
# process management
# --------------------------------------------------------------------------------------------------

pidfile() { echo "$RT/pids/$1.pid"; }
logfile() { echo "$RT/logs/$1.log"; }

# Pidfiles hold "PID STARTTIME" (start time in clock ticks from /proc/PID/stat), so that a pid
# recycled by an unrelated process after a reboot or crash is never mistaken for ours.
proc_start() { # PID -> start time; fails for missing or zombie processes
  local stat f
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }" # fields after the command name, starting at field 3 (state)
  read -r -a f <<<"$stat"
  [[ ${f[0]} != Z ]] || return 1
  echo "${f[19]}" # field 22
}

# alive PID STARTTIME
alive() { [[ "$(proc_start "$1")" == "$2" ]]; }

running() { # NAME -> 0 if its recorded process is alive
  local pf pid start
  pf="$(pidfile "$1")"
  [[ -s $pf ]] || return 1
  read -r pid start <"$pf" || true
  [[ -n $pid && -n $start ]] && alive "$pid" "$start"
}

# spawn NAME CMD... : start CMD in its own session, stdout/stderr to the log, pid to the pidfile.
# setsid execs in place (the background child is not a group leader), so $! is the server's pid.
spawn() {
  local name="$1"; shift
  mkdir -p "$RT/pids" "$RT/logs"
  log "starting $name"
  setsid "$@" </dev/null >"$(logfile "$name")" 2>&1 8>&- 9>&- &
  local pid=$!
  echo "$pid $(proc_start "$pid")" > "$(pidfile "$name")"
}

log_tail() { local f; f="$(logfile "$1")"; [[ -f $f ]] && tail -n "${2:-40}" "$f" | sed "s/^/    $1| /" >&2; }

# wait_ready NAME CHECK... : poll CHECK until it succeeds; fail with the log tail on timeout or exit.
wait_ready() {
  local name="$1"; shift
  local deadline=$((SECONDS + READY_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if ! running "$name"; then
      log_tail "$name"
      die "$name exited before becoming ready (log: $(logfile "$name"))"
    fi
    if ((SECONDS >= deadline)); then
      log_tail "$name"
      die "$name not ready after ${READY_TIMEOUT}s (log: $(logfile "$name"))"
    fi
    sleep 0.3
  done
  log "$name ready"
}

# stop NAME [SIGNAL]: signal the recorded process, wait up to 20s, then SIGKILL.
stop() {
  local name="$1" sig="${2:-TERM}" pf pid start i
  pf="$(pidfile "$name")"
  [[ -f $pf ]] || return 0
  read -r pid start <"$pf" || true
  if [[ -n $pid && -n $start ]] && alive "$pid" "$start"; then
    log "stopping $name (pid $pid)"
    kill -s "$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do alive "$pid" "$start" || break; sleep 0.1; done
    if alive "$pid" "$start"; then
      log "$name did not stop; SIGKILL"
      kill -s KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pf"
}

http_ok() { curl -fsS --noproxy '*' --max-time 2 -o /dev/null "$@"; }
tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --------------------------------------------------------------------------------------------------
# certificates and kubeconfigs
# --------------------------------------------------------------------------------------------------

PKI="$RT/pki"

new_key() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; chmod 600 "$1"; }

# sign NAME CA SUBJECT EXTENSIONS : key + certificate signed by CA (1 year).
sign() {
  local name="$1" ca="$2" subj="$3" ext="$4"
  new_key "$PKI/$name.key"
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" -CAcreateserial \
    -days 365 -sha256 -extfile <(printf '%s\n' "$ext") -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr"
}

new_ca() {
  new_key "$PKI/$1.key"
  openssl req -x509 -new -key "$PKI/$1.key" -subj "/CN=$2" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$PKI/$1.crt" 2>/dev/null
}

ensure_pki() {
  [[ -s "$PKI/done" ]] && return
  log "generating certificates in $PKI"
  rm -rf "$PKI"; mkdir -p "$PKI"; chmod 700 "$PKI"
  local client="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  new_ca ca ballast-testbed-ca
  new_ca front-proxy-ca ballast-testbed-front-proxy-ca
  sign apiserver ca "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1"
  sign admin ca "/O=system:masters/CN=ballast-admin" "$client"
  sign kube-controller-manager ca "/CN=system:kube-controller-manager" "$client"
  sign kube-scheduler ca "/CN=system:kube-scheduler" "$client"
  sign front-proxy-client front-proxy-ca "/CN=front-proxy-client" "$client"
  new_key "$PKI/sa.key"
  openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  chmod 644 "$PKI"/*.crt
  echo ok > "$PKI/done"
}

# metrics-server's serving certificate (for the aggregator, which checks the name
# <service>.<namespace>.svc of the APIService's Service) and its client certificate. Made on
# demand, so a bed whose PKI predates metrics-server gets them too.
ensure_extension_pki() { # NAME: metrics-server, custom-metrics
  local name="$1"
  [[ -s "$PKI/$name-serving.crt" && -s "$PKI/$name.crt" ]] && return
  sign "$name-serving" ca "/CN=$name" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:$name.kube-system.svc"
  sign "$name" ca "/CN=system:$name" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  chmod 644 "$PKI"/*.crt
}

b64() { base64 -w0 < "$1"; }

write_kubeconfig() { # FILE USER
  local file="$1" user="$2"
  cat > "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: ballast-testbed
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(b64 "$PKI/$user.crt")
    client-key-data: $(b64 "$PKI/$user.key")
contexts:
- name: ballast-testbed
  context:
    cluster: ballast-testbed
    user: $user
current-context: ballast-testbed
EOF
  chmod 600 "$file"
}

# --------------------------------------------------------------------------------------------------
# components
# --------------------------------------------------------------------------------------------------

apiserver_ready() {
  curl -fsS --noproxy '*' --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$APISERVER_PORT/readyz" -o /dev/null
}

kubectl_() { "$K8S_BIN/kubectl" --kubeconfig "$RT/kubeconfig" "$@"; }

up_kube() {
  kube_binaries_ok && etcd_binary_ok && kwok_binary_ok && kwok_configs_ok ||
    die "binaries missing: run tests/testbed.sh build first"
  ensure_pki
  write_kubeconfig "$RT/kubeconfig" admin
  write_kubeconfig "$RT/kube-controller-manager.kubeconfig" kube-controller-manager
  write_kubeconfig "$RT/kube-scheduler.kubeconfig" kube-scheduler

  if ! running etcd; then
    rm -rf "$RT/etcd"; mkdir -p "$RT/etcd"
    spawn etcd "$ETCD_BIN/etcd" --name=ballast --data-dir="$RT/etcd/data" \
      --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
      --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
      --initial-cluster="ballast=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state=new \
      --unsafe-no-fsync --snapshot-count=10000 --log-level=warn
  fi
  wait_ready etcd http_ok "http://127.0.0.1:$ETCD_PORT/health"

  if ! running kube-apiserver; then
    spawn kube-apiserver "$K8S_BIN/kube-apiserver" \
      --bind-address=127.0.0.1 --secure-port="$APISERVER_PORT" --advertise-address=127.0.0.1 \
      --endpoint-reconciler-type=none \
      --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
      --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
      --client-ca-file="$PKI/ca.crt" \
      --authorization-mode=Node,RBAC \
      --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
      --service-account-issuer="https://127.0.0.1:$APISERVER_PORT" \
      --service-cluster-ip-range="$SERVICE_CIDR" \
      --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
      --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
      --requestheader-extra-headers-prefix=X-Remote-Extra- \
      --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
      --allow-privileged=true --profiling=false --v=1
  fi
  wait_ready kube-apiserver apiserver_ready

  if ! running kube-controller-manager; then
    spawn kube-controller-manager "$K8S_BIN/kube-controller-manager" \
      --kubeconfig="$RT/kube-controller-manager.kubeconfig" \
      --authentication-kubeconfig="$RT/kube-controller-manager.kubeconfig" \
      --authorization-kubeconfig="$RT/kube-controller-manager.kubeconfig" \
      --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --cert-dir="$RT/kube-controller-manager" \
      --controllers='*,-horizontal-pod-autoscaler-controller' \
      --use-service-account-credentials=true \
      --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
      --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
      --cluster-name=ballast-testbed --allocate-node-cidrs=false --leader-elect=false --profiling=false --v=1 \
      --kube-api-qps=200 --kube-api-burst=400
  fi
  if ! running kube-scheduler; then
    spawn kube-scheduler "$K8S_BIN/kube-scheduler" \
      --kubeconfig="$RT/kube-scheduler.kubeconfig" \
      --authentication-kubeconfig="$RT/kube-scheduler.kubeconfig" \
      --authorization-kubeconfig="$RT/kube-scheduler.kubeconfig" \
      --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" --cert-dir="$RT/kube-scheduler" \
      --leader-elect=false --profiling=false --v=1 --kube-api-qps=200 --kube-api-burst=400
  fi
  if ! running kwok; then
    # --node-port: nodes advertise kwok's own server as their kubelet endpoint (127.0.0.1:KWOK_PORT),
    # where it serves /metrics/nodes/NODE/metrics/resource from the Metric and usage configs.
    spawn kwok "$KWOK_BIN/kwok" --kubeconfig="$RT/kubeconfig" \
      --config="$KWOK_BIN/stages.yaml" --config="$KWOK_BIN/metrics-resource.yaml" \
      --config="$TB_SRC/kwok/usage-from-annotations.yaml" \
      --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
      --node-ip=127.0.0.1 --node-port="$KWOK_PORT" --cidr="$POD_CIDR" --server-address="127.0.0.1:$KWOK_PORT" \
      --node-lease-duration-seconds=40
  fi
  wait_ready kube-controller-manager http_ok -k "https://127.0.0.1:$KCM_PORT/healthz"
  wait_ready kube-scheduler http_ok -k "https://127.0.0.1:$SCHEDULER_PORT/healthz"
  wait_ready kwok http_ok "http://127.0.0.1:$KWOK_PORT/healthz"
  # Pods can only be created once the `default` ServiceAccount exists (serviceaccount controller).
  wait_ready kube-controller-manager kubectl_ -n default get serviceaccount default
}

# metrics-server scrapes every node's kubelet resource endpoint, which kwok emulates on
# 127.0.0.1:KWOK_PORT (plain HTTP: --deprecated-kubelet-completely-insecure; the path comes from the
# node annotation metrics.k8s.io/resource-metrics-path, see crates/testbed KwokNode), and serves
# metrics.k8s.io through the aggregator.
up_metrics_server() {
  running metrics-server && return
  running kube-apiserver || die "metrics-server needs kube: tests/testbed.sh up kube metrics-server"
  metrics_server_binary_ok || die "metrics-server missing: run tests/testbed.sh build first"
  ensure_extension_pki metrics-server
  write_kubeconfig "$RT/metrics-server.kubeconfig" metrics-server
  metrics_server_manifests | kubectl_ apply --server-side --force-conflicts --field-manager=ballast-testbed -f - >/dev/null
  spawn metrics-server "$METRICS_SERVER_BIN/metrics-server" \
    --bind-address=127.0.0.1 --secure-port="$METRICS_SERVER_PORT" \
    --tls-cert-file="$PKI/metrics-server-serving.crt" --tls-private-key-file="$PKI/metrics-server-serving.key" \
    --kubeconfig="$RT/metrics-server.kubeconfig" \
    --authentication-kubeconfig="$RT/metrics-server.kubeconfig" \
    --authorization-kubeconfig="$RT/metrics-server.kubeconfig" \
    --metric-resolution="$METRIC_RESOLUTION" --kubelet-request-timeout=5s \
    --kubelet-preferred-address-types=InternalIP --kubelet-use-node-status-port --kubelet-port="$KWOK_PORT" \
    --deprecated-kubelet-completely-insecure --profiling=false --v=1
  # /livez, not /readyz: readiness waits for a first scrape, and the bed may have no node yet.
  wait_ready metrics-server http_ok -k "https://127.0.0.1:$METRICS_SERVER_PORT/livez"
  wait_ready metrics-server kubectl_ wait --for=condition=Available --timeout=2s apiservice/v1beta1.metrics.k8s.io
}

# What every extension API server of the bed needs besides its own ClusterRole and APIServices:
# its user bound to that role and allowed to delegate authentication and authorization (as
# metrics-server and adapters do), and the ExternalName `localhost` Service its APIServices name.
extension_apiserver_manifests() { # NAME
  local name="$1"
  cat <<EOF
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "ballast-testbed:$name"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "ballast-testbed:$name"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:$name"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "ballast-testbed:$name:auth-delegator"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:auth-delegator"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:$name"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: "ballast-testbed:$name:auth-reader", namespace: kube-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: "extension-apiserver-authentication-reader"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:$name"}]
---
apiVersion: v1
kind: Service
metadata: {name: $name, namespace: kube-system}
spec: {type: ExternalName, externalName: localhost}
EOF
}

# RBAC of the metrics-server user, and its APIService behind an ExternalName `localhost` Service
# (the aggregator dials localhost:METRICS_SERVER_PORT and checks the certificate against the CA).
metrics_server_manifests() {
  cat <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "ballast-testbed:metrics-server"}
rules:
- apiGroups: [""]
  resources: [nodes, nodes/metrics, pods]
  verbs: [get, list, watch]
EOF
  extension_apiserver_manifests metrics-server
  cat <<EOF
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
spec:
  group: metrics.k8s.io
  version: v1beta1
  service: {namespace: kube-system, name: metrics-server, port: $METRICS_SERVER_PORT}
  caBundle: $(b64 "$PKI/ca.crt")
  groupPriorityMinimum: 100
  versionPriority: 100
EOF
}

# The custom metrics adapter serves custom.metrics.k8s.io (v1beta1, v1beta2) and
# external.metrics.k8s.io (v1beta1) through the aggregator, and takes metric values from tests over
# plain HTTP on 127.0.0.1:CUSTOM_METRICS_WRITE_PORT (crates/testbed custom_metrics.rs). It keeps them
# in memory only: a restarted adapter serves nothing until they are written again.
up_custom_metrics() {
  running custom-metrics && return
  running kube-apiserver || die "custom-metrics needs kube: tests/testbed.sh up kube custom-metrics"
  custom_metrics_binary_ok || die "custom-metrics missing: run tests/testbed.sh build first"
  ensure_extension_pki custom-metrics
  write_kubeconfig "$RT/custom-metrics.kubeconfig" custom-metrics
  custom_metrics_manifests | kubectl_ apply --server-side --force-conflicts --field-manager=ballast-testbed -f - >/dev/null
  spawn custom-metrics "$CUSTOM_METRICS_BIN/custom-metrics" \
    --bind-address=127.0.0.1 --secure-port="$CUSTOM_METRICS_PORT" \
    --write-address="127.0.0.1:$CUSTOM_METRICS_WRITE_PORT" \
    --tls-cert-file="$PKI/custom-metrics-serving.crt" --tls-private-key-file="$PKI/custom-metrics-serving.key" \
    --lister-kubeconfig="$RT/custom-metrics.kubeconfig" \
    --authentication-kubeconfig="$RT/custom-metrics.kubeconfig" \
    --authorization-kubeconfig="$RT/custom-metrics.kubeconfig" \
    --v=1
  wait_ready custom-metrics http_ok -k "https://127.0.0.1:$CUSTOM_METRICS_PORT/livez"
  # After a crash the aggregator holds the APIServices unavailable until its next check (up to its
  # 30 s resync); a changed annotation has them checked at once.
  kubectl_ annotate --overwrite apiservice "${CUSTOM_METRICS_APIS[@]}" \
    "testbed.ballast.dev/started=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" >/dev/null
  local api
  for api in "${CUSTOM_METRICS_APIS[@]}"; do
    wait_ready custom-metrics kubectl_ wait --for=condition=Available --timeout=2s "apiservice/$api"
  done
}

CUSTOM_METRICS_APIS=(v1beta1.custom.metrics.k8s.io v1beta2.custom.metrics.k8s.io v1beta1.external.metrics.k8s.io)

# The adapter's user may read every object (it answers for pods, ingresses, any kind), delegates
# authentication and authorization like metrics-server, and its APIServices reach it through an
# ExternalName `localhost` Service.
custom_metrics_manifests() {
  cat <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "ballast-testbed:custom-metrics"}
rules:
- apiGroups: ["*"]
  resources: ["*"]
  verbs: [get, list, watch]
EOF
  extension_apiserver_manifests custom-metrics
  local api group version
  for api in "${CUSTOM_METRICS_APIS[@]}"; do
    version="${api%%.*}" group="${api#*.}"
    cat <<EOF
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: $api}
spec:
  group: $group
  version: $version
  service: {namespace: kube-system, name: custom-metrics, port: $CUSTOM_METRICS_PORT}
  caBundle: $(b64 "$PKI/ca.crt")
  groupPriorityMinimum: 100
  versionPriority: $([[ $api == v1beta2.* ]] && echo 200 || echo 100)
EOF
  done
}

up_prometheus() {
  running prometheus && return
  local dir="$RT/prometheus"
  rm -rf "$dir"; mkdir -p "$dir/data" "$dir/targets"
  # Extra 127.0.0.1 targets can be dropped into targets/*.json (file_sd) by tests.
  cat > "$dir/prometheus.yml" <<EOF
global:
  scrape_interval: 2s
  evaluation_interval: 2s
scrape_configs:
- job_name: prometheus
  static_configs:
  - targets: ['127.0.0.1:$PROMETHEUS_PORT']
- job_name: etcd
  static_configs:
  - targets: ['127.0.0.1:$ETCD_PORT']
# kwok's emulated kubelet resource endpoints, one target per kwok node (kwok's service discovery
# lists them, all on kwok's own 127.0.0.1 port): container_cpu_usage_seconds_total,
# container_memory_working_set_bytes, ... from the pods' usage annotations, labelled
# namespace/pod/container, plus node=<node>.
- job_name: kwok-resource
  http_sd_configs:
  - url: 'http://127.0.0.1:$KWOK_PORT/discovery/prometheus'
    refresh_interval: 5s
  relabel_configs:
  - source_labels: [__address__]
    regex: '(127\.0\.0\.1|localhost):[0-9]+'
    action: keep
  - source_labels: [__metrics_path__]
    regex: '/metrics/nodes/([^/]+)/.*'
    target_label: node
- job_name: testbed
  file_sd_configs:
  - files: ['$dir/targets/*.json', '$dir/targets/*.yaml']
    refresh_interval: 2s
  relabel_configs:
  # Network rule: loopback targets only.
  - source_labels: [__address__]
    regex: '(127\.0\.0\.1|localhost):[0-9]+'
    action: keep
EOF
  spawn prometheus prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" --web.enable-lifecycle --log.level=warn
  wait_ready prometheus http_ok "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"
}

up_redis() {
  running redis && return
  rm -rf "$RT/redis"; mkdir -p "$RT/redis"
  service_tls "$RT/redis/tls" redis
  # Clear text on REDIS_PORT, TLS (server authentication only) on REDIS_TLS_PORT.
  spawn redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$RT/redis" --save '' \
    --appendonly no --protected-mode yes --daemonize no --logfile '' \
    --tls-port "$REDIS_TLS_PORT" --tls-cert-file "$RT/redis/tls/server.crt" \
    --tls-key-file "$RT/redis/tls/server.key" --tls-ca-cert-file "$RT/redis/tls/ca.crt" \
    --tls-auth-clients optional
  wait_ready redis redis_ping
}
redis_ping() { [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }

# Run a command as a service account user when we are root (postgres refuses to run as root).
as_user() {
  local user="$1"; shift
  if is_root; then setpriv --reuid="$user" --regid="$user" --init-groups -- "$@"; else "$@"; fi
}

up_postgres() {
  running postgres && return
  local bin dir="$RT/postgres" user=postgres
  bin="$(pg_bindir)" || die "postgresql not installed"
  is_root || user="$(id -un)"
  rm -rf "$dir"; mkdir -p "$dir/sock"
  service_tls "$dir/tls" postgres
  is_root && chown -R "$user:" "$dir"
  as_user "$user" "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$(logfile postgres-initdb)" 2>&1 ||
    { tail "$(logfile postgres-initdb)" >&2; die "initdb failed"; }
  # The role ballast_tls is admitted over TLS only, ballast_mtls over TLS with a client certificate
  # signed by the service CA (first matching line wins); others as before.
  local hba="$dir/data/pg_hba.conf"
  { printf 'hostssl all ballast_tls 127.0.0.1/32 trust\nhost all ballast_tls 127.0.0.1/32 reject\n'
    printf 'hostssl all ballast_mtls 127.0.0.1/32 trust clientcert=verify-ca\nhost all ballast_mtls 127.0.0.1/32 reject\n'
    cat "$hba"; } >"$hba.new" && mv "$hba.new" "$hba"
  is_root && chown "$user:" "$hba"
  local run=()
  is_root && run=(setpriv --reuid="$user" --regid="$user" --init-groups --)
  spawn postgres "${run[@]}" "$bin/postgres" -D "$dir/data" -p "$POSTGRES_PORT" \
    -c listen_addresses=127.0.0.1 -c unix_socket_directories="$dir/sock" \
    -c ssl=on -c ssl_cert_file="$dir/tls/server.crt" -c ssl_key_file="$dir/tls/server.key" \
    -c ssl_ca_file="$dir/tls/ca.crt" \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200
  wait_ready postgres "$bin/pg_isready" -q -h 127.0.0.1 -p "$POSTGRES_PORT" -U postgres
  "$bin/psql" -q -h 127.0.0.1 -p "$POSTGRES_PORT" -U postgres -d postgres \
    -c 'CREATE ROLE ballast_tls LOGIN' -c 'CREATE ROLE ballast_mtls LOGIN' >/dev/null ||
    die "creating the postgres roles ballast_tls and ballast_mtls failed"
}

# service_tls DIR NAME : a CA (ca.crt), a server certificate for 127.0.0.1 and localhost signed
# by it (server.crt, server.key) and a client certificate for mutual TLS (client.crt, client.key,
# CN ballast_mtls), made fresh at each `up` of the service NAME.
service_tls() {
  local d="$1" name="$2"
  mkdir -p "$d"
  new_key "$d/ca.key"
  openssl req -x509 -new -key "$d/ca.key" -subj "/CN=ballast-testbed-$name-ca" -days 365 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$d/ca.crt" 2>/dev/null || die "openssl: $name CA"
  new_key "$d/server.key"
  openssl req -new -key "$d/server.key" -subj "/CN=127.0.0.1" -out "$d/server.csr" 2>/dev/null
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 365 -sha256 -out "$d/server.crt" 2>/dev/null \
    -extfile <(printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "extendedKeyUsage=serverAuth") ||
    die "openssl: $name server certificate"
  new_key "$d/client.key"
  openssl req -new -key "$d/client.key" -subj "/CN=ballast_mtls" -out "$d/client.csr" 2>/dev/null
  openssl x509 -req -in "$d/client.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 365 -sha256 -out "$d/client.crt" 2>/dev/null \
    -extfile <(printf '%s\n' "extendedKeyUsage=clientAuth") || die "openssl: $name client certificate"
  rm -f "$d/server.csr" "$d/client.csr" "$d/ca.key"
  chmod 644 "$d/ca.crt"
}

RABBITMQ_ENV=()
rabbitmq_env() {
  local dir="$RT/rabbitmq"
  RABBITMQ_ENV=(
    HOME="$dir" RABBITMQ_NODENAME=ballast@localhost
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$RABBITMQ_PORT" RABBITMQ_DIST_PORT="$RABBITMQ_DIST_PORT"
    RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
    RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log" RABBITMQ_LOGS=- RABBITMQ_PID_FILE="$dir/rabbit.pid"
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT="$EPMD_PORT" ERL_CRASH_DUMP="$dir/erl_crash.dump"
  )
}

up_rabbitmq() {
  running rabbitmq && return
  local dir="$RT/rabbitmq"
  rm -rf "$dir"; mkdir -p "$dir/log" "$dir/mnesia"
  service_tls "$dir/tls" rabbitmq
  rabbitmq_env
  # AMQPS requires a client certificate (mutual TLS); HTTPS management does not ask for one.
  cat > "$dir/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$RABBITMQ_PORT
listeners.ssl.default = 127.0.0.1:$RABBITMQ_TLS_PORT
ssl_options.cacertfile = $dir/tls/ca.crt
ssl_options.certfile = $dir/tls/server.crt
ssl_options.keyfile = $dir/tls/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = true
management.tcp.ip = 127.0.0.1
management.tcp.port = $RABBITMQ_MGMT_PORT
management.ssl.ip = 127.0.0.1
management.ssl.port = $RABBITMQ_MGMT_TLS_PORT
management.ssl.cacertfile = $dir/tls/ca.crt
management.ssl.certfile = $dir/tls/server.crt
management.ssl.keyfile = $dir/tls/server.key
loopback_users.guest = true
EOF
  echo '[rabbitmq_management].' > "$dir/enabled_plugins"
  # Our own epmd on loopback and a non-default port, so nothing else shares or exposes it.
  running epmd || spawn epmd env "${RABBITMQ_ENV[@]}" epmd -address 127.0.0.1 -port "$EPMD_PORT"
  wait_ready epmd tcp_open "$EPMD_PORT"
  # In its own folder: a crash dump (MnesiaCore.*, erl_crash.dump) lands there, not in the checkout.
  spawn rabbitmq env -C "$dir" "${RABBITMQ_ENV[@]}" /usr/lib/rabbitmq/bin/rabbitmq-server
  wait_ready rabbitmq rabbitmq_ready
}
rabbitmq_ready() {
  tcp_open "$RABBITMQ_PORT" && tcp_open "$RABBITMQ_TLS_PORT" &&
    http_ok -u guest:guest "http://127.0.0.1:$RABBITMQ_MGMT_PORT/api/overview"
}

up_moto() {
  running moto && return
  ensure_moto
  spawn moto "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT"
  wait_ready moto http_ok "http://127.0.0.1:$MOTO_PORT/moto-api/data.json"
}

# A single-node KRaft cluster (broker and controller in one JVM) on 127.0.0.1: PLAINTEXT, SASL_PLAINTEXT
# (PLAIN from the JAAS line below, SCRAM users written into the metadata at format time) and SSL (the
# bed's CA; a client certificate is checked when one is sent). No authorizer: any user may do anything.
up_kafka() {
  running kafka && return
  [[ -s "$KAFKA_HOME/libs/kafka_2.13-$KAFKA_VERSION.jar" ]] || build_kafka
  local dir="$RT/kafka"
  rm -rf "$dir"; mkdir -p "$dir/data"
  service_tls "$dir/tls" kafka
  cat "$dir/tls/server.key" "$dir/tls/server.crt" > "$dir/tls/server.pem"
  chmod 600 "$dir/tls/server.pem"
  local jaas="org.apache.kafka.common.security"
  cat > "$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT,SSL://127.0.0.1:$KAFKA_TLS_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT,SSL://127.0.0.1:$KAFKA_TLS_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.flush.interval.messages=1000000
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.plain.sasl.jaas.config=$jaas.plain.PlainLoginModule required user_$KAFKA_PLAIN_USER="$KAFKA_PLAIN_PASSWORD";
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=$jaas.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=$jaas.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=$dir/tls/server.pem
ssl.truststore.type=PEM
ssl.truststore.location=$dir/tls/ca.crt
ssl.client.auth=requested
EOF
  local scram="name=$KAFKA_SCRAM_USER,password=$KAFKA_SCRAM_PASSWORD" id
  # A cluster id is 16 random bytes in unpadded URL-safe base64 (what `kafka-storage random-uuid` prints).
  id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
  kafka_java "$KAFKA_HOME" kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties" \
    --add-scram "SCRAM-SHA-256=[$scram]" --add-scram "SCRAM-SHA-512=[$scram]" \
    >"$(logfile kafka-format)" 2>&1 || { tail "$(logfile kafka-format)" >&2; die "formatting the kafka storage failed"; }
  spawn kafka java -Xmx512m -Xms256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$dir/server.properties"
  wait_ready kafka kafka_ready
}
kafka_ready() { tcp_open "$KAFKA_PORT" && tcp_open "$KAFKA_SASL_PORT" && tcp_open "$KAFKA_TLS_PORT"; }

# --------------------------------------------------------------------------------------------------
# env
# --------------------------------------------------------------------------------------------------

write_env() {
  local f="$RT/env"
  {
    echo "# written by tests/testbed.sh; source it or eval \"\$(tests/testbed.sh env)\""
    echo "export BALLAST_TESTBED_DIR='$RT'"
    if running kube-apiserver; then
      echo "export KUBECONFIG='$RT/kubeconfig'"
      echo "export BALLAST_KUBECONFIG='$RT/kubeconfig'"
      echo "export BALLAST_KUBE_APISERVER='https://127.0.0.1:$APISERVER_PORT'"
      echo "export BALLAST_KUBECTL='$K8S_BIN/kubectl'"
      echo "export BALLAST_KWOK_STAGES='$KWOK_BIN/stages.yaml'"
      echo "export BALLAST_KWOK_URL='http://127.0.0.1:$KWOK_PORT'"
    fi
    running metrics-server && {
      echo "export BALLAST_METRICS_SERVER_URL='https://127.0.0.1:$METRICS_SERVER_PORT'"
      echo "export BALLAST_METRIC_RESOLUTION_SECONDS='${METRIC_RESOLUTION%s}'"
    }
    running custom-metrics && {
      echo "export BALLAST_CUSTOM_METRICS_URL='https://127.0.0.1:$CUSTOM_METRICS_PORT'"
      echo "export BALLAST_CUSTOM_METRICS_WRITE_URL='http://127.0.0.1:$CUSTOM_METRICS_WRITE_PORT'"
    }
    running prometheus && {
      echo "export BALLAST_PROMETHEUS_URL='http://127.0.0.1:$PROMETHEUS_PORT'"
      echo "export BALLAST_PROMETHEUS_TARGETS_DIR='$RT/prometheus/targets'"
    }
    running redis && {
      echo "export BALLAST_REDIS_URL='redis://127.0.0.1:$REDIS_PORT'"
      echo "export BALLAST_REDIS_TLS_ADDRESS='127.0.0.1:$REDIS_TLS_PORT'"
      echo "export BALLAST_REDIS_CA='$RT/redis/tls/ca.crt'"
    }
    running rabbitmq && {
      echo "export BALLAST_RABBITMQ_URL='amqp://guest:guest@127.0.0.1:$RABBITMQ_PORT/%2f'"
      echo "export BALLAST_RABBITMQ_MANAGEMENT_URL='http://guest:guest@127.0.0.1:$RABBITMQ_MGMT_PORT'"
      # AMQPS needs the client certificate (client.crt, client.key beside the CA); HTTPS does not.
      echo "export BALLAST_RABBITMQ_TLS_URL='amqps://guest:guest@127.0.0.1:$RABBITMQ_TLS_PORT/%2f'"
      echo "export BALLAST_RABBITMQ_MANAGEMENT_TLS_URL='https://guest:guest@127.0.0.1:$RABBITMQ_MGMT_TLS_PORT'"
      echo "export BALLAST_RABBITMQ_CA='$RT/rabbitmq/tls/ca.crt'"
    }
    running postgres && {
      echo "export BALLAST_POSTGRES_URL='postgres://postgres@127.0.0.1:$POSTGRES_PORT/postgres'"
      echo "export BALLAST_POSTGRES_TLS_URL='postgres://ballast_tls@127.0.0.1:$POSTGRES_PORT/postgres'"
      echo "export BALLAST_POSTGRES_CA='$RT/postgres/tls/ca.crt'"
      # needs the client certificate client.crt, client.key beside the CA
      echo "export BALLAST_POSTGRES_MTLS_URL='postgres://ballast_mtls@127.0.0.1:$POSTGRES_PORT/postgres'"
    }
    running moto && {
      echo "export BALLAST_MOTO_URL='http://127.0.0.1:$MOTO_PORT'"
      echo "export AWS_ENDPOINT_URL='http://127.0.0.1:$MOTO_PORT'"
      echo "export AWS_ACCESS_KEY_ID='testing'"
      echo "export AWS_SECRET_ACCESS_KEY='testing'"
      echo "export AWS_REGION='us-east-1'"
      # never let an AWS SDK reach for the instance metadata service (169.254.169.254)
      echo "export AWS_EC2_METADATA_DISABLED='true'"
    }
    running kafka && {
      echo "export BALLAST_KAFKA_ADDRESS='127.0.0.1:$KAFKA_PORT'"
      echo "export BALLAST_KAFKA_SASL_ADDRESS='127.0.0.1:$KAFKA_SASL_PORT'"
      echo "export BALLAST_KAFKA_TLS_ADDRESS='127.0.0.1:$KAFKA_TLS_PORT'"
      echo "export BALLAST_KAFKA_CA='$RT/kafka/tls/ca.crt'"
      echo "export BALLAST_KAFKA_CLIENT_CERT='$RT/kafka/tls/client.crt'"
      echo "export BALLAST_KAFKA_CLIENT_KEY='$RT/kafka/tls/client.key'"
      echo "export BALLAST_KAFKA_PLAIN_USER='$KAFKA_PLAIN_USER'"
      echo "export BALLAST_KAFKA_PLAIN_PASSWORD='$KAFKA_PLAIN_PASSWORD'"
      echo "export BALLAST_KAFKA_SCRAM_USER='$KAFKA_SCRAM_USER'"
      echo "export BALLAST_KAFKA_SCRAM_PASSWORD='$KAFKA_SCRAM_PASSWORD'"
    }
  } > "$f.tmp"
  mv "$f.tmp" "$f"
}

write_ports() {
  local var
  for var in ETCD_PORT ETCD_PEER_PORT APISERVER_PORT KCM_PORT SCHEDULER_PORT KWOK_PORT METRICS_SERVER_PORT \
    CUSTOM_METRICS_PORT CUSTOM_METRICS_WRITE_PORT \
    PROMETHEUS_PORT REDIS_PORT REDIS_TLS_PORT RABBITMQ_PORT RABBITMQ_MGMT_PORT RABBITMQ_DIST_PORT \
    RABBITMQ_TLS_PORT RABBITMQ_MGMT_TLS_PORT EPMD_PORT POSTGRES_PORT MOTO_PORT KAFKA_PORT KAFKA_SASL_PORT \
    KAFKA_TLS_PORT KAFKA_CONTROLLER_PORT; do
    echo "BALLAST_$var=${!var}"
  done >"$RT/ports"
}

# --------------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------------

with_lock() {
  mkdir -p "$RT"
  exec 9>"$RT/.lock"
  flock -w 300 9 || die "another tests/testbed.sh holds $RT/.lock"
}

cmd_up() {
  local want=() c
  (($#)) || set -- kube metrics-server
  for c in "$@"; do
    case "$c" in
      all) want+=(kube "${SERVICES[@]}") ;;
      kube | metrics-server | custom-metrics | prometheus | redis | rabbitmq | postgres | moto | kafka) want+=("$c") ;;
      *) die "unknown component '$c' (kube, metrics-server, custom-metrics, prometheus, redis, rabbitmq, postgres, moto, kafka, all)" ;;
    esac
  done
  with_lock
  mkdir -p "$RT/pids" "$RT/logs"
  chmod 755 "$RT" # the postgres user must reach its data dir whatever our umask (keys stay 600)
  ensure_packages "${want[@]}"
  local t0=$SECONDS
  write_ports
  # kube first so that Prometheus finds etcd; the rest in the order given.
  for c in kube "${SERVICES[@]}"; do
    [[ " ${want[*]} " == *" $c "* ]] || continue
    "up_${c//-/_}"
    write_env
  done
  write_env
  log "up ${want[*]} in $((SECONDS - t0))s; env: $RT/env"
}

stop_component() {
  case "$1" in
    kube)
      stop kwok
      stop kube-scheduler
      stop kube-controller-manager
      stop kube-apiserver
      stop etcd
      ;;
    rabbitmq)
      if running rabbitmq; then
        rabbitmq_env
        env "${RABBITMQ_ENV[@]}" timeout 30 /usr/lib/rabbitmq/bin/rabbitmqctl -n ballast@localhost stop >/dev/null 2>&1 || true
      fi
      stop rabbitmq
      stop epmd
      ;;
    postgres) stop postgres INT ;; # fast shutdown: do not wait for clients
    metrics-server)
      stop metrics-server
      # An APIService without its server makes every discovery call warn: unregister it.
      if running kube-apiserver; then
        kubectl_ delete apiservice v1beta1.metrics.k8s.io --ignore-not-found --wait=false >/dev/null 2>&1 || true
      fi
      ;;
    custom-metrics)
      stop custom-metrics
      if running kube-apiserver; then
        kubectl_ delete apiservice "${CUSTOM_METRICS_APIS[@]}" --ignore-not-found --wait=false >/dev/null 2>&1 || true
      fi
      ;;
    *) stop "$1" ;;
  esac
}

# down [COMPONENT...]: services in parallel, then the control plane (default: everything).
cmd_down() {
  [[ -d $RT ]] || return 0
  local want=("$@") c pids=()
  ((${#want[@]})) || want=(all)
  [[ " ${want[*]} " == *" all "* ]] && want=("${SERVICES[@]}" kube)
  with_lock
  for c in "${want[@]}"; do
    case "$c" in
      kube) ;;
      metrics-server | custom-metrics | prometheus | redis | rabbitmq | postgres | moto | kafka) stop_component "$c" & pids+=($!) ;;
      *) die "unknown component '$c'" ;;
    esac
  done
  ((${#pids[@]} == 0)) || wait "${pids[@]}" || true
  [[ " ${want[*]} " != *" kube "* ]] || stop_component kube
  write_env
}

# is-up COMPONENT: exit 0 if all its processes run.
cmd_is_up() {
  local c="${1:-kube}" part
  case "$c" in
    kube) for part in "${KUBE_PARTS[@]}"; do running "$part" || return 1; done ;;
    metrics-server | custom-metrics | prometheus | redis | rabbitmq | postgres | moto | kafka) running "$c" ;;
    *) die "unknown component '$c'" ;;
  esac
}

# The processes `kill`, `freeze` and `thaw` act on: the control plane's parts and the services.
FAULT_PARTS=("${KUBE_PARTS[@]}" "${SERVICES[@]}")

fault_part() { # NAME: dies unless NAME is a part of the bed
  [[ " ${FAULT_PARTS[*]} " == *" $1 "* ]] || die "unknown part '$1' (${FAULT_PARTS[*]})"
}

# tree_pids PID: PID and every process below it, parents first. A part may be a tree: RabbitMQ's
# start script runs the Erlang VM, PostgreSQL serves each connection from its own child (in a session
# of its own, so not in the part's process group).
tree_pids() {
  local child
  echo "$1"
  for child in $(pgrep -P "$1" 2>/dev/null); do tree_pids "$child"; done
}

# signal_part SIGNAL PART: SIGNAL to the recorded process of PART and to all its descendants.
signal_part() {
  local sig="$1" part="$2" pid start
  read -r pid start <"$(pidfile "$part")"
  # shellcheck disable=SC2046
  kill -s "$sig" $(tree_pids "$pid") 2>/dev/null || true
  log "$part (pid $pid and its children): SIG$sig"
}

# kill PART [SIGNAL]: stop one process of the bed (`up` starts it again, on the same ports and
# data). SIGNAL (e.g. KILL, a crash) goes to the process and its children; without it, the part's
# usual stop.
cmd_kill() {
  local part="${1:-}" sig="${2:-}"
  fault_part "$part"
  with_lock
  if [[ -n $sig ]]; then
    running "$part" && signal_part "$sig" "$part"
    stop "$part" "$sig"
  else
    case "$part" in
      etcd | kube-apiserver | kube-controller-manager | kube-scheduler | kwok) stop "$part" ;;
      *) stop_component "$part" ;;
    esac
  fi
  write_env
}

# freeze PART / thaw PART: SIGSTOP / SIGCONT its process and its children (it keeps its sockets
# open and answers nothing: the fault a hung server makes).
cmd_signal() {
  local sig="$1" part="${2:-}"
  fault_part "$part"
  running "$part" || die "$part is not running"
  signal_part "$sig" "$part"
}

cmd_status() {
  local c pid
  for c in "${KUBE_PARTS[@]}" metrics-server custom-metrics prometheus redis rabbitmq epmd postgres moto kafka; do
    if running "$c"; then read -r pid _ <"$(pidfile "$c")"; printf '%-24s running (pid %s)\n' "$c" "$pid"
    else printf '%-24s stopped\n' "$c"; fi
  done
}

cmd_env() {
  [[ -f "$RT/env" ]] || die "test bed not running: run tests/testbed.sh up"
  grep '^export' "$RT/env"
}

main() {
  local cmd="${1:-}"
  (($#)) && shift
  case "$cmd" in
    build) cmd_build "$@" ;;
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    is-up) cmd_is_up "$@" ;;
    env) cmd_env ;;
    status) cmd_status ;;
    kill) cmd_kill "$@" ;;
    freeze) cmd_signal STOP "$@" ;;
    thaw) cmd_signal CONT "$@" ;;
    clean) cmd_down; rm -rf "$RT" ;;
    *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

main "$@"
