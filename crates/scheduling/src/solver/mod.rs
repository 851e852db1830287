//! The solver: first-fit-decreasing over existing nodes, NodeClaims opened in this solve, then new
//! NodeClaims from NodePools by weight; each open NodeClaim keeps the set of instance types that
//! still fit. Pure: same input, same output.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap;

use crate::error::{Kind, ModelError};
use crate::model::{
    HostPort, NodeInclusionPolicy, Pod, PodAffinityTerm, Resources, Snapshot, Taint, TaintEffect,
    Toleration, WhenUnsatisfiable, labels as wk,
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
mod placement;
mod plan;
mod pods;
pub(crate) mod prepared;
mod resources;
mod state;
mod topology;

use compile::*;
use explanation::*;
use placement::*;
use pods::*;
pub(crate) use resources::*;
pub(crate) use state::Solver;
use topology::*;

pub(crate) const DIMS: usize = 12;
const BUILTIN: [&str; 4] = ["cpu", "memory", "pods", "ephemeral-storage"];
const EPHEMERAL_TAINTS: [&str; 4] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
    "node.cloudprovider.kubernetes.io/uninitialized",
    "karpenter.sh/unregistered",
];

const LIMIT_NODES: usize = usize::MAX;

impl<'a> Solver<'a> {
    pub(crate) fn new(snap: &'a Snapshot, opts: &SolveOptions) -> Result<Self, ModelError> {
        // Resource dimensions: the built-ins plus extended resources that pending pods request or
        // that NodePool limits name.
        let dims = solve_dims(
            snap.pods.iter().filter(|p| p.node_name.is_none()),
            &snap.node_pools,
        )?;
        let mut s = Solver::prepare_cluster(snap, opts, dims)?;
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
        if self.opts.improve {
            self.repack_free();
            self.improve();
        }
        self.finish(&failed)
    }
}
