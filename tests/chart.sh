#!/usr/bin/env bash
# Tests of the Helm chart deploy/helm/ballast (tests/run.sh calls it once the bed's `kube` is up):
#  1. helm lint --strict, with the default values and with tests/chart/values-all.yaml;
#  2. helm template | kubeconform -strict, offline schemas made by tests/chart/schemas.py: built-in
#     kinds from the bed's /openapi/v2 (Kubernetes v1.35), the Ballast kinds from crds/; the chart's
#     CRDs (--include-crds) and the Ballast objects of simulations/objects are validated too. Only
#     ServiceMonitor (a Prometheus Operator CRD, not on the bed) is skipped;
#  3. kubectl apply --server-side --dry-run=server of the rendered chart into a fresh namespace
#     that enforces Pod Security `restricted` (an API server warning fails the test);
#     Without leader election, more than one replica of a reconciler is refused;
#  4. helm install into that namespace: the ReplicaSets' pods must be admitted; then each
#     ServiceAccount's role checked with SubjectAccessReviews: what it needs is allowed, a few
#     writes and Secrets beyond it are denied (`update` where the code only patches); the nodes
#     reconciler's ValidatingAdmissionPolicy and binding exist, its CEL type-checked without
#     warnings; helm uninstall, and its RBAC
#     objects and the policy are gone.
# The chart's CRDs stay installed (Helm never deletes crds/), as after `crds::apply` in the tests.
#
# Needs `tests/testbed.sh build` (helm, kubeconform) and `tests/testbed.sh up kube`; python3 with
# PyYAML (installed with apt-get when run as root). Talks only to the bed's kubeconfig.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TB="$ROOT/tests/testbed.sh"
# shellcheck source=testbed/versions.env
source "$ROOT/tests/testbed/versions.env"
CACHE="${BALLAST_CACHE:-$HOME/.cache/ballast}"
HELM="$CACHE/bin/helm-$HELM_VERSION/helm"
KUBECONFORM="$CACHE/bin/kubeconform-$KUBECONFORM_VERSION/kubeconform"
CHART="$ROOT/deploy/helm/ballast"
ALL_VALUES="$ROOT/tests/chart/values-all.yaml"

log() { printf '[chart %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

[[ -x $HELM && -x $KUBECONFORM ]] || die "helm or kubeconform missing: run tests/testbed.sh build"
"$TB" is-up kube || die "the test bed's kube is not up: tests/testbed.sh up kube"
if ! python3 -c 'import yaml' 2>/dev/null; then
  [[ "$(id -u)" == 0 ]] || die "python3 has no PyYAML: apt-get install python3-yaml"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-yaml >/dev/null
fi
eval "$("$TB" env)"
KUBECONFIG="$BALLAST_KUBECONFIG"
KUBECTL="$BALLAST_KUBECTL"
export KUBECONFIG
WORK="$(mktemp -d)"
# Helm keeps its own state here, never in the developer's ~/.config/helm.
export HELM_CACHE_HOME="$WORK/helm" HELM_CONFIG_HOME="$WORK/helm" HELM_DATA_HOME="$WORK/helm"
SUFFIX="$(printf '%04x%04x' $RANDOM $RANDOM)"
NS="ballast-chart-$SUFFIX"
SECRETS_NS="$NS-secrets"
RELEASE="ballast-$SUFFIX"
INSTALLED=

cleanup() {
  local rc=$?
  [[ -z $INSTALLED ]] || "$HELM" uninstall "$RELEASE" -n "$NS" >/dev/null 2>&1 || true
  "$KUBECTL" delete namespace "$NS" "$SECRETS_NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

log "helm lint --strict (default values, tests/chart/values-all.yaml)"
"$HELM" lint --strict "$CHART" >"$WORK/lint.txt" || { cat "$WORK/lint.txt" >&2; die "helm lint"; }
"$HELM" lint --strict "$CHART" -f "$ALL_VALUES" >"$WORK/lint.txt" || { cat "$WORK/lint.txt" >&2; die "helm lint -f values-all.yaml"; }

log "schemas: the bed's /openapi/v2 and crds/ (tests/chart/schemas.py)"
"$KUBECTL" get --raw /openapi/v2 >"$WORK/openapi-v2.json"
python3 "$ROOT/tests/chart/schemas.py" "$WORK/schemas" --openapi "$WORK/openapi-v2.json"
python3 "$ROOT/tests/chart/schemas.py" "$WORK/schemas" --crd "$ROOT"/crds/*.yaml

log "helm template | kubeconform -strict"
"$HELM" template ballast "$CHART" -n ballast-system --include-crds >"$WORK/default.yaml"
"$HELM" template ballast "$CHART" -n ballast-system --include-crds -f "$ALL_VALUES" >"$WORK/all.yaml"
mapfile -t objects < <(grep -l '^apiVersion: \(autoscaling\|nodes\)\.ballast\.dev/' "$ROOT"/simulations/objects/*.yaml)
((${#objects[@]})) || die "no Ballast objects found in simulations/objects"
"$KUBECONFORM" -strict -summary -output text \
  -schema-location "$WORK/schemas/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json" \
  -skip monitoring.coreos.com/v1/ServiceMonitor \
  "$WORK/default.yaml" "$WORK/all.yaml" "${objects[@]}" >&2 || die "kubeconform"
# Without leader election two replicas of one reconciler would both write: the chart refuses it.
! "$HELM" template ballast "$CHART" --set leaderElection.enabled=false >/dev/null 2>"$WORK/refused.txt" ||
  die "leaderElection.enabled=false with 2 replicas rendered"
grep -q 'replicas would all write' "$WORK/refused.txt" || { cat "$WORK/refused.txt" >&2; die "no reason given"; }
"$HELM" template ballast "$CHART" --set leaderElection.enabled=false --set horizontal.replicas=1 \
  --set nodes.replicas=1 --set vertical.replicas=1 | grep -q 'type: Recreate' || die "no Recreate without leader election"
# kubeconform fails on a kind it has no schema for (no -ignore-missing-schemas). What was rendered:
# Native HPAs only with horizontal.nativeHpa: the flag and the rules come together.
! grep -q 'horizontalpodautoscalers\|--native-hpa' "$WORK/default.yaml" || die "native HPA access without horizontal.nativeHpa"
grep -q -- '--native-hpa' "$WORK/all.yaml" || die "horizontal.nativeHpa rendered no --native-hpa"
grep -h '^kind: ' "$WORK/all.yaml" | sort | uniq -c | sed 's/^/    rendered: /' >&2

log "kubectl apply --server-side --dry-run=server into namespace $NS"
"$KUBECTL" create namespace "$NS" >/dev/null
# Pod Security Admission: the namespace enforces `restricted`, so a pod that breaks it is refused.
"$KUBECTL" label namespace "$NS" pod-security.kubernetes.io/enforce=restricted \
  pod-security.kubernetes.io/warn=restricted >/dev/null
"$KUBECTL" create namespace "$SECRETS_NS" >/dev/null
"$HELM" template "$RELEASE" "$CHART" -n "$NS" --include-crds -f "$ALL_VALUES" \
  --set serviceMonitor.enabled=false --set "horizontal.secretNamespaces={$SECRETS_NS}" >"$WORK/install.yaml"
"$KUBECTL" apply --server-side --force-conflicts --dry-run=server --field-manager=ballast-chart-test \
  -f "$WORK/install.yaml" >"$WORK/dry-run.txt" 2>"$WORK/dry-run.err" ||
  { cat "$WORK/dry-run.txt" "$WORK/dry-run.err" >&2; die "dry-run"; }
! grep -i 'warning' "$WORK/dry-run.err" >&2 || die "the API server warned (PodSecurity restricted?)"
sed 's/^/    /' "$WORK/dry-run.txt" >&2

log "helm install $RELEASE -n $NS"
INSTALLED=1
# Installed without the vertical webhook: its configuration names a Service, and the bed's API
# server must never dial a ClusterIP (the webhook itself is tested through clientConfig.url in
# crates/controller/tests/vertical.rs); it is rendered, validated and dry-run above.
"$HELM" install "$RELEASE" "$CHART" -n "$NS" -f "$ALL_VALUES" --set vertical.webhook.enabled=false \
  --set serviceMonitor.enabled=false --set "horizontal.secretNamespaces={$SECRETS_NS}" >"$WORK/install.txt" ||
  { cat "$WORK/install.txt" >&2; die "helm install"; }
"$HELM" status "$RELEASE" -n "$NS" >"$WORK/status.txt"
grep -q '^STATUS: deployed$' "$WORK/status.txt" || die "release $RELEASE is not deployed"
for c in horizontal nodes vertical; do
  for kind in deployment serviceaccount service poddisruptionbudget; do
    "$KUBECTL" get -n "$NS" "$kind" "$RELEASE-$c" -o name >/dev/null || die "no $kind $RELEASE-$c"
  done
done

# The ReplicaSets' pods (two per reconciler: leader election) pass the namespace's `restricted`
# enforcement (they stay Pending: no node).
for ((i = 0; i < 60; i++)); do
  pods="$("$KUBECTL" get pods -n "$NS" -o name | wc -l)"
  ((pods == 6)) && break
  sleep 0.5
done
((pods == 6)) || {
  "$KUBECTL" get events -n "$NS" --field-selector reason=FailedCreate >&2 || true
  die "$pods of 6 pods created in $NS (restricted)"
}

# can SA yes|no VERB GROUP RESOURCE[/SUBRESOURCE] [NAMESPACE [NAME]]: a SubjectAccessReview for
# the ServiceAccount SA must answer as expected (GROUP `core` for ""; no NAMESPACE: every namespace).
failures=0
can() {
  local sa="$1" want="$2" verb="$3" group="$4" resource="${5%%/*}" sub= ns="${6:-}" name="${7:-}" got
  [[ $5 != */* ]] || sub="${5#*/}"
  [[ $group != core ]] || group=
  got="$("$KUBECTL" create -o jsonpath='{.status.allowed}' -f - <<EOF
apiVersion: authorization.k8s.io/v1
kind: SubjectAccessReview
spec:
  user: system:serviceaccount:$NS:$RELEASE-$sa
  groups: [system:serviceaccounts, "system:serviceaccounts:$NS", system:authenticated]
  resourceAttributes: { verb: $verb, group: "$group", resource: $resource, subresource: "$sub", namespace: "$ns", name: "$name" }
EOF
)"
  [[ $got == true ]] && got=yes || got=no
  if [[ $got != "$want" ]]; then
    log "  $sa: $verb $4 $5 ${ns:-(all namespaces)} $name -> $got, want $want"
    failures=$((failures + 1))
  fi
}
log "RBAC: each ServiceAccount's allowed and denied requests (SubjectAccessReviews)"
can horizontal yes patch apps deployments/scale default
can horizontal yes patch apps statefulsets/scale default
can horizontal no update apps statefulsets/scale default
can horizontal yes get example.com widgets/scale default
can horizontal yes watch core pods
can horizontal yes patch autoscaling.ballast.dev horizontalautoscalers/status default
can horizontal yes list metrics.k8s.io pods default
can horizontal yes get external.metrics.k8s.io queue_length default
can horizontal yes get core secrets "$SECRETS_NS"
can horizontal yes create events.k8s.io events default
can horizontal yes watch autoscaling.ballast.dev verticalautoscalers default
can horizontal yes watch autoscaling horizontalpodautoscalers default
can horizontal yes patch autoscaling horizontalpodautoscalers/status default
can horizontal no patch autoscaling horizontalpodautoscalers default
can horizontal no update autoscaling horizontalpodautoscalers/status default
can horizontal no delete autoscaling horizontalpodautoscalers default
can horizontal no patch autoscaling.ballast.dev verticalautoscalers/status default
can horizontal no get core secrets default
can horizontal no list core secrets "$SECRETS_NS"
can horizontal no delete apps deployments default
can horizontal no update apps deployments default
can horizontal no update autoscaling.ballast.dev horizontalautoscalers/status default
can horizontal yes get core configmaps default
can horizontal yes patch core configmaps default
can horizontal yes create core configmaps default
can horizontal no list core configmaps default
can horizontal no update core configmaps default
can horizontal no delete core configmaps default
can horizontal no patch autoscaling.ballast.dev horizontalautoscalers default
can horizontal no create nodes.ballast.dev nodeclaims
can nodes yes create nodes.ballast.dev nodeclaims
can nodes yes patch nodes.ballast.dev nodepools/status
can nodes yes create core pods/eviction default
can nodes yes delete core nodes
can nodes yes patch core nodes
can nodes no update core nodes
can nodes no patch core nodes/status
can nodes no update nodes.ballast.dev nodeclaims
can nodes yes delete core pods default
can nodes no patch core pods default
can nodes yes watch policy poddisruptionbudgets
can nodes no get core secrets default
can nodes no patch apps deployments/scale default
can nodes no delete apps deployments default
can nodes no patch autoscaling.ballast.dev horizontalautoscalers default
can vertical yes create autoscaling.ballast.dev verticalautoscalercheckpoints default
can vertical yes patch autoscaling.ballast.dev verticalautoscalers/status default
can vertical yes patch autoscaling.ballast.dev verticalautoscalercheckpoints/status default
can vertical yes get apps deployments/scale default
can vertical yes watch autoscaling.ballast.dev horizontalautoscalers default
can vertical no patch autoscaling.ballast.dev horizontalautoscalers/status default
can vertical yes list metrics.k8s.io pods default
can vertical yes create core pods/eviction default
can vertical yes patch core pods/resize default
can vertical yes watch policy poddisruptionbudgets
can vertical yes list core limitranges default
can vertical no patch apps deployments/scale default
can vertical no delete core pods default
can vertical no patch core pods default
can vertical no update core pods/status default
can vertical no delete policy poddisruptionbudgets default
can vertical no get core secrets default
can vertical no delete autoscaling.ballast.dev verticalautoscalercheckpoints default
can vertical no update autoscaling.ballast.dev verticalautoscalers/status default
# Leader election: each reconciler its own Lease, in the release's namespace only.
for c in horizontal nodes vertical; do
  can "$c" yes create coordination.k8s.io leases "$NS"
  can "$c" yes get coordination.k8s.io leases "$NS" "$RELEASE-$c"
  can "$c" yes update coordination.k8s.io leases "$NS" "$RELEASE-$c"
  can "$c" no delete coordination.k8s.io leases "$NS" "$RELEASE-$c"
  can "$c" no create coordination.k8s.io leases default
  can "$c" no update coordination.k8s.io leases default "$RELEASE-$c"
done
can horizontal no update coordination.k8s.io leases "$NS" "$RELEASE-nodes"
can nodes no update coordination.k8s.io leases "$NS" "$RELEASE-horizontal"
((failures == 0)) || die "$failures RBAC answers differ"
# What RBAC cannot restrict (which Nodes, which pods) the nodes reconciler's admission policy does;
# that it denies is shown with the ServiceAccount's own token in crates/ballast/tests/rbac/.
for kind in validatingadmissionpolicy validatingadmissionpolicybinding; do
  "$KUBECTL" get "$kind" "$RELEASE-nodes" -o name >/dev/null || die "no $kind $RELEASE-nodes"
done
# The API server type-checks the policy's CEL against the Node and Pod schemas: no warning.
for ((i = 0; i < 20; i++)); do
  checked="$("$KUBECTL" get validatingadmissionpolicy "$RELEASE-nodes" -o jsonpath='{.status.observedGeneration}')"
  [[ -n $checked ]] && break
  sleep 0.5
done
[[ -n $checked ]] || die "the API server did not type-check ValidatingAdmissionPolicy $RELEASE-nodes"
warnings="$("$KUBECTL" get validatingadmissionpolicy "$RELEASE-nodes" -o jsonpath='{.status.typeChecking.expressionWarnings}')"
[[ -z $warnings ]] || die "type-check warnings of the admission policy: $warnings"

log "helm uninstall $RELEASE"
"$HELM" uninstall "$RELEASE" -n "$NS" --wait >/dev/null
INSTALLED=
for c in horizontal nodes vertical; do
  ! "$KUBECTL" get clusterrole "$RELEASE-$c" -o name >/dev/null 2>&1 || die "ClusterRole $RELEASE-$c left behind"
done
! "$KUBECTL" get role -n "$SECRETS_NS" "$RELEASE-horizontal-secrets" -o name >/dev/null 2>&1 ||
  die "Role $RELEASE-horizontal-secrets left behind"
for c in horizontal nodes vertical; do
  ! "$KUBECTL" get role -n "$NS" "$RELEASE-$c-leader" -o name >/dev/null 2>&1 || die "Role $RELEASE-$c-leader left behind"
done
! "$KUBECTL" get validatingadmissionpolicy "$RELEASE-nodes" -o name >/dev/null 2>&1 ||
  die "ValidatingAdmissionPolicy $RELEASE-nodes left behind"
log "chart tests passed"
