//! What a solve returns: placements, new NodeClaims, and why the rest stays pending.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{PodRef, Resources, Taint};
use crate::quantity::Amount;

/// Tuning knobs; the defaults are what the provisioner uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SolveOptions {
    /// Open new NodeClaims (false: only existing and in-flight capacity, as kube-scheduler would).
    pub allow_new_nodes: bool,
    /// Relax preferences one at a time when a pod cannot be placed.
    pub relax_preferences: bool,
    /// Instance types listed per NodeClaim for launch, cheapest first.
    pub max_instance_type_options: usize,
    /// Run the cost pass after first-fit-decreasing (empty the worst-filled NodeClaims into the
    /// room left on the others and re-pick types).
    pub improve: bool,
}

/// Order in which this solve's NodeClaims are offered to the next pod (see
/// [`crate::solve_with_claim_order`]; [`crate::solve`] uses the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ClaimOrder {
    /// Karpenter's order: spreads pods over the claims, smaller nodes.
    #[default]
    FewestPodsFirst,
    /// Fills the fullest claim first: fewer, larger and usually cheaper nodes (a larger blast
    /// radius per node).
    MostPodsFirst,
}

impl Default for SolveOptions {
    fn default() -> Self {
        SolveOptions {
            allow_new_nodes: true,
            relax_preferences: true,
            max_instance_type_options: 60,
            improve: true,
        }
    }
}

/// Where a pod goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Target {
    /// An existing node or in-flight NodeClaim, by name.
    Node(String),
    /// Index into `Solution::new_claims`.
    NewClaim(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub pod: PodRef,
    pub target: Target,
}

/// A NodeClaim to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewClaim {
    pub name: String,
    pub node_pool: String,
    /// The cheapest fitting offering.
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: String,
    /// $ per hour of that offering.
    pub price: f64,
    /// Labels the node will carry (template, requirements, instance type, offering, hostname).
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    /// Pod requests plus DaemonSet overhead.
    pub requests: Resources,
    pub pods: Vec<PodRef>,
    /// Every instance type that would also do, cheapest first (for a price-ordered launch).
    pub instance_type_options: Vec<String>,
    /// Label keys (zone, capacity type, ...) whose value was fixed for topology: the pods'
    /// own spread or pod (anti-)affinity, or other pods' terms that count them. A launch must
    /// keep the planned value of these, whatever the pods' own requirements allow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pinned: Vec<String>,
}

/// A preference that was dropped so the pod could be placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relaxed {
    pub pod: PodRef,
    pub dropped: Vec<String>,
}

/// Why a pod cannot go somewhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Reason {
    NoNodePools,
    Cordoned,
    TaintNotTolerated {
        taint: Taint,
    },
    Requirement {
        key: String,
        wanted: String,
        offered: String,
    },
    VolumeZone {
        volumes: Vec<String>,
        zones: Vec<String>,
    },
    ExceedsLargestInstanceType {
        resource: String,
        needed: i64,
        largest: i64,
    },
    NoInstanceTypeFits {
        needed: Resources,
    },
    NoAvailableOffering,
    InsufficientResource {
        resource: String,
        needed: i64,
        free: i64,
    },
    LimitsReached {
        resource: String,
    },
    /// The pool is static (`spec.replicas`): its node count is set by hand, not by pods.
    StaticNodePool,
    MinValues {
        key: String,
        min: u32,
        left: u32,
    },
    TopologySpread {
        key: String,
        max_skew: i32,
    },
    PodAffinity {
        key: String,
    },
    PodAntiAffinity {
        key: String,
    },
    ExistingPodAntiAffinity {
        key: String,
    },
    TopologyKeyUndetermined {
        key: String,
    },
    HostPortConflict {
        port: u16,
    },
    ConflictingPreferences,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NoNodePools => write!(f, "no NodePool exists"),
            Reason::Cordoned => write!(f, "node is cordoned"),
            Reason::TaintNotTolerated { taint } => write!(f, "does not tolerate taint {taint}"),
            Reason::Requirement {
                key,
                wanted,
                offered,
            } => {
                write!(f, "requirement {key} {wanted} not met (offers {offered})")
            }
            Reason::VolumeZone { volumes, zones } => {
                write!(
                    f,
                    "volumes {} are in zones [{}], not offered here",
                    volumes.join(","),
                    zones.join(",")
                )
            }
            Reason::ExceedsLargestInstanceType {
                resource,
                needed,
                largest,
            } => write!(
                f,
                "exceeds largest instance type: needs {} (largest offers {})",
                Amount(resource, *needed),
                Amount(resource, *largest)
            ),
            Reason::NoInstanceTypeFits { needed } => {
                let parts: Vec<String> = needed
                    .iter()
                    .map(|(k, v)| Amount(k, v).to_string())
                    .collect();
                write!(
                    f,
                    "no single instance type offers {} together",
                    parts.join(", ")
                )
            }
            Reason::NoAvailableOffering => write!(
                f,
                "no available offering in the allowed zones/capacity types"
            ),
            Reason::InsufficientResource {
                resource,
                needed,
                free,
            } => {
                write!(
                    f,
                    "insufficient {resource}: needs {}, {} free",
                    Amount(resource, *needed),
                    Amount(resource, *free)
                )
            }
            Reason::LimitsReached { resource } => write!(f, "NodePool limits reached ({resource})"),
            Reason::StaticNodePool => write!(
                f,
                "static NodePool (spec.replicas): no node is launched for pods"
            ),
            Reason::MinValues { key, min, left } => {
                write!(f, "minValues {min} on {key} violated ({left} values left)")
            }
            Reason::TopologySpread { key, max_skew } => {
                write!(
                    f,
                    "topology spread violated (key {key}, maxSkew {max_skew})"
                )
            }
            Reason::PodAffinity { key } => {
                write!(f, "no matching pods in reach for pod affinity on {key}")
            }
            Reason::PodAntiAffinity { key } => write!(f, "pod anti-affinity on {key} violated"),
            Reason::ExistingPodAntiAffinity { key } => {
                write!(
                    f,
                    "an existing pod's anti-affinity on {key} excludes this pod"
                )
            }
            Reason::TopologyKeyUndetermined { key } => {
                write!(f, "topology key {key} has no single value on a new node")
            }
            Reason::HostPortConflict { port } => write!(f, "host port {port} already in use"),
            Reason::ConflictingPreferences => {
                write!(f, "its preferences contradict its requirements")
            }
        }
    }
}

/// A pod that stays pending, with the reason per NodePool and a tally over existing nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unschedulable {
    pub pod: PodRef,
    /// (NodePool name, why a new node from it cannot take the pod).
    pub node_pools: Vec<(String, Reason)>,
    /// (why, how many existing nodes or NodeClaims of this solve), most common first; one entry
    /// per shortage (resource, amount needed) with the most any of those nodes has free.
    pub nodes: Vec<(Reason, usize)>,
    /// Preferences already dropped before giving up.
    pub relaxed: Vec<String>,
}

impl fmt::Display for Unschedulable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} cannot be placed:", self.pod)?;
        if self.node_pools.is_empty() && self.nodes.is_empty() {
            write!(f, " nowhere to try")?;
        }
        for (pool, r) in &self.node_pools {
            write!(f, " NodePool {pool}: {r};")?;
        }
        for (r, n) in self.nodes.iter().take(5) {
            write!(f, " {n} node(s): {r};")?;
        }
        if self.nodes.len() > 5 {
            let rest: usize = self.nodes[5..].iter().map(|(_, n)| n).sum();
            write!(f, " {rest} more node(s) for other reasons;")?;
        }
        if !self.relaxed.is_empty() {
            write!(f, " (after dropping: {})", self.relaxed.join(", "))?;
        }
        Ok(())
    }
}

/// The plan for one batch of pending pods.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Solution {
    /// In the order the solver committed them (topology counts depend on that order).
    pub placements: Vec<Placement>,
    pub new_claims: Vec<NewClaim>,
    pub unschedulable: Vec<Unschedulable>,
    pub relaxed: Vec<Relaxed>,
}

impl Solution {
    /// $ per hour of the new NodeClaims.
    pub fn new_cost(&self) -> f64 {
        self.new_claims.iter().map(|c| c.price).sum()
    }
}
