//! Spot interruptions, handled as the node controller handles an interruption message
//! (`ballast_cloud::interruption::response`, docs/nodes.md "Interruption"): the offering is
//! marked unavailable for 3 minutes (masked from the node decisions), the node is cordoned (the
//! simulator's cordon is also its disruption taint) and its NodeClaim deleted, so it drains
//! through the PDBs at once; the instance is gone `noticeSeconds` after the warning whatever is
//! left on it.
//!
//! What it costs: every pod evicted from or killed on an interrupted node is displaced until a
//! pod of its workload becomes Ready again (the oldest displaced one first), or until its
//! workload is scaled in below what is missing, or until the end of the run. A displaced batch
//! pod is created again and runs its whole time again (its Job would retry it).

use super::World;
use crate::event::Event;
use crate::observed::timestamp;
use crate::spot::{self, SpotInterruptions};
use crate::state::*;
use ballast_cloud::OfferingKey;
use ballast_cloud::interruption::{Notice, NoticeKind, Response};
use ballast_scheduling::model::Pod as SchedPod;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// How long an interrupted offering stays masked (the controller's `unavailable_ttl`).
const UNAVAILABLE_MS: Millis = 180_000;

/// The interruptions of a run, and the displaced pods not running again yet.
pub(crate) struct SpotState {
    settings: SpotInterruptions,
    rng: ChaCha8Rng,
    unavailable: ballast_cloud::UnavailableOfferings,
    /// Nodes that got their warning.
    interrupted: BTreeSet<NodeId>,
    /// When each displaced pod of an owner left, oldest first.
    waiting: BTreeMap<Owner, VecDeque<Millis>>,
    /// Batch pods created again.
    reruns: u64,
    pub report: InterruptionSummary,
}

/// What interruptions did to a run (the report's `spotInterruptions`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InterruptionSummary {
    pub interruptions: u64,
    /// Pods evicted from or killed on interrupted nodes.
    pub pods_displaced: u64,
    /// Σ over displaced pods of the seconds until their workload had a pod Ready again.
    pub displaced_pod_seconds: f64,
    /// Scheduled interruptions that found fewer spot nodes than they asked for.
    pub scheduled_missed: u64,
    pub log: Vec<InterruptionEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InterruptionEntry {
    pub t_seconds: f64,
    pub node: String,
    pub instance_type: String,
    pub zone: String,
    /// Pods on the node at the warning.
    pub pods: usize,
}

impl SpotState {
    pub(crate) fn new(settings: &SpotInterruptions, seed: u64) -> SpotState {
        SpotState {
            settings: settings.clone(),
            rng: spot::generator(seed),
            unavailable: ballast_cloud::UnavailableOfferings::new(),
            interrupted: BTreeSet::new(),
            waiting: BTreeMap::new(),
            reruns: 0,
            report: InterruptionSummary::default(),
        }
    }
}

impl World {
    /// A spot node was just added: with random interruptions on, draws when it is interrupted.
    pub(super) fn draw_interruption(&mut self, n: NodeId) {
        let Some(state) = self.spot.as_mut() else {
            return;
        };
        let (kind, zone) = placement(&self.nodes[n]);
        if !state.settings.random || kind != "spot" {
            return;
        }
        let Some(rate) = self.sc.spot_rates.of(&self.nodes[n].instance_type, zone) else {
            return;
        };
        if let Some(after) = spot::draw_seconds(&mut state.rng, rate) {
            let at = self.now.saturating_add(millis(after.min(1e12)));
            if at <= self.end {
                self.wake(at, Event::Interrupt(n));
            }
        }
    }

    /// Scheduled interruption `i` is due: the oldest live spot nodes matching it get a warning.
    pub(crate) fn interrupt_scheduled(&mut self, i: usize) {
        let Some(state) = self.spot.as_ref() else {
            return;
        };
        let entry = state.settings.schedule[i].clone();
        let hits: Vec<NodeId> = self
            .live_nodes
            .iter()
            .copied()
            .filter(|&n| !state.interrupted.contains(&n))
            .filter(|&n| {
                let node = &self.nodes[n];
                let (kind, zone) = placement(node);
                kind == "spot"
                    && entry.zone.as_deref().is_none_or(|z| z == zone)
                    && entry
                        .instance_type
                        .as_deref()
                        .is_none_or(|t| t == node.instance_type)
                    && entry
                        .node_pool
                        .as_deref()
                        .is_none_or(|p| node.node_pool.as_deref() == Some(p))
            })
            .take(entry.count as usize)
            .collect();
        if let Some(state) = self.spot.as_mut() {
            state.report.scheduled_missed += u64::from(entry.count) - hits.len() as u64;
        }
        for n in hits {
            self.interrupt(n);
        }
    }

    /// Spot node `n` gets its interruption warning.
    pub(crate) fn interrupt(&mut self, n: NodeId) {
        let node = &self.nodes[n];
        let (kind, zone) = placement(node);
        let Some(state) = self.spot.as_mut() else {
            return;
        };
        if node.terminated.is_some() || kind != "spot" || state.interrupted.contains(&n) {
            return;
        }
        let now = timestamp(self.sc.start, self.now);
        let notice = Notice {
            kind: NoticeKind::SpotInterruption,
            instance_ids: vec![node.name.clone()],
            event_id: None,
            time: Some(now),
            state: None,
            detail: None,
        };
        let Response::Disrupt { mark_unavailable } = ballast_cloud::interruption::response(&notice)
        else {
            return;
        };
        if mark_unavailable {
            let key = OfferingKey::new(&node.instance_type, zone, kind);
            let ttl = jiff::SignedDuration::from_millis(UNAVAILABLE_MS);
            state.unavailable.mark(&[key], now, ttl);
        }
        state.interrupted.insert(n);
        state.report.interruptions += 1;
        state.report.log.push(InterruptionEntry {
            t_seconds: secs(self.now),
            node: node.name.clone(),
            instance_type: node.instance_type.clone(),
            zone: zone.to_string(),
            pods: node.pods.len(),
        });
        let reclaim = self.now + millis(state.settings.notice_seconds);
        self.cordon(&[n], true);
        self.changed_since_disruption = true;
        self.wake(self.now, Event::Drain(n));
        self.wake(reclaim, Event::Reclaim(n));
    }

    /// The provider reclaims interrupted node `n`: whatever is left on it is killed. A
    /// disruption waiting for it as its replacement is given up.
    pub(crate) fn reclaim(&mut self, n: NodeId) {
        if self.nodes[n].terminated.is_some() {
            return;
        }
        self.terminate(n);
        if let Some(d) = &self.disrupting {
            if d.replacement == Some(n) && !d.draining {
                let nodes = d.nodes.clone();
                self.cordon(&nodes, false);
                self.disrupting = None;
            } else if d.nodes.iter().all(|&x| self.nodes[x].terminated.is_some()) {
                self.disrupting = None;
            }
        }
    }

    /// Pod `p` was just evicted or killed: when its node was interrupted, it is displaced (and
    /// a batch pod is created again).
    pub(super) fn note_displaced(&mut self, p: PodId) {
        let (Some(state), Some(n)) = (self.spot.as_mut(), self.pods[p].node) else {
            return;
        };
        if !state.interrupted.contains(&n) {
            return;
        }
        let owner = self.pods[p].owner;
        state.report.pods_displaced += 1;
        state.waiting.entry(owner).or_default().push_back(self.now);
        if let Owner::Batch(b) = owner {
            state.reruns += 1;
            let again = state.reruns;
            let batch = &self.sc.batch_pods[b];
            let mut spec = SchedPod::new(
                "batch",
                &format!("{}-again-{again}", batch.name),
                batch.requests.clone(),
            );
            spec.tolerations = batch.tolerations.clone();
            spec.node_selector = batch.node_selector.clone();
            self.add_pod(spec, owner);
        }
    }

    /// Pod `p` is Ready: the oldest displaced pod of its owner is running again.
    pub(super) fn note_running_again(&mut self, p: PodId) {
        let owner = self.pods[p].owner;
        let now = self.now;
        if let Some(state) = self.spot.as_mut()
            && let Some(since) = state.waiting.get_mut(&owner).and_then(VecDeque::pop_front)
        {
            state.report.displaced_pod_seconds += secs(now - since);
        }
    }

    /// Workload `w` was rescaled: displaced pods beyond what it now misses need no replacement.
    pub(super) fn note_rescaled(&mut self, w: usize) {
        let missing = (self.workloads[w].desired - self.ready_pods(w) as i32).max(0) as usize;
        let now = self.now;
        let Some(state) = self.spot.as_mut() else {
            return;
        };
        let Some(queue) = state.waiting.get_mut(&Owner::Workload(w)) else {
            return;
        };
        while queue.len() > missing {
            if let Some(since) = queue.pop_front() {
                state.report.displaced_pod_seconds += secs(now - since);
            }
        }
    }

    /// The end of the run: displaced pods still waiting count until now.
    pub(super) fn settle_displaced(&mut self) {
        let now = self.now;
        if let Some(state) = self.spot.as_mut() {
            for since in state.waiting.values_mut().flat_map(|q| q.drain(..)) {
                state.report.displaced_pod_seconds += secs(now - since);
            }
        }
    }

    /// Marks the offerings interrupted in the last 3 minutes unavailable in the node
    /// controllers' view, before a decision; true when it changed something (`unmask` after).
    pub(crate) fn mask_unavailable(&mut self) -> bool {
        let Some(state) = self.spot.as_ref() else {
            return false;
        };
        let now = timestamp(self.sc.start, self.now);
        if state.unavailable.current(now).is_empty() {
            return false;
        }
        state
            .unavailable
            .apply(&mut self.observed.snap.instance_types, now);
        true
    }

    /// Gives the node controllers' view the catalog's offerings back.
    pub(crate) fn unmask(&mut self) {
        self.observed
            .snap
            .instance_types
            .clone_from_slice(&self.types);
    }
}

/// A node's capacity type and zone, from its labels.
fn placement(node: &SimNode) -> (&str, &str) {
    let label = |k: &str| node.labels.get(k).map_or("", String::as_str);
    (
        label(ballast_api::nodes::labels::CAPACITY_TYPE),
        label(ballast_api::nodes::labels::ZONE),
    )
}
