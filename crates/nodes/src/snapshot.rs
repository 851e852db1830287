//! The observed cluster one decision looks at: nodes with their pods, pending pods, NodePools,
//! NodeClaims, PodDisruptionBudgets, the instance catalog and the DaemonSets that add overhead to
//! every new node.
//!
//! Serde-friendly (camelCase, like Kubernetes) so `ballast explain provision|disruption -f FILE`
//! and the simulator build it the same way the live controllers do. NodePools and NodeClaims are
//! the Ballast CRD objects themselves; nodes and pods are a compact mirror of what the cores need.

use std::collections::BTreeMap;

use ballast_api::nodes::{NodeClaim, NodePool};
use ballast_scheduling::catalog::CatalogFile;
use ballast_scheduling::{InstanceType, LabelSelector, Namespace, Pod, PodRef, Resources, Taint};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Pod annotation: cost of deleting this pod relative to its siblings (ReplicaSet scale-down).
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";
/// Pod annotation honoured like Cluster Autoscaler: "true" lets a pod with local storage or no
/// controller move, "false" pins it.
pub const SAFE_TO_EVICT: &str = "cluster-autoscaler.kubernetes.io/safe-to-evict";

fn yes() -> bool {
    true
}

/// Everything a provisioning or disruption decision looks at.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSnapshot {
    /// Every node, with the pods bound to it.
    #[serde(default)]
    pub nodes: Vec<ClusterNode>,
    /// Pods not bound to any node.
    #[serde(default)]
    pub pending_pods: Vec<PendingPod>,
    #[serde(default)]
    pub node_pools: Vec<NodePool>,
    /// Every NodeClaim: those whose node registered (named by `ClusterNode::node_claim`) and those
    /// still in flight.
    #[serde(default)]
    pub node_claims: Vec<NodeClaim>,
    #[serde(default)]
    pub pdbs: Vec<PodDisruptionBudget>,
    /// Instance types, written out in full.
    #[serde(default)]
    pub instance_types: Vec<InstanceType>,
    /// Instance types in the compact catalog-file form; expanded and added to `instance_types`.
    #[serde(default)]
    pub catalog: Option<CatalogFile>,
    /// DaemonSet pod templates: each adds its requests to every new node of the NodePools whose
    /// taints it tolerates and whose labels its node selector accepts.
    #[serde(default)]
    pub daemon_sets: Vec<DaemonSet>,
    /// Extra per-node overhead added to every NodePool (on top of the DaemonSets).
    #[serde(default)]
    pub daemonset_overhead: Resources,
    /// Namespace labels, for pod affinity `namespaceSelector`.
    #[serde(default)]
    pub namespaces: Vec<Namespace>,
}

/// A node and what runs on it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNode {
    pub name: String,
    /// The NodeClaim this node was made from (None: not managed by Ballast, unless it carries a
    /// NodePool label, in which case defaults stand in for the missing NodeClaim).
    #[serde(default)]
    pub node_claim: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub taints: Vec<Taint>,
    pub allocatable: Resources,
    /// Capacity, counted against NodePool limits (defaults to allocatable).
    #[serde(default)]
    pub capacity: Option<Resources>,
    /// $ per hour; when absent, looked up in the catalog from the instance-type, zone and
    /// capacity-type labels.
    #[serde(default)]
    pub price: Option<f64>,
    /// When the node (or its NodeClaim) was created.
    #[serde(default)]
    pub created: Option<Timestamp>,
    /// The Ready condition.
    #[serde(default = "yes")]
    pub ready: bool,
    /// Startup taints gone and ready (the NodeClaim's Initialized condition).
    #[serde(default = "yes")]
    pub initialized: bool,
    /// Cordoned.
    #[serde(default)]
    pub unschedulable: bool,
    /// Being deleted or already chosen for disruption.
    #[serde(default)]
    pub deleting: bool,
    /// Last time a pod was bound to or left the node (resets consolidateAfter).
    #[serde(default)]
    pub last_pod_event: Option<Timestamp>,
    #[serde(default)]
    pub pods: Vec<BoundPod>,
    /// For a caller that keeps one snapshot across decisions: a number that changes whenever
    /// the node's pods change (a pod bound, gone or altered). Disruption passes given a memo
    /// reuse what they read from the pods of a node whose revision stayed the same. Absent: the
    /// pods are read on every pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods_revision: Option<u64>,
}

/// A pod bound to a node, with what disruption needs to know about it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BoundPod {
    /// The scheduling view (requests, constraints, priority). `nodeName` is ignored: the node
    /// listing the pod is where it runs.
    #[serde(flatten)]
    pub pod: Pod,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Kind of the controlling owner: ReplicaSet, StatefulSet, Job, DaemonSet, Node (a static or
    /// mirror pod)... None when the pod has no controller.
    #[serde(default)]
    pub owner_kind: Option<String>,
    /// When the pod started (for a do-not-disrupt duration).
    #[serde(default)]
    pub started: Option<Timestamp>,
    /// Uses node-local storage (emptyDir on disk, hostPath).
    #[serde(default)]
    pub local_storage: bool,
    /// Succeeded or Failed: takes no room and needs no new home.
    #[serde(default)]
    pub terminal: bool,
}

impl BoundPod {
    pub fn key(&self) -> PodRef {
        self.pod.key()
    }
    /// DaemonSet and static pods die with their node; they never need a new home.
    pub fn is_reschedulable(&self) -> bool {
        !self.terminal && !matches!(self.owner_kind.as_deref(), Some("DaemonSet") | Some("Node"))
    }
}

/// A pod waiting for a node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingPod {
    #[serde(flatten)]
    pub pod: Pod,
    /// When the provisioner first saw it unschedulable (for batching).
    #[serde(default)]
    pub first_seen: Option<Timestamp>,
}

/// A PodDisruptionBudget, reduced to what a disruption decision needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodDisruptionBudget {
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub name: String,
    /// Pods of `namespace` it covers (an empty selector covers them all).
    #[serde(default)]
    pub selector: LabelSelector,
    /// `status.disruptionsAllowed`: how many of its pods may be evicted right now.
    pub disruptions_allowed: i32,
}

fn default_namespace() -> String {
    "default".into()
}

/// A DaemonSet's pod template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSet {
    #[serde(flatten)]
    pub pod: Pod,
}

/// True when the selector accepts the labels (an empty selector accepts everything).
pub fn selector_matches(s: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    use ballast_scheduling::SelectorOperator as Op;
    s.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
        && s.match_expressions.iter().all(|e| {
            let v = labels.get(&e.key);
            match e.operator {
                Op::In => v.is_some_and(|v| e.values.contains(v)),
                Op::NotIn => v.is_none_or(|v| !e.values.contains(v)),
                Op::Exists => v.is_some(),
                Op::DoesNotExist => v.is_none(),
            }
        })
}

impl PodDisruptionBudget {
    pub fn covers(&self, pod: &Pod) -> bool {
        pod.namespace == self.namespace && selector_matches(&self.selector, &pod.labels)
    }
}
