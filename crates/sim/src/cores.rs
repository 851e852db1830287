//! Adapters between the in-memory cluster and the real Ballast cores. This is the only place
//! the simulator asks for a decision; the decision code itself is the controllers'.

use crate::engine::Sim;
use crate::scenario::{Scenario, WorkloadKind};
use crate::state::*;
use ballast_api::HorizontalAutoscaler;
use ballast_api::horizontal::{EventSourceType, MetricSourceType};
use ballast_horizontal::snapshot::{
    ConditionStatus, ContainerSnapshot, ControllerConfig, MetricReading, PodPhase, PodSample,
    PodSnapshot, ReadyCondition, Snapshot as HorizontalSnapshot, TargetScale,
};
use ballast_horizontal::{Outcome, PodFacts, Prepared};
use ballast_scheduling::model::Taint;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

/// An autoscaler of the scenario and the workload it scales.
#[derive(Debug, Clone)]
pub(crate) struct AutoscalerState {
    /// The object as written in the scenario.
    pub object: HorizontalAutoscaler,
    pub workload: usize,
    pub sync_period: Millis,
    /// The core's prepared form, made from a full snapshot at the first sync and then refreshed
    /// from numbers (pods, samples, values, `now`, history) at every sync.
    prepared: Option<Box<Prepared>>,
    outcome: Outcome,
    facts: Vec<PodFacts>,
    /// The workload's `pods_version` the prepared pods (and per-pod requests) were last set at.
    pods_version: Option<u64>,
}

pub(crate) fn autoscalers(sc: &Scenario) -> Result<Vec<AutoscalerState>, String> {
    let mut out = Vec::new();
    for a in &sc.autoscalers {
        let name = a.metadata.name.clone().unwrap_or_default();
        let ns = a
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let target = &a.spec.scale_target_ref;
        let w = sc
            .workloads
            .iter()
            .position(|w| w.name == target.name && w.namespace == ns)
            .ok_or_else(|| format!("HorizontalAutoscaler {ns}/{name}: spec.scaleTargetRef: no workload {ns}/{} in the scenario", target.name))?;
        out.push(AutoscalerState {
            object: a.clone(),
            workload: w,
            sync_period: millis(a.spec.sync_period_seconds() as f64),
            prepared: None,
            outcome: Outcome::default(),
            facts: Vec::new(),
            pods_version: None,
        });
    }
    Ok(out)
}

fn timestamp(sim: &Sim, at: Millis) -> jiff::Timestamp {
    sim.sc
        .start
        .checked_add(jiff::SignedDuration::from_millis(at))
        .unwrap_or(sim.sc.start)
}

/// What the metrics pipeline shows for one autoscaler at this sync, in numbers.
/// The pods are the workload's live pods, in its list's order; a pod has a sample when it was
/// Ready when the metrics were taken.
struct Observation {
    /// How many live pods.
    live: usize,
    /// Metrics were taken at this time (now minus the pipeline lag).
    seen_at: Millis,
    /// Per metric: the per-pod value (milli-units) or the single value, and the per-pod request.
    per_metric: Vec<MetricObs>,
}

enum MetricObs {
    PerPod {
        value_milli: i64,
        request_milli: i64,
    },
    Value(i64),
    Unavailable(String),
    Nothing,
}

fn observe(sim: &Sim, i: usize) -> Observation {
    let st = &sim.autoscalers[i];
    let w = st.workload;
    let spec = &sim.sc.workloads[w];
    let seen_at = (sim.now - millis(sim.sc.settings.metrics_lag_seconds)).max(0);
    let load = sim.load(w, seen_at);
    // The workload's list holds its live pods, and `times` their binding and Ready times: a
    // sync reads these and no pod record.
    let live = sim.workloads[w].pods.len();
    let ready_now = sim.ready_pods(w);
    let per_pod_load = if ready_now > 0 {
        (load / ready_now as f64).min(spec.per_pod.capacity)
    } else {
        0.0
    };
    let cpu_usage = spec.per_pod.base_cpu + per_pod_load * spec.per_pod.cpu_per_unit;
    let memory = spec
        .per_pod
        .memory
        .as_deref()
        .and_then(|m| ballast_api::common::parse_quantity(m).ok())
        .unwrap_or(0.0);
    let total = match spec.kind {
        WorkloadKind::Service => load,
        WorkloadKind::Queue => sim.workloads[w].backlog,
    };
    let milli = |v: f64| (v.max(0.0) * 1000.0).round() as i64;
    let per_metric = st
        .object
        .spec
        .metrics
        .iter()
        .map(|m| match m.type_ {
            MetricSourceType::Resource | MetricSourceType::ContainerResource => {
                let name = m
                    .resource
                    .as_ref()
                    .map(|r| r.name.as_str())
                    .or(m.container_resource.as_ref().map(|r| r.name.as_str()))
                    .unwrap_or("cpu");
                match name {
                    // CPU quantities are in cores: a millicore is one milli-unit.
                    "cpu" => MetricObs::PerPod {
                        value_milli: cpu_usage.max(0.0).round() as i64,
                        request_milli: spec.pod.requests.cpu_millis,
                    },
                    "memory" => MetricObs::PerPod {
                        value_milli: milli(memory),
                        request_milli: spec.pod.requests.memory_bytes.saturating_mul(1000),
                    },
                    other => MetricObs::Unavailable(format!(
                        "the simulator has no usage for resource {other}"
                    )),
                }
            }
            MetricSourceType::Pods => MetricObs::PerPod {
                value_milli: milli(per_pod_load),
                request_milli: 0,
            },
            MetricSourceType::Event
                if m.event
                    .as_ref()
                    .is_some_and(|e| e.type_ == EventSourceType::Cron) =>
            {
                MetricObs::Nothing
            }
            MetricSourceType::Object
            | MetricSourceType::External
            | MetricSourceType::Prometheus
            | MetricSourceType::Event => MetricObs::Value(milli(total)),
        })
        .collect();
    Observation {
        live,
        seen_at,
        per_metric,
    }
}

/// The snapshot the live controller would build (string form), for the first sync and, in
/// debug builds, to cross-check the numeric path.
fn full_snapshot(sim: &Sim, i: usize, obs: &Observation) -> HorizontalSnapshot {
    let st = &sim.autoscalers[i];
    let w = st.workload;
    let spec = &sim.sc.workloads[w];
    let mut requests = BTreeMap::new();
    for (k, v) in spec.pod.requests.iter() {
        if v > 0 && k != "pods" {
            let q = if k == "cpu" {
                format!("{v}m")
            } else {
                v.to_string()
            };
            requests.insert(k.to_string(), Quantity(q));
        }
    }
    // This path reads the pod records themselves.
    let live = &sim.workloads[w].pods;
    let sampled = |p: PodId| sim.pods[p].ready_at.is_some_and(|r| r <= obs.seen_at);
    let pods: Vec<PodSnapshot> = live
        .iter()
        .map(|&p| {
            let pod = &sim.pods[p];
            let ready = pod.is_ready(sim.now);
            PodSnapshot {
                name: pod.spec.name.clone(),
                phase: if pod.node.is_some() {
                    PodPhase::Running
                } else {
                    PodPhase::Pending
                },
                ready: pod.bound_at.map(|b| ReadyCondition {
                    status: if ready {
                        ConditionStatus::True
                    } else {
                        ConditionStatus::False
                    },
                    last_transition_time: timestamp(
                        sim,
                        if ready { pod.ready_at.unwrap_or(b) } else { b },
                    ),
                }),
                start_time: pod.bound_at.map(|b| timestamp(sim, b)),
                deleting: false,
                containers: vec![ContainerSnapshot {
                    name: "app".into(),
                    requests: requests.clone(),
                    restart_policy: None,
                }],
                init_containers: vec![],
                requests: BTreeMap::new(),
            }
        })
        .collect();
    let metrics = obs
        .per_metric
        .iter()
        .map(|m| match m {
            MetricObs::PerPod { value_milli, .. } => MetricReading {
                pods: Some(
                    live.iter()
                        .filter(|&&p| sampled(p))
                        .map(|&p| PodSample {
                            pod: sim.pods[p].spec.name.clone(),
                            value: Quantity(format!("{value_milli}m")),
                            timestamp: Some(timestamp(sim, obs.seen_at)),
                            window: None,
                        })
                        .collect(),
                ),
                ..Default::default()
            },
            MetricObs::Value(v) => MetricReading {
                value: Some(Quantity(format!("{v}m"))),
                ..Default::default()
            },
            MetricObs::Unavailable(e) => MetricReading {
                error: Some(e.clone()),
                ..Default::default()
            },
            MetricObs::Nothing => MetricReading::default(),
        })
        .collect();
    HorizontalSnapshot {
        autoscaler: st.object.clone(),
        scale: TargetScale {
            spec_replicas: sim.workloads[w].desired,
            status_replicas: Some(obs.live as i32),
            selector: format!("app={}", spec.name),
            error: None,
        },
        pods,
        metrics,
        other_autoscalers: vec![],
        config: ControllerConfig::default(),
        now: timestamp(sim, sim.now),
    }
}

/// Sample window the metrics pipeline reports (metrics-server's default).
const WINDOW_MS: Millis = 30_000;

/// Refreshes the prepared snapshot of autoscaler `i` from an observation.
fn refresh(sim: &mut Sim, i: usize, obs: &Observation) {
    let now_ms = timestamp(sim, sim.now).as_millisecond();
    let seen_ms = timestamp(sim, obs.seen_at).as_millisecond();
    let start_ms = sim.sc.start.as_millisecond();
    let unix = move |at: Millis| start_ms + at;
    let w = sim.autoscalers[i].workload;
    let desired = sim.workloads[w].desired;
    let version = sim.workloads[w].pods_version;
    // The pods are set again only when the workload's pods changed since the last sync. When
    // they did not, what set_pods would reset is as it was left: the per-pod requests are the
    // same, and a pod without a sample now had none then either (a pod's Ready time does not
    // move and the metrics time only advances), while every pod with one gets it below anew.
    let same_pods = sim.autoscalers[i].pods_version == Some(version);
    let mut facts = std::mem::take(&mut sim.autoscalers[i].facts);
    if !same_pods {
        facts.clear();
        // A live pod is bound (has a node) exactly when it has a binding time, and Ready
        // exactly when it has a Ready time (one is never set ahead of now).
        for t in &sim.workloads[w].times {
            let ready = t.ready_at.is_some();
            facts.push(PodFacts {
                phase: if t.bound_at.is_some() {
                    PodPhase::Running
                } else {
                    PodPhase::Pending
                },
                ready: t
                    .bound_at
                    .map(|b| (ready, unix(if ready { t.ready_at.unwrap_or(b) } else { b }))),
                start: t.bound_at.map(unix),
            });
        }
    }
    let st = &mut sim.autoscalers[i];
    st.facts = facts;
    let Some(prepared) = st.prepared.as_mut() else {
        return;
    };
    prepared.set_now(now_ms);
    prepared.set_replicas(desired, obs.live as i32);
    if !same_pods {
        prepared.set_pods(&st.facts);
        st.pods_version = Some(version);
    }
    for (m, reading) in obs.per_metric.iter().enumerate() {
        match reading {
            MetricObs::PerPod {
                value_milli,
                request_milli,
            } => {
                for (k, t) in sim.workloads[w].times.iter().enumerate() {
                    if !same_pods {
                        prepared.set_pod_request(m, k, *request_milli);
                    }
                    if t.ready_at.is_some_and(|r| r <= obs.seen_at) {
                        prepared.set_pod_sample(m, k, *value_milli, seen_ms, WINDOW_MS);
                    }
                }
            }
            MetricObs::Value(v) => prepared.set_value(m, *v),
            MetricObs::Unavailable(_) | MetricObs::Nothing => {}
        }
    }
}

/// Runs the horizontal decision of autoscaler `i` on what the cluster shows now; returns the
/// replicas to set when it rescales.
pub(crate) fn horizontal(sim: &mut Sim, i: usize) -> Option<i32> {
    let obs = observe(sim, i);
    if sim.autoscalers[i].prepared.is_none() {
        match ballast_horizontal::prepare(&full_snapshot(sim, i, &obs)) {
            Ok(p) => sim.autoscalers[i].prepared = Some(Box::new(p)),
            Err(e) => {
                let name = sim.autoscalers[i]
                    .object
                    .metadata
                    .name
                    .clone()
                    .unwrap_or_default();
                sim.rec
                    .errors
                    .push(format!("t={}s: autoscaler {name}: {e}", secs(sim.now)));
                return None;
            }
        }
    }
    refresh(sim, i, &obs);
    let st = &mut sim.autoscalers[i];
    let prepared = st.prepared.as_mut()?;
    // The history the decision starts from, for the debug cross-check only.
    let history = cfg!(debug_assertions).then(|| prepared.history().clone());
    ballast_horizontal::decide(prepared, &mut st.outcome);
    prepared.set_history(&st.outcome.history);
    let (desired, rescale) = (st.outcome.desired, st.outcome.rescale);
    if cfg!(debug_assertions) {
        // The numeric path must decide exactly as the full snapshot path does.
        let snap = full_snapshot(sim, i, &obs);
        if let (Ok(mut check), Some(history)) = (ballast_horizontal::prepare(&snap), history) {
            check.set_history(&history);
            let mut out = Outcome::default();
            ballast_horizontal::decide(&check, &mut out);
            if (out.desired, out.rescale) != (desired, rescale) {
                sim.rec.errors.push(format!(
                    "t={}s: autoscaler {i}: numeric path decided {desired}/{rescale}, snapshot path {}/{}",
                    secs(sim.now),
                    out.desired,
                    out.rescale
                ));
            }
        }
    }
    rescale.then_some(desired)
}

/// A node to launch, as a provisioning or replacement decision says.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub node_pool: String,
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: String,
    /// Labels the node registers with (the NodeClaim's), in the API's keys.
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub claim: ballast_api::NodeClaim,
}

impl Launch {
    fn from_plan(plan: ballast_nodes::adapt::LaunchPlan) -> Launch {
        let claim = plan.node_claim;
        let labels = claim.metadata.labels.clone().unwrap_or_default();
        let taints = claim
            .spec
            .taints
            .iter()
            .map(ballast_nodes::adapt::model_taint)
            .collect();
        Launch {
            node_pool: plan.node_pool,
            instance_type: plan.instance_type,
            zone: plan.zone,
            capacity_type: plan.capacity_type,
            labels,
            taints,
            claim,
        }
    }
}

/// A disruption to carry out.
#[derive(Debug, Clone)]
pub(crate) struct DisruptionPlan {
    pub method: String,
    pub nodes: Vec<NodeId>,
    pub replacement: Option<Launch>,
    pub savings_per_hour: f64,
}

fn bound_pod(sim: &Sim, p: PodId) -> ballast_nodes::snapshot::BoundPod {
    let pod = &sim.pods[p];
    ballast_nodes::snapshot::BoundPod {
        pod: pod.spec.clone(),
        annotations: BTreeMap::new(),
        owner_kind: match pod.owner {
            Owner::Workload(_) => Some("ReplicaSet".into()),
            Owner::Batch(_) => None,
        },
        started: pod.bound_at.map(|b| timestamp(sim, b)),
        local_storage: false,
        terminal: false,
    }
}

fn cluster_node(sim: &Sim, n: NodeId) -> ballast_nodes::snapshot::ClusterNode {
    let node = &sim.nodes[n];
    ballast_nodes::snapshot::ClusterNode {
        name: node.name.clone(),
        node_claim: node.claim.as_ref().and_then(|c| c.metadata.name.clone()),
        labels: node.labels.clone(),
        annotations: BTreeMap::new(),
        taints: node.taints.clone(),
        allocatable: node.allocatable.clone(),
        capacity: None,
        price: Some(node.price),
        created: Some(timestamp(sim, node.created)),
        ready: true,
        initialized: true,
        unschedulable: node.cordoned,
        deleting: node.cordoned,
        last_pod_event: Some(timestamp(sim, node.last_pod_event)),
        pods: node.pods.iter().map(|&p| bound_pod(sim, p)).collect(),
        pods_revision: None,
    }
}

fn pdbs(sim: &Sim) -> Vec<ballast_nodes::snapshot::PodDisruptionBudget> {
    let mut out = vec![];
    for (w, spec) in sim.sc.workloads.iter().enumerate() {
        if let Some(max) = spec.max_unavailable {
            let unavailable = sim.workloads[w].desired - sim.ready_pods(w) as i32;
            out.push(ballast_nodes::snapshot::PodDisruptionBudget {
                namespace: spec.namespace.clone(),
                name: spec.name.clone(),
                selector: ballast_scheduling::LabelSelector::labels(&[("app", spec.name.as_str())]),
                disruptions_allowed: (max - unavailable).max(0),
            });
        }
    }
    out
}

fn pending_pods(sim: &Sim, pending: &[PodId]) -> Vec<ballast_nodes::snapshot::PendingPod> {
    pending
        .iter()
        .map(|&p| {
            let pod = &sim.pods[p];
            ballast_nodes::snapshot::PendingPod {
                pod: pod.spec.clone(),
                first_seen: pod.unschedulable_since.map(|t| timestamp(sim, t)),
            }
        })
        .collect()
}

/// The cluster as the node controllers observe it: registered nodes with their pods, the
/// NodeClaims (in flight or not), pending pods, pools, PDBs and the catalog. Built from scratch;
/// the engine keeps the same snapshot up to date in `Observed` instead.
pub(crate) fn cluster_snapshot(
    sim: &Sim,
    pending: &[PodId],
) -> ballast_nodes::snapshot::ClusterSnapshot {
    let mut snap = ballast_nodes::snapshot::ClusterSnapshot {
        node_pools: sim.sc.node_pools.clone(),
        instance_types: sim.types.clone(),
        ..Default::default()
    };
    for (n, node) in sim.live_nodes.iter().map(|&n| (n, &sim.nodes[n])) {
        if let Some(c) = &node.claim {
            snap.node_claims.push(c.clone());
        }
        if node.ready_at.is_some() {
            snap.nodes.push(cluster_node(sim, n)); // else in flight: only its NodeClaim exists
        }
    }
    snap.pending_pods = pending_pods(sim, pending);
    snap.pdbs = pdbs(sim);
    snap
}

/// The snapshot of `cluster_snapshot(sim, &[])` without its PDBs, kept up to date from the
/// engine's events (a bind, a pod leaving, a node launched, ready, cordoned or gone) rather than
/// rebuilt for every decision: copying every pod for every disruption pass was most of a pass.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observed {
    pub snap: ballast_nodes::snapshot::ClusterSnapshot,
    /// The node of each `snap.nodes` entry (ascending, as in `sim.nodes`).
    nodes: Vec<NodeId>,
    /// The node of each `snap.node_claims` entry (ascending).
    claims: Vec<NodeId>,
    /// The last `pods_revision` given to a node: a node gets a new one whenever its pods change,
    /// so the disruption memo can keep what it read from the others.
    revisions: u64,
    /// What disruption passes read from nodes' pods, kept between passes.
    pub memo: ballast_nodes::disrupt::DisruptionMemo,
    /// What provisioning worked out about nodes' bound pods, kept between calls.
    pub provision_memo: ballast_nodes::ProvisionMemo,
}

impl Observed {
    /// Builds it from the cluster as it is.
    pub(crate) fn build(sim: &Sim) -> Observed {
        let snap = cluster_snapshot(sim, &[]);
        let live = |n: &&SimNode| n.is_live();
        let ids = |f: &dyn Fn(&SimNode) -> bool| -> Vec<NodeId> {
            sim.nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| live(n) && f(n))
                .map(|(i, _)| i)
                .collect()
        };
        let mut o = Observed {
            nodes: ids(&|n| n.ready_at.is_some()),
            claims: ids(&|n| n.claim.is_some()),
            snap: ballast_nodes::snapshot::ClusterSnapshot {
                pdbs: vec![],
                ..snap
            },
            revisions: 0,
            memo: Default::default(),
            provision_memo: Default::default(),
        };
        for i in 0..o.snap.nodes.len() {
            o.renew(i);
        }
        o
    }

    /// Gives `snap.nodes[i]` a new pods revision.
    fn renew(&mut self, i: usize) {
        self.revisions += 1;
        self.snap.nodes[i].pods_revision = Some(self.revisions);
    }

    /// Pod `p` was bound to node `n` (and is its last pod).
    pub(crate) fn bound(sim: &mut Sim, p: PodId, n: NodeId) {
        let Ok(i) = sim.observed.nodes.binary_search(&n) else {
            return;
        };
        let bp = bound_pod(sim, p);
        let at = timestamp(sim, sim.nodes[n].last_pod_event);
        let node = &mut sim.observed.snap.nodes[i];
        node.pods.push(bp);
        node.last_pod_event = Some(at);
        sim.observed.renew(i);
    }

    /// The pod at position `k` of node `n`'s pods left it.
    pub(crate) fn left(sim: &mut Sim, n: NodeId, k: usize) {
        let Ok(i) = sim.observed.nodes.binary_search(&n) else {
            return;
        };
        let at = timestamp(sim, sim.nodes[n].last_pod_event);
        let node = &mut sim.observed.snap.nodes[i];
        node.pods.remove(k);
        node.last_pod_event = Some(at);
        sim.observed.renew(i);
    }

    /// Node `n` was launched from a NodeClaim.
    pub(crate) fn launched(sim: &mut Sim, n: NodeId) {
        let Some(c) = sim.nodes[n].claim.clone() else {
            return;
        };
        let o = &mut sim.observed;
        if let Err(i) = o.claims.binary_search(&n) {
            o.claims.insert(i, n);
            o.snap.node_claims.insert(i, c);
        }
    }

    /// Node `n` became ready.
    pub(crate) fn ready(sim: &mut Sim, n: NodeId) {
        if let Err(i) = sim.observed.nodes.binary_search(&n) {
            let node = cluster_node(sim, n);
            sim.observed.nodes.insert(i, n);
            sim.observed.snap.nodes.insert(i, node);
            sim.observed.renew(i);
        }
    }

    /// Node `n` was cordoned or uncordoned.
    pub(crate) fn cordoned(sim: &mut Sim, n: NodeId) {
        let c = sim.nodes[n].cordoned;
        if let Ok(i) = sim.observed.nodes.binary_search(&n) {
            let node = &mut sim.observed.snap.nodes[i];
            node.unschedulable = c;
            node.deleting = c;
        }
    }

    /// Node `n` is gone.
    pub(crate) fn gone(sim: &mut Sim, n: NodeId) {
        let o = &mut sim.observed;
        if let Ok(i) = o.nodes.binary_search(&n) {
            o.nodes.remove(i);
            o.snap.nodes.remove(i);
        }
        if let Ok(i) = o.claims.binary_search(&n) {
            o.claims.remove(i);
            o.snap.node_claims.remove(i);
        }
    }

    /// In debug builds: the kept snapshot must be the one built from scratch.
    fn check(sim: &mut Sim) {
        if cfg!(debug_assertions) {
            let mut kept = serde_json::to_value(&sim.observed.snap).unwrap_or_default();
            let built = serde_json::to_value(cluster_snapshot(sim, &[])).unwrap_or_default();
            if let (Some(k), Some(b)) = (kept.as_object_mut(), built.as_object()) {
                k.insert("pdbs".into(), b.get("pdbs").cloned().unwrap_or_default());
                // Revisions are the kept snapshot's own.
                if let Some(nodes) = k.get_mut("nodes").and_then(|n| n.as_array_mut()) {
                    for n in nodes.iter_mut().filter_map(|n| n.as_object_mut()) {
                        n.remove("podsRevision");
                    }
                }
            }
            if kept != built {
                sim.rec.errors.push(format!(
                    "t={}s: the kept cluster snapshot differs from a rebuilt one",
                    secs(sim.now)
                ));
            }
        }
    }
}

/// Runs the provisioning decision for the unschedulable pods; returns the nodes to launch.
pub(crate) fn provision(sim: &mut Sim, unschedulable: &[PodId]) -> Vec<Launch> {
    Observed::check(sim);
    sim.observed.snap.pending_pods = pending_pods(sim, unschedulable);
    sim.observed.snap.pdbs = pdbs(sim);
    let now = timestamp(sim, sim.now);
    let opts = ballast_nodes::provision::ProvisionOptions::default();
    let observed = &mut sim.observed;
    let result = ballast_nodes::provision_with_memo(
        &observed.snap,
        now,
        &opts,
        &mut observed.provision_memo,
    );
    sim.observed.snap.pending_pods.clear();
    match result {
        Ok(decision) => {
            for e in &decision.skipped {
                sim.rec
                    .errors
                    .push(format!("t={}s: provisioning skipped: {e}", secs(sim.now)));
            }
            for u in &decision.unschedulable {
                *sim.rec
                    .pending_reasons
                    .entry(u.message.clone())
                    .or_insert(0) += 1;
            }
            decision
                .node_claims
                .into_iter()
                .map(Launch::from_plan)
                .collect()
        }
        Err(e) => {
            sim.rec
                .errors
                .push(format!("t={}s: provisioning: {e}", secs(sim.now)));
            vec![]
        }
    }
}

/// Seconds of each pool's `consolidateAfter` and `expireAfter` (None: never).
pub(crate) fn pool_timers(sc: &Scenario) -> BTreeMap<String, (Option<f64>, Option<f64>)> {
    let read = |v: Option<&str>, default: Option<f64>| match v {
        None => default,
        Some("Never") => None,
        Some(t) => ballast_api::common::parse_duration_seconds(t).ok(),
    };
    sc.node_pools
        .iter()
        .map(|p| {
            let after = read(
                p.spec
                    .disruption
                    .as_ref()
                    .and_then(|d| d.consolidate_after.as_deref()),
                Some(0.0),
            );
            let expire = read(
                p.spec.template.spec.expire_after.as_deref(),
                Some(720.0 * 3600.0),
            );
            (p.metadata.name.clone().unwrap_or_default(), (after, expire))
        })
        .collect()
}

/// Timers of a node: when it becomes consolidatable and when it expires.
fn node_timers(node: &SimNode) -> [Option<Millis>; 2] {
    let (after, expire) = node.pool_timers;
    [
        after.map(|a| node.last_pod_event + a),
        expire.map(|e| node.created + e),
    ]
}

/// Whether some node's consolidateAfter or expireAfter has run out: otherwise every graceful
/// method of the disruption core would refuse every node, and a pass can wait.
pub(crate) fn disruption_due(sim: &Sim) -> bool {
    sim.live_nodes
        .iter()
        .map(|&n| &sim.nodes[n])
        .filter(|n| n.ready_at.is_some() && !n.cordoned)
        .any(|n| node_timers(n).into_iter().flatten().any(|t| t <= sim.now))
}

/// Longest wait between two disruption passes when nothing prompts one.
const PERIODIC_DISRUPTION_MS: Millis = 300_000;

/// Runs one disruption pass. Returns the action to carry out, or when a timer (consolidateAfter,
/// expireAfter) next makes a new pass worth it if nothing else changes.
pub(crate) fn disrupt(sim: &mut Sim) -> (Option<DisruptionPlan>, Millis) {
    Observed::check(sim);
    sim.observed.snap.pdbs = pdbs(sim);
    let now = timestamp(sim, sim.now);
    let opts = ballast_nodes::disrupt::DisruptionOptions::default();
    let observed = &mut sim.observed;
    let decision = match ballast_nodes::disrupt::disrupt_with_memo(
        &observed.snap,
        now,
        &opts,
        &mut observed.memo,
    ) {
        Ok(d) => d,
        Err(e) => {
            sim.rec
                .errors
                .push(format!("t={}s: disruption: {e}", secs(sim.now)));
            return (None, sim.now + 3_600_000);
        }
    };
    if let Some(action) = decision.action {
        let nodes: Vec<NodeId> = action
            .nodes
            .iter()
            .filter_map(|name| sim.node_ids.get(name).copied())
            .collect();
        if !nodes.is_empty() {
            return (
                Some(DisruptionPlan {
                    method: format!("{:?}", action.method),
                    nodes,
                    replacement: action
                        .replacements
                        .into_iter()
                        .next()
                        .map(|r| Launch::from_plan(r.plan)),
                    savings_per_hour: action.savings,
                }),
                sim.now,
            );
        }
    }
    // Look again when a timer runs out, and at least every five minutes (budget windows).
    let mut wake = sim.now + PERIODIC_DISRUPTION_MS;
    for node in sim
        .live_nodes
        .iter()
        .map(|&n| &sim.nodes[n])
        .filter(|n| n.ready_at.is_some())
    {
        for t in node_timers(node).into_iter().flatten() {
            if t > sim.now {
                wake = wake.min(t);
            }
        }
    }
    (None, wake)
}
