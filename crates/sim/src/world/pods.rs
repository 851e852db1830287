//! Pods and workloads: the Deployment controller, pods created, bound, Ready and gone, and the
//! load each workload is left unserved.

use super::World;
use crate::event::Event;
use crate::scenario::WorkloadKind;
use crate::state::*;
use ballast_scheduling::model::{Pod as SchedPod, Resources};
use std::cmp::Reverse;

impl World {
    /// A bound pod's start-up is over: it is Ready from now (unless gone meanwhile).
    pub(crate) fn pod_started(&mut self, p: PodId) {
        if self.pods[p].gone.is_none() && self.pods[p].node.is_some() {
            if let Owner::Workload(w) = self.pods[p].owner {
                self.advance_backlog(w);
            }
            self.mark_ready(p);
        }
    }

    /// A batch pod ran to completion and leaves.
    pub(crate) fn pod_finished(&mut self, p: PodId) {
        if self.pods[p].gone.is_none() {
            self.remove_pod(p, false);
            self.rec.batch_finished += 1;
        }
    }

    /// Batch pod `i` of the scenario is created.
    pub(crate) fn batch_arrives(&mut self, i: usize) {
        let b = self.sc.batch_pods[i].clone();
        let mut spec = SchedPod::new("batch", &b.name, b.requests.clone());
        spec.tolerations = b.tolerations.clone();
        spec.node_selector = b.node_selector.clone();
        self.add_pod(spec, Owner::Batch(i));
    }

    /// Pod `p` (live, bound) is Ready from now.
    pub(super) fn mark_ready(&mut self, p: PodId) {
        let pod = &mut self.pods[p];
        if let Owner::Workload(w) = pod.owner {
            let state = &mut self.workloads[w];
            if pod.ready_at.is_none() {
                state.ready += 1;
            }
            if let Some(k) = state.slot(p) {
                state.times[k].ready_at = Some(self.now);
            }
            state.pods_version += 1;
        }
        pod.ready_at = Some(self.now);
        if self.spot.is_some() && !self.warm_start {
            self.note_running_again(p);
        }
    }

    /// Brings a queue workload's backlog (and every workload's unserved load) up to now.
    pub(crate) fn advance_backlog(&mut self, w: usize) {
        let from = self.workloads[w].backlog_at;
        if self.now <= from {
            return;
        }
        let dt = secs(self.now - from);
        let mid = from + (self.now - from) / 2;
        let demand = self.load(w, mid);
        let capacity = self.ready_pods(w) as f64 * self.sc.workloads[w].per_pod.capacity;
        let state = &mut self.workloads[w];
        match self.sc.workloads[w].kind {
            WorkloadKind::Queue => {
                state.backlog = (state.backlog + (demand - capacity) * dt).max(0.0);
                if state.backlog > 0.0 {
                    state.under_ms += self.now - from;
                }
            }
            WorkloadKind::Service => {
                if demand > capacity {
                    state.unserved += (demand - capacity) * dt;
                    state.under_ms += self.now - from;
                }
            }
        }
        state.backlog_at = self.now;
    }

    /// Sets the replicas of workload `w` (an autoscaler rescaled it).
    pub(crate) fn set_desired(&mut self, w: usize, desired: i32) {
        if self.workloads[w].desired != desired {
            self.advance_backlog(w);
            self.workloads[w].desired = desired;
            self.workloads[w].rescales += 1;
            self.rec.scale_events += 1;
            self.reconcile_workload(w);
            self.note_rescaled(w);
        }
    }

    /// The Deployment controller: create or delete pods to match `desired`.
    pub(super) fn reconcile_workload(&mut self, w: usize) {
        let live: Vec<PodId> = self.workloads[w].live_pods(&self.pods).collect();
        let desired = self.workloads[w].desired.max(0) as usize;
        if live.len() < desired {
            for _ in live.len()..desired {
                let spec = self.next_pod_spec(w);
                self.add_pod(spec, Owner::Workload(w));
            }
        } else if live.len() > desired {
            // ReplicaSet order: unbound first, then not ready, then the newest.
            let mut victims = live;
            let now = self.now;
            victims.sort_by_key(|&p| {
                let pod = &self.pods[p];
                (
                    pod.node.is_some(),
                    pod.is_ready(now),
                    Reverse(pod.created),
                    Reverse(p),
                )
            });
            let excess = victims.len() - desired;
            for p in victims.into_iter().take(excess) {
                self.remove_pod(p, false);
            }
        }
    }

    /// The spec of workload `w`'s next pod (named after it and a counter).
    fn next_pod_spec(&mut self, w: usize) -> SchedPod {
        let wl = &self.sc.workloads[w];
        let n = self.workloads[w].next_pod;
        self.workloads[w].next_pod += 1;
        let mut spec = SchedPod::new(
            &wl.namespace,
            &format!("{}-{n}", wl.name),
            self.workloads[w].pod_requests.clone(),
        );
        spec.labels = wl.pod.labels.clone();
        spec.labels
            .entry("app".into())
            .or_insert_with(|| wl.name.clone());
        spec.node_selector = wl.pod.node_selector.clone();
        spec.tolerations = wl.pod.tolerations.clone();
        spec.topology_spread_constraints = wl.pod.topology_spread_constraints.clone();
        spec.priority = wl.pod.priority;
        spec
    }

    /// From now on workload `w`'s new pods ask for `requests` (`sized`: a vertical
    /// recommendation's, as its admission sets them). Live pods keep theirs.
    pub(crate) fn set_pod_requests(&mut self, w: usize, requests: Resources, sized: bool) {
        let state = &mut self.workloads[w];
        state.pod_requests = requests;
        state.sized = sized;
    }

    /// The vertical updater evicts pod `p` of workload `w` (through the Eviction API): it is gone
    /// and the Deployment controller makes its replacement, which gets the current requests.
    pub(crate) fn evict_for_update(&mut self, p: PodId, w: usize) {
        if self.pods[p].gone.is_some() || self.pods[p].owner != Owner::Workload(w) {
            return;
        }
        self.remove_pod(p, true);
        self.rec.evictions += 1;
        self.workloads[w].vertical_evictions += 1;
        self.reconcile_workload(w);
    }

    /// Creates a pending pod and asks for a scheduling pass.
    pub(super) fn add_pod(&mut self, spec: SchedPod, owner: Owner) -> PodId {
        let requests = spec.effective_requests();
        let id = self.pods.len();
        self.pods.push(SimPod {
            spec,
            owner,
            requests,
            node: None,
            created: self.now,
            bound_at: None,
            ready_at: None,
            gone: None,
            unschedulable_since: None,
            evicted: false,
        });
        match owner {
            Owner::Workload(w) => {
                if self.workloads[w].sized {
                    self.workloads[w].pods_sized += 1;
                }
                self.workloads[w].pods.push(id);
                self.workloads[w].times.push(PodTimes::default());
                self.workloads[w].pods_version += 1;
            }
            Owner::Batch(_) => {
                self.live_batch.insert(id);
            }
        }
        self.pending.insert(id);
        self.queue_schedule();
        id
    }

    /// Pod `p` is gone from now (`evicted`: by a drain); its node, if any, has the room back.
    pub(super) fn remove_pod(&mut self, p: PodId, evicted: bool) {
        if self.pods[p].gone.is_some() {
            return;
        }
        if let Owner::Workload(w) = self.pods[p].owner {
            self.advance_backlog(w);
        }
        self.rec.pod_done(&self.pods[p], self.now);
        self.pods[p].gone = Some(self.now);
        self.pods[p].evicted = evicted;
        self.pending.remove(&p);
        match self.pods[p].owner {
            Owner::Workload(w) if self.pods[p].ready_at.is_some() => self.workloads[w].ready -= 1,
            Owner::Workload(_) => {}
            Owner::Batch(_) => {
                self.live_batch.remove(&p);
            }
        }
        if let Some(n) = self.pods[p].node {
            self.unbind(p, n);
        }
        if let Owner::Workload(w) = self.pods[p].owner {
            let state = &mut self.workloads[w];
            if let Some(k) = state.slot(p) {
                state.pods.remove(k);
                state.times.remove(k);
            }
            state.pods_version += 1;
        }
        if !self.pending.is_empty() {
            self.queue_schedule();
        }
        if evicted {
            self.note_displaced(p);
        }
    }

    /// Node `n` gives back the room of pod `p`, which left it.
    fn unbind(&mut self, p: PodId, n: NodeId) {
        let req = self.pods[p].requests.clone();
        let node = &mut self.nodes[n];
        for (k, v) in req.iter() {
            let cur = node.used.get(k);
            node.used.set(k, cur - v);
        }
        let k = node.pods.iter().position(|&x| x == p);
        node.pods.retain(|&x| x != p);
        node.last_pod_event = self.now;
        if let Some(k) = k {
            self.observe(|o, r| o.left(r, n, k));
        }
        self.changed_since_disruption = true;
    }

    /// Binds pod `p` to node `n`; it becomes Ready after its start-up time (at once in the start
    /// state), and a batch pod finishes its run after that.
    pub(super) fn bind(&mut self, p: PodId, n: NodeId) {
        let req = self.pods[p].requests.clone();
        let node = &mut self.nodes[n];
        for (k, v) in req.iter() {
            let cur = node.used.get(k);
            node.used.set(k, cur + v);
        }
        node.pods.push(p);
        node.last_pod_event = self.now;
        self.changed_since_disruption = true;
        let pod = &mut self.pods[p];
        pod.node = Some(n);
        pod.bound_at = Some(self.now);
        self.pending.remove(&p);
        let owner = pod.owner;
        if let Owner::Workload(w) = owner {
            let state = &mut self.workloads[w];
            if let Some(k) = state.slot(p) {
                state.times[k].bound_at = Some(self.now);
            }
            state.pods_version += 1;
        }
        self.observe(|o, r| o.bound(r, p, n));
        let startup = match owner {
            Owner::Workload(w) => self.sc.workloads[w].pod.startup_seconds,
            Owner::Batch(_) => 0.0,
        };
        if self.warm_start {
            self.mark_ready(p);
            return;
        }
        let ready = self.now + millis(self.jitter(startup));
        self.wake(ready, Event::PodReady(p));
        if let Owner::Batch(b) = owner {
            let run = self.sc.batch_pods[b].run_seconds;
            self.wake(ready + millis(run), Event::PodFinish(p));
        }
    }
}
