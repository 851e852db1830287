//! The kube-scheduler model, and the provisioner's batch window that pods it cannot place open.

use super::World;
use crate::event::Event;
use crate::scenario::Scoring;
use crate::state::*;
use ballast_scheduling::check::node_fits_pod;
use ballast_scheduling::model::tolerated;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

/// One DoNotSchedule spread constraint of a pod being scheduled, with its domains' counts.
struct Spread<'a> {
    key: &'a str,
    max_skew: i64,
    counts: BTreeMap<&'a str, i64>,
    min: i64,
}

impl World {
    /// Asks for a scheduling pass now, unless one is queued.
    pub(super) fn queue_schedule(&mut self) {
        if !self.schedule_queued {
            self.schedule_queued = true;
            self.wake(self.now, Event::Schedule);
        }
    }

    /// Asks for a scheduling pass when a pod is pending.
    pub(crate) fn schedule_if_pending(&mut self) {
        if !self.pending.is_empty() {
            self.queue_schedule();
        }
    }

    /// The queued scheduling pass is due.
    pub(crate) fn scheduling_due(&mut self) {
        self.schedule_queued = false;
        self.schedule_pass();
    }

    /// Binds pending pods to schedulable nodes, as kube-scheduler would: filter (resources,
    /// node selector and affinity, taints) then score by the configured strategy. Pods left
    /// over are marked unschedulable for the provisioner.
    pub(super) fn schedule_pass(&mut self) {
        let mut order: Vec<PodId> = self.pending.iter().copied().collect();
        order.sort_by_key(|&p| (Reverse(self.pods[p].spec.priority), self.pods[p].created, p));
        let scoring = self.sc.settings.scheduler_scoring;
        let mut newly_unschedulable = false;
        // Workloads one of whose pods found no node in this pass. A pass only binds, and binding
        // only takes room, so a later pod of the same workload (the same spec but for its name)
        // finds none either — unless it has a DoNotSchedule spread constraint, whose skew a bind
        // elsewhere can relax.
        let mut failed: BTreeSet<usize> = BTreeSet::new();
        for p in order {
            let memo = match self.pods[p].owner {
                Owner::Workload(w) if !self.has_hard_spread(p) => Some(w),
                _ => None,
            };
            let best = match memo {
                Some(w) if failed.contains(&w) => None,
                _ => self.best_node(p, scoring),
            };
            if let (None, Some(w)) = (best, memo) {
                failed.insert(w);
            }
            match best {
                Some(n) => self.bind(p, n),
                None => {
                    if self.pods[p].unschedulable_since.is_none() {
                        self.pods[p].unschedulable_since = Some(self.now);
                        newly_unschedulable = true;
                    }
                }
            }
        }
        if newly_unschedulable {
            self.batch_last_new = Some(self.now);
            self.batch_first.get_or_insert(self.now);
            self.queue_provision();
        }
    }

    /// Whether pod `p` has a DoNotSchedule topology spread constraint.
    fn has_hard_spread(&self, p: PodId) -> bool {
        use ballast_scheduling::model::WhenUnsatisfiable;
        self.pods[p]
            .spec
            .topology_spread_constraints
            .iter()
            .any(|c| c.when_unsatisfiable == WhenUnsatisfiable::DoNotSchedule)
    }

    /// The node pod `p` goes to: the best scored of those that pass the filters.
    fn best_node(&self, p: PodId, scoring: Scoring) -> Option<NodeId> {
        let pod = &self.pods[p];
        let mut best: Option<(f64, NodeId)> = None;
        // Counted at the first node that passes the other filters, as most pods have none.
        let mut spread: Option<Vec<Spread<'_>>> = None;
        for &n in &self.live_nodes {
            let node = &self.nodes[n];
            if !node.schedulable() || !node.fits(&pod.requests) {
                continue;
            }
            if !node
                .hard_taints()
                .all(|t| tolerated(&pod.spec.tolerations, t))
                || !node_fits_pod(&pod.spec, &node.labels)
            {
                continue;
            }
            if !self.spread_ok(spread.get_or_insert_with(|| self.spread_counts(p)), n) {
                continue;
            }
            let share = |alloc: i64, used: i64, wanted: i64| {
                if alloc <= 0 {
                    1.0
                } else {
                    (used + wanted) as f64 / alloc as f64
                }
            };
            let (a, u, r) = (&node.allocatable, &node.used, &pod.requests);
            let used = (share(a.cpu_millis, u.cpu_millis, r.cpu_millis)
                + share(a.memory_bytes, u.memory_bytes, r.memory_bytes))
                / 2.0;
            let score = match scoring {
                Scoring::LeastAllocated => 1.0 - used,
                Scoring::MostAllocated => used,
            };
            if best.is_none_or(|(s, _)| score > s + 1e-12) {
                best = Some((score, n));
            }
        }
        best.map(|(_, n)| n)
    }

    /// The DoNotSchedule topology spread constraints of pod `p`, each with its matching pods
    /// counted per domain among schedulable nodes and the smallest count. The counts are the
    /// same whichever node is tried, so a pod's candidates are checked against one tally.
    fn spread_counts(&self, p: PodId) -> Vec<Spread<'_>> {
        use ballast_scheduling::model::WhenUnsatisfiable;
        let pod = &self.pods[p];
        let mut out = Vec::new();
        for c in &pod.spec.topology_spread_constraints {
            if c.when_unsatisfiable != WhenUnsatisfiable::DoNotSchedule {
                continue;
            }
            let key = c.topology_key.as_str();
            let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
            for node in self
                .live_nodes
                .iter()
                .map(|&x| &self.nodes[x])
                .filter(|x| x.schedulable())
            {
                if let Some(d) = node.labels.get(key) {
                    let matching = node
                        .pods
                        .iter()
                        .filter(|&&q| {
                            let other = &self.pods[q].spec;
                            other.namespace == pod.spec.namespace
                                && c.label_selector.as_ref().is_some_and(|s| {
                                    s.match_labels
                                        .iter()
                                        .all(|(k, v)| other.labels.get(k) == Some(v))
                                })
                        })
                        .count() as i64;
                    *counts.entry(d.as_str()).or_insert(0) += matching;
                }
            }
            let min = counts.values().copied().min().unwrap_or(0);
            out.push(Spread {
                key,
                max_skew: c.max_skew as i64,
                counts,
                min,
            });
        }
        out
    }

    /// DoNotSchedule topology spread over zone or hostname: node `n` must carry each
    /// constraint's key, and one more pod in its domain must keep the skew within bounds.
    fn spread_ok(&self, spread: &[Spread<'_>], n: NodeId) -> bool {
        spread.iter().all(|s| {
            let Some(domain) = self.nodes[n].labels.get(s.key) else {
                return false;
            };
            let here = s.counts.get(domain.as_str()).copied().unwrap_or(0);
            here + 1 - s.min <= s.max_skew
        })
    }

    /// Asks for the provisioner when the batch window closes: `batch_idle_seconds` after the
    /// last new unschedulable pod, at most `batch_max_seconds` after the first.
    fn queue_provision(&mut self) {
        let (Some(first), Some(last)) = (self.batch_first, self.batch_last_new) else {
            return;
        };
        let s = &self.sc.settings;
        let at = (last + millis(s.batch_idle_seconds)).min(first + millis(s.batch_max_seconds));
        if self.provision_queued.is_none_or(|q| q > at) {
            self.provision_queued = Some(at);
            self.wake(at, Event::Provision);
        }
    }

    /// The provisioner's window closed (the wake-up at `now` is the current one): the pods it
    /// is to look at, unschedulable on the last scheduling pass. None when the wake-up was
    /// superseded or no pod waits.
    pub(crate) fn provisioning_due(&mut self) -> Option<Vec<PodId>> {
        if self.provision_queued != Some(self.now) {
            return None; // superseded by an earlier or later wake-up
        }
        self.provision_queued = None;
        self.batch_first = None;
        self.batch_last_new = None;
        let unschedulable: Vec<PodId> = self
            .pending
            .iter()
            .copied()
            .filter(|&p| self.pods[p].unschedulable_since.is_some())
            .collect();
        (!unschedulable.is_empty()).then_some(unschedulable)
    }

    /// The provisioner looked at `pods`: those it left alone are looked at again on their next
    /// scheduling failure.
    pub(crate) fn provisioned(&mut self, pods: &[PodId]) {
        for &p in pods {
            self.pods[p].unschedulable_since = None;
        }
    }
}
