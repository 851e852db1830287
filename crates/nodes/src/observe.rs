//! Kubernetes objects as the node cores observe them: pods into the scheduling model (requests,
//! selectors, affinity, tolerations, spread, host ports, volume zones, priority) and the
//! disruption facts (owner, local storage, start time), nodes into [`ClusterNode`]s, PDBs,
//! DaemonSets and namespaces, plus the pod and node predicates the controllers select with
//! (provisionable, unbound, terminal, ready). Pure functions of the objects; the live controller
//! builds its [`crate::ClusterSnapshot`] with them.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use crate::resource_list::readable_resources;
use crate::snapshot::{self, BoundPod, ClusterNode, PendingPod};
use ballast_api::nodes::{NodeClaim, labels};
use ballast_scheduling::{self as sched, Resources};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Container, Namespace, Node, NodeSelectorTerm, PersistentVolume, PersistentVolumeClaim, Pod,
    PodSpec, Taint,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Annotation of mirror (static) pods.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// Zone label spellings a PV's node affinity may use.
const ZONE_KEYS: [&str; 2] = [labels::ZONE, "failure-domain.beta.kubernetes.io/zone"];

fn add(into: &mut Resources, r: &Resources) {
    for (k, v) in r.iter() {
        let cur = into.get(k);
        into.set(k, cur.saturating_add(v));
    }
}

fn requests(c: &Container) -> Resources {
    readable_resources(c.resources.as_ref().and_then(|r| r.requests.as_ref()))
}

/// A taint in the model's form (unknown effects read as NoSchedule).
pub fn taint(t: &Taint) -> sched::Taint {
    let effect = match t.effect.as_str() {
        "PreferNoSchedule" => sched::TaintEffect::PreferNoSchedule,
        "NoExecute" => sched::TaintEffect::NoExecute,
        _ => sched::TaintEffect::NoSchedule,
    };
    sched::Taint {
        key: t.key.clone(),
        value: t.value.clone().unwrap_or_default(),
        effect,
    }
}

fn toleration(t: &k8s_openapi::api::core::v1::Toleration) -> sched::Toleration {
    sched::Toleration {
        key: t.key.clone().unwrap_or_default(),
        operator: if t.operator.as_deref() == Some("Exists") {
            sched::TolerationOperator::Exists
        } else {
            sched::TolerationOperator::Equal
        },
        value: t.value.clone().unwrap_or_default(),
        effect: match t.effect.as_deref() {
            Some("NoSchedule") => Some(sched::TaintEffect::NoSchedule),
            Some("PreferNoSchedule") => Some(sched::TaintEffect::PreferNoSchedule),
            Some("NoExecute") => Some(sched::TaintEffect::NoExecute),
            _ => None,
        },
    }
}

/// A label selector in the model's form.
pub fn label_selector(s: &LabelSelector) -> sched::LabelSelector {
    sched::LabelSelector {
        match_labels: s.match_labels.clone().unwrap_or_default(),
        match_expressions: s
            .match_expressions
            .iter()
            .flatten()
            .map(|e| sched::SelectorRequirement {
                key: e.key.clone(),
                operator: match e.operator.as_str() {
                    "NotIn" => sched::SelectorOperator::NotIn,
                    "Exists" => sched::SelectorOperator::Exists,
                    "DoesNotExist" => sched::SelectorOperator::DoesNotExist,
                    _ => sched::SelectorOperator::In,
                },
                values: e.values.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

fn operator(op: &str) -> sched::Operator {
    match op {
        "NotIn" => sched::Operator::NotIn,
        "Exists" => sched::Operator::Exists,
        "DoesNotExist" => sched::Operator::DoesNotExist,
        "Gt" => sched::Operator::Gt,
        "Lt" => sched::Operator::Lt,
        _ => sched::Operator::In,
    }
}

/// A node selector term; `matchFields` on `metadata.name` becomes a hostname requirement (node
/// names and hostname labels agree on the nodes Ballast makes).
fn term(t: &NodeSelectorTerm) -> sched::NodeSelectorTerm {
    let exprs = t
        .match_expressions
        .iter()
        .flatten()
        .map(|r| sched::Requirement {
            key: r.key.clone(),
            operator: operator(&r.operator),
            values: r.values.clone().unwrap_or_default(),
            min_values: None,
        });
    let fields = t
        .match_fields
        .iter()
        .flatten()
        .filter(|r| r.key == "metadata.name")
        .map(|r| sched::Requirement {
            key: sched::labels::HOSTNAME.into(),
            operator: operator(&r.operator),
            values: r.values.clone().unwrap_or_default(),
            min_values: None,
        });
    sched::NodeSelectorTerm {
        match_expressions: exprs.chain(fields).collect(),
    }
}

fn affinity_term(t: &k8s_openapi::api::core::v1::PodAffinityTerm) -> sched::PodAffinityTerm {
    sched::PodAffinityTerm {
        label_selector: t.label_selector.as_ref().map(label_selector),
        namespaces: t.namespaces.clone().unwrap_or_default(),
        namespace_selector: t.namespace_selector.as_ref().map(label_selector),
        topology_key: t.topology_key.clone(),
    }
}

fn pod_affinity(
    required: Option<&Vec<k8s_openapi::api::core::v1::PodAffinityTerm>>,
    preferred: Option<&Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>,
) -> sched::PodAffinity {
    sched::PodAffinity {
        required: required.into_iter().flatten().map(affinity_term).collect(),
        preferred: preferred
            .into_iter()
            .flatten()
            .map(|w| sched::WeightedPodAffinityTerm {
                weight: w.weight,
                pod_affinity_term: affinity_term(&w.pod_affinity_term),
            })
            .collect(),
    }
}

/// Zone facts about volumes: bound PVs' zones, and the allowed topologies of
/// WaitForFirstConsumer storage classes for claims not bound yet.
#[derive(Debug, Clone, Default)]
pub struct VolumeIndex {
    /// (namespace, claim) → zones (empty: no restriction).
    claims: BTreeMap<(String, String), Vec<String>>,
}

fn zones_of_terms(terms: &[NodeSelectorTerm]) -> Vec<String> {
    let mut zones = vec![];
    for t in terms {
        for r in t.match_expressions.iter().flatten() {
            if ZONE_KEYS.contains(&r.key.as_str()) && r.operator == "In" {
                zones.extend(r.values.clone().unwrap_or_default());
            }
        }
    }
    zones.sort();
    zones.dedup();
    zones
}

impl VolumeIndex {
    pub fn new(
        claims: &[impl Borrow<PersistentVolumeClaim>],
        volumes: &[impl Borrow<PersistentVolume>],
        classes: &[impl Borrow<StorageClass>],
    ) -> Self {
        let pv_zones: BTreeMap<String, Vec<String>> = volumes
            .iter()
            .map(|v| v.borrow())
            .filter_map(|v| {
                let terms = v
                    .spec
                    .as_ref()?
                    .node_affinity
                    .as_ref()?
                    .required
                    .as_ref()?
                    .node_selector_terms
                    .clone();
                Some((v.metadata.name.clone()?, zones_of_terms(&terms)))
            })
            .collect();
        let class_zones: BTreeMap<String, Vec<String>> = classes
            .iter()
            .map(|c| c.borrow())
            .filter(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"))
            .filter_map(|c| {
                let mut zones: Vec<String> = c
                    .allowed_topologies
                    .iter()
                    .flatten()
                    .flat_map(|t| t.match_label_expressions.iter().flatten())
                    .filter(|e| ZONE_KEYS.contains(&e.key.as_str()))
                    .flat_map(|e| e.values.clone())
                    .collect();
                zones.sort();
                zones.dedup();
                Some((c.metadata.name.clone()?, zones))
            })
            .collect();
        let mut out = BTreeMap::new();
        for c in claims.iter().map(|c| c.borrow()) {
            let (Some(ns), Some(name)) = (c.metadata.namespace.clone(), c.metadata.name.clone())
            else {
                continue;
            };
            let spec = c.spec.as_ref();
            let zones = match spec.and_then(|s| s.volume_name.as_ref()) {
                Some(pv) => pv_zones.get(pv).cloned().unwrap_or_default(),
                None => spec
                    .and_then(|s| s.storage_class_name.as_ref())
                    .and_then(|sc| class_zones.get(sc).cloned())
                    .unwrap_or_default(),
            };
            out.insert((ns, name), zones);
        }
        VolumeIndex { claims: out }
    }

    fn zones(&self, namespace: &str, claim: &str) -> Vec<String> {
        self.claims
            .get(&(namespace.to_string(), claim.to_string()))
            .cloned()
            .unwrap_or_default()
    }
}

fn sum_requests(spec: &PodSpec) -> (Resources, Vec<Resources>) {
    let mut app = Resources::default();
    for c in &spec.containers {
        add(&mut app, &requests(c));
    }
    // Sidecars (restartable init containers) run beside the app containers; each ordinary init
    // container runs alone with the sidecars started before it.
    let mut sidecars = Resources::default();
    let mut inits = vec![];
    for c in spec.init_containers.iter().flatten() {
        if c.restart_policy.as_deref() == Some("Always") {
            add(&mut sidecars, &requests(c));
        } else {
            let mut r = requests(c);
            add(&mut r, &sidecars);
            inits.push(r);
        }
    }
    add(&mut app, &sidecars);
    // Pod-level resources, when set, stand for the containers' sum.
    let pod_level = readable_resources(spec.resources.as_ref().and_then(|r| r.requests.as_ref()));
    for (k, v) in pod_level.iter() {
        app.set(k, v);
    }
    (app, inits)
}

/// A pod in the scheduling model's form.
/// A pod in the scheduling model's form.
pub fn model_pod(pod: &Pod, volumes: &VolumeIndex) -> sched::Pod {
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let empty = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&empty);
    let (req, init_containers) = sum_requests(spec);
    sched::Pod {
        labels: pod.metadata.labels.clone().unwrap_or_default(),
        requests: req,
        init_containers,
        overhead: readable_resources(spec.overhead.as_ref()),
        node_selector: spec.node_selector.clone().unwrap_or_default(),
        affinity: affinity(spec),
        tolerations: spec.tolerations.iter().flatten().map(toleration).collect(),
        topology_spread_constraints: spread_constraints(spec),
        host_ports: host_ports(spec),
        volumes: volume_topologies(spec, &namespace, &name, volumes),
        priority: spec.priority.unwrap_or(0),
        node_name: spec.node_name.clone().filter(|n| !n.is_empty()),
        namespace,
        name,
    }
}

/// The pod's node affinity, pod affinity and pod anti-affinity.
fn affinity(spec: &PodSpec) -> sched::Affinity {
    let aff = spec.affinity.as_ref();
    let na = aff.and_then(|a| a.node_affinity.as_ref());
    let node_affinity = sched::NodeAffinity {
        required: na
            .and_then(|n| {
                n.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|s| s.node_selector_terms.iter().map(term).collect())
            .unwrap_or_default(),
        preferred: na
            .and_then(|n| {
                n.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .map(|p| sched::PreferredNodeTerm {
                weight: p.weight,
                preference: term(&p.preference),
            })
            .collect(),
    };
    let pa = aff.and_then(|a| a.pod_affinity.as_ref());
    let paa = aff.and_then(|a| a.pod_anti_affinity.as_ref());
    sched::Affinity {
        node_affinity,
        pod_affinity: pod_affinity(
            pa.and_then(|p| {
                p.required_during_scheduling_ignored_during_execution
                    .as_ref()
            }),
            pa.and_then(|p| {
                p.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            }),
        ),
        pod_anti_affinity: pod_affinity(
            paa.and_then(|p| {
                p.required_during_scheduling_ignored_during_execution
                    .as_ref()
            }),
            paa.and_then(|p| {
                p.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            }),
        ),
    }
}

/// The host ports of every container and init container (port 0 or unset: none).
fn host_ports(spec: &PodSpec) -> Vec<sched::HostPort> {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = u16::try_from(p.host_port?).ok().filter(|p| *p > 0)?;
            Some(sched::HostPort {
                port,
                protocol: match p.protocol.as_deref() {
                    Some("UDP") => sched::Protocol::UDP,
                    Some("SCTP") => sched::Protocol::SCTP,
                    _ => sched::Protocol::TCP,
                },
                host_ip: p.host_ip.clone().unwrap_or_default(),
            })
        })
        .collect()
}

/// The zones each of the pod's claims allows (ephemeral volumes by their claim's name).
fn volume_topologies(
    spec: &PodSpec,
    namespace: &str,
    name: &str,
    volumes: &VolumeIndex,
) -> Vec<sched::VolumeTopology> {
    spec.volumes
        .iter()
        .flatten()
        .filter_map(|v| {
            let claim = match (&v.persistent_volume_claim, &v.ephemeral) {
                (Some(c), _) => c.claim_name.clone(),
                (None, Some(_)) => format!("{name}-{}", v.name),
                _ => return None,
            };
            Some(sched::VolumeTopology {
                name: claim.clone(),
                zones: volumes.zones(namespace, &claim),
            })
        })
        .collect()
}

/// The pod's topology spread constraints.
fn spread_constraints(spec: &PodSpec) -> Vec<sched::TopologySpreadConstraint> {
    spec.topology_spread_constraints
        .iter()
        .flatten()
        .map(|c| sched::TopologySpreadConstraint {
            max_skew: c.max_skew,
            topology_key: c.topology_key.clone(),
            when_unsatisfiable: if c.when_unsatisfiable == "ScheduleAnyway" {
                sched::WhenUnsatisfiable::ScheduleAnyway
            } else {
                sched::WhenUnsatisfiable::DoNotSchedule
            },
            label_selector: c.label_selector.as_ref().map(label_selector),
            min_domains: c.min_domains,
            match_label_keys: c.match_label_keys.clone().unwrap_or_default(),
            node_affinity_policy: if c.node_affinity_policy.as_deref() == Some("Ignore") {
                sched::NodeInclusionPolicy::Ignore
            } else {
                sched::NodeInclusionPolicy::Honor
            },
        })
        .collect()
}

/// Kind of the pod's controlling owner; `Node` for mirror (static) pods.
pub fn owner_kind(pod: &Pod) -> Option<String> {
    if pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION))
    {
        return Some("Node".into());
    }
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.kind.clone())
}

/// Succeeded or Failed.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Uses node-local storage: an emptyDir not in memory, or a hostPath.
pub fn uses_local_storage(pod: &Pod) -> bool {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .any(|v| {
            v.host_path.is_some()
                || v.empty_dir
                    .as_ref()
                    .is_some_and(|e| e.medium.as_deref() != Some("Memory"))
        })
}

/// A pod bound to a node, with the facts disruption needs.
pub fn bound_pod(pod: &Pod, volumes: &VolumeIndex) -> BoundPod {
    BoundPod {
        pod: model_pod(pod, volumes),
        annotations: pod.metadata.annotations.clone().unwrap_or_default(),
        owner_kind: owner_kind(pod),
        started: pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0),
        local_storage: uses_local_storage(pod),
        terminal: is_terminal(pod),
    }
}

/// A pending pod (first seen at `first_seen`).
pub fn pending_pod(pod: &Pod, volumes: &VolumeIndex, first_seen: Timestamp) -> PendingPod {
    let mut p = model_pod(pod, volumes);
    p.node_name = None;
    PendingPod {
        pod: p,
        first_seen: Some(first_seen),
    }
}

/// A pod the kube-scheduler could not place: not bound, not being deleted, condition
/// `PodScheduled=False` with reason `Unschedulable`, not a DaemonSet pod, not waiting for a
/// preemption it triggered.
pub fn is_provisionable(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    if spec.node_name.as_deref().is_some_and(|n| !n.is_empty())
        || pod.metadata.deletion_timestamp.is_some()
        || is_terminal(pod)
        || owner_kind(pod).as_deref() == Some("DaemonSet")
    {
        return false;
    }
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    if status
        .nominated_node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty())
    {
        return false;
    }
    status.conditions.iter().flatten().any(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    })
}

/// A pod waiting for a node, whether or not the scheduler has tried it yet (not bound, not being
/// deleted, not finished, not a DaemonSet pod, no scheduling gate).
pub fn is_unbound(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    spec.node_name.as_deref().is_none_or(str::is_empty)
        && spec.scheduling_gates.as_ref().is_none_or(Vec::is_empty)
        && pod.metadata.deletion_timestamp.is_none()
        && !is_terminal(pod)
        && owner_kind(pod).as_deref() != Some("DaemonSet")
}

/// The node's Ready condition is True.
pub fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The node's taints in the model's form.
pub fn node_taints(node: &Node) -> Vec<sched::Taint> {
    node.spec
        .iter()
        .flat_map(|s| s.taints.iter().flatten())
        .map(taint)
        .collect()
}

/// The node's provider ID.
pub fn provider_id(node: &Node) -> Option<&str> {
    node.spec.as_ref()?.provider_id.as_deref()
}

/// A condition of a NodeClaim is True.
pub fn claim_condition(claim: &NodeClaim, type_: &str) -> bool {
    claim.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == "True")
    })
}

/// A node as the cores see it. `claim`: its NodeClaim (same provider ID), whose Initialized
/// condition says whether it is initialized and whose deletion marks it deleting.
pub fn cluster_node(
    node: &Node,
    claim: Option<&NodeClaim>,
    pods: Vec<BoundPod>,
    last_pod_event: Option<Timestamp>,
) -> ClusterNode {
    let status = node.status.as_ref();
    let allocatable = readable_resources(status.and_then(|s| s.allocatable.as_ref()));
    let capacity = status
        .and_then(|s| s.capacity.as_ref())
        .map(|c| readable_resources(Some(c)));
    ClusterNode {
        name: node.metadata.name.clone().unwrap_or_default(),
        node_claim: claim.and_then(|c| c.metadata.name.clone()),
        labels: node.metadata.labels.clone().unwrap_or_default(),
        annotations: node.metadata.annotations.clone().unwrap_or_default(),
        taints: node_taints(node),
        allocatable,
        capacity,
        price: None,
        created: node.metadata.creation_timestamp.as_ref().map(|t| t.0),
        ready: node_ready(node),
        initialized: claim.is_none_or(|c| claim_condition(c, "Initialized")),
        unschedulable: node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false),
        deleting: node.metadata.deletion_timestamp.is_some()
            || claim.is_some_and(|c| c.metadata.deletion_timestamp.is_some()),
        last_pod_event,
        pods,
        pods_revision: None,
    }
}

/// A PodDisruptionBudget as the cores see it (an absent selector covers nothing).
pub fn pdb(p: &PodDisruptionBudget) -> snapshot::PodDisruptionBudget {
    let selector = match p.spec.as_ref().and_then(|s| s.selector.as_ref()) {
        Some(s) => label_selector(s),
        // A nil selector selects no pod: a label no pod carries.
        None => sched::LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![sched::SelectorRequirement {
                key: "nodes.ballast.dev/no-such-label".into(),
                operator: sched::SelectorOperator::Exists,
                values: vec![],
            }],
        },
    };
    snapshot::PodDisruptionBudget {
        namespace: p
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        name: p.metadata.name.clone().unwrap_or_default(),
        selector,
        disruptions_allowed: p
            .status
            .as_ref()
            .map(|s| s.disruptions_allowed)
            .unwrap_or(0),
    }
}

/// A DaemonSet's pod template.
pub fn daemon_set(ds: &DaemonSet, volumes: &VolumeIndex) -> Option<snapshot::DaemonSet> {
    let spec = ds.spec.as_ref()?;
    let pod = Pod {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            namespace: ds.metadata.namespace.clone(),
            name: ds.metadata.name.clone(),
            labels: spec
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone()),
            ..Default::default()
        },
        spec: spec.template.spec.clone(),
        status: None,
    };
    Some(snapshot::DaemonSet {
        pod: model_pod(&pod, volumes),
    })
}

/// A namespace with its labels.
pub fn namespace(ns: &Namespace) -> sched::Namespace {
    sched::Namespace {
        name: ns.metadata.name.clone().unwrap_or_default(),
        labels: ns.metadata.labels.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).unwrap()
    }

    const WEB: &str = r#"
metadata:
  name: web-1
  namespace: shop
  labels: {app: web}
  annotations: {nodes.ballast.dev/do-not-disrupt: "true"}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-x, uid: u1, controller: true}]
spec:
  priority: 100
  nodeSelector: {nodes.ballast.dev/nodepool: general}
  containers:
    - name: a
      image: x
      resources: {requests: {cpu: 500m, memory: 1Gi}}
      ports: [{containerPort: 80, hostPort: 8080}]
    - name: b
      image: x
      resources: {requests: {cpu: 250m, nvidia.com/gpu: "1"}}
  initContainers:
    - {name: sidecar, image: x, restartPolicy: Always, resources: {requests: {cpu: 100m}}}
    - {name: init, image: x, resources: {requests: {cpu: "2"}}}
  tolerations:
    - {key: team, operator: Equal, value: a, effect: NoSchedule}
    - {operator: Exists}
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
          - matchExpressions: [{key: topology.kubernetes.io/zone, operator: In, values: [z1, z2]}]
            matchFields: [{key: metadata.name, operator: NotIn, values: [bad-node]}]
      preferredDuringSchedulingIgnoredDuringExecution:
        - {weight: 10, preference: {matchExpressions: [{key: nodes.ballast.dev/capacity-type, operator: In, values: [spot]}]}}
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        - {labelSelector: {matchLabels: {app: web}}, topologyKey: kubernetes.io/hostname}
  topologySpreadConstraints:
    - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchExpressions: [{key: app, operator: In, values: [web]}]}}
  volumes:
    - {name: data, persistentVolumeClaim: {claimName: data-web-1}}
    - {name: scratch, emptyDir: {}}
status:
  phase: Pending
  startTime: "2026-01-01T00:00:00Z"
  conditions: [{type: PodScheduled, status: "False", reason: Unschedulable}]
"#;

    #[test]
    fn pod_model_covers_every_constraint() {
        let pvc: PersistentVolumeClaim = serde_yaml::from_str(
            "metadata: {name: data-web-1, namespace: shop}\nspec: {volumeName: pv-1}",
        )
        .unwrap();
        let pv: PersistentVolume = serde_yaml::from_str(
            "metadata: {name: pv-1}\nspec:\n  nodeAffinity:\n    required:\n      nodeSelectorTerms:\n        - matchExpressions: [{key: topology.kubernetes.io/zone, operator: In, values: [z2]}]",
        )
        .unwrap();
        let vols = VolumeIndex::new(&[pvc], &[pv], &[] as &[StorageClass]);
        let p = pod(WEB);
        let m = model_pod(&p, &vols);
        assert_eq!((m.namespace.as_str(), m.name.as_str()), ("shop", "web-1"));
        assert_eq!(m.requests.cpu_millis, 850);
        assert_eq!(m.requests.memory_bytes, 1 << 30);
        assert_eq!(m.requests.get("nvidia.com/gpu"), 1);
        assert_eq!(m.init_containers.len(), 1);
        assert_eq!(m.init_containers[0].cpu_millis, 2100);
        assert_eq!(m.effective_requests().cpu_millis, 2100);
        assert_eq!(m.priority, 100);
        assert_eq!(m.node_selector["nodes.ballast.dev/nodepool"], "general");
        assert_eq!(m.tolerations.len(), 2);
        assert_eq!(m.tolerations[1].operator, sched::TolerationOperator::Exists);
        let req = &m.affinity.node_affinity.required[0].match_expressions;
        assert_eq!(req.len(), 2);
        assert_eq!(req[1].key, sched::labels::HOSTNAME);
        assert_eq!(req[1].operator, sched::Operator::NotIn);
        assert_eq!(m.affinity.node_affinity.preferred[0].weight, 10);
        assert_eq!(
            m.affinity.pod_anti_affinity.required[0].topology_key,
            "kubernetes.io/hostname"
        );
        assert_eq!(m.topology_spread_constraints[0].max_skew, 1);
        assert_eq!(m.host_ports[0].port, 8080);
        assert_eq!(m.volumes.len(), 1);
        assert_eq!(m.volumes[0].zones, vec!["z2".to_string()]);
        assert!(is_provisionable(&p));
        let b = bound_pod(&p, &vols);
        assert_eq!(b.owner_kind.as_deref(), Some("ReplicaSet"));
        assert!(b.local_storage);
        assert!(!b.terminal);
        assert!(b.started.is_some());
    }

    #[test]
    fn provisionable_only_when_the_scheduler_gave_up() {
        let mut p = pod(WEB);
        assert!(is_provisionable(&p));
        p.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
            type_: "PodScheduled".into(),
            status: "False".into(),
            reason: Some("SchedulingGated".into()),
            ..Default::default()
        }]);
        assert!(!is_provisionable(&p));
        let mut p = pod(WEB);
        assert!(is_unbound(&p));
        p.spec.as_mut().unwrap().node_name = Some("n1".into());
        assert!(!is_provisionable(&p));
        assert!(!is_unbound(&p));
        let mut p = pod(WEB);
        p.metadata.owner_references.as_mut().unwrap()[0].kind = "DaemonSet".into();
        assert!(!is_provisionable(&p));
        let mut p = pod(WEB);
        p.status = Some(PodStatus {
            phase: Some("Failed".into()),
            ..p.status.unwrap()
        });
        assert!(!is_provisionable(&p));
    }

    #[test]
    fn wait_for_first_consumer_class_zones() {
        let pvc: PersistentVolumeClaim = serde_yaml::from_str(
            "metadata: {name: c, namespace: ns}\nspec: {storageClassName: zonal}",
        )
        .unwrap();
        let sc: StorageClass = serde_yaml::from_str(
            "metadata: {name: zonal}\nprovisioner: x\nvolumeBindingMode: WaitForFirstConsumer\nallowedTopologies: [{matchLabelExpressions: [{key: topology.kubernetes.io/zone, values: [z3]}]}]",
        )
        .unwrap();
        let v = VolumeIndex::new(&[pvc], &[] as &[PersistentVolume], &[sc]);
        assert_eq!(v.zones("ns", "c"), vec!["z3".to_string()]);
        assert!(v.zones("ns", "other").is_empty());
    }

    #[test]
    fn nodes_and_pdbs() {
        let n: Node = serde_yaml::from_str(
            r#"
metadata: {name: n1, labels: {nodes.ballast.dev/nodepool: general}, creationTimestamp: "2026-01-01T00:00:00Z"}
spec: {providerID: "kwok://n1", unschedulable: true, taints: [{key: a, value: b, effect: NoExecute}]}
status:
  allocatable: {cpu: 1930m, memory: 7Gi, pods: "29"}
  capacity: {cpu: "2", memory: 8Gi, pods: "29"}
  conditions: [{type: Ready, status: "True"}]
"#,
        )
        .unwrap();
        let c = cluster_node(&n, None, vec![], None);
        assert_eq!(c.allocatable.cpu_millis, 1930);
        assert_eq!(c.capacity.as_ref().unwrap().cpu_millis, 2000);
        assert!(c.ready && c.unschedulable && c.initialized && !c.deleting);
        assert_eq!(c.taints[0].effect, sched::TaintEffect::NoExecute);
        assert_eq!(provider_id(&n), Some("kwok://n1"));
        let p: PodDisruptionBudget = serde_yaml::from_str(
            "metadata: {name: web, namespace: shop}\nspec: {selector: {matchLabels: {app: web}}}\nstatus: {disruptionsAllowed: 0, currentHealthy: 1, desiredHealthy: 1, expectedPods: 1}",
        )
        .unwrap();
        let s = pdb(&p);
        assert_eq!(s.disruptions_allowed, 0);
        assert!(s.covers(&model_pod(&pod(WEB), &VolumeIndex::default())));
    }
}
