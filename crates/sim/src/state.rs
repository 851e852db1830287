//! The in-memory cluster: nodes, pods and workloads, with the bookkeeping the scheduler model
//! and the reports need. Times are virtual milliseconds since the start.

use ballast_scheduling::model::{InstanceType, Pod as SchedPod, Resources, Taint, TaintEffect};
use std::collections::BTreeMap;

pub type Millis = i64;
pub type NodeId = usize;
pub type PodId = usize;

pub const MS: f64 = 1000.0;

pub fn secs(ms: Millis) -> f64 {
    ms as f64 / MS
}

pub fn millis(s: f64) -> Millis {
    (s * MS).round() as Millis
}

#[derive(Debug, Clone)]
pub struct SimNode {
    pub name: String,
    pub instance_type: String,
    pub node_pool: Option<String>,
    /// $ per hour.
    pub price: f64,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub allocatable: Resources,
    /// Sum of the effective requests of the pods bound here.
    pub used: Resources,
    pub pods: Vec<PodId>,
    pub created: Millis,
    /// None while launching.
    pub ready_at: Option<Millis>,
    /// Cordoned for disruption: takes no new pods.
    pub cordoned: bool,
    pub terminated: Option<Millis>,
    /// Last time a pod was bound here or left (resets consolidateAfter).
    pub last_pod_event: Millis,
    /// The NodeClaim the node was launched from (None for static nodes).
    pub claim: Option<ballast_api::NodeClaim>,
    /// Its pool's consolidateAfter and expireAfter in milliseconds (None: never, or no pool).
    pub pool_timers: (Option<Millis>, Option<Millis>),
}

impl SimNode {
    pub fn is_live(&self) -> bool {
        self.terminated.is_none()
    }
    pub fn schedulable(&self) -> bool {
        self.ready_at.is_some() && !self.cordoned && self.terminated.is_none()
    }
    /// Whether requests `r` fit in what is left. The four named resources are compared as
    /// numbers; only extended resources go through the map.
    pub fn fits(&self, r: &Resources) -> bool {
        let (a, u) = (&self.allocatable, &self.used);
        let room = |want: i64, alloc: i64, used: i64| want <= 0 || alloc - used >= want;
        room(r.cpu_millis, a.cpu_millis, u.cpu_millis)
            && room(r.memory_bytes, a.memory_bytes, u.memory_bytes)
            && room(r.pods, a.pods, u.pods)
            && room(
                r.ephemeral_storage_bytes,
                a.ephemeral_storage_bytes,
                u.ephemeral_storage_bytes,
            )
            && r.extended.iter().all(|(k, &v)| room(v, a.get(k), u.get(k)))
    }
    /// Blocks scheduling of a pod without a matching toleration.
    pub fn hard_taints(&self) -> impl Iterator<Item = &Taint> {
        self.taints
            .iter()
            .filter(|t| matches!(t.effect, TaintEffect::NoSchedule | TaintEffect::NoExecute))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Owner {
    Workload(usize),
    Batch(usize),
}

#[derive(Debug, Clone)]
pub struct SimPod {
    pub spec: SchedPod,
    pub owner: Owner,
    /// Requests as the scheduler counts them (incl. the pod slot).
    pub requests: Resources,
    pub node: Option<NodeId>,
    pub created: Millis,
    pub bound_at: Option<Millis>,
    pub ready_at: Option<Millis>,
    /// Deleted (scaled in, evicted, finished).
    pub gone: Option<Millis>,
    /// The scheduler found no node on its last pass.
    pub unschedulable_since: Option<Millis>,
    pub evicted: bool,
}

impl SimPod {
    pub fn is_ready(&self, now: Millis) -> bool {
        self.gone.is_none() && self.ready_at.is_some_and(|r| r <= now)
    }
}

/// A running workload.
#[derive(Debug, Clone)]
pub struct WorkloadState {
    pub desired: i32,
    /// The live pods (a pod leaves the list when it is gone).
    pub pods: Vec<PodId>,
    /// The binding and Ready times of each of `pods`, in step with it: an autoscaler sync reads
    /// these rather than each pod's whole record.
    pub times: Vec<PodTimes>,
    /// How many of `pods` are Ready (kept as pods become Ready or go).
    pub ready: usize,
    /// Bumped whenever `pods` or `times` change: autoscaler syncs reuse what they built from
    /// them while it stays the same.
    pub pods_version: u64,
    pub next_pod: u64,
    /// Queue workloads: the backlog and when it was last brought up to date.
    pub backlog: f64,
    pub backlog_at: Millis,
    /// Load served short of demand, integrated (unit-seconds), and time under-provisioned (ms).
    pub unserved: f64,
    pub under_ms: Millis,
    pub rescales: u32,
    /// The requests the Deployment controller gives a new pod: the template's, or what the
    /// admission of an applying `VerticalAutoscaler` sets (`sized`).
    pub pod_requests: Resources,
    /// New pods get the requests of a vertical recommendation.
    pub sized: bool,
    /// Pods created with a vertical recommendation's requests.
    pub pods_sized: u64,
    /// Pods the vertical updater evicted.
    pub vertical_evictions: u64,
    /// What the autoscaler's prediction step said at each decision (`spec.predictive`).
    pub forecast: crate::prediction_report::ForecastTally,
}

/// When a live pod of a workload was bound and became Ready.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodTimes {
    pub bound_at: Option<Millis>,
    pub ready_at: Option<Millis>,
}

impl WorkloadState {
    /// A workload at `desired` replicas with no pods yet, whose pods ask for `pod_requests`.
    pub fn new(desired: i32, pod_requests: Resources) -> WorkloadState {
        WorkloadState {
            desired,
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
            pod_requests,
            sized: false,
            pods_sized: 0,
            vertical_evictions: 0,
            forecast: Default::default(),
        }
    }

    /// Where pod `p` is in `pods` (and `times`).
    pub fn slot(&self, p: PodId) -> Option<usize> {
        self.pods.iter().position(|&x| x == p)
    }

    pub fn live_pods<'a>(&'a self, pods: &'a [SimPod]) -> impl Iterator<Item = PodId> + 'a {
        self.pods
            .iter()
            .copied()
            .filter(move |&p| pods[p].gone.is_none())
    }
}

/// Instance types by name.
pub fn type_index(types: &[InstanceType]) -> BTreeMap<String, usize> {
    types
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect()
}
