//! The discrete-event loop. The environment (Deployment controller, kube-scheduler, kubelet
//! start-up, node boot, load) is modelled here; every autoscaling decision is taken by the real
//! Ballast cores through `crate::cores`.

use crate::cores::{self, AutoscalerState, DisruptionPlan, Observed};
use crate::report::Recorder;
use crate::scenario::{Scenario, Scoring, WorkloadKind};
use crate::state::*;
use crate::trace::load_at;
use ballast_scheduling::check::node_fits_pod;
use ballast_scheduling::model::{InstanceType, Pod as SchedPod, Resources, tolerated};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Event {
    Sample,
    HpaSync(usize),
    Schedule,
    Provision,
    Disrupt,
    Drain(NodeId),
    NodeReady(NodeId),
    PodReady(PodId),
    PodFinish(PodId),
    BatchArrive(usize),
}

/// A disruption being carried out: its nodes are cordoned; once the replacement (if any) is
/// ready they are drained, then terminated.
#[derive(Debug, Clone)]
pub(crate) struct Disrupting {
    pub nodes: Vec<NodeId>,
    pub replacement: Option<NodeId>,
    pub draining: bool,
}

pub struct Sim {
    pub(crate) sc: Scenario,
    pub(crate) types: Vec<InstanceType>,
    pub(crate) type_idx: BTreeMap<String, usize>,
    pub(crate) now: Millis,
    pub(crate) end: Millis,
    queue: BinaryHeap<Reverse<(Millis, u64, Event)>>,
    seq: u64,
    rng: ChaCha8Rng,
    /// Every node ever launched, by id; terminated ones stay (reports cost them).
    pub(crate) nodes: Vec<SimNode>,
    /// The ids of the nodes not terminated, ascending: loops over the cluster as it is now go
    /// through these, so they cost what the live cluster holds rather than the whole run's history.
    pub(crate) live_nodes: Vec<NodeId>,
    /// Live nodes by name.
    pub(crate) node_ids: HashMap<String, NodeId>,
    /// Every pod ever created, by id.
    pub(crate) pods: Vec<SimPod>,
    /// The batch pods not gone, ascending.
    pub(crate) live_batch: BTreeSet<PodId>,
    pub(crate) workloads: Vec<WorkloadState>,
    pub(crate) autoscalers: Vec<AutoscalerState>,
    pub(crate) pending: BTreeSet<PodId>,
    schedule_queued: bool,
    batch_first: Option<Millis>,
    batch_last_new: Option<Millis>,
    provision_queued: Option<Millis>,
    pub(crate) claims_made: u64,
    pub(crate) disrupting: Option<Disrupting>,
    disrupt_dirty: bool,
    disrupt_wake: Millis,
    pub(crate) rec: Recorder,
    /// What the node controllers observe, kept up to date from this loop's events once the start
    /// state is built (`observing`).
    pub(crate) observed: Observed,
    observing: bool,
    /// consolidateAfter and expireAfter of each pool, in seconds.
    pub(crate) pool_timers: BTreeMap<String, (Option<f64>, Option<f64>)>,
    start_day_seconds: f64,
    start_weekday: u8,
    /// Binding the pods of the start state: they are Ready at once.
    warm_start: bool,
}

/// One DoNotSchedule spread constraint of a pod being scheduled, with its domains' counts.
struct Spread<'a> {
    key: &'a str,
    max_skew: i64,
    counts: BTreeMap<&'a str, i64>,
    min: i64,
}

/// What a run returns.
pub struct Outcome {
    pub recorder: Recorder,
}

impl Sim {
    pub fn new(sc: Scenario) -> Result<Sim, String> {
        let types = sc
            .catalog
            .instance_types()
            .map_err(|e| format!("catalog: {e}"))?;
        let type_idx = type_index(&types);
        let end = millis(sc.duration_seconds);
        let zoned = sc.start.to_zoned(jiff::tz::TimeZone::UTC);
        let start_day_seconds =
            zoned.hour() as f64 * 3600.0 + zoned.minute() as f64 * 60.0 + zoned.second() as f64;
        let start_weekday = zoned.weekday().to_monday_zero_offset() as u8;
        let autoscalers = cores::autoscalers(&sc)?;
        let rec = Recorder::new(&sc);
        let pool_timers = cores::pool_timers(&sc);
        let mut sim = Sim {
            rng: ChaCha8Rng::seed_from_u64(sc.seed),
            workloads: sc
                .workloads
                .iter()
                .map(|w| WorkloadState {
                    desired: w.replicas,
                    pods: vec![],
                    times: vec![],
                    ready: 0,
                    pods_version: 0,
                    next_pod: 0,
                    backlog: 0.0,
                    backlog_at: 0,
                    unserved: 0.0,
                    under_ms: 0,
                    rescales: 0,
                })
                .collect(),
            sc,
            types,
            type_idx,
            now: 0,
            end,
            queue: BinaryHeap::new(),
            seq: 0,
            nodes: vec![],
            live_nodes: vec![],
            node_ids: HashMap::new(),
            pods: vec![],
            live_batch: BTreeSet::new(),
            autoscalers,
            pending: BTreeSet::new(),
            schedule_queued: false,
            batch_first: None,
            batch_last_new: None,
            provision_queued: None,
            claims_made: 0,
            disrupting: None,
            disrupt_dirty: true,
            disrupt_wake: 0,
            rec,
            observed: Observed::default(),
            observing: false,
            pool_timers,
            start_day_seconds,
            start_weekday,
            warm_start: false,
        };
        sim.start()?;
        Ok(sim)
    }

    fn push(&mut self, at: Millis, ev: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, ev)));
    }

    fn start(&mut self) -> Result<(), String> {
        for group in self.sc.start_nodes.clone() {
            for _ in 0..group.count {
                let id = self.add_node(
                    &group.instance_type,
                    &group.zone,
                    &group.capacity_type,
                    group.node_pool.clone(),
                    &group.labels,
                    &group.taints,
                    None,
                )?;
                self.nodes[id].ready_at = Some(0);
            }
        }
        for w in 0..self.workloads.len() {
            self.reconcile_workload(w);
        }
        // The start state is a running cluster: what fits now is bound and ready at once.
        self.warm_start = true;
        self.schedule_pass();
        self.warm_start = false;
        self.observed = Observed::build(self);
        self.observing = true;
        let arrivals: Vec<Millis> = self
            .sc
            .batch_pods
            .iter()
            .map(|b| millis(b.arrive))
            .collect();
        for (i, at) in arrivals.into_iter().enumerate() {
            self.push(at, Event::BatchArrive(i));
        }
        for i in 0..self.autoscalers.len() {
            let period = self.autoscalers[i].sync_period;
            self.push(period, Event::HpaSync(i));
        }
        self.push(0, Event::Sample);
        self.push(
            millis(self.sc.settings.disruption_interval_seconds),
            Event::Disrupt,
        );
        if !self.pending.is_empty() {
            self.queue_schedule();
        }
        Ok(())
    }

    /// Runs to the end; `progress` is called with the fraction done now and then.
    pub fn run(mut self, progress: &mut dyn FnMut(f64)) -> Outcome {
        let mut last_report = 0;
        // CPU time is read when the phase changes, not around every event: most events are
        // autoscaler syncs in a row, and reading a thread's CPU clock is a system call that
        // cost about a sixth of a sync.
        let mut phase = ("other", thread_cpu_seconds());
        while let Some(Reverse((at, _, ev))) = self.queue.pop() {
            if at > self.end {
                break;
            }
            self.now = at;
            let p = phase_of(&ev);
            if p != phase.0 {
                let t = thread_cpu_seconds();
                *self.rec.phase_seconds.entry(phase.0).or_insert(0.0) += t - phase.1;
                phase = (p, t);
            }
            *self.rec.phase_counts.entry(p).or_insert(0) += 1;
            self.handle_event(ev);
            if self.now - last_report >= 3_600_000 {
                last_report = self.now;
                progress(self.now as f64 / self.end as f64);
            }
        }
        *self.rec.phase_seconds.entry(phase.0).or_insert(0.0) += thread_cpu_seconds() - phase.1;
        self.now = self.end;
        self.finish();
        progress(1.0);
        Outcome { recorder: self.rec }
    }

    fn handle_event(&mut self, ev: Event) {
        match ev {
            Event::Sample => {
                self.sample();
                let next = self.now + millis(self.sc.settings.sample_seconds);
                self.push(next, Event::Sample);
            }
            Event::HpaSync(i) => {
                self.hpa_sync(i);
                let next = self.now + self.autoscalers[i].sync_period;
                self.push(next, Event::HpaSync(i));
            }
            Event::Schedule => {
                self.schedule_queued = false;
                self.schedule_pass();
            }
            Event::Provision => self.provision(),
            Event::Disrupt => {
                self.disrupt();
                let next = self.now + millis(self.sc.settings.disruption_interval_seconds);
                self.push(next, Event::Disrupt);
            }
            Event::Drain(n) => self.drain(n),
            Event::NodeReady(n) => {
                if self.nodes[n].terminated.is_none() {
                    self.nodes[n].ready_at = Some(self.now);
                    if self.observing {
                        Observed::ready(self, n);
                    }
                    self.disrupt_dirty = true;
                    self.queue_schedule();
                    if let Some(d) = &self.disrupting {
                        if d.replacement == Some(n) && !d.draining {
                            self.start_drain();
                        }
                    }
                }
            }
            Event::PodReady(p) => {
                if self.pods[p].gone.is_none() && self.pods[p].node.is_some() {
                    if let Owner::Workload(w) = self.pods[p].owner {
                        self.advance_backlog(w);
                    }
                    self.mark_ready(p);
                }
            }
            Event::PodFinish(p) => {
                if self.pods[p].gone.is_none() {
                    self.remove_pod(p, false);
                    self.rec.batch_finished += 1;
                }
            }
            Event::BatchArrive(i) => {
                let b = self.sc.batch_pods[i].clone();
                let mut spec = SchedPod::new("batch", &b.name, b.requests.clone());
                spec.tolerations = b.tolerations.clone();
                spec.node_selector = b.node_selector.clone();
                self.add_pod(spec, Owner::Batch(i));
            }
        }
    }

    // ---- workloads -------------------------------------------------------------------

    pub(crate) fn load(&self, w: usize, at: Millis) -> f64 {
        let wl = &self.sc.workloads[w];
        load_at(
            &wl.load,
            self.sc.traces.get(&wl.name),
            secs(at),
            self.start_day_seconds,
            self.start_weekday,
        )
        .max(0.0)
    }

    /// Ready pods of workload `w`. A pod's `ready_at` is never later than the event that sets
    /// it, so this is the count of live pods with `ready_at` set, kept by `mark_ready` and
    /// `remove_pod`.
    pub(crate) fn ready_pods(&self, w: usize) -> usize {
        self.workloads[w].ready
    }

    /// Pod `p` (live, bound) is Ready from now.
    fn mark_ready(&mut self, p: PodId) {
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

    pub(crate) fn set_desired(&mut self, w: usize, desired: i32) {
        if self.workloads[w].desired != desired {
            self.advance_backlog(w);
            self.workloads[w].desired = desired;
            self.workloads[w].rescales += 1;
            self.rec.scale_events += 1;
            self.reconcile_workload(w);
        }
    }

    /// The Deployment controller: create or delete pods to match `desired`.
    fn reconcile_workload(&mut self, w: usize) {
        let live: Vec<PodId> = self.workloads[w].live_pods(&self.pods).collect();
        let desired = self.workloads[w].desired.max(0) as usize;
        if live.len() < desired {
            for _ in live.len()..desired {
                let wl = &self.sc.workloads[w];
                let n = self.workloads[w].next_pod;
                self.workloads[w].next_pod += 1;
                let mut spec = SchedPod::new(
                    &wl.namespace,
                    &format!("{}-{n}", wl.name),
                    wl.pod.requests.clone(),
                );
                spec.labels = wl.pod.labels.clone();
                spec.labels
                    .entry("app".into())
                    .or_insert_with(|| wl.name.clone());
                spec.node_selector = wl.pod.node_selector.clone();
                spec.tolerations = wl.pod.tolerations.clone();
                spec.topology_spread_constraints = wl.pod.topology_spread_constraints.clone();
                spec.priority = wl.pod.priority;
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

    fn add_pod(&mut self, spec: SchedPod, owner: Owner) -> PodId {
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

    pub(crate) fn remove_pod(&mut self, p: PodId, evicted: bool) {
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
            let req = self.pods[p].requests.clone();
            let node = &mut self.nodes[n];
            for (k, v) in req.iter() {
                let cur = node.used.get(k);
                node.used.set(k, cur - v);
            }
            let k = node.pods.iter().position(|&x| x == p);
            node.pods.retain(|&x| x != p);
            node.last_pod_event = self.now;
            if let (true, Some(k)) = (self.observing, k) {
                Observed::left(self, n, k);
            }
            self.disrupt_dirty = true;
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
    }

    // ---- kube-scheduler model -----------------------------------------------------------

    fn queue_schedule(&mut self) {
        if !self.schedule_queued {
            self.schedule_queued = true;
            self.push(self.now, Event::Schedule);
        }
    }

    /// Binds pending pods to schedulable nodes, as kube-scheduler would: filter (resources,
    /// node selector and affinity, taints) then score by the configured strategy. Pods left
    /// over are marked unschedulable for the provisioner.
    fn schedule_pass(&mut self) {
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

    fn has_hard_spread(&self, p: PodId) -> bool {
        use ballast_scheduling::model::WhenUnsatisfiable;
        self.pods[p]
            .spec
            .topology_spread_constraints
            .iter()
            .any(|c| c.when_unsatisfiable == WhenUnsatisfiable::DoNotSchedule)
    }

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

    fn bind(&mut self, p: PodId, n: NodeId) {
        let req = self.pods[p].requests.clone();
        let node = &mut self.nodes[n];
        for (k, v) in req.iter() {
            let cur = node.used.get(k);
            node.used.set(k, cur + v);
        }
        node.pods.push(p);
        node.last_pod_event = self.now;
        self.disrupt_dirty = true;
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
        if self.observing {
            Observed::bound(self, p, n);
        }
        let startup = match owner {
            Owner::Workload(w) => self.sc.workloads[w].pod.startup_seconds,
            Owner::Batch(_) => 0.0,
        };
        if self.warm_start {
            self.mark_ready(p);
            return;
        }
        let ready = self.now + millis(self.jitter(startup));
        self.push(ready, Event::PodReady(p));
        if let Owner::Batch(b) = self.pods[p].owner {
            let run = self.sc.batch_pods[b].run_seconds;
            self.push(ready + millis(run), Event::PodFinish(p));
        }
    }

    fn jitter(&mut self, base: f64) -> f64 {
        let j = self.sc.settings.startup_jitter;
        if j <= 0.0 || base <= 0.0 {
            return base;
        }
        let f: f64 = self.rng.random_range(-j..=j);
        (base * (1.0 + f)).max(0.0)
    }

    // ---- nodes ------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_node(
        &mut self,
        instance_type: &str,
        zone: &str,
        capacity_type: &str,
        node_pool: Option<String>,
        extra_labels: &BTreeMap<String, String>,
        taints: &[ballast_scheduling::model::Taint],
        claim: Option<ballast_api::NodeClaim>,
    ) -> Result<NodeId, String> {
        let ti = *self
            .type_idx
            .get(instance_type)
            .ok_or_else(|| format!("instance type {instance_type:?} is not in the catalog"))?;
        let t = &self.types[ti];
        let offering = t
            .offerings
            .iter()
            .find(|o| o.zone == zone && o.capacity_type == capacity_type)
            .ok_or_else(|| format!("{instance_type} has no {capacity_type} offering in {zone}"))?;
        let id = self.nodes.len();
        let name = format!("node-{id:05}");
        let mut labels = ballast_nodes::adapt::api_labels(&t.labels);
        labels.insert(
            ballast_api::nodes::labels::INSTANCE_TYPE.into(),
            t.name.clone(),
        );
        labels.insert(ballast_api::nodes::labels::ZONE.into(), zone.into());
        labels.insert(
            ballast_api::nodes::labels::CAPACITY_TYPE.into(),
            capacity_type.into(),
        );
        labels.insert(ballast_api::nodes::labels::HOSTNAME.into(), name.clone());
        if let Some(pool) = &node_pool {
            labels.insert(ballast_api::nodes::labels::NODEPOOL.into(), pool.clone());
        }
        labels.extend(extra_labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        let pool_timers = match node_pool.as_ref().and_then(|p| self.pool_timers.get(p)) {
            Some(&(after, expire)) => (after.map(millis), expire.map(millis)),
            None => (None, None),
        };
        let node = SimNode {
            name,
            instance_type: t.name.clone(),
            node_pool,
            price: offering.price,
            labels,
            taints: taints.to_vec(),
            allocatable: t.allocatable(),
            used: Resources::default(),
            pods: vec![],
            created: self.now,
            ready_at: None,
            cordoned: false,
            terminated: None,
            last_pod_event: self.now,
            claim,
            pool_timers,
        };
        self.node_ids.insert(node.name.clone(), id);
        self.nodes.push(node);
        self.live_nodes.push(id); // ids only grow: the list stays ascending
        self.rec.nodes_launched += 1;
        self.disrupt_dirty = true;
        if self.observing {
            Observed::launched(self, id);
        }
        Ok(id)
    }

    /// Launches a node: it becomes Ready after the instance type's start-up time.
    pub(crate) fn launch(&mut self, plan: cores::Launch) -> Result<NodeId, String> {
        let id = self.add_node(
            &plan.instance_type,
            &plan.zone,
            &plan.capacity_type,
            Some(plan.node_pool),
            &plan.labels,
            &plan.taints,
            Some(plan.claim),
        )?;
        self.claims_made += 1;
        let base = self
            .sc
            .settings
            .node_startup_by_type
            .get(&self.nodes[id].instance_type)
            .copied()
            .unwrap_or(self.sc.settings.node_startup_seconds);
        let at = self.now + millis(self.jitter(base));
        self.push(at, Event::NodeReady(id));
        Ok(id)
    }

    fn terminate(&mut self, n: NodeId) {
        if self.nodes[n].terminated.is_some() {
            return;
        }
        let pods = self.nodes[n].pods.clone();
        for p in pods {
            self.remove_pod(p, true);
        }
        self.nodes[n].terminated = Some(self.now);
        if let Ok(i) = self.live_nodes.binary_search(&n) {
            self.live_nodes.remove(i);
        }
        self.node_ids.remove(&self.nodes[n].name);
        if self.observing {
            Observed::gone(self, n);
        }
        self.rec.nodes_terminated += 1;
        self.disrupt_dirty = true;
        for w in 0..self.workloads.len() {
            self.reconcile_workload(w);
        }
    }

    // ---- provisioner ------------------------------------------------------------------

    fn queue_provision(&mut self) {
        let (Some(first), Some(last)) = (self.batch_first, self.batch_last_new) else {
            return;
        };
        let s = &self.sc.settings;
        let at = (last + millis(s.batch_idle_seconds)).min(first + millis(s.batch_max_seconds));
        if self.provision_queued.is_none_or(|q| q > at) {
            self.provision_queued = Some(at);
            self.push(at, Event::Provision);
        }
    }

    fn provision(&mut self) {
        if self.provision_queued != Some(self.now) {
            return; // superseded by an earlier or later wake-up
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
        if unschedulable.is_empty() {
            return;
        }
        let plans = cores::provision(self, &unschedulable);
        for plan in plans {
            if let Err(e) = self.launch(plan) {
                self.rec
                    .errors
                    .push(format!("t={}s: launch: {e}", secs(self.now)));
            }
        }
        // Pods the provisioner left alone are looked at again on the next scheduling failure.
        for p in unschedulable {
            self.pods[p].unschedulable_since = None;
        }
    }

    // ---- disruption -------------------------------------------------------------------

    fn disrupt(&mut self) {
        if self.disrupting.is_some() {
            return;
        }
        // A pass is worth it when the cluster changed and some node's timer has run out, or when
        // the wake-up the last empty pass asked for has come.
        let prompted = self.disrupt_dirty && cores::disruption_due(self);
        if !prompted && self.now < self.disrupt_wake {
            return;
        }
        self.disrupt_dirty = false;
        *self.rec.phase_counts.entry("disrupt pass").or_insert(0) += 1;
        match cores::disrupt(self) {
            (Some(plan), _) => self.begin_disruption(plan),
            (None, wake) => self.disrupt_wake = wake,
        }
    }

    fn begin_disruption(&mut self, plan: DisruptionPlan) {
        for &n in &plan.nodes {
            self.nodes[n].cordoned = true;
            Observed::cordoned(self, n);
        }
        self.rec.disruptions.push((
            secs(self.now),
            plan.method.clone(),
            plan.nodes.len(),
            plan.savings_per_hour,
        ));
        let replacement = match plan.replacement {
            Some(r) => match self.launch(r) {
                Ok(id) => Some(id),
                Err(e) => {
                    self.rec
                        .errors
                        .push(format!("t={}s: replacement: {e}", secs(self.now)));
                    for &n in &plan.nodes {
                        self.nodes[n].cordoned = false;
                        Observed::cordoned(self, n);
                    }
                    return;
                }
            },
            None => None,
        };
        self.disrupting = Some(Disrupting {
            nodes: plan.nodes,
            replacement,
            draining: false,
        });
        if replacement.is_none() {
            self.start_drain();
        }
    }

    fn start_drain(&mut self) {
        let Some(d) = self.disrupting.as_mut() else {
            return;
        };
        d.draining = true;
        let nodes = d.nodes.clone();
        for n in nodes {
            self.push(self.now, Event::Drain(n));
        }
    }

    /// Evicts what PDBs allow, retries the rest every 5 s, terminates the node once empty.
    fn drain(&mut self, n: NodeId) {
        if self.nodes[n].terminated.is_some() {
            return;
        }
        let pods = self.nodes[n].pods.clone();
        let mut blocked = false;
        for p in pods {
            let allowed = match self.pods[p].owner {
                Owner::Workload(w) => match self.sc.workloads[w].max_unavailable {
                    Some(max) => {
                        let desired = self.workloads[w].desired;
                        let ready = self.ready_pods(w) as i32;
                        desired - ready < max
                    }
                    None => true,
                },
                Owner::Batch(_) => true,
            };
            if allowed {
                self.remove_pod(p, true);
                self.rec.evictions += 1;
                if let Owner::Workload(w) = self.pods[p].owner {
                    self.reconcile_workload(w);
                }
            } else {
                blocked = true;
            }
        }
        if blocked || !self.nodes[n].pods.is_empty() {
            self.push(self.now + 5_000, Event::Drain(n));
            return;
        }
        self.terminate(n);
        if let Some(d) = &self.disrupting {
            if d.nodes.iter().all(|&x| self.nodes[x].terminated.is_some()) {
                self.disrupting = None;
            }
        }
    }

    // ---- autoscalers --------------------------------------------------------------------

    fn hpa_sync(&mut self, i: usize) {
        let w = self.autoscalers[i].workload;
        self.advance_backlog(w);
        if let Some(desired) = cores::horizontal(self, i) {
            self.set_desired(w, desired);
        }
    }

    // ---- reports ------------------------------------------------------------------------

    fn sample(&mut self) {
        for w in 0..self.workloads.len() {
            self.advance_backlog(w);
        }
        self.check_invariants();
        crate::report::sample(self);
    }

    /// Conservation: every pod is pending, bound or gone, exactly once; a node's bookkeeping
    /// equals its pods' requests and never exceeds what it can hold; gone nodes hold nothing;
    /// the indexes of live nodes, live batch pods and Ready counts agree with the records.
    ///
    /// Debug builds look at every pod and node the run ever made. Release builds look at the
    /// live ones (the workloads' pod lists, the live batch pods, the pending set, the live
    /// nodes), so that a sample costs what the cluster holds now and not the whole run so far.
    fn check_invariants(&mut self) {
        let mut errors = Vec::new();
        let everything = cfg!(debug_assertions);
        let pods: Vec<PodId> = if everything {
            (0..self.pods.len()).collect()
        } else {
            // The lists are disjoint (a pod has one owner); pending pods missing from them are
            // caught by the loop over the pending set below.
            let lists = self.workloads.iter().flat_map(|w| w.pods.iter().copied());
            lists.chain(self.live_batch.iter().copied()).collect()
        };
        // The pending set holds no bound or gone pod (here), and every unbound live pod (below).
        for &p in &self.pending {
            let pod = &self.pods[p];
            if pod.node.is_some() || pod.gone.is_some() {
                errors.push(format!(
                    "pod {} is in the pending set but bound or gone",
                    pod.spec.name
                ));
            }
        }
        for p in pods {
            let pod = &self.pods[p];
            let pending = pod.node.is_none() && pod.gone.is_none();
            if pending && !self.pending.contains(&p) {
                errors.push(format!(
                    "pod {} is pending but not in the pending set",
                    pod.spec.name
                ));
            }
            if let (Some(n), None) = (pod.node, pod.gone) {
                if !self.nodes[n].pods.contains(&p) {
                    errors.push(format!(
                        "pod {} bound to {} which does not list it",
                        pod.spec.name, self.nodes[n].name
                    ));
                }
            }
        }
        for (w, state) in self.workloads.iter().enumerate() {
            if state
                .pods
                .iter()
                .any(|&p| self.pods[p].gone.is_some() || self.pods[p].owner != Owner::Workload(w))
            {
                errors.push(format!(
                    "workload {} lists a pod that is gone or not its own",
                    self.sc.workloads[w].name
                ));
            }
            let times = state.pods.iter().map(|&p| PodTimes {
                bound_at: self.pods[p].bound_at,
                ready_at: self.pods[p].ready_at,
            });
            if state.times.len() != state.pods.len() || !times.eq(state.times.iter().copied()) {
                errors.push(format!(
                    "workload {}: the kept pod times differ from the pods",
                    self.sc.workloads[w].name
                ));
            }
            let ready = state
                .live_pods(&self.pods)
                .filter(|&p| self.pods[p].is_ready(self.now))
                .count();
            if ready != state.ready {
                errors.push(format!(
                    "workload {}: {ready} pods Ready but counted {}",
                    self.sc.workloads[w].name, state.ready
                ));
            }
        }
        if self.live_batch.iter().any(|&p| self.pods[p].gone.is_some()) {
            errors.push("a gone batch pod is listed as live".to_string());
        }
        if everything {
            // Lists hold only live pods of their owner (above) and list a pod once (it is pushed
            // when made), so equal lengths mean every live pod is listed.
            let mut per_workload = vec![0; self.workloads.len()];
            let mut batch = 0;
            for pod in self.pods.iter().filter(|p| p.gone.is_none()) {
                match pod.owner {
                    Owner::Workload(w) => per_workload[w] += 1,
                    Owner::Batch(_) => batch += 1,
                }
            }
            if per_workload
                .iter()
                .zip(&self.workloads)
                .any(|(&n, w)| n != w.pods.len())
                || batch != self.live_batch.len()
            {
                errors.push("the lists of live pods differ from the pods".to_string());
            }
            let live: Vec<NodeId> = (0..self.nodes.len())
                .filter(|&n| self.nodes[n].is_live())
                .collect();
            let named = live.len() == self.node_ids.len()
                && live
                    .iter()
                    .all(|&n| self.node_ids.get(&self.nodes[n].name) == Some(&n));
            if live != self.live_nodes || !named {
                errors.push("the index of live nodes differs from the nodes".to_string());
            }
        }
        let nodes: Vec<NodeId> = if everything {
            (0..self.nodes.len()).collect()
        } else {
            self.live_nodes.clone()
        };
        for node in nodes.into_iter().map(|n| &self.nodes[n]) {
            let mut sum = Resources::default();
            for &p in &node.pods {
                let pod = &self.pods[p];
                if pod.gone.is_some() || pod.node.is_none() {
                    errors.push(format!(
                        "{} lists pod {} which is not bound there",
                        node.name, pod.spec.name
                    ));
                }
                let r = &pod.requests;
                sum.cpu_millis += r.cpu_millis;
                sum.memory_bytes += r.memory_bytes;
                sum.pods += r.pods;
                sum.ephemeral_storage_bytes += r.ephemeral_storage_bytes;
                for (k, v) in &r.extended {
                    *sum.extended.entry(k.clone()).or_insert(0) += v;
                }
            }
            let same = sum
                .iter()
                .chain(node.used.iter())
                .all(|(k, _)| sum.get(k) == node.used.get(k));
            if !same {
                errors.push(format!(
                    "{}: used {:?} is not the sum of its pods {:?}",
                    node.name, node.used, sum
                ));
            }
            if node.used.iter().any(|(k, v)| v > node.allocatable.get(k)) {
                errors.push(format!(
                    "{} is overcommitted: {:?} > {:?}",
                    node.name, node.used, node.allocatable
                ));
            }
            if node.terminated.is_some() && !node.pods.is_empty() {
                errors.push(format!("{} is terminated but holds pods", node.name));
            }
        }
        for e in errors.into_iter().take(10) {
            self.rec
                .errors
                .push(format!("t={}s: invariant: {e}", secs(self.now)));
        }
    }

    fn finish(&mut self) {
        for w in 0..self.workloads.len() {
            self.advance_backlog(w);
        }
        let now = self.now;
        for p in 0..self.pods.len() {
            if self.pods[p].gone.is_none() {
                self.rec.pod_done(&self.pods[p], now);
            }
        }
        crate::report::finish(self);
    }
}

/// The phase an event's CPU time is counted in.
fn phase_of(ev: &Event) -> &'static str {
    match ev {
        Event::Sample => "sample",
        Event::HpaSync(_) => "horizontal",
        Event::Schedule => "schedule",
        Event::Provision => "provision",
        Event::Disrupt => "disrupt",
        _ => "other",
    }
}

/// CPU seconds this thread has used: per-phase figures that other processes on the machine
/// do not inflate (wall-clock time would count their turns on the CPU too).
#[allow(unsafe_code)] // the workspace's one audited unsafe call
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass, which lives on this stack frame.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}
