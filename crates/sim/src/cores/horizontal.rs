//! The horizontal decision: what the metrics pipeline shows an autoscaler, in the horizontal
//! core's snapshot (first sync) and numbers (every sync after), and the core's answer.

use crate::observed::timestamp;
use crate::scenario::{Scenario, WorkloadKind};
use crate::state::*;
use crate::world::World;
use ballast_api::HorizontalAutoscaler;
use ballast_api::horizontal::{EventSourceType, MetricSourceType};
use ballast_horizontal::snapshot::{
    ConditionStatus, ContainerSnapshot, ControllerConfig, MetricReading, PodPhase, PodSample,
    PodSnapshot, ReadyCondition, Snapshot as HorizontalSnapshot, TargetScale,
};
use ballast_horizontal::{Outcome as Decision, PodFacts, Prepared as PreparedAutoscaler};
use ballast_scheduling::model::Resources;
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
    prepared: Option<Box<PreparedAutoscaler>>,
    decision: Decision,
    facts: Vec<PodFacts>,
    /// The workload's `pods_version` the prepared pods (and per-pod requests) were last set at.
    pods_version: Option<u64>,
}

/// The scenario's autoscalers, each with the workload it scales.
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
            decision: Decision::default(),
            facts: Vec::new(),
            pods_version: None,
        });
    }
    Ok(out)
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
        request: RequestOf,
    },
    Value(i64),
    Unavailable(String),
    Nothing,
}

/// Which request a per-pod metric's utilization is read against: each pod's own (requests are
/// per pod once a vertical recommendation sizes new pods).
#[derive(Clone, Copy)]
enum RequestOf {
    Cpu,
    Memory,
    Nothing,
}

impl RequestOf {
    /// Pod `pod`'s request, milli-units (CPU in cores).
    fn milli(self, pod: &SimPod) -> i64 {
        match self {
            RequestOf::Cpu => pod.spec.requests.cpu_millis,
            RequestOf::Memory => pod.spec.requests.memory_bytes.saturating_mul(1000),
            RequestOf::Nothing => 0,
        }
    }
}

fn observe(world: &World, st: &AutoscalerState) -> Observation {
    let w = st.workload;
    let spec = &world.sc.workloads[w];
    let seen_at = (world.now - millis(world.sc.settings.metrics_lag_seconds)).max(0);
    let load = world.load(w, seen_at);
    // The workload's list holds its live pods, and `times` their binding and Ready times: a
    // sync reads these and no pod record.
    let live = world.workloads[w].pods.len();
    let ready_now = world.ready_pods(w);
    let per_pod_load = if ready_now > 0 {
        (load / ready_now as f64).min(spec.per_pod.capacity)
    } else {
        0.0
    };
    let cpu_usage = spec.per_pod.cpu_millis(per_pod_load);
    let memory = spec.per_pod.memory_bytes(per_pod_load);
    let total = match spec.kind {
        WorkloadKind::Service => load,
        WorkloadKind::Queue => world.workloads[w].backlog,
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
                        request: RequestOf::Cpu,
                    },
                    "memory" => MetricObs::PerPod {
                        value_milli: milli(memory),
                        request: RequestOf::Memory,
                    },
                    other => MetricObs::Unavailable(format!(
                        "the simulator has no usage for resource {other}"
                    )),
                }
            }
            MetricSourceType::Pods => MetricObs::PerPod {
                value_milli: milli(per_pod_load),
                request: RequestOf::Nothing,
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

/// A pod's requests as its container's resource list (the pod slot left out).
fn request_list(requests: &Resources) -> BTreeMap<String, Quantity> {
    let mut out = BTreeMap::new();
    for (k, v) in requests.iter() {
        if v > 0 && k != "pods" {
            let q = if k == "cpu" {
                format!("{v}m")
            } else {
                v.to_string()
            };
            out.insert(k.to_string(), Quantity(q));
        }
    }
    out
}

/// The snapshot the live controller would build (string form), for the first sync and, in
/// debug builds, to cross-check the numeric path.
fn full_snapshot(world: &World, st: &AutoscalerState, obs: &Observation) -> HorizontalSnapshot {
    let w = st.workload;
    let spec = &world.sc.workloads[w];
    // This path reads the pod records themselves.
    let live = &world.workloads[w].pods;
    let sampled = |p: PodId| world.pods[p].ready_at.is_some_and(|r| r <= obs.seen_at);
    let pods: Vec<PodSnapshot> = live
        .iter()
        .map(|&p| {
            let pod = &world.pods[p];
            let ready = pod.is_ready(world.now);
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
                        world.sc.start,
                        if ready { pod.ready_at.unwrap_or(b) } else { b },
                    ),
                }),
                start_time: pod.bound_at.map(|b| timestamp(world.sc.start, b)),
                deleting: false,
                containers: vec![ContainerSnapshot {
                    name: "app".into(),
                    requests: request_list(&pod.spec.requests),
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
                            pod: world.pods[p].spec.name.clone(),
                            value: Quantity(format!("{value_milli}m")),
                            timestamp: Some(timestamp(world.sc.start, obs.seen_at)),
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
            spec_replicas: world.workloads[w].desired,
            status_replicas: Some(obs.live as i32),
            selector: format!("app={}", spec.name),
            error: None,
        },
        pods,
        metrics,
        other_autoscalers: vec![],
        demand_history: Vec::new(),
        config: ControllerConfig::default(),
        now: timestamp(world.sc.start, world.now),
    }
}

/// Sample window the metrics pipeline reports (metrics-server's default).
const WINDOW_MS: Millis = 30_000;

/// Refreshes the prepared snapshot of autoscaler `i` from an observation.
fn refresh(world: &World, st: &mut AutoscalerState, obs: &Observation) {
    let now_ms = timestamp(world.sc.start, world.now).as_millisecond();
    let seen_ms = timestamp(world.sc.start, obs.seen_at).as_millisecond();
    let start_ms = world.sc.start.as_millisecond();
    let unix = move |at: Millis| start_ms + at;
    let w = st.workload;
    let desired = world.workloads[w].desired;
    let version = world.workloads[w].pods_version;
    // The pods are set again only when the workload's pods changed since the last sync. When
    // they did not, what set_pods would reset is as it was left: the per-pod requests are the
    // same, and a pod without a sample now had none then either (a pod's Ready time does not
    // move and the metrics time only advances), while every pod with one gets it below anew.
    let same_pods = st.pods_version == Some(version);
    let mut facts = std::mem::take(&mut st.facts);
    if !same_pods {
        facts.clear();
        // A live pod is bound (has a node) exactly when it has a binding time, and Ready
        // exactly when it has a Ready time (one is never set ahead of now).
        for t in &world.workloads[w].times {
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
                request,
            } => {
                let pods = &world.workloads[w].pods;
                for (k, t) in world.workloads[w].times.iter().enumerate() {
                    if !same_pods {
                        prepared.set_pod_request(m, k, request.milli(&world.pods[pods[k]]));
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
pub(crate) fn horizontal(world: &mut World, st: &mut AutoscalerState, i: usize) -> Option<i32> {
    let obs = observe(world, st);
    if st.prepared.is_none() {
        match ballast_horizontal::prepare(&full_snapshot(world, st, &obs)) {
            Ok(p) => st.prepared = Some(Box::new(p)),
            Err(e) => {
                let name = st.object.metadata.name.clone().unwrap_or_default();
                world
                    .rec
                    .error(world.now, format!("autoscaler {name}: {e}"));
                return None;
            }
        }
    }
    refresh(world, st, &obs);
    let prepared = st.prepared.as_mut()?;
    // The history the decision starts from, for the debug cross-check only.
    let history = cfg!(debug_assertions).then(|| prepared.history().clone());
    ballast_horizontal::decide(prepared, &mut st.decision);
    prepared.set_history(&st.decision.history);
    // The demand history `spec.predictive` forecasts from (nothing is kept without it).
    if let Some(demand) = st.decision.demand {
        let now = prepared.now();
        prepared.record_demand(now, demand);
    }
    world.workloads[st.workload]
        .forecast
        .add(&st.decision.prediction);
    let (desired, rescale) = (st.decision.desired, st.decision.rescale);
    // The full snapshot carries no demand history, so a predictive object is not cross-checked.
    let predictive = st
        .object
        .spec
        .predictive
        .as_ref()
        .is_some_and(|p| p.mode != ballast_api::horizontal::PredictiveMode::Off);
    if cfg!(debug_assertions) && !predictive {
        // The numeric path must decide exactly as the full snapshot path does.
        let snap = full_snapshot(world, st, &obs);
        if let (Ok(mut check), Some(history)) = (ballast_horizontal::prepare(&snap), history) {
            check.set_history(&history);
            let mut out = Decision::default();
            ballast_horizontal::decide(&check, &mut out);
            if (out.desired, out.rescale) != (desired, rescale) {
                world.rec.errors.push(format!(
                    "t={}s: autoscaler {i}: numeric path decided {desired}/{rescale}, snapshot path {}/{}",
                    secs(world.now),
                    out.desired,
                    out.rescale
                ));
            }
        }
    }
    rescale.then_some(desired)
}
