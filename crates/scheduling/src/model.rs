//! The input model: our own small, serde-friendly mirror of the Kubernetes and Karpenter objects
//! the scheduler looks at. An adapter maps API objects onto it; snapshot files deserialize into it.
//! Field names follow the Kubernetes spelling (camelCase) so YAML snapshots read naturally.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::quantity::{format_bytes, format_cpu_millis, parse_cpu_millis, parse_units};

/// Well-known label keys.
pub mod labels {
    pub const ZONE: &str = "topology.kubernetes.io/zone";
    pub const REGION: &str = "topology.kubernetes.io/region";
    pub const HOSTNAME: &str = "kubernetes.io/hostname";
    pub const ARCH: &str = "kubernetes.io/arch";
    pub const OS: &str = "kubernetes.io/os";
    pub const INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";
    pub const CAPACITY_TYPE: &str = "nodes.ballast.dev/capacity-type";
    pub const NODEPOOL: &str = "nodes.ballast.dev/nodepool";
}

/// Resource amounts: cpu in millicores, memory and ephemeral storage in bytes, pods as a count,
/// and extended resources (`nvidia.com/gpu`, ...) as integer counts.
///
/// Serialized as a Kubernetes resource list: `{cpu: "500m", memory: "1Gi", nvidia.com/gpu: 1}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    pub pods: i64,
    pub ephemeral_storage_bytes: i64,
    pub extended: BTreeMap<String, i64>,
}

impl Resources {
    pub fn cpu_mem(cpu_millis: i64, memory_bytes: i64) -> Self {
        Resources {
            cpu_millis,
            memory_bytes,
            ..Default::default()
        }
    }
    pub fn with(mut self, name: &str, amount: i64) -> Self {
        self.set(name, amount);
        self
    }
    /// Amount of a resource by its Kubernetes name (0 when absent).
    pub fn get(&self, name: &str) -> i64 {
        match name {
            "cpu" => self.cpu_millis,
            "memory" => self.memory_bytes,
            "pods" => self.pods,
            "ephemeral-storage" => self.ephemeral_storage_bytes,
            other => self.extended.get(other).copied().unwrap_or(0),
        }
    }
    pub fn set(&mut self, name: &str, amount: i64) {
        match name {
            "cpu" => self.cpu_millis = amount,
            "memory" => self.memory_bytes = amount,
            "pods" => self.pods = amount,
            "ephemeral-storage" => self.ephemeral_storage_bytes = amount,
            other => {
                self.extended.insert(other.to_string(), amount);
            }
        }
    }
    /// Every (name, amount) pair that is set, in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i64)> {
        [
            ("cpu", self.cpu_millis),
            ("memory", self.memory_bytes),
            ("pods", self.pods),
            ("ephemeral-storage", self.ephemeral_storage_bytes),
        ]
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .chain(self.extended.iter().map(|(k, v)| (k.as_str(), *v)))
    }
    pub fn is_zero(&self) -> bool {
        self.iter().all(|(_, v)| v == 0)
    }
}

impl Serialize for Resources {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let items: Vec<(&str, i64)> = self.iter().collect();
        let mut map = s.serialize_map(Some(items.len()))?;
        for (k, v) in items {
            let text = match k {
                "cpu" => format_cpu_millis(v),
                "memory" | "ephemeral-storage" => format_bytes(v),
                _ => v.to_string(),
            };
            map.serialize_entry(k, &text)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Resources {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Resources;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of resource name to quantity")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Resources, A::Error> {
                let mut r = Resources::default();
                while let Some((k, v)) = m.next_entry::<String, QuantityText>()? {
                    let parsed = if k == "cpu" {
                        parse_cpu_millis(&v.0)
                    } else {
                        parse_units(&v.0)
                    };
                    let amount =
                        parsed.map_err(|e| de::Error::custom(format!("resource {k}: {e}")))?;
                    if amount < 0 {
                        return Err(de::Error::custom(format!(
                            "resource {k}: negative quantity {}",
                            v.0
                        )));
                    }
                    r.set(&k, amount);
                }
                Ok(r)
            }
        }
        d.deserialize_map(V)
    }
}

/// A quantity written either as a string or as a bare number.
struct QuantityText(String);

impl<'de> Deserialize<'de> for QuantityText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = QuantityText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a quantity such as \"500m\", \"4Gi\" or 2")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<QuantityText, E> {
                Ok(QuantityText(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<QuantityText, E> {
                Ok(QuantityText(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<QuantityText, E> {
                Ok(QuantityText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<QuantityText, E> {
                if !v.is_finite() {
                    return Err(E::custom("quantity is not a finite number"));
                }
                Ok(QuantityText(format!("{v}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// Node selector operator (Kubernetes `NodeSelectorOperator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

/// One node requirement; `min_values` is only meaningful on NodePool requirements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_values: Option<u32>,
}

impl Requirement {
    pub fn new(key: &str, operator: Operator, values: &[&str]) -> Self {
        Requirement {
            key: key.to_string(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
            min_values: None,
        }
    }
}

/// A node selector term: all expressions must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelectorTerm {
    #[serde(default)]
    pub match_expressions: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreferredNodeTerm {
    pub weight: i32,
    pub preference: NodeSelectorTerm,
}

/// Node affinity: required terms are ORed; preferred terms are honoured until relaxed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeAffinity {
    #[serde(default)]
    pub required: Vec<NodeSelectorTerm>,
    #[serde(default)]
    pub preferred: Vec<PreferredNodeTerm>,
}

/// Label selector operator (Kubernetes `LabelSelectorOperator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SelectorRequirement {
    pub key: String,
    pub operator: SelectorOperator,
    #[serde(default)]
    pub values: Vec<String>,
}

/// A label selector. An empty selector matches every pod.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub match_expressions: Vec<SelectorRequirement>,
}

impl LabelSelector {
    pub fn labels(pairs: &[(&str, &str)]) -> Self {
        LabelSelector {
            match_labels: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            match_expressions: vec![],
        }
    }
}

/// A pod (anti-)affinity term. Namespaces: the listed ones plus those picked by
/// `namespace_selector` (evaluated against `Snapshot::namespaces`); when both are absent, the
/// pod's own namespace. An empty `namespace_selector` means every namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodAffinityTerm {
    #[serde(default)]
    pub label_selector: Option<LabelSelector>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub namespace_selector: Option<LabelSelector>,
    pub topology_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightedPodAffinityTerm {
    pub weight: i32,
    pub pod_affinity_term: PodAffinityTerm,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodAffinity {
    #[serde(default)]
    pub required: Vec<PodAffinityTerm>,
    #[serde(default)]
    pub preferred: Vec<WeightedPodAffinityTerm>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

/// Keys of the taints a node carries only until it has started (not ready, unreachable,
/// cloud provider not initialized, not registered): a node that is still initializing is
/// scheduled as if it did not have them. The one list the scheduling core, the snapshot check
/// and the NodeClaim lifecycle share.
pub const EPHEMERAL_TAINTS: [&str; 4] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
    "node.cloudprovider.kubernetes.io/uninitialized",
    "karpenter.sh/unregistered",
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Taint {
    pub key: String,
    #[serde(default)]
    pub value: String,
    pub effect: TaintEffect,
}

impl Taint {
    pub fn new(key: &str, value: &str, effect: TaintEffect) -> Self {
        Taint {
            key: key.into(),
            value: value.into(),
            effect,
        }
    }
}

impl fmt::Display for Taint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}:{:?}", self.key, self.effect)
        } else {
            write!(f, "{}={}:{:?}", self.key, self.value, self.effect)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TolerationOperator {
    #[default]
    Equal,
    Exists,
}

/// A toleration. An empty key with `Exists` tolerates everything; no effect means all effects.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Toleration {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub operator: TolerationOperator,
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub effect: Option<TaintEffect>,
}

impl Toleration {
    pub fn tolerates(&self, t: &Taint) -> bool {
        if let Some(e) = self.effect
            && e != t.effect
        {
            return false;
        }
        if self.key.is_empty() {
            return self.operator == TolerationOperator::Exists;
        }
        if self.key != t.key {
            return false;
        }
        match self.operator {
            TolerationOperator::Exists => true,
            TolerationOperator::Equal => self.value == t.value,
        }
    }
}

/// True when some toleration in the list tolerates the taint.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| t.tolerates(taint))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum WhenUnsatisfiable {
    #[default]
    DoNotSchedule,
    ScheduleAnyway,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum NodeInclusionPolicy {
    #[default]
    Honor,
    Ignore,
}

/// A topology spread constraint. Counting covers pods in the pod's own namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopologySpreadConstraint {
    pub max_skew: i32,
    pub topology_key: String,
    #[serde(default)]
    pub when_unsatisfiable: WhenUnsatisfiable,
    #[serde(default)]
    pub label_selector: Option<LabelSelector>,
    #[serde(default)]
    pub min_domains: Option<i32>,
    #[serde(default)]
    pub match_label_keys: Vec<String>,
    /// Whether the pod's node selector/affinity limits the domains counted (default Honor).
    #[serde(default)]
    pub node_affinity_policy: NodeInclusionPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Protocol {
    #[default]
    TCP,
    UDP,
    SCTP,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostPort {
    pub port: u16,
    #[serde(default)]
    pub protocol: Protocol,
    /// Empty or "0.0.0.0" means every address.
    #[serde(default)]
    pub host_ip: String,
}

impl HostPort {
    pub fn conflicts(&self, o: &HostPort) -> bool {
        let wild = |ip: &str| ip.is_empty() || ip == "0.0.0.0" || ip == "::";
        self.port == o.port
            && self.protocol == o.protocol
            && (wild(&self.host_ip) || wild(&o.host_ip) || self.host_ip == o.host_ip)
    }
}

/// A volume's zone topology: a bound PersistentVolume (or a WaitForFirstConsumer storage class
/// with allowed topologies) that restricts the pod to `zones`. Empty `zones` means no restriction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeTopology {
    pub name: String,
    #[serde(default)]
    pub zones: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Affinity {
    #[serde(default)]
    pub node_affinity: NodeAffinity,
    #[serde(default)]
    pub pod_affinity: PodAffinity,
    #[serde(default)]
    pub pod_anti_affinity: PodAffinity,
}

/// A pod: pending when `node_name` is empty, bound otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Sum of the app containers' requests.
    #[serde(default)]
    pub requests: Resources,
    /// Requests of each (non-sidecar) init container; the pod needs the max of these and `requests`.
    #[serde(default)]
    pub init_containers: Vec<Resources>,
    /// Pod overhead (RuntimeClass), added on top.
    #[serde(default)]
    pub overhead: Resources,
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default)]
    pub affinity: Affinity,
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
    #[serde(default)]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    #[serde(default)]
    pub host_ports: Vec<HostPort>,
    #[serde(default)]
    pub volumes: Vec<VolumeTopology>,
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub node_name: Option<String>,
}

fn default_namespace() -> String {
    "default".to_string()
}

impl Pod {
    pub fn new(namespace: &str, name: &str, requests: Resources) -> Self {
        Pod {
            namespace: namespace.into(),
            name: name.into(),
            requests,
            ..Default::default()
        }
    }
    /// Effective requests: max(app containers, each init container) + overhead, plus one pod slot.
    pub fn effective_requests(&self) -> Resources {
        let mut r = self.requests.clone();
        for init in &self.init_containers {
            for (k, v) in init.iter() {
                if v > r.get(k) {
                    r.set(k, v);
                }
            }
        }
        for (k, v) in self.overhead.iter() {
            let cur = r.get(k);
            r.set(k, cur.saturating_add(v));
        }
        r.pods = 1;
        r
    }
    pub fn key(&self) -> PodRef {
        PodRef {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

/// namespace/name of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for PodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A node that exists (or an in-flight NodeClaim already mapped to the node it will become).
/// Pods bound to it are the `Pod`s whose `node_name` names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub taints: Vec<Taint>,
    pub allocatable: Resources,
    /// Capacity counted against NodePool limits (defaults to allocatable).
    #[serde(default)]
    pub capacity: Option<Resources>,
    /// Cordoned.
    #[serde(default)]
    pub unschedulable: bool,
    /// Not yet initialized: its NodePool's startup taints and the well-known ephemeral taints
    /// (not-ready, unreachable, uninitialized) are ignored.
    #[serde(default)]
    pub initializing: bool,
}

/// A NodeClaim launched (instance type known) whose node has not registered yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InFlightClaim {
    pub name: String,
    pub node_pool: String,
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: String,
}

/// A Karpenter-style NodePool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePool {
    pub name: String,
    /// Higher first (0-100).
    #[serde(default)]
    pub weight: i32,
    #[serde(default)]
    pub requirements: Vec<Requirement>,
    /// Template labels put on every node.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub taints: Vec<Taint>,
    /// Taints present at boot and removed by an agent; ignored for scheduling.
    #[serde(default)]
    pub startup_taints: Vec<Taint>,
    /// Caps on the total capacity of this pool's nodes; the extended key `nodes` caps the count.
    #[serde(default)]
    pub limits: Option<Resources>,
    /// Requests of the DaemonSet pods that will land on each of this pool's nodes.
    #[serde(default)]
    pub daemonset_overhead: Resources,
    /// A static pool (`spec.replicas`): its nodes take pods, but no claim is opened in it for
    /// them (its node count is set by hand).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fixed_size: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Offering {
    pub zone: String,
    pub capacity_type: String,
    /// $ per hour.
    pub price: f64,
    #[serde(default = "yes")]
    pub available: bool,
}

fn yes() -> bool {
    true
}

/// An instance type: capacity minus overhead (kube-reserved, system-reserved, eviction threshold)
/// is what pods can use. `labels` are its requirement labels (arch, os, family, size, ...);
/// `node.kubernetes.io/instance-type` is implied by `name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceType {
    pub name: String,
    pub capacity: Resources,
    #[serde(default)]
    pub overhead: Resources,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub offerings: Vec<Offering>,
}

impl InstanceType {
    pub fn allocatable(&self) -> Resources {
        let mut a = self.capacity.clone();
        for (k, v) in self.overhead.iter() {
            let cur = a.get(k);
            a.set(k, (cur - v).max(0));
        }
        a
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Everything one solve looks at.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    #[serde(default)]
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub in_flight: Vec<InFlightClaim>,
    /// Pending and bound pods.
    #[serde(default)]
    pub pods: Vec<Pod>,
    #[serde(default)]
    pub node_pools: Vec<NodePool>,
    #[serde(default)]
    pub instance_types: Vec<InstanceType>,
    /// Namespace labels, for `namespaceSelector` in pod affinity terms.
    #[serde(default)]
    pub namespaces: Vec<Namespace>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_round_trip() {
        let r: Resources =
            serde_json::from_str(r#"{"cpu":"1500m","memory":"2Gi","nvidia.com/gpu":1,"pods":3}"#)
                .unwrap();
        assert_eq!(r.cpu_millis, 1500);
        assert_eq!(r.memory_bytes, 2 << 30);
        assert_eq!(r.get("nvidia.com/gpu"), 1);
        let back: Resources = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        let bad = serde_json::from_str::<Resources>(r#"{"cpu":"lots"}"#).unwrap_err();
        assert!(bad.to_string().contains("resource cpu"), "{bad}");
    }

    #[test]
    fn init_container_max_rule() {
        let mut p = Pod::new("ns", "p", Resources::cpu_mem(500, 100));
        p.init_containers.push(Resources::cpu_mem(2000, 10));
        p.overhead = Resources::cpu_mem(100, 0);
        let e = p.effective_requests();
        assert_eq!((e.cpu_millis, e.memory_bytes, e.pods), (2100, 100, 1));
    }

    #[test]
    fn tolerations() {
        let t = Taint::new("gpu", "true", TaintEffect::NoSchedule);
        let exact = Toleration {
            key: "gpu".into(),
            value: "true".into(),
            ..Default::default()
        };
        let wrong = Toleration {
            key: "gpu".into(),
            value: "no".into(),
            ..Default::default()
        };
        let any = Toleration {
            operator: TolerationOperator::Exists,
            ..Default::default()
        };
        let other_effect = Toleration {
            key: "gpu".into(),
            operator: TolerationOperator::Exists,
            effect: Some(TaintEffect::NoExecute),
            ..Default::default()
        };
        assert!(exact.tolerates(&t));
        assert!(!wrong.tolerates(&t));
        assert!(any.tolerates(&t));
        assert!(!other_effect.tolerates(&t));
    }
}
