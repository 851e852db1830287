//! Disruption: which nodes to take away, and with what (if anything) in their place.
//!
//! One pass, [`disrupt`], reads the snapshot once into the facts every method shares, then asks
//! the methods in Karpenter's order; the first that finds something acts. Every node gets an
//! account of what each method thought of it, so `ballast explain disruption` can say why a node
//! stays. The pass in one picture (file, then what it decides):
//!
//! ```text
//! snapshot ──▶ World: pools, types, offerings, prices          crate::world
//!          ──▶ each node's pods read once, kept across passes  memo.rs, movable_pod.rs
//!          ──▶ DisruptionContext, the facts every method reads context.rs
//!                who may go and at what cost                   candidates.rs
//!                budget left per NodePool and reason           budgets.rs
//!                where evicted pods would land (what-if)       what_if.rs
//!
//! pending pods that provisioning would place? the graceful methods wait (not expiration);
//!   pods only a pool that cannot launch could take do not count  pending.rs
//!   1. emptiness     delete nodes with no pods to move         emptiness.rs
//!   2. drift         replace one node its NodePool disowns     drift.rs
//!   3. expiration    delete nodes past expireAfter (forceful)  expiration.rs
//!   4. multi-node    delete, or replace by one cheaper node,   consolidation/multi.rs
//!                    the largest set of nodes that allows it
//!   5. single-node   the same for one node                     consolidation/single.rs
//!                    (shared rules: consolidation/mod.rs; launch plans: replacement.rs)
//!
//! ──▶ DisruptionDecision: the action, a report per node, budgets, a line per method  report.rs
//! ```
//!
//! Upstream facts each method follows (Karpenter v1; `docs/nodes.md` lists where Ballast
//! differs):
//! - emptiness: a node without reschedulable pods, consolidateAfter elapsed since its last pod
//!   event, deleted within the `Empty` budget;
//! - drift: NodePool template hash, the `Drifted` condition, node class, requirements and labels;
//!   one node at a time within the `Drifted` budget, blockers overridden by
//!   terminationGracePeriod;
//! - expiration: `expireAfter` is forceful, with no budget and no replacement (the pods go back
//!   to provisioning);
//! - consolidation: the `Underutilized` budget; delete when the pods fit elsewhere, replace by
//!   exactly one strictly cheaper node (never one by many), spot-to-spot only with enough cheaper
//!   types; multi-node binary-searches the longest prefix of at most 100 candidates sorted by
//!   disruption cost, single-node walks candidates by savings ratio.
//!
//! Files import only files below them in this list, never one that imports them:
//! options, report, movable_pod → memo → what_if → context → the methods (candidates, budgets,
//! emptiness, drift, expiration, replacement, consolidation) → this file; action_plan turns an
//! action back into a scheduling plan for the checker.

mod action_plan;
mod budgets;
mod candidates;
mod consolidation;
mod context;
mod drift;
mod emptiness;
mod expiration;
mod memo;
mod movable_pod;
mod options;
mod pending;
mod replacement;
mod report;
mod what_if;

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use crate::error::Error;
use crate::snapshot::ClusterSnapshot;
use crate::world::World;
use context::DisruptionContext;
use pending::pending_placeable;
use what_if::WhatIf;

pub use action_plan::action_as_plan;
pub use memo::{DisruptionMemo, eviction_cost};
pub use options::{DisruptionOptions, PdbMode, SimulationMode};
pub use report::{
    Action, BudgetReport, DisruptionDecision, Method, NodeReport, Note, PodMove, Replacement,
    Verdict, Why,
};

/// The methods, in the order a pass asks them.
const METHODS: [Method; 5] = [
    Method::Emptiness,
    Method::Drift,
    Method::Expiration,
    Method::MultiNodeConsolidation,
    Method::SingleNodeConsolidation,
];

/// One disruption pass over the snapshot at `now`.
pub fn disrupt(
    snap: &ClusterSnapshot,
    now: Timestamp,
    opts: &DisruptionOptions,
) -> Result<DisruptionDecision, Error> {
    disrupt_with_memo(snap, now, opts, &mut DisruptionMemo::default())
}

/// [`disrupt`], reusing what earlier passes with the same memo read from nodes whose
/// [`crate::snapshot::ClusterNode::pods_revision`] has not changed. The decision is the same as without it.
pub fn disrupt_with_memo(
    snap: &ClusterSnapshot,
    now: Timestamp,
    opts: &DisruptionOptions,
    memo: &mut DisruptionMemo,
) -> Result<DisruptionDecision, Error> {
    let world = World::new(snap)?;
    let prepared = memo.prepare(&world, opts);
    let mut skipped = world.skipped.clone();
    let what_if = WhatIf::new(&world, &prepared, opts.simulation, &mut skipped);
    let mut ctx = DisruptionContext {
        world: &world,
        now,
        opts,
        candidates: vec![],
        notes: vec![vec![]; snap.nodes.len()],
        budget: BTreeMap::new(),
        what_if,
    };
    ctx.build_candidates(&prepared.nodes);
    let budgets = ctx.build_budgets();
    let pending_first = pending_placeable(snap, now)?;
    let (action, methods) = ask_methods(&mut ctx, pending_first)?;
    let summary = summary(action.as_ref(), pending_first);
    Ok(DisruptionDecision {
        action,
        nodes: node_reports(&mut ctx),
        budgets,
        methods,
        summary,
        skipped,
        simulations: (ctx.what_if.fast_evaluations, ctx.what_if.full_solves),
    })
}

/// What each method said in a pass, in [`METHODS`] order.
type MethodNotes = Vec<(Method, String)>;

/// Asks every method in [`METHODS`] order: the first action found is chosen; later methods are
/// not evaluated unless `explain_all`. Returns the action and one line per method.
fn ask_methods(
    ctx: &mut DisruptionContext<'_, '_>,
    pending_first: usize,
) -> Result<(Option<Action>, MethodNotes), Error> {
    let mut methods = vec![];
    let mut action: Option<Action> = None;
    for method in METHODS {
        if action.is_some() && !ctx.opts.explain_all {
            for i in 0..ctx.candidates.len() {
                if ctx.candidates[i].eligible.is_ok() {
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
        let Some(a) = found else {
            methods.push((method, "nothing to do".into()));
            continue;
        };
        let line = format!("{} node(s): {}", a.nodes.len(), a.why);
        if action.is_none() {
            methods.push((method, format!("acts on {line}")));
            mark_chosen(ctx, method, &a.nodes);
            action = Some(a);
        } else {
            methods.push((method, format!("would act on {line}")));
        }
    }
    Ok((action, methods))
}

/// The chosen nodes' possible notes of `method` become chosen.
fn mark_chosen(ctx: &mut DisruptionContext<'_, '_>, method: Method, nodes: &[String]) {
    let chosen: BTreeSet<&String> = nodes.iter().collect();
    for (i, n) in ctx.world.snap.nodes.iter().enumerate() {
        if chosen.contains(&n.name) {
            for note in ctx.notes[i]
                .iter_mut()
                .filter(|x| x.method == Some(method) && x.verdict == Verdict::Possible)
            {
                note.verdict = Verdict::Chosen;
            }
        }
    }
}

/// The decision in one line.
fn summary(action: Option<&Action>, pending_first: usize) -> String {
    match action {
        Some(a) => format!(
            "{}: {} (saves ${:.4}/h, disruption cost {:.2})",
            a.method, a.why, a.savings, a.disruption_cost
        ),
        None if pending_first > 0 => Why::PendingPodsFirst {
            count: pending_first,
        }
        .to_string(),
        None => "no disruption: see each node's notes".into(),
    }
}

/// Every node's report, in snapshot order, taking the notes the methods wrote.
fn node_reports(ctx: &mut DisruptionContext<'_, '_>) -> Vec<NodeReport> {
    let world = ctx.world;
    world
        .snap
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| NodeReport {
            node: n.name.clone(),
            node_pool: ctx.candidates[i]
                .pool
                .map(|p| world.pools[p].model.name.clone()),
            price: ctx.candidates[i].price,
            disruption_cost: ctx.candidates[i].disruption_cost,
            notes: std::mem::take(&mut ctx.notes[i]),
        })
        .collect()
}
