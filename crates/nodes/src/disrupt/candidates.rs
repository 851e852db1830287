//! Who may be disrupted, and at what cost: each node's [`Candidate`] facts (eligibility,
//! blockers, consolidation timers, drift, expiry, disruption and rescheduling costs), the nodes
//! consolidation may look at, and the savings ratio that orders them.

use std::collections::BTreeMap;

use ballast_api::nodes::{self as api, ConsolidationPolicy};
use ballast_scheduling as sched;
use jiff::Timestamp;

use super::context::{Candidate, DisruptionContext, plus, seconds_between};
use super::memo::NodeFacts;
use super::report::{Method, Note, Verdict, Why};
use crate::world::PoolInfo;

/// Active do-not-disrupt on a pod or node: Some(None) for "true", Some(Some(until)) for a
/// duration not yet elapsed since `since`, None otherwise.
fn do_not_disrupt(
    annotations: &BTreeMap<String, String>,
    since: Option<Timestamp>,
    now: Timestamp,
) -> Option<Option<Timestamp>> {
    let v = sched::aliases::get(annotations, api::labels::DO_NOT_DISRUPT)?;
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

impl<'w, 'a> DisruptionContext<'w, 'a> {
    pub(super) fn build_candidates(&mut self, facts: &[&NodeFacts]) {
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
            let blockers = self.blockers(i, f);
            let pool = info.pool.map(|p| &self.world.pools[p]);
            let unconsolidatable = pool.and_then(|pl| self.consolidation_wait(i, pl));
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
            self.candidates.push(Candidate {
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
            if let Err(w) = self.candidates[i].eligible.clone() {
                self.notes[i].push(Note {
                    method: None,
                    verdict: Verdict::Rejected,
                    why: w,
                });
            }
        }
    }

    /// Why graceful methods must leave node `i`: do-not-disrupt on the node or a pod, a PDB
    /// that allows no disruption or several PDBs on one pod, pods that cannot move.
    fn blockers(&self, i: usize, f: &NodeFacts) -> Vec<Why> {
        let snap = self.world.snap;
        let now = self.now;
        let n = self.node(i);
        let info = &self.world.nodes[i];
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
        blockers
    }

    /// Why consolidation must wait for node `i` of `pool`: consolidateAfter is Never, or has
    /// not passed since the node's last pod event (or initialization, or creation).
    fn consolidation_wait(&self, i: usize, pool: &PoolInfo) -> Option<Why> {
        let snap = self.world.snap;
        let now = self.now;
        let n = self.node(i);
        let info = &self.world.nodes[i];
        if pool.model.model.fixed_size {
            return Some(Why::StaticNodePool);
        }
        match pool.consolidate_after {
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
        }
    }

    /// Nodes consolidation may look at, with notes for the others.
    pub(super) fn consolidation_candidates(&mut self, m: Method) -> Vec<usize> {
        let mut out = vec![];
        for i in 0..self.candidates.len() {
            let c = &self.candidates[i];
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
}

/// Karpenter's savings ratio: price per unit of rescheduling disruption (higher goes first).
pub(super) fn savings_ratio(c: &Candidate) -> f64 {
    c.price.unwrap_or(0.0) / c.reschedule_cost.max(1e-9)
}
