//! The solver: where pending pods go. First fit, in a fixed pod order, over existing nodes, then
//! NodeClaims opened in this solve, then new NodeClaims from NodePools by weight; each open
//! NodeClaim keeps the set of instance types that still fit it and becomes its cheapest one at the
//! end. Pure: same input, same output.
//!
//! ```text
//!  Snapshot ──► compile.rs      Compiled: dimensions, zones and capacity types numbered,
//!     │                         instance types + offerings, NodePools, existing nodes (slots)
//!     │         resources.rs    ResourceVector, TypeSet: the values everything computes with
//!     ▼
//!  pending.rs   PendingPod per pod, in placement order (priority, cpu, memory, name):
//!     │         requests, requirement alternatives, topology terms, preferences to relax
//!     │         ── bound pods counted into the topology groups (topology.rs)
//!     ▼
//!  run():  for each pod  placement.rs  existing slot? ─► open NodeClaim? ─► new NodeClaim?
//!     │                   topology.rs   which domain (zone, host, ...) each term allows
//!     │    none placed this round ─► relax one preference of each failed pod, try again
//!     ▼
//!  improvement.rs   (options.improve) repack free pods, empty the emptiest NodeClaims
//!     ▼
//!  plan.rs          Solution: placements, NodeClaims with their cheapest type and offering,
//!                   explanation.rs: for each pod left, why (Reason per NodePool and node)
//! ```
//!
//! The fixed part ([`compile::Compiled`], built once) and the changing part ([`Solver`]: usage,
//! open claims, topology counts, the pods) are separate types; `prepared.rs` builds one
//! `Compiled` for many solves that each take some nodes away.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap;

use crate::aliases;
use crate::error::{Kind, ModelError};
use crate::model::{
    EPHEMERAL_TAINTS, HostPort, NodeInclusionPolicy, Pod, PodAffinityTerm, Resources, Snapshot,
    Taint, TaintEffect, Toleration, WhenUnsatisfiable, labels as wk,
};
use crate::req::{
    Interner, Labels, ReqSet, Selector, VSet, intern_labels, label, reqset_add, reqset_get,
    reqset_merge,
};
use crate::solution::{
    ClaimOrder, NewClaim, Placement, Reason, Relaxed, Solution, SolveOptions, Target, Unschedulable,
};

mod compile;
mod explanation;
mod improvement;
mod pending;
mod placement;
mod plan;
pub(crate) mod prepared;
mod resources;
mod state;
mod topology;

use compile::*;
use explanation::*;
use pending::*;
use placement::*;
pub(crate) use resources::*;
pub(crate) use state::Solver;
use state::Start;
use topology::*;

pub(crate) const DIMS: usize = 12;
const BUILTIN: [&str; 4] = ["cpu", "memory", "pods", "ephemeral-storage"];

const LIMIT_NODES: usize = usize::MAX;

impl<'a> Solver<'a> {
    pub(crate) fn new(snap: &'a Snapshot, options: &SolveOptions) -> Result<Self, ModelError> {
        // Resource dimensions: the built-ins plus extended resources that pending pods request or
        // that NodePool limits name.
        let dimensions = solve_dims(
            snap.pods.iter().filter(|p| p.node_name.is_none()),
            &snap.node_pools,
        )?;
        let mut s = Solver::prepare_cluster(snap, options, dimensions)?;
        s.prepare_pods(snap)?;
        Ok(s)
    }

    pub(crate) fn run(mut self) -> Solution {
        let mut pending: Vec<usize> = (0..self.pods.len()).collect();
        loop {
            let mut failed = vec![];
            let mut progress = false;
            for &pi in &pending {
                if self.place(pi) {
                    progress = true;
                } else {
                    failed.push(pi);
                }
            }
            if failed.is_empty() {
                break;
            }
            if !progress {
                let mut relaxed_any = false;
                for &pi in &failed {
                    relaxed_any |= self.relax(pi);
                }
                if !relaxed_any {
                    break;
                }
            }
            pending = failed;
        }
        let mut placed = vec![false; self.pods.len()];
        for &(pi, _) in &self.placements {
            placed[pi] = true;
        }
        let failed: BTreeSet<usize> = (0..self.pods.len()).filter(|&pi| !placed[pi]).collect();
        if self.cluster.options.improve {
            self.repack_free();
            self.improve();
        }
        self.finish(&failed)
    }
}
