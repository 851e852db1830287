//! Nodes as the scenario's start nodes: instance type, zone, capacity type and NodePool read from
//! their labels (Karpenter's `karpenter.sh/*` spellings accepted, `ballast_scheduling::aliases`),
//! with the labels and taints a user put on them.

use super::{ManifestError, Source, describe};
use ballast_scheduling::aliases;
use ballast_scheduling::model::{Taint, labels as wk};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// A Node, as the simulator would start it.
#[derive(Debug, Clone)]
pub struct TakenNode {
    pub at: Source,
    pub name: String,
    /// `node.kubernetes.io/instance-type` (or the beta key); `None` when the node has none.
    pub instance_type: Option<String>,
    /// `topology.kubernetes.io/zone` (or the beta key).
    pub zone: Option<String>,
    /// `nodes.ballast.dev/capacity-type` or `karpenter.sh/capacity-type`; on-demand without one.
    pub capacity_type: String,
    /// `nodes.ballast.dev/nodepool` or `karpenter.sh/nodepool`.
    pub node_pool: Option<String>,
    /// The node's labels, less those the simulator sets itself on every node.
    pub labels: BTreeMap<String, String>,
    /// The node's taints, less the ones Kubernetes and the node controllers manage.
    pub taints: Vec<Taint>,
}

#[derive(Deserialize)]
struct NodeManifest {
    metadata: NodeMeta,
    #[serde(default)]
    spec: NodeSpec,
}

#[derive(Deserialize)]
struct NodeMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
struct NodeSpec {
    #[serde(default)]
    taints: Vec<Taint>,
}

/// Label domains the simulator writes on its own nodes (from the catalog and the NodePool), or
/// that describe one machine (its host name): never carried over.
const SET_BY_THE_SIMULATOR: [&str; 6] = [
    "kubernetes.io/",
    "k8s.io/",
    "nodes.ballast.dev/",
    "karpenter.sh/",
    "karpenter.k8s.aws/",
    "kwok.x-k8s.io/",
];

/// Whether a label key belongs to a domain the simulator sets itself (`node.kubernetes.io/...`
/// counts as `kubernetes.io/`).
fn set_by_the_simulator(key: &str) -> bool {
    let Some((domain, _)) = key.split_once('/') else {
        return false;
    };
    let domain = format!("{domain}/");
    SET_BY_THE_SIMULATOR
        .iter()
        .any(|d| domain == *d || domain.ends_with(&format!(".{d}")))
}

/// Taints that come and go with a node's state (not ready, cordoned, disrupted), not a user's.
fn managed_taint(key: &str) -> bool {
    key.starts_with("node.kubernetes.io/")
        || key.starts_with("node.cloudprovider.kubernetes.io/")
        || aliases::canonical_key(key).starts_with("nodes.ballast.dev/")
}

/// A Node as a start node.
pub fn take_node(at: &Source, doc: &Value) -> Result<TakenNode, ManifestError> {
    let manifest: NodeManifest = serde_path_to_error::deserialize(doc.clone()).map_err(|e| {
        ManifestError::invalid(
            at,
            &describe(doc),
            e.path().to_string(),
            e.inner().to_string(),
        )
    })?;
    let labels = manifest.metadata.labels;
    let first = |keys: &[&str]| keys.iter().find_map(|k| labels.get(*k).cloned());
    let instance_type = first(&[wk::INSTANCE_TYPE, "beta.kubernetes.io/instance-type"]);
    let zone = first(&[wk::ZONE, "failure-domain.beta.kubernetes.io/zone"]);
    let capacity_type = aliases::get(&labels, wk::CAPACITY_TYPE)
        .cloned()
        .unwrap_or_else(|| "on-demand".into());
    let node_pool = aliases::get(&labels, wk::NODEPOOL).cloned();
    let kept = labels
        .iter()
        .filter(|(k, _)| !set_by_the_simulator(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let taints = manifest
        .spec
        .taints
        .into_iter()
        .filter(|t| !managed_taint(&t.key))
        .collect();
    Ok(TakenNode {
        at: at.clone(),
        name: manifest.metadata.name,
        instance_type,
        zone,
        capacity_type,
        node_pool,
        labels: kept,
        taints,
    })
}
