//! The simulated cluster: nodes, pods, workloads and pools at the current virtual time, with the
//! parts of Kubernetes that act on them without a Ballast decision (the Deployment controller,
//! kube-scheduler, kubelet start-up, node boot, draining, the provisioner's batch window) and
//! what the run counts. It never sees the event queue: what should happen later it asks for in
//! `wakeups`; the engine (`crate::engine`) queues it and calls back when it is due.

mod interruption;
mod invariants;
mod nodes;
mod pods;
mod scheduler;

use crate::event::{Event, Wakeups};
use crate::observed::{Observed, Records};
use crate::record::Recorder;
use crate::scenario::Scenario;
use crate::state::*;
use crate::trace::load_at;
use ballast_scheduling::model::InstanceType;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub use interruption::{InterruptionEntry, InterruptionSummary};
pub(crate) use nodes::{Disrupting, DisruptionPlan, Launch};

/// The cluster of one run at virtual time `now`.
pub(crate) struct World {
    pub sc: Scenario,
    pub types: Vec<InstanceType>,
    /// The catalog as each NodePool may launch it, for the report's lower bound of cost.
    pub bound: crate::bound::PoolBound,
    type_idx: BTreeMap<String, usize>,
    pub now: Millis,
    pub end: Millis,
    /// Draws the start-up jitter of pods and nodes.
    rng: ChaCha8Rng,
    /// Every node ever launched, by id; terminated ones stay (reports cost them).
    pub nodes: Vec<SimNode>,
    /// The ids of the nodes not terminated, ascending: loops over the cluster as it is now go
    /// through these, so they cost what the live cluster holds rather than the whole run's history.
    pub live_nodes: Vec<NodeId>,
    /// Live nodes by name.
    pub node_ids: HashMap<String, NodeId>,
    /// Every pod ever created, by id.
    pub pods: Vec<SimPod>,
    /// The batch pods not gone, ascending.
    pub live_batch: BTreeSet<PodId>,
    pub workloads: Vec<WorkloadState>,
    /// Which workloads an autoscaler scales.
    pub autoscaled: Vec<bool>,
    pub pending: BTreeSet<PodId>,
    /// A scheduling pass is queued.
    schedule_queued: bool,
    /// The provisioner's batch window: when its first and its last unschedulable pod came.
    batch_first: Option<Millis>,
    batch_last_new: Option<Millis>,
    /// When the provisioner is to run next (an earlier wake-up supersedes a later one).
    provision_queued: Option<Millis>,
    pub claims_made: u64,
    /// The disruption being carried out.
    pub disrupting: Option<Disrupting>,
    /// Something a disruption pass reads changed since the last pass.
    pub changed_since_disruption: bool,
    pub rec: Recorder,
    /// What the node controllers observe, kept up to date from the changes below once the start
    /// state is built (`observing`).
    pub observed: Observed,
    observing: bool,
    /// consolidateAfter and expireAfter of each pool, in seconds.
    pool_timers: BTreeMap<String, (Option<f64>, Option<f64>)>,
    start_day_seconds: f64,
    start_weekday: u8,
    /// Binding the pods of the start state: they are Ready at once.
    warm_start: bool,
    /// What should happen later, for the engine to queue.
    pub wakeups: Wakeups,
    /// Spot interruptions, when the scenario has them.
    pub spot: Option<interruption::SpotState>,
}

/// Why a world cannot be built, or a node not launched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorldError {
    /// The scenario's catalog gives no instance types.
    #[error("catalog: {0}")]
    Catalog(String),
    /// A group of the scenario's start nodes cannot be made.
    #[error("startNodes[{index}]: {error}")]
    StartNodes {
        index: usize,
        error: Box<WorldError>,
    },
    /// The instance type is not in the catalog.
    #[error("instance type {0:?} is not in the catalog")]
    UnknownType(String),
    /// The instance type is not sold with this capacity type in this zone.
    #[error("{instance_type} has no {capacity_type} offering in {zone}")]
    NoOffering {
        instance_type: String,
        capacity_type: String,
        zone: String,
    },
}

impl World {
    /// An empty cluster for `sc` at time 0, its workloads at their start replicas with no pods.
    pub(crate) fn new(
        sc: Scenario,
        pool_timers: BTreeMap<String, (Option<f64>, Option<f64>)>,
    ) -> Result<World, WorldError> {
        let types = sc
            .catalog
            .instance_types()
            .map_err(|e| WorldError::Catalog(e.to_string()))?;
        let zoned = sc.start.to_zoned(jiff::tz::TimeZone::UTC);
        let start_day_seconds =
            zoned.hour() as f64 * 3600.0 + zoned.minute() as f64 * 60.0 + zoned.second() as f64;
        Ok(World {
            bound: crate::bound::PoolBound::new(&sc, &types),
            rng: ChaCha8Rng::seed_from_u64(sc.seed),
            workloads: sc
                .workloads
                .iter()
                .map(|w| WorkloadState::new(w.replicas, w.pod.requests.clone()))
                .collect(),
            autoscaled: vec![false; sc.workloads.len()],
            type_idx: type_index(&types),
            types,
            now: 0,
            end: millis(sc.duration_seconds),
            nodes: vec![],
            live_nodes: vec![],
            node_ids: HashMap::new(),
            pods: vec![],
            live_batch: BTreeSet::new(),
            pending: BTreeSet::new(),
            schedule_queued: false,
            batch_first: None,
            batch_last_new: None,
            provision_queued: None,
            claims_made: 0,
            disrupting: None,
            changed_since_disruption: true,
            rec: Recorder::default(),
            observed: Observed::default(),
            observing: false,
            pool_timers,
            start_day_seconds,
            start_weekday: zoned.weekday().to_monday_zero_offset() as u8,
            warm_start: false,
            wakeups: Wakeups::default(),
            spot: sc
                .settings
                .spot_interruptions
                .as_ref()
                .map(|s| interruption::SpotState::new(s, sc.seed)),
            sc,
        })
    }

    /// Builds the start state: the scenario's static nodes, Ready, and the workloads' pods bound
    /// where they fit and Ready at once (a running cluster). From here on the node controllers'
    /// view is kept up to date.
    pub(crate) fn start(&mut self) -> Result<(), WorldError> {
        for (index, group) in self.sc.start_nodes.clone().into_iter().enumerate() {
            for _ in 0..group.count {
                let id = self
                    .add_node(
                        &group.instance_type,
                        &group.zone,
                        &group.capacity_type,
                        group.node_pool.clone(),
                        &group.labels,
                        &group.taints,
                        None,
                    )
                    .map_err(|e| WorldError::StartNodes {
                        index,
                        error: Box::new(e),
                    })?;
                self.nodes[id].ready_at = Some(0);
            }
        }
        for w in 0..self.workloads.len() {
            self.reconcile_workload(w);
        }
        self.warm_start = true;
        self.schedule_pass();
        self.warm_start = false;
        self.observed = Observed::build(&self.records(), &self.sc.node_pools, &self.types);
        self.observing = true;
        Ok(())
    }

    /// The node and pod records, for building snapshots.
    pub(crate) fn records(&self) -> Records<'_> {
        Records {
            start: self.sc.start,
            nodes: &self.nodes,
            pods: &self.pods,
            live_nodes: &self.live_nodes,
        }
    }

    /// Applies `change` to the node controllers' view, once it is kept (after the start state).
    fn observe(&mut self, change: impl FnOnce(&mut Observed, &Records<'_>)) {
        if !self.observing {
            return;
        }
        let records = Records {
            start: self.sc.start,
            nodes: &self.nodes,
            pods: &self.pods,
            live_nodes: &self.live_nodes,
        };
        change(&mut self.observed, &records);
    }

    /// Asks for `event` at `at`.
    fn wake(&mut self, at: Millis, event: Event) {
        self.wakeups.at(at, event);
    }

    /// `base` seconds give or take the scenario's start-up jitter.
    fn jitter(&mut self, base: f64) -> f64 {
        use rand::RngExt;
        let j = self.sc.settings.startup_jitter;
        if j <= 0.0 || base <= 0.0 {
            return base;
        }
        let f: f64 = self.rng.random_range(-j..=j);
        (base * (1.0 + f)).max(0.0)
    }

    /// The load on workload `w` at `at` (never negative).
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

    /// Brings every workload's backlog and unserved load up to now, and counts the pods still
    /// there at the end (call once, at the end).
    pub(crate) fn finish(&mut self) {
        for w in 0..self.workloads.len() {
            self.advance_backlog(w);
        }
        let now = self.now;
        for pod in self.pods.iter().filter(|p| p.gone.is_none()) {
            self.rec.pod_done(pod, now);
        }
        self.settle_displaced();
    }
}
