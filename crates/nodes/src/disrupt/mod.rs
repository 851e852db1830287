//! Disruption: which nodes to take away, and with what (if anything) in their place.
//!
//! One pass looks at the methods in Karpenter's order — Emptiness, Drift, Expiration, multi-node
//! consolidation, single-node consolidation — and the first that finds something acts. Every node
//! gets an account of what each method thought of it, so `ballast explain disruption` can say why
//! a node stays.

mod memo;
mod movable_pod;
mod options;
mod what_if;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use ballast_api::nodes::{self as api, ConsolidationPolicy, DisruptionReason};
use ballast_scheduling::{self as sched, NewClaim, PodRef};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::adapt::{self, LaunchPlan};
use crate::budget;
use crate::error::Error;
use crate::snapshot::{ClusterNode, ClusterSnapshot};
use crate::world::{REASONS, World};
pub use memo::{DisruptionMemo, eviction_cost};
pub use options::{DisruptionOptions, PdbMode, SimulationMode};
use what_if::{NewHome, Rehoming, WhatIf};

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
            Why::WhenEmptyPolicy => write!(
                f,
                "consolidation policy WhenEmpty and the node is not empty"
            ),
            Why::ConsolidateAfter { remaining_seconds } => write!(
                f,
                "consolidateAfter not reached ({} to go)",
                dur(*remaining_seconds)
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
            } => write!(f, "expires in {}", dur(*s)),
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

/// Per-node facts the methods share.
struct Cand {
    pool: Option<usize>,
    price: Option<f64>,
    /// Pods that need a new home.
    movable: Vec<usize>,
    disruption_cost: f64,
    /// 1 + Σ max(0, pod cost) over movable pods (Karpenter's savings-ratio denominator).
    reschedule_cost: f64,
    /// Why graceful methods must leave it (do-not-disrupt, PDBs, pods that cannot move).
    blockers: Vec<Why>,
    /// Why consolidation cannot touch it (timers, policy, price), besides blockers.
    unconsolidatable: Option<Why>,
    drifted: Option<String>,
    expired: Option<f64>,
    expires_in: Option<f64>,
    eligible: Result<(), Why>,
    grace: Option<f64>,
}

fn seconds_between(a: Timestamp, b: Timestamp) -> f64 {
    b.duration_since(a).as_secs_f64()
}

fn plus(t: Timestamp, s: f64) -> Timestamp {
    t.checked_add(SignedDuration::from_secs_f64(s.max(0.0)))
        .unwrap_or(Timestamp::MAX)
}

/// Active do-not-disrupt on a pod or node: Some(None) for "true", Some(Some(until)) for a
/// duration not yet elapsed since `since`, None otherwise.
fn do_not_disrupt(
    annotations: &BTreeMap<String, String>,
    since: Option<Timestamp>,
    now: Timestamp,
) -> Option<Option<Timestamp>> {
    let v = annotations
        .get(api::labels::DO_NOT_DISRUPT)
        .or_else(|| annotations.get(api::labels::KARPENTER_DO_NOT_DISRUPT))?;
    if v.trim() == "true" {
        return Some(None);
    }
    let secs = ballast_api::common::parse_duration_seconds(v).ok()?;
    match since {
        None => Some(None),
        Some(s) => {
            let until = plus(s, secs);
            (now < until).then_some(Some(until))
        }
    }
}

struct Ctx<'w, 'a> {
    world: &'w World<'a>,
    now: Timestamp,
    opts: &'w DisruptionOptions,
    cands: Vec<Cand>,
    notes: Vec<Vec<Note>>,
    /// Available disruptions per (pool, reason).
    budget: BTreeMap<(usize, usize), u64>,
    sim: WhatIf<'w, 'a>,
}

fn reason_idx(r: DisruptionReason) -> usize {
    REASONS.iter().position(|x| *x == r).unwrap_or(0)
}

/// One disruption pass over the snapshot at `now`.
pub fn disrupt(
    snap: &ClusterSnapshot,
    now: Timestamp,
    opts: &DisruptionOptions,
) -> Result<DisruptionDecision, Error> {
    disrupt_with_memo(snap, now, opts, &mut DisruptionMemo::default())
}

/// [`disrupt`], reusing what earlier passes with the same memo read from nodes whose
/// [`ClusterNode::pods_revision`] has not changed. The decision is the same as without it.
pub fn disrupt_with_memo(
    snap: &ClusterSnapshot,
    now: Timestamp,
    opts: &DisruptionOptions,
    memo: &mut DisruptionMemo,
) -> Result<DisruptionDecision, Error> {
    let world = World::new(snap)?;
    let prepared = memo.prepare(&world, opts);
    let mut skipped = world.skipped.clone();
    let sim = WhatIf::new(&world, &prepared, opts.simulation, &mut skipped);
    let mut ctx = Ctx {
        world: &world,
        now,
        opts,
        cands: vec![],
        notes: vec![vec![]; snap.nodes.len()],
        budget: BTreeMap::new(),
        sim,
    };
    ctx.build_candidates(&prepared.nodes);
    let budgets = ctx.build_budgets();

    let mut methods = vec![];
    let mut action: Option<Action> = None;
    let pending_first = ctx.pending_placeable()?;

    for method in [
        Method::Emptiness,
        Method::Drift,
        Method::Expiration,
        Method::MultiNodeConsolidation,
        Method::SingleNodeConsolidation,
    ] {
        if action.is_some() && !opts.explain_all {
            for i in 0..snap.nodes.len() {
                if ctx.cands[i].eligible.is_ok() {
                    ctx.note(
                        i,
                        method,
                        Verdict::Rejected,
                        Why::NotEvaluated {
                            because: "an earlier method acted".into(),
                        },
                    );
                }
            }
            methods.push((method, "not evaluated: an earlier method acted".into()));
            continue;
        }
        if method != Method::Expiration && pending_first > 0 {
            let why = Why::PendingPodsFirst {
                count: pending_first,
            };
            methods.push((method, why.to_string()));
            continue;
        }
        let found = match method {
            Method::Emptiness => ctx.emptiness(),
            Method::Drift => ctx.drift()?,
            Method::Expiration => ctx.expiration(),
            Method::MultiNodeConsolidation => ctx.multi_node()?,
            Method::SingleNodeConsolidation => ctx.single_node(action.is_some())?,
        };
        match found {
            Some(a) => {
                let line = format!("{} node(s): {}", a.nodes.len(), a.why);
                if action.is_none() {
                    methods.push((method, format!("acts on {line}")));
                    let chosen: BTreeSet<&String> = a.nodes.iter().collect();
                    for (i, n) in snap.nodes.iter().enumerate() {
                        if chosen.contains(&n.name) {
                            for note in ctx.notes[i].iter_mut().filter(|x| {
                                x.method == Some(method) && x.verdict == Verdict::Possible
                            }) {
                                note.verdict = Verdict::Chosen;
                            }
                        }
                    }
                    action = Some(a);
                } else {
                    methods.push((method, format!("would act on {line}")));
                }
            }
            None => methods.push((method, "nothing to do".into())),
        }
    }
    let summary = match &action {
        Some(a) => format!(
            "{}: {} (saves ${:.4}/h, disruption cost {:.2})",
            a.method, a.why, a.savings, a.disruption_cost
        ),
        None if pending_first > 0 => Why::PendingPodsFirst {
            count: pending_first,
        }
        .to_string(),
        None => "no disruption: see each node's notes".into(),
    };
    let nodes = snap
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| NodeReport {
            node: n.name.clone(),
            node_pool: ctx.cands[i].pool.map(|p| world.pools[p].model.name.clone()),
            price: ctx.cands[i].price,
            disruption_cost: ctx.cands[i].disruption_cost,
            notes: std::mem::take(&mut ctx.notes[i]),
        })
        .collect();
    Ok(DisruptionDecision {
        action,
        nodes,
        budgets,
        methods,
        summary,
        skipped,
        simulations: (ctx.sim.fast_evaluations, ctx.sim.full_solves),
    })
}

impl<'w, 'a> Ctx<'w, 'a> {
    fn note(&mut self, i: usize, m: Method, v: Verdict, why: Why) {
        self.notes[i].push(Note {
            method: Some(m),
            verdict: v,
            why,
        });
    }

    fn node(&self, i: usize) -> &'a ClusterNode {
        self.world.node(i)
    }

    fn build_candidates(&mut self, facts: &[&memo::NodeFacts]) {
        let snap = self.world.snap;
        let now = self.now;
        for (i, n) in snap.nodes.iter().enumerate() {
            let info = &self.world.nodes[i];
            let f = facts[i];
            let lifetime = match (info.expire_after, info.created) {
                (Some(e), Some(c)) if e > 0.0 => {
                    ((e - seconds_between(c, now)) / e).clamp(0.0, 1.0)
                }
                _ => 1.0,
            };
            let disruption_cost = f.active_cost * lifetime;
            let reschedule_cost = 1.0 + f.movable_cost;
            let eligible = match (info.managed, info.pool) {
                (false, _) => Err(Why::NotManaged),
                (true, None) => Err(Why::UnknownNodePool {
                    pool: crate::world::pool_label_of(n, info.claim.map(|c| &snap.node_claims[c]))
                        .unwrap_or_default()
                        .to_string(),
                }),
                _ if n.deleting => Err(Why::Deleting),
                _ => Ok(()),
            };
            let mut blockers = vec![];
            if let Some(until) = do_not_disrupt(&n.annotations, info.created, now) {
                blockers.push(Why::NodeDoNotDisrupt { until });
            }
            for &k in &f.do_not_disrupt {
                let p = &n.pods[k];
                if let Some(until) = do_not_disrupt(&p.annotations, p.started, now) {
                    blockers.push(Why::PodDoNotDisrupt {
                        pod: p.key(),
                        until,
                    });
                }
            }
            for flag in &f.flagged {
                let p = &n.pods[flag.pod];
                let name = |b: usize| format!("{}/{}", snap.pdbs[b].namespace, snap.pdbs[b].name);
                if flag.pdbs.len() > 1 {
                    blockers.push(Why::MultiplePdbs {
                        pod: p.key(),
                        pdbs: flag.pdbs.iter().map(|&b| name(b)).collect(),
                    });
                } else if let Some(&b) = flag
                    .pdbs
                    .first()
                    .filter(|&&b| snap.pdbs[b].disruptions_allowed <= 0)
                {
                    blockers.push(Why::PdbBlocks {
                        pod: p.key(),
                        pdb: name(b),
                    });
                }
                if let Some(cause) = &flag.cannot_move {
                    blockers.push(Why::PodCannotMove {
                        pod: p.key(),
                        cause: cause.clone(),
                    });
                }
            }
            let pool = info.pool.map(|p| &self.world.pools[p]);
            let unconsolidatable = match pool {
                None => None,
                Some(pl) => match pl.consolidate_after {
                    None => Some(Why::ConsolidationDisabled),
                    Some(after) => {
                        let claim = info.claim.map(|c| &snap.node_claims[c]);
                        let status = claim.and_then(|c| c.status.as_ref());
                        let initialized_at = status
                            .and_then(|s| {
                                s.conditions
                                    .iter()
                                    .find(|c| c.type_ == "Initialized" && c.status == "True")
                            })
                            .map(|c| c.last_transition_time.0);
                        let last = n
                            .last_pod_event
                            .or(status.and_then(|s| s.last_pod_event_time.as_ref().map(|t| t.0)))
                            .or(initialized_at)
                            .or(info.created);
                        match last {
                            Some(t) if after > 0.0 && seconds_between(t, now) < after => {
                                Some(Why::ConsolidateAfter {
                                    remaining_seconds: after - seconds_between(t, now),
                                })
                            }
                            _ => None,
                        }
                    }
                },
            };
            let drifted = pool.and_then(|pl| self.drift_reason(i, pl));
            let (expired, expires_in) = match (info.expire_after, info.created) {
                (Some(e), Some(c)) => {
                    let age = seconds_between(c, now);
                    if age >= e {
                        (Some(age), None)
                    } else {
                        (None, Some(e - age))
                    }
                }
                _ => (None, None),
            };
            // Expiration still applies to uninitialized nodes (see `expiration`).
            let eligible = eligible.and(if !n.initialized {
                Err(Why::NotInitialized)
            } else {
                Ok(())
            });
            self.cands.push(Cand {
                pool: info.pool,
                price: info.price,
                movable: f.movable.clone(),
                disruption_cost,
                reschedule_cost,
                blockers,
                unconsolidatable,
                drifted,
                expired,
                expires_in,
                eligible,
                grace: info.termination_grace_period,
            });
        }
        for i in 0..snap.nodes.len() {
            if let Err(w) = self.cands[i].eligible.clone() {
                self.notes[i].push(Note {
                    method: None,
                    verdict: Verdict::Rejected,
                    why: w,
                });
            }
        }
    }

    fn drift_reason(&self, i: usize, pool: &crate::world::PoolInfo) -> Option<String> {
        let snap = self.world.snap;
        let n = self.node(i);
        let info = &self.world.nodes[i];
        let claim = info.claim.map(|c| &snap.node_claims[c]);
        if let Some(c) = claim {
            if let Some(h) = c
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(api::labels::NODEPOOL_HASH))
                && *h != pool.model.hash
            {
                return Some(format!(
                    "NodePool template changed (hash {h} → {})",
                    pool.model.hash
                ));
            }
            if let Some(d) = c.status.as_ref().and_then(|s| {
                s.conditions
                    .iter()
                    .find(|c| c.type_ == "Drifted" && c.status == "True")
            }) {
                return Some(format!("{} ({})", d.reason, d.message));
            }
            if c.spec.node_class_ref != pool.api.spec.template.spec.node_class_ref {
                return Some("node class reference changed".into());
            }
        }
        // requirement_holds reads either spelling of a key, so the node's own labels do.
        for r in &pool.model.model.requirements {
            let holds = match info.on_node.get(&r.key) {
                Some(v) => adapt::requirement_holds_for(r, v),
                None => adapt::requirement_holds(r, &n.labels),
            };
            debug_assert_eq!(holds, adapt::requirement_holds(r, &n.labels));
            if !holds {
                return Some(format!(
                    "no longer matches requirement {} {:?} {:?}",
                    r.key, r.operator, r.values
                ));
            }
        }
        for (k, v) in &pool.model.model.labels {
            if adapt::model_label(&n.labels, k).is_some_and(|x| x != v) {
                return Some(format!("template label {k}={v} differs"));
            }
        }
        // World resolved the type and its offering.
        if let Some(t) = info.instance_type {
            if info.type_index.is_none() {
                return Some(format!("instance type {t} no longer offered"));
            }
            if let (Some(z), Some(c), None) = (info.zone, info.capacity_type, info.offering) {
                return Some(format!("no {c} offering of {t} in {z} any more"));
            }
        }
        None
    }

    fn build_budgets(&mut self) -> Vec<BudgetReport> {
        let snap = self.world.snap;
        let mut counts = vec![(0usize, 0usize); self.world.pools.len()];
        for (i, n) in snap.nodes.iter().enumerate() {
            let Some(p) = self.world.nodes[i].pool else {
                continue;
            };
            if !n.initialized {
                continue;
            }
            counts[p].0 += 1;
            if !n.ready
                || n.deleting
                || n.taints
                    .iter()
                    .any(|t| t.key == api::labels::DISRUPTED_TAINT)
            {
                counts[p].1 += 1;
            }
        }
        let mut out = vec![];
        for (pi, pool) in self.world.pools.iter().enumerate() {
            for (ri, &reason) in REASONS.iter().enumerate() {
                let (allowed, text) =
                    budget::allowed_disruptions(&pool.budgets, self.now, counts[pi].0, reason);
                let available = allowed.saturating_sub(counts[pi].1 as u64);
                self.budget.insert((pi, ri), available);
                out.push(BudgetReport {
                    node_pool: pool.model.name.clone(),
                    reason,
                    nodes: counts[pi].0,
                    allowed: (allowed != u64::MAX).then_some(allowed),
                    disrupting: counts[pi].1,
                    available,
                    budget: text,
                });
            }
        }
        out
    }

    /// Pending pods that existing or new capacity would take: while there are some, graceful
    /// methods wait (removing capacity now would race the provisioner).
    fn pending_placeable(&mut self) -> Result<usize, Error> {
        let snap = self.world.snap;
        if snap.pending_pods.is_empty() {
            return Ok(0);
        }
        let d = crate::provision::provision(
            snap,
            self.now,
            &crate::provision::ProvisionOptions::default(),
        )?;
        Ok(d.placements.len())
    }

    fn budget_left(&self, pool: usize, reason: DisruptionReason) -> u64 {
        self.budget
            .get(&(pool, reason_idx(reason)))
            .copied()
            .unwrap_or(0)
    }

    fn take_budget(&mut self, pool: usize, reason: DisruptionReason) {
        if let Some(b) = self.budget.get_mut(&(pool, reason_idx(reason))) {
            *b = b.saturating_sub(1);
        }
    }

    fn budget_why(&self, pool: usize, reason: DisruptionReason) -> Why {
        let text =
            budget::allowed_disruptions(&self.world.pools[pool].budgets, self.now, 0, reason).1;
        Why::Budget {
            reason,
            budget: text,
        }
    }

    fn strict_pdb(&self, nodes: &[usize]) -> Option<Why> {
        if self.opts.pdb_mode != PdbMode::Strict {
            return None;
        }
        let snap = self.world.snap;
        for b in &snap.pdbs {
            let evictions = nodes
                .iter()
                .flat_map(|&i| {
                    self.cands[i]
                        .movable
                        .iter()
                        .map(move |&k| &snap.nodes[i].pods[k])
                })
                .filter(|p| b.covers(&p.pod))
                .count();
            if evictions > 0 && evictions as i64 > i64::from(b.disruptions_allowed) {
                return Some(Why::PdbExhausted {
                    pdb: format!("{}/{}", b.namespace, b.name),
                    evictions,
                    allowed: b.disruptions_allowed,
                });
            }
        }
        None
    }

    fn pods_of(&self, nodes: &[usize]) -> Vec<PodRef> {
        nodes
            .iter()
            .flat_map(|&i| {
                self.cands[i]
                    .movable
                    .iter()
                    .map(move |&k| self.node(i).pods[k].key())
            })
            .collect()
    }

    fn claim_names(&self, nodes: &[usize]) -> Vec<String> {
        nodes
            .iter()
            .filter_map(|&i| {
                self.world.nodes[i]
                    .claim
                    .and_then(|c| self.world.snap.node_claims[c].metadata.name.clone())
            })
            .collect()
    }

    fn base_action(&self, method: Method, nodes: &[usize], why: String) -> Action {
        let removed_price: f64 = nodes.iter().filter_map(|&i| self.cands[i].price).sum();
        Action {
            method,
            nodes: nodes.iter().map(|&i| self.node(i).name.clone()).collect(),
            node_claims: self.claim_names(nodes),
            replacements: vec![],
            removed_price,
            savings: removed_price,
            disruption_cost: nodes.iter().map(|&i| self.cands[i].disruption_cost).sum(),
            pods_evicted: self.pods_of(nodes),
            moves: vec![],
            drain_deadline: None,
            why,
        }
    }

    // ------------------------------------------------------------------------------------
    // Emptiness

    fn emptiness(&mut self) -> Option<Action> {
        let m = Method::Emptiness;
        let mut order: Vec<usize> = vec![];
        for i in 0..self.cands.len() {
            let c = &self.cands[i];
            if c.eligible.is_err() {
                continue;
            }
            if !c.movable.is_empty() {
                let pods = c.movable.len();
                self.note(i, m, Verdict::Rejected, Why::NotEmpty { pods });
                continue;
            }
            if let Some(b) = c.blockers.first().cloned() {
                self.note(i, m, Verdict::Rejected, b);
                continue;
            }
            if let Some(u) = c.unconsolidatable.clone() {
                self.note(i, m, Verdict::Rejected, u);
                continue;
            }
            order.push(i);
        }
        order.sort_by(|&a, &b| {
            let (ca, cb) = (&self.cands[a], &self.cands[b]);
            ratio(cb)
                .total_cmp(&ratio(ca))
                .then_with(|| self.node(a).name.cmp(&self.node(b).name))
        });
        let mut chosen = vec![];
        for i in order {
            let pool = self.cands[i].pool.unwrap_or(0);
            if self.budget_left(pool, DisruptionReason::Empty) == 0 {
                let w = self.budget_why(pool, DisruptionReason::Empty);
                self.note(i, m, Verdict::Rejected, w);
                continue;
            }
            self.take_budget(pool, DisruptionReason::Empty);
            self.note(i, m, Verdict::Possible, Why::Empty);
            chosen.push(i);
        }
        if chosen.is_empty() {
            return None;
        }
        let mut a = self.base_action(m, &chosen, String::new());
        a.why = format!(
            "delete {} empty node(s) [{}]",
            chosen.len(),
            a.nodes.join(", ")
        );
        Some(a)
    }

    // ------------------------------------------------------------------------------------
    // Drift

    fn drift(&mut self) -> Result<Option<Action>, Error> {
        let m = Method::Drift;
        let mut order = vec![];
        for i in 0..self.cands.len() {
            if self.cands[i].eligible.is_err() {
                continue;
            }
            match self.cands[i].drifted.clone() {
                None => self.note(i, m, Verdict::Rejected, Why::NotDrifted),
                Some(_) => order.push(i),
            }
        }
        // Empty nodes first (cheapest to replace), then oldest first.
        order.sort_by(|&a, &b| {
            let (ca, cb) = (&self.cands[a], &self.cands[b]);
            (!ca.movable.is_empty())
                .cmp(&!cb.movable.is_empty())
                .then_with(|| {
                    self.world.nodes[a]
                        .created
                        .cmp(&self.world.nodes[b].created)
                })
                .then_with(|| self.node(a).name.cmp(&self.node(b).name))
        });
        let mut found: Option<Action> = None;
        for i in order {
            let drift = self.cands[i].drifted.clone().unwrap_or_default();
            if found.is_some() && !self.opts.explain_all {
                self.note(
                    i,
                    m,
                    Verdict::Rejected,
                    Why::NotEvaluated {
                        because: "another drifted node goes first".into(),
                    },
                );
                continue;
            }
            let pool = self.cands[i].pool.unwrap_or(0);
            if self.budget_left(pool, DisruptionReason::Drifted) == 0 {
                let w = self.budget_why(pool, DisruptionReason::Drifted);
                self.note(i, m, Verdict::Rejected, w);
                continue;
            }
            // Drift is eventual: with a terminationGracePeriod, blockers only delay the drain.
            let grace = self.cands[i].grace;
            if let Some(b) = self.cands[i].blockers.first().cloned() {
                if grace.is_none() {
                    self.note(i, m, Verdict::Rejected, b);
                    continue;
                }
                self.note(
                    i,
                    m,
                    Verdict::Possible,
                    Why::BlockersOverriddenByGracePeriod,
                );
            }
            if let Some(w) = self.strict_pdb(&[i]) {
                self.note(i, m, Verdict::Rejected, w);
                continue;
            }
            let outcome = self.sim.evaluate(&[i], None)?;
            let (moves, claims) = match outcome {
                Rehoming::Unplaceable { pod, why } => {
                    self.note(i, m, Verdict::Rejected, Why::PodsDoNotFit { pod, why });
                    continue;
                }
                Rehoming::Fits { moves } => (moves, vec![]),
                Rehoming::NewNodes { moves, claims } => (moves, claims),
                // Only given for a price limit, and drift asks with none.
                Rehoming::NoCheaperNode => {
                    let current = self.cands[i].price.unwrap_or(0.0);
                    self.note(i, m, Verdict::Rejected, Why::NoCheaperNodeHolds { current });
                    continue;
                }
            };
            let mut replacements = vec![];
            let mut failed = None;
            for (k, c) in claims.iter().enumerate() {
                match self.plan_for(c, &[i], k, &|_, _| true) {
                    Ok(p) => replacements.push(Replacement {
                        plan: p,
                        model: c.clone(),
                    }),
                    Err(e) => failed = Some(e),
                }
            }
            if let Some(e) = failed {
                self.note(
                    i,
                    m,
                    Verdict::Rejected,
                    Why::Error {
                        message: e.to_string(),
                    },
                );
                continue;
            }
            self.note(i, m, Verdict::Possible, Why::Drifted { why: drift.clone() });
            if found.is_none() {
                let mut a = self.base_action(m, &[i], String::new());
                a.savings =
                    a.removed_price - replacements.iter().map(|r| r.plan.price).sum::<f64>();
                let moves = self.sim.moves(moves);
                a.moves = self.moves(moves, &replacements);
                a.why = format!(
                    "replace drifted node {} ({drift}) with {} new node(s)",
                    a.nodes[0],
                    replacements.len()
                );
                a.replacements = replacements;
                a.drain_deadline = grace.map(|g| plus(self.now, g));
                found = Some(a);
            }
        }
        Ok(found)
    }

    // ------------------------------------------------------------------------------------
    // Expiration

    fn expiration(&mut self) -> Option<Action> {
        let m = Method::Expiration;
        let mut chosen = vec![];
        for i in 0..self.cands.len() {
            let c = &self.cands[i];
            let expirable = match &c.eligible {
                Ok(()) => true,
                Err(Why::NotInitialized) => true,
                Err(_) => false,
            };
            if !expirable {
                continue;
            }
            match c.expired {
                Some(age) => {
                    self.note(i, m, Verdict::Possible, Why::Expired { age_seconds: age });
                    chosen.push(i);
                }
                None => {
                    let w = Why::NotExpired {
                        remaining_seconds: c.expires_in,
                    };
                    self.note(i, m, Verdict::Rejected, w);
                }
            }
        }
        if chosen.is_empty() {
            return None;
        }
        let mut a = self.base_action(m, &chosen, String::new());
        a.why = format!(
            "delete {} expired node(s) [{}] (forceful: no budget, pods are provisioned again)",
            chosen.len(),
            a.nodes.join(", ")
        );
        a.drain_deadline = chosen
            .iter()
            .filter_map(|&i| self.cands[i].grace)
            .map(|g| plus(self.now, g))
            .min();
        Some(a)
    }

    // ------------------------------------------------------------------------------------
    // Consolidation

    /// Nodes consolidation may look at, with notes for the others.
    fn consolidation_candidates(&mut self, m: Method) -> Vec<usize> {
        let mut out = vec![];
        for i in 0..self.cands.len() {
            let c = &self.cands[i];
            if c.eligible.is_err() {
                continue;
            }
            let pool = &self.world.pools[c.pool.unwrap_or(0)];
            let why = if c.movable.is_empty() {
                Some(Why::Empty)
            } else if let Some(u) = &c.unconsolidatable {
                Some(u.clone())
            } else if pool.policy == ConsolidationPolicy::WhenEmpty {
                Some(Why::WhenEmptyPolicy)
            } else if let Some(b) = c.blockers.first() {
                Some(b.clone())
            } else if c.price.is_none() {
                Some(Why::UnknownPrice)
            } else {
                None
            };
            match why {
                Some(w) => self.note(i, m, Verdict::Rejected, w),
                None => out.push(i),
            }
        }
        out
    }

    /// Pod moves in the order the simulation committed them; `claims` maps the simulation's
    /// claim indices to the replacements kept (in order).
    fn moves(&self, moves: Vec<(PodRef, NewHome)>, replacements: &[Replacement]) -> Vec<PodMove> {
        moves
            .into_iter()
            .filter_map(|(pod, to)| match to {
                NewHome::Node(n) => Some(PodMove {
                    pod,
                    to: n,
                    to_replacement: false,
                }),
                NewHome::Claim(i) => replacements.get(i).map(|r| PodMove {
                    pod,
                    to: r.plan.name.clone(),
                    to_replacement: true,
                }),
            })
            .collect()
    }

    /// Whether some instance type the claim may launch as has an available offering that the
    /// NodePool allows and the filter lets through: else `plan_for` can only fail.
    fn any_offering(&self, c: &NewClaim, filter: &dyn Fn(&str, &sched::Offering) -> bool) -> bool {
        let Some(pool) = self.world.pool_idx.get(&c.node_pool) else {
            return true; // let plan_for say
        };
        let pool = &self.world.pools[*pool].model;
        c.instance_type_options.iter().any(|tn| {
            self.world
                .types
                .iter()
                .find(|t| &t.name == tn)
                .is_some_and(|t| {
                    t.offerings.iter().any(|o| {
                        o.available
                            && filter(tn, o)
                            && adapt::pool_allows(pool, sched::labels::ZONE, &o.zone)
                            && adapt::pool_allows(
                                pool,
                                sched::labels::CAPACITY_TYPE,
                                &o.capacity_type,
                            )
                    })
                })
        })
    }

    fn plan_for(
        &self,
        c: &NewClaim,
        nodes: &[usize],
        k: usize,
        filter: &dyn Fn(&str, &sched::Offering) -> bool,
    ) -> Result<LaunchPlan, Error> {
        let pool = &self.world.pools[self.world.pool_idx[&c.node_pool]];
        let pods: Vec<&sched::Pod> = nodes
            .iter()
            .flat_map(|&i| {
                self.cands[i]
                    .movable
                    .iter()
                    .map(move |&kk| &self.node(i).pods[kk].pod)
            })
            .filter(|p| c.pods.contains(&p.key()))
            .collect();
        let seed = self.now.as_nanosecond();
        let name = adapt::claim_name(
            &c.node_pool,
            seed,
            k + 1000 * nodes.first().copied().unwrap_or(0),
            &c.pods,
        );
        adapt::launch_plan(
            c,
            pool.api,
            &pool.model,
            &self.world.types,
            &pods,
            &name,
            filter,
        )
    }

    /// Karpenter's consolidation rules on one simulated outcome: delete when everything fits,
    /// replace when exactly one strictly cheaper node does, never 1 → many.
    fn consolidate(&mut self, nodes: &[usize], multi: bool) -> Result<Result<Action, Why>, Error> {
        if let Some(w) = self.strict_pdb(nodes) {
            return Ok(Err(w));
        }
        let method = if multi {
            Method::MultiNodeConsolidation
        } else {
            Method::SingleNodeConsolidation
        };
        let price: f64 = nodes.iter().filter_map(|&i| self.cands[i].price).sum();
        let min_savings = nodes
            .iter()
            .filter_map(|&i| self.cands[i].pool)
            .map(|p| self.world.pools[p].min_savings_percent)
            .fold(0.0, f64::max);
        let outcome = self.sim.evaluate(nodes, Some(price))?;
        let (moves, claim) = match outcome {
            Rehoming::NoCheaperNode => return Ok(Err(Why::NoCheaperNodeHolds { current: price })),
            Rehoming::Unplaceable { pod, why } => return Ok(Err(Why::PodsDoNotFit { pod, why })),
            Rehoming::Fits { moves } => {
                if 100.0 < min_savings {
                    return Ok(Err(Why::BelowMinSavings {
                        percent: 100.0,
                        min: min_savings,
                    }));
                }
                let mut a = self.base_action(method, nodes, String::new());
                let moves = self.sim.moves(moves);
                a.moves = self.moves(moves, &[]);
                a.why = format!(
                    "delete [{}]: their pods fit on the other nodes",
                    a.nodes.join(", ")
                );
                return Ok(Ok(a));
            }
            Rehoming::NewNodes { claims, .. } if claims.len() > 1 => {
                return Ok(Err(Why::WouldNeedNodes {
                    count: claims.len(),
                }));
            }
            Rehoming::NewNodes { moves, mut claims } => (moves, claims.remove(0)),
        };
        let all_spot = nodes
            .iter()
            .all(|&i| self.world.nodes[i].capacity_type == Some("spot"));
        let can_spot = self
            .world
            .types
            .iter()
            .filter(|t| claim.instance_type_options.contains(&t.name))
            .any(|t| {
                t.offerings
                    .iter()
                    .any(|o| o.capacity_type == "spot" && o.available)
            });
        let spot_to_spot = all_spot && can_spot;
        if spot_to_spot && !self.opts.spot_to_spot {
            return Ok(Err(Why::SpotToSpotDisabled));
        }
        let cheaper = |limit: f64, spot_only: bool| {
            move |_: &str, o: &sched::Offering| {
                o.price < limit && (!spot_only || o.capacity_type == "spot")
            }
        };
        // No offering of the replacement's types is cheaper: no plan could be (the same answer
        // `plan_for` gives, without building one).
        let first = cheaper(price, spot_to_spot);
        if !self.any_offering(&claim, &first) {
            return Ok(Err(Why::NotCheaper { current: price }));
        }
        let mut plan = match self.plan_for(&claim, nodes, 0, &first) {
            Ok(p) => p,
            Err(_) => return Ok(Err(Why::NotCheaper { current: price })),
        };
        // Karpenter narrows on-demand→[spot, on-demand] to spot: the price filter assumed spot.
        if !spot_to_spot
            && plan.capacity_types.len() > 1
            && plan.capacity_types.iter().any(|c| c == "spot")
            && let Ok(p) = self.plan_for(&claim, nodes, 0, &cheaper(price, true))
        {
            plan = p;
        }
        if multi {
            // Replacing several nodes by one of their own types is just deleting the others.
            let mut limit = f64::INFINITY;
            for &i in nodes {
                if let (Some(t), Some(p)) = (self.world.nodes[i].instance_type, self.cands[i].price)
                    && plan.instance_types.iter().any(|o| o.name == t)
                {
                    limit = limit.min(p);
                }
            }
            if limit.is_finite() {
                match self.plan_for(
                    &claim,
                    nodes,
                    0,
                    &cheaper(
                        price.min(limit),
                        spot_to_spot || plan.capacity_types == ["spot"],
                    ),
                ) {
                    Ok(p) => plan = p,
                    Err(_) => return Ok(Err(Why::NotCheaper { current: price })),
                }
            }
        }
        if spot_to_spot && !multi {
            let need = self.opts.spot_to_spot_min_types;
            if plan.instance_types.len() < need {
                return Ok(Err(Why::SpotToSpotTooFewTypes {
                    have: plan.instance_types.len(),
                    need,
                }));
            }
            // Launch only the cheapest ones so the result is never immediately consolidatable.
            let pool = &self.world.pools[self.world.pool_idx[&claim.node_pool]];
            let keep = need.max(min_values_needed(&plan, pool, &self.world.types));
            if plan.instance_types.len() > keep {
                let names: BTreeSet<String> = plan
                    .instance_types
                    .iter()
                    .take(keep)
                    .map(|o| o.name.clone())
                    .collect();
                let limit = price;
                if let Ok(p) =
                    self.plan_for(&claim, nodes, 0, &move |t: &str, o: &sched::Offering| {
                        names.contains(t) && o.price < limit && o.capacity_type == "spot"
                    })
                {
                    plan = p;
                }
            }
        }
        let pool = &self.world.pools[self.world.pool_idx[&claim.node_pool]];
        if let Some(w) = min_values_violation(&plan, pool, &self.world.types) {
            return Ok(Err(w));
        }
        if plan.price >= price {
            return Ok(Err(Why::NotCheaper { current: price }));
        }
        let savings = price - plan.price;
        let percent = if price > 0.0 {
            savings / price * 100.0
        } else {
            0.0
        };
        if percent < min_savings {
            return Ok(Err(Why::BelowMinSavings {
                percent,
                min: min_savings,
            }));
        }
        let mut a = self.base_action(method, nodes, String::new());
        let repl = vec![Replacement { plan, model: claim }];
        a.savings = savings;
        let moves = self.sim.moves(moves);
        a.moves = self.moves(moves, &repl);
        a.why = format!(
            "replace [{}] (${price:.4}/h) with one {} node at ${:.4}/h",
            a.nodes.join(", "),
            repl[0].plan.instance_type,
            repl[0].plan.price
        );
        a.replacements = repl;
        Ok(Ok(a))
    }

    fn success_note(a: &Action) -> Why {
        match a.replacements.first() {
            None => Why::CanDelete { savings: a.savings },
            Some(r) => Why::CanReplace {
                with: r.plan.instance_type.clone(),
                price: r.plan.price,
                savings: a.savings,
            },
        }
    }

    fn multi_node(&mut self) -> Result<Option<Action>, Error> {
        let m = Method::MultiNodeConsolidation;
        let mut cands = self.consolidation_candidates(m);
        cands.sort_by(|&a, &b| {
            self.cands[a]
                .disruption_cost
                .total_cmp(&self.cands[b].disruption_cost)
                .then_with(|| self.node(a).name.cmp(&self.node(b).name))
        });
        let mut budget: BTreeMap<usize, u64> = BTreeMap::new();
        let mut usable = vec![];
        for i in cands {
            let pool = self.cands[i].pool.unwrap_or(0);
            let left = *budget
                .entry(pool)
                .or_insert_with(|| self.budget_left(pool, DisruptionReason::Underutilized));
            if left == 0 {
                let w = self.budget_why(pool, DisruptionReason::Underutilized);
                self.note(i, m, Verdict::Rejected, w);
                continue;
            }
            budget.insert(pool, left - 1);
            usable.push(i);
        }
        let max = usable.len().min(self.opts.multi_node_max_candidates);
        if max < 2 {
            for &i in &usable {
                self.note(i, m, Verdict::Rejected, Why::TooFewCandidates);
            }
            return Ok(None);
        }
        for &i in &usable[max..] {
            self.note(
                i,
                m,
                Verdict::Rejected,
                Why::NotEvaluated {
                    because: format!("beyond the first {max} candidates"),
                },
            );
        }
        // Largest prefix [0, mid] that consolidates, by binary search (at least two nodes).
        let (mut lo, mut hi) = (1usize, max - 1);
        let mut best: Option<Action> = None;
        let mut last_fail: Option<Why> = None;
        while lo <= hi {
            let mid = (lo + hi) / 2;
            let set: Vec<usize> = usable[..=mid].to_vec();
            match self.consolidate(&set, true)? {
                Ok(a) => {
                    best = Some(a);
                    lo = mid + 1;
                }
                Err(w) => {
                    last_fail = Some(w);
                    if mid == 0 {
                        break;
                    }
                    hi = mid - 1;
                }
            }
        }
        match &best {
            Some(a) => {
                let chosen: BTreeSet<&String> = a.nodes.iter().collect();
                for &i in &usable[..max] {
                    if chosen.contains(&self.node(i).name) {
                        self.note(
                            i,
                            m,
                            Verdict::Possible,
                            Why::InMultiNodeSet {
                                size: a.nodes.len(),
                            },
                        );
                    } else {
                        self.note(
                            i,
                            m,
                            Verdict::Rejected,
                            Why::NotEvaluated {
                                because: format!(
                                    "outside the largest consolidatable prefix ({} nodes)",
                                    a.nodes.len()
                                ),
                            },
                        );
                    }
                }
            }
            None => {
                let w = last_fail.unwrap_or(Why::TooFewCandidates);
                for &i in &usable[..max] {
                    self.note(
                        i,
                        m,
                        Verdict::Rejected,
                        Why::NotEvaluated {
                            because: format!(
                                "no prefix of two or more consolidates (smallest tried: {w})"
                            ),
                        },
                    );
                }
            }
        }
        Ok(best)
    }

    fn single_node(&mut self, already: bool) -> Result<Option<Action>, Error> {
        let m = Method::SingleNodeConsolidation;
        let mut cands = self.consolidation_candidates(m);
        cands.sort_by(|&a, &b| {
            ratio(&self.cands[b])
                .total_cmp(&ratio(&self.cands[a]))
                .then_with(|| self.node(a).name.cmp(&self.node(b).name))
        });
        let mut found: Option<Action> = None;
        for i in cands {
            if (found.is_some() || already) && !self.opts.explain_all {
                self.note(
                    i,
                    m,
                    Verdict::Rejected,
                    Why::NotEvaluated {
                        because: "another node was chosen first".into(),
                    },
                );
                continue;
            }
            let pool = self.cands[i].pool.unwrap_or(0);
            if self.budget_left(pool, DisruptionReason::Underutilized) == 0 {
                let w = self.budget_why(pool, DisruptionReason::Underutilized);
                self.note(i, m, Verdict::Rejected, w);
                continue;
            }
            match self.consolidate(&[i], false)? {
                Ok(a) => {
                    self.note(i, m, Verdict::Possible, Self::success_note(&a));
                    if found.is_none() {
                        found = Some(a);
                    }
                }
                Err(w) => self.note(i, m, Verdict::Rejected, w),
            }
        }
        Ok(found)
    }
}

/// Karpenter's savings ratio: price per unit of rescheduling disruption (higher goes first).
fn ratio(c: &Cand) -> f64 {
    c.price.unwrap_or(0.0) / c.reschedule_cost.max(1e-9)
}

fn type_values(plan: &LaunchPlan, key: &str, types: &[sched::InstanceType]) -> BTreeSet<String> {
    let model_key = adapt::to_model_key(key);
    if model_key == sched::labels::INSTANCE_TYPE {
        return plan.instance_types.iter().map(|o| o.name.clone()).collect();
    }
    if model_key == sched::labels::ZONE {
        return plan.zones.iter().cloned().collect();
    }
    if model_key == sched::labels::CAPACITY_TYPE {
        return plan.capacity_types.iter().cloned().collect();
    }
    plan.instance_types
        .iter()
        .filter_map(|o| types.iter().find(|t| t.name == o.name))
        .filter_map(|t| t.labels.get(model_key).cloned())
        .collect()
}

fn min_values_violation(
    plan: &LaunchPlan,
    pool: &crate::world::PoolInfo,
    types: &[sched::InstanceType],
) -> Option<Why> {
    for r in &pool.model.model.requirements {
        if let Some(need) = r.min_values {
            let have = type_values(plan, &r.key, types).len();
            if have < need as usize {
                return Some(Why::MinValues {
                    key: r.key.clone(),
                    have,
                    need,
                });
            }
        }
    }
    None
}

/// Fewest cheapest types that still satisfy every minValues of the pool.
fn min_values_needed(
    plan: &LaunchPlan,
    pool: &crate::world::PoolInfo,
    types: &[sched::InstanceType],
) -> usize {
    let mut n = 0;
    for r in &pool.model.model.requirements {
        let Some(need) = r.min_values else { continue };
        for k in 1..=plan.instance_types.len() {
            let sub = LaunchPlan {
                instance_types: plan.instance_types[..k].to_vec(),
                ..plan.clone()
            };
            if type_values(&sub, &r.key, types).len() >= need as usize {
                n = n.max(k);
                break;
            }
        }
    }
    n
}

/// The scheduling snapshot and plan an action amounts to ("these nodes are gone, their pods go
/// there"), for the scheduling crate's independent checker. An empty list from
/// `ballast_scheduling::check::check` on it means no pod is left without a valid place.
pub fn action_as_plan(
    snap: &ClusterSnapshot,
    action: &Action,
) -> Result<(sched::Snapshot, sched::Solution), Error> {
    let world = World::new(snap)?;
    let mut skipped = vec![];
    let mut memo = DisruptionMemo::default();
    let prepared = memo.prepare(&world, &DisruptionOptions::default());
    let sim = WhatIf::new(&world, &prepared, SimulationMode::FullSolve, &mut skipped);
    let idx: Vec<usize> = action
        .nodes
        .iter()
        .filter_map(|n| snap.nodes.iter().position(|x| &x.name == n))
        .collect();
    let model = sim.full_snapshot(&idx);
    let mut sol = sched::Solution::default();
    for r in &action.replacements {
        let mut c = r.model.clone();
        let p = &r.plan;
        if c.instance_type != p.instance_type {
            if let Some(old) = world.types.iter().find(|t| t.name == c.instance_type) {
                for k in old.labels.keys() {
                    c.labels.remove(k);
                }
            }
            if let Some(new) = world.types.iter().find(|t| t.name == p.instance_type) {
                c.labels.extend(new.labels.clone());
            }
        }
        c.instance_type = p.instance_type.clone();
        c.zone = p.zone.clone();
        c.capacity_type = p.capacity_type.clone();
        c.price = p.price;
        c.labels
            .insert(sched::labels::INSTANCE_TYPE.into(), p.instance_type.clone());
        c.labels.insert(sched::labels::ZONE.into(), p.zone.clone());
        c.labels
            .insert(sched::labels::CAPACITY_TYPE.into(), p.capacity_type.clone());
        c.instance_type_options = p.instance_types.iter().map(|o| o.name.clone()).collect();
        c.name = p.name.clone();
        sol.new_claims.push(c);
    }
    let in_model: BTreeSet<PodRef> = model
        .pods
        .iter()
        .filter(|p| p.node_name.is_none())
        .map(|p| p.key())
        .collect();
    for mv in &action.moves {
        if !in_model.contains(&mv.pod) {
            continue;
        }
        let target = if mv.to_replacement {
            match sol.new_claims.iter().position(|c| c.name == mv.to) {
                Some(i) => sched::Target::NewClaim(i),
                None => continue,
            }
        } else {
            sched::Target::Node(mv.to.clone())
        };
        sol.placements.push(sched::Placement {
            pod: mv.pod.clone(),
            target,
        });
    }
    // Pods with no move are left for the checker to flag.
    Ok((model, sol))
}
