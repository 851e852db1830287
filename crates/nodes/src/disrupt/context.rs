//! The facts every disruption method reads, gathered once per pass: the snapshot resolved
//! ([`World`]), each node as a [`Candidate`] (price, pods to move, costs, blockers, drift and
//! expiry), the budget left per NodePool and reason, the notes written so far, and the what-if
//! placement of evicted pods. Each method is an `impl DisruptionContext` block in the file named
//! for it; the helpers here build what they all return.

use std::collections::BTreeMap;

use ballast_scheduling::PodRef;
use jiff::{SignedDuration, Timestamp};

use super::options::{DisruptionOptions, PdbMode};
use super::report::{Action, Method, Note, PodMove, Replacement, Verdict, Why};
use super::what_if::{NewHome, WhatIf};
use crate::snapshot::ClusterNode;
use crate::world::World;

/// Per-node facts the methods share.
pub(super) struct Candidate {
    pub(super) pool: Option<usize>,
    pub(super) price: Option<f64>,
    /// Pods that need a new home.
    pub(super) movable: Vec<usize>,
    pub(super) disruption_cost: f64,
    /// 1 + Σ max(0, pod cost) over movable pods (Karpenter's savings-ratio denominator).
    pub(super) reschedule_cost: f64,
    /// Why graceful methods must leave it (do-not-disrupt, PDBs, pods that cannot move).
    pub(super) blockers: Vec<Why>,
    /// Why consolidation cannot touch it (timers, policy, price), besides blockers.
    pub(super) unconsolidatable: Option<Why>,
    pub(super) drifted: Option<String>,
    pub(super) expired: Option<f64>,
    pub(super) expires_in: Option<f64>,
    pub(super) eligible: Result<(), Why>,
    pub(super) grace: Option<f64>,
}

pub(super) fn seconds_between(a: Timestamp, b: Timestamp) -> f64 {
    b.duration_since(a).as_secs_f64()
}

pub(super) fn plus(t: Timestamp, s: f64) -> Timestamp {
    t.checked_add(SignedDuration::from_secs_f64(s.max(0.0)))
        .unwrap_or(Timestamp::MAX)
}

/// One pass's shared facts and the notes the methods write.
pub(super) struct DisruptionContext<'w, 'a> {
    pub(super) world: &'w World<'a>,
    pub(super) now: Timestamp,
    pub(super) opts: &'w DisruptionOptions,
    pub(super) candidates: Vec<Candidate>,
    pub(super) notes: Vec<Vec<Note>>,
    /// Available disruptions per (pool, reason).
    pub(super) budget: BTreeMap<(usize, usize), u64>,
    pub(super) what_if: WhatIf<'w, 'a>,
}

impl<'w, 'a> DisruptionContext<'w, 'a> {
    pub(super) fn note(&mut self, i: usize, m: Method, v: Verdict, why: Why) {
        self.notes[i].push(Note {
            method: Some(m),
            verdict: v,
            why,
        });
    }

    pub(super) fn node(&self, i: usize) -> &'a ClusterNode {
        self.world.node(i)
    }

    pub(super) fn strict_pdb(&self, nodes: &[usize]) -> Option<Why> {
        if self.opts.pdb_mode != PdbMode::Strict {
            return None;
        }
        let snap = self.world.snap;
        for b in &snap.pdbs {
            let evictions = nodes
                .iter()
                .flat_map(|&i| {
                    self.candidates[i]
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

    pub(super) fn pods_of(&self, nodes: &[usize]) -> Vec<PodRef> {
        nodes
            .iter()
            .flat_map(|&i| {
                self.candidates[i]
                    .movable
                    .iter()
                    .map(move |&k| self.node(i).pods[k].key())
            })
            .collect()
    }

    pub(super) fn claim_names(&self, nodes: &[usize]) -> Vec<String> {
        nodes
            .iter()
            .filter_map(|&i| {
                self.world.nodes[i]
                    .claim
                    .and_then(|c| self.world.snap.node_claims[c].metadata.name.clone())
            })
            .collect()
    }

    pub(super) fn base_action(&self, method: Method, nodes: &[usize], why: String) -> Action {
        let removed_price: f64 = nodes.iter().filter_map(|&i| self.candidates[i].price).sum();
        Action {
            method,
            nodes: nodes.iter().map(|&i| self.node(i).name.clone()).collect(),
            node_claims: self.claim_names(nodes),
            replacements: vec![],
            removed_price,
            savings: removed_price,
            disruption_cost: nodes
                .iter()
                .map(|&i| self.candidates[i].disruption_cost)
                .sum(),
            pods_evicted: self.pods_of(nodes),
            moves: vec![],
            drain_deadline: None,
            why,
        }
    }

    /// Pod moves in the order the simulation committed them; `claims` maps the simulation's
    /// claim indices to the replacements kept (in order).
    pub(super) fn moves(
        &self,
        moves: Vec<(PodRef, NewHome)>,
        replacements: &[Replacement],
    ) -> Vec<PodMove> {
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
}
