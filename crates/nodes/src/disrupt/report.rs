//! What a disruption pass says: the chosen [`Action`], and for every node what each method
//! thought of it ([`NodeReport`], [`Note`], [`Why`]), the budgets in force and one line per method.
//!
//! Plain data: the methods fill it in, `ballast explain disruption`, the controller and the
//! simulator read it.

use std::fmt;

use ballast_api::nodes::DisruptionReason;
use ballast_scheduling::{NewClaim, PodRef};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::adapt::LaunchPlan;
use crate::error::Error;

/// A disruption method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Method {
    Emptiness,
    Drift,
    Expiration,
    MultiNodeConsolidation,
    SingleNodeConsolidation,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::Emptiness => "emptiness",
            Method::Drift => "drift",
            Method::Expiration => "expiration",
            Method::MultiNodeConsolidation => "multi-node consolidation",
            Method::SingleNodeConsolidation => "single-node consolidation",
        })
    }
}

/// Why a node is (or is not) disrupted by a method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Why {
    NotManaged,
    UnknownNodePool {
        pool: String,
    },
    Deleting,
    NotInitialized,
    NodeDoNotDisrupt {
        until: Option<Timestamp>,
    },
    PodDoNotDisrupt {
        pod: PodRef,
        until: Option<Timestamp>,
    },
    PdbBlocks {
        pod: PodRef,
        pdb: String,
    },
    MultiplePdbs {
        pod: PodRef,
        pdbs: Vec<String>,
    },
    PdbExhausted {
        pdb: String,
        evictions: usize,
        allowed: i32,
    },
    PodCannotMove {
        pod: PodRef,
        cause: String,
    },
    ConsolidationDisabled,
    /// The pool is static (`spec.replicas`): its nodes are never consolidated.
    StaticNodePool,
    WhenEmptyPolicy,
    ConsolidateAfter {
        remaining_seconds: f64,
    },
    UnknownPrice,
    Budget {
        reason: DisruptionReason,
        budget: String,
    },
    NotEmpty {
        pods: usize,
    },
    Empty,
    NotDrifted,
    Drifted {
        why: String,
    },
    NotExpired {
        remaining_seconds: Option<f64>,
    },
    Expired {
        age_seconds: f64,
    },
    PodsDoNotFit {
        pod: PodRef,
        why: String,
    },
    WouldNeedNodes {
        count: usize,
    },
    NotCheaper {
        current: f64,
    },
    NoCheaperNodeHolds {
        current: f64,
    },
    BelowMinSavings {
        percent: f64,
        min: f64,
    },
    SpotToSpotDisabled,
    SpotToSpotTooFewTypes {
        have: usize,
        need: usize,
    },
    MinValues {
        key: String,
        have: usize,
        need: u32,
    },
    PendingPodsFirst {
        count: usize,
    },
    NotEvaluated {
        because: String,
    },
    BlockersOverriddenByGracePeriod,
    CanDelete {
        savings: f64,
    },
    CanReplace {
        with: String,
        price: f64,
        savings: f64,
    },
    InMultiNodeSet {
        size: usize,
    },
    TooFewCandidates,
    Error {
        message: String,
    },
}

/// A time still to wait, rounded up: "1s to go" until it has passed, never "0s to go".
fn remaining(s: f64) -> String {
    dur(s.max(0.0).ceil())
}

fn dur(s: f64) -> String {
    let s = s.max(0.0).round() as i64;
    match s {
        s if s >= 3600 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m{}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::NotManaged => write!(f, "not managed by a NodePool"),
            Why::UnknownNodePool { pool } => write!(f, "NodePool {pool:?} is missing or invalid"),
            Why::Deleting => write!(f, "already being deleted"),
            Why::NotInitialized => write!(f, "not initialized yet"),
            Why::NodeDoNotDisrupt { until: None } => {
                write!(f, "node has the do-not-disrupt annotation")
            }
            Why::NodeDoNotDisrupt { until: Some(t) } => {
                write!(f, "node has the do-not-disrupt annotation until {t}")
            }
            Why::PodDoNotDisrupt { pod, until: None } => {
                write!(f, "pod {pod} has the do-not-disrupt annotation")
            }
            Why::PodDoNotDisrupt {
                pod,
                until: Some(t),
            } => write!(f, "pod {pod} has the do-not-disrupt annotation until {t}"),
            Why::PdbBlocks { pod, pdb } => {
                write!(f, "PDB {pdb} allows no disruption of pod {pod} now")
            }
            Why::MultiplePdbs { pod, pdbs } => write!(
                f,
                "pod {pod} is covered by several PDBs ({})",
                pdbs.join(", ")
            ),
            Why::PdbExhausted {
                pdb,
                evictions,
                allowed,
            } => write!(
                f,
                "would evict {evictions} pods of PDB {pdb}, which allows {allowed}"
            ),
            Why::PodCannotMove { pod, cause } => write!(f, "pod {pod} cannot move: {cause}"),
            Why::ConsolidationDisabled => write!(f, "consolidateAfter is Never"),
            Why::StaticNodePool => write!(
                f,
                "static NodePool (spec.replicas): its nodes are not consolidated"
            ),
            Why::WhenEmptyPolicy => write!(
                f,
                "consolidation policy WhenEmpty and the node is not empty"
            ),
            Why::ConsolidateAfter { remaining_seconds } => write!(
                f,
                "consolidateAfter not reached ({} to go)",
                remaining(*remaining_seconds)
            ),
            Why::UnknownPrice => write!(
                f,
                "price unknown (instance type, zone or capacity type not in the catalog)"
            ),
            Why::Budget { reason, budget } => write!(
                f,
                "disruption budget for {reason:?} exhausted (budget {budget})"
            ),
            Why::NotEmpty { pods } => write!(f, "not empty ({pods} pods to move)"),
            Why::Empty => write!(f, "empty"),
            Why::NotDrifted => write!(f, "not drifted"),
            Why::Drifted { why } => write!(f, "drifted: {why}"),
            Why::NotExpired {
                remaining_seconds: None,
            } => write!(f, "never expires"),
            Why::NotExpired {
                remaining_seconds: Some(s),
            } => write!(f, "expires in {}", remaining(*s)),
            Why::Expired { age_seconds } => write!(f, "expired (age {})", dur(*age_seconds)),
            Why::PodsDoNotFit { pod, why } => {
                write!(f, "pod {pod} would have nowhere to go: {why}")
            }
            Why::WouldNeedNodes { count } => {
                write!(f, "its pods would need {count} new nodes (never 1 → many)")
            }
            Why::NotCheaper { current } => write!(
                f,
                "no replacement cheaper than the ${current:.4}/h it costs"
            ),
            Why::NoCheaperNodeHolds { current } => write!(
                f,
                "the pods that fit on no other node need more room than any node type cheaper \
                 than the ${current:.4}/h it costs offers"
            ),
            Why::BelowMinSavings { percent, min } => {
                write!(f, "saves {percent:.1}% < minSavingsPercent {min}%")
            }
            Why::SpotToSpotDisabled => write!(f, "spot-to-spot consolidation is disabled"),
            Why::SpotToSpotTooFewTypes { have, need } => write!(
                f,
                "spot-to-spot needs {need} cheaper instance types, {have} found"
            ),
            Why::MinValues { key, have, need } => write!(
                f,
                "cheaper types leave {have} values of {key} < minValues {need}"
            ),
            Why::PendingPodsFirst { count } => write!(
                f,
                "{count} pending pods can be placed: provisioning goes first"
            ),
            Why::NotEvaluated { because } => write!(f, "not evaluated: {because}"),
            Why::BlockersOverriddenByGracePeriod => {
                write!(f, "blocking pods are overridden by terminationGracePeriod")
            }
            Why::CanDelete { savings } => write!(
                f,
                "can be deleted, its pods fit elsewhere (saves ${savings:.4}/h)"
            ),
            Why::CanReplace {
                with,
                price,
                savings,
            } => write!(
                f,
                "can be replaced by {with} at ${price:.4}/h (saves ${savings:.4}/h)"
            ),
            Why::InMultiNodeSet { size } => write!(f, "part of a {size}-node consolidation"),
            Why::TooFewCandidates => write!(f, "fewer than two candidates"),
            Why::Error { message } => write!(f, "{message}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Part of the chosen action.
    Chosen,
    /// Would work, but another action was chosen.
    Possible,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    pub method: Option<Method>,
    pub verdict: Verdict,
    pub why: Why,
}

/// What every method thought of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeReport {
    pub node: String,
    pub node_pool: Option<String>,
    pub price: Option<f64>,
    pub disruption_cost: f64,
    pub notes: Vec<Note>,
}

/// A budget in force for one pool and reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetReport {
    pub node_pool: String,
    pub reason: DisruptionReason,
    pub nodes: usize,
    /// Allowed by the most restrictive active budget (None: unlimited).
    pub allowed: Option<u64>,
    /// Already disrupting (not ready or being deleted).
    pub disrupting: usize,
    /// What is left for this pass.
    pub available: u64,
    pub budget: String,
}

/// A replacement NodeClaim to launch before the nodes go.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Replacement {
    pub plan: LaunchPlan,
    /// The solver's claim it came from (before price filtering).
    pub model: NewClaim,
}

/// A pod's new home.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMove {
    pub pod: PodRef,
    /// An existing node, or the name of a replacement NodeClaim.
    pub to: String,
    pub to_replacement: bool,
}

/// The chosen action.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    pub method: Method,
    pub nodes: Vec<String>,
    pub node_claims: Vec<String>,
    pub replacements: Vec<Replacement>,
    /// $ per hour of the nodes removed.
    pub removed_price: f64,
    /// $ per hour saved (removed minus replacements).
    pub savings: f64,
    /// Sum of the nodes' disruption costs.
    pub disruption_cost: f64,
    pub pods_evicted: Vec<PodRef>,
    /// Where the simulation put each evicted pod (empty for expiration: provisioning handles it).
    pub moves: Vec<PodMove>,
    /// Forceful: drains give up on PDBs and do-not-disrupt pods at this time.
    pub drain_deadline: Option<Timestamp>,
    pub why: String,
}

/// What one disruption pass decides.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DisruptionDecision {
    pub action: Option<Action>,
    pub nodes: Vec<NodeReport>,
    pub budgets: Vec<BudgetReport>,
    /// One line per method: what it found.
    pub methods: Vec<(Method, String)>,
    pub summary: String,
    pub skipped: Vec<Error>,
    /// Simulation statistics: (fast evaluations, full solves).
    pub simulations: (usize, usize),
}
