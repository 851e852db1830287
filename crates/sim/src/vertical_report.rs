//! What the report says about each `VerticalAutoscaler`: the pods' requests against the last
//! recommendation of the vertical core, and what the requests cost per hour as requested and at
//! the recommendation.
//!
//! Price basis: the lower bound's method (`ballast_scheduling::bound`) on on-demand prices: one
//! pod's requests are priced at the cheapest fractional packing onto the catalog's instance types,
//! each at its cheapest on-demand offering (the list price of the resources, whatever capacity type
//! the pool buys), then multiplied by the workload's mean Ready replicas over the run (the same
//! replicas at both sizes). A resource the recommendation leaves out keeps its request.

use crate::cores::{VerticalState, admits};
use crate::state::secs;
use crate::world::World;
use ballast_scheduling::bound::fractional_lower_bound_counted;
use ballast_scheduling::model::Resources;
use ballast_vertical::recommend::{ContainerRecommendation, ResourceRecommendation};
use serde::Serialize;
use std::fmt::Write as _;

/// One `VerticalAutoscaler` at the end of a run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerticalSummary {
    /// `namespace/name` of the object.
    pub name: String,
    /// `namespace/name` of the workload it targets.
    pub workload: String,
    /// Mean Ready replicas of the workload over the run (the cost is for this many pods).
    pub mean_ready: f64,
    /// CPU request of each pod (its one container), cores, from the pod template.
    pub requested_cpu: f64,
    /// Memory request of each pod, bytes, from the pod template.
    pub requested_memory: f64,
    /// Seconds into the run of the last recommendation (None: there was none).
    pub recommended_at_seconds: Option<f64>,
    pub containers: Vec<ContainerSizing>,
    /// Containers the core gave no recommendation, with why.
    pub skipped: Vec<String>,
    pub low_confidence: bool,
    /// $ per hour of the workload's requests as written.
    pub cost_per_hour_requested: f64,
    /// $ per hour of the same pods at the recommended targets.
    pub cost_per_hour_recommended: f64,
    /// What applying the recommendations did (absent for an object in mode `Off`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<AppliedSizing>,
}

/// What an applying `VerticalAutoscaler` did to its workload's pods over the run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedSizing {
    /// `Initial`, `Recreate` or `InPlaceOrRecreate` (simulated as `Recreate`); `Auto` and an
    /// absent mode read as `Recreate`.
    pub mode: String,
    /// Pods the updater evicted.
    pub evictions: u64,
    /// Pods created with the recommendation's requests.
    pub pods_sized: u64,
    /// Mean CPU request of a Ready pod over the run's samples, cores.
    pub mean_requested_cpu: f64,
    /// Mean memory request of a Ready pod over the run's samples, bytes.
    pub mean_requested_memory: f64,
    /// $ per hour of the workload's pods at those mean requests (× its mean Ready replicas).
    pub cost_per_hour_applied: f64,
    /// $ per hour of the workload's pods in the same scenario with every object `Off` (template
    /// requests × that run's mean Ready replicas).
    pub cost_per_hour_without: Option<f64>,
}

/// The same variant with and without vertical autoscaling applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerticalComparison {
    /// $ over the run with the recommendations applied (the variant as written).
    pub cost_with: f64,
    /// $ over the run with every `VerticalAutoscaler` in mode `Off`.
    pub cost_without: f64,
    /// `costWithout − costWith`.
    pub cost_saved: f64,
    /// Node-hours over the run, every instance type.
    pub node_hours_with: f64,
    pub node_hours_without: f64,
    /// Seconds pods waited for a node, summed.
    pub pending_pod_seconds_with: f64,
    pub pending_pod_seconds_without: f64,
    /// Minutes a workload had less capacity than its load, summed.
    pub under_provision_minutes_with: f64,
    pub under_provision_minutes_without: f64,
    /// Pods the vertical updater evicted (every object).
    pub evictions: u64,
    /// Pods created with a recommendation's requests (every object).
    pub pods_sized: u64,
}

/// One container's recommendation.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSizing {
    pub container: String,
    /// Cores (None: CPU not recommended).
    pub cpu: Option<ResourceSizing>,
    /// Bytes (None: memory not recommended).
    pub memory: Option<ResourceSizing>,
    /// Days of history behind the bounds.
    pub confidence: f64,
    pub reasons: Vec<String>,
}

/// A resource's recommendation, in base units (cores or bytes).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSizing {
    pub target: f64,
    pub lower_bound: f64,
    pub upper_bound: f64,
    pub uncapped_target: f64,
}

/// Rounds for stable output (the JSON is compared byte for byte across runs).
fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn sizing(r: &ResourceRecommendation, digits: i32) -> ResourceSizing {
    ResourceSizing {
        target: round(r.target, digits),
        lower_bound: round(r.lower_bound, digits),
        upper_bound: round(r.upper_bound, digits),
        uncapped_target: round(r.uncapped_target, digits),
    }
}

/// Capacity type of the offerings the requests are priced at.
const PRICE_CAPACITY_TYPE: &str = "on-demand";

/// $ per hour of one pod asking for `requests`, priced like the lower bound at on-demand prices.
fn pod_price(world: &World, requests: &Resources) -> f64 {
    let mut pod = requests.clone();
    pod.pods = 1;
    fractional_lower_bound_counted(&[(pod, 1)], &world.types, &Resources::default(), &|o| {
        o.capacity_type == PRICE_CAPACITY_TYPE
    })
    .value
}

/// The pod's requests with the recommended targets in place of the requests they cover.
fn recommended_requests(requests: &Resources, c: Option<&ContainerRecommendation>) -> Resources {
    let mut out = requests.clone();
    if let Some(c) = c {
        if let Some(cpu) = &c.cpu {
            out.cpu_millis = (cpu.target * 1000.0).ceil() as i64;
        }
        if let Some(memory) = &c.memory {
            out.memory_bytes = memory.target.ceil() as i64;
        }
    }
    out
}

/// The summary of every object that got past setup, in the scenario's order; `mean_ready` holds
/// each workload's mean Ready replicas over the run.
pub(crate) fn summarize(
    world: &World,
    verticals: &[VerticalState],
    mean_ready: &[f64],
) -> Vec<VerticalSummary> {
    verticals
        .iter()
        .map(|v| {
            let spec = &world.sc.workloads[v.workload];
            let requests = &spec.pod.requests;
            let mean_ready = mean_ready.get(v.workload).copied().unwrap_or(0.0);
            let rec = v.latest.as_ref().map(|(_, r)| r);
            let container = rec.and_then(|r| r.containers.first());
            let containers = rec
                .map(|r| {
                    r.containers
                        .iter()
                        .map(|c| ContainerSizing {
                            container: c.container_name.clone(),
                            cpu: c.cpu.as_ref().map(|x| sizing(x, 3)),
                            memory: c.memory.as_ref().map(|x| sizing(x, 0)),
                            confidence: round(c.confidence, 3),
                            reasons: c.reasons.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let price = pod_price(world, requests);
            let price_at = pod_price(world, &recommended_requests(requests, container));
            VerticalSummary {
                name: v.name.clone(),
                workload: format!("{}/{}", spec.namespace, spec.name),
                mean_ready,
                requested_cpu: round(requests.cpu_millis as f64 / 1000.0, 3),
                requested_memory: requests.memory_bytes as f64,
                recommended_at_seconds: v.latest.as_ref().map(|(at, _)| secs(*at)),
                containers,
                skipped: rec.map(|r| r.skipped.clone()).unwrap_or_default(),
                low_confidence: rec.is_some_and(|r| r.low_confidence),
                cost_per_hour_requested: round(price * mean_ready, 4),
                cost_per_hour_recommended: round(price_at * mean_ready, 4),
                applied: applied(world, v, mean_ready),
            }
        })
        .collect()
}

/// What applying `v`'s recommendations did (None in mode `Off`).
fn applied(world: &World, v: &VerticalState, mean_ready: f64) -> Option<AppliedSizing> {
    if !admits(v.mode) {
        return None;
    }
    let state = &world.workloads[v.workload];
    let tally = &v.requested;
    let mut mean = world.sc.workloads[v.workload].pod.requests.clone();
    if tally.pods > 0 {
        mean.cpu_millis = (tally.cpu_millis / tally.pods as f64).round() as i64;
        mean.memory_bytes = (tally.memory_bytes / tally.pods as f64).round() as i64;
    }
    Some(AppliedSizing {
        mode: format!("{:?}", v.mode),
        evictions: state.vertical_evictions,
        pods_sized: state.pods_sized,
        mean_requested_cpu: round(mean.cpu_millis as f64 / 1000.0, 3),
        mean_requested_memory: mean.memory_bytes as f64,
        cost_per_hour_applied: round(pod_price(world, &mean) * mean_ready, 4),
        cost_per_hour_without: None,
    })
}

/// Cores as millicores ("250m").
fn cpu_text(cores: f64) -> String {
    format!("{:.0}m", cores * 1000.0)
}

/// Bytes as mebibytes ("512Mi").
fn memory_text(bytes: f64) -> String {
    format!("{:.0}Mi", bytes / (1024.0 * 1024.0))
}

/// "request → target [lower, upper]", or the request alone when nothing is recommended.
fn resource_text(requested: f64, r: Option<&ResourceSizing>, unit: fn(f64) -> String) -> String {
    match r {
        Some(r) => format!(
            "{} → {} [{}, {}]",
            unit(requested),
            unit(r.target),
            unit(r.lower_bound),
            unit(r.upper_bound)
        ),
        None => format!("{} → -", unit(requested)),
    }
}

/// The header of the text table ([`table_rows`] writes its rows); `applied`: some object applies
/// its recommendations (the request shown is then the template's).
pub fn table_header(applied: bool) -> String {
    let requests = if applied {
        "request: the template's"
    } else {
        "requests unchanged"
    };
    format!(
        "vertical recommendations per pod (request → target [lower, upper]; {requests}; $/h at the mean ready replicas)\n{:<16} {:<22} {:<14} {:<34} {:<38} {:>6} {:>9} {:>9}\n",
        "variant", "workload", "container", "cpu", "memory", "pods", "$/h req", "$/h rec"
    )
}

/// One row per container of each object of `variant` (one row saying why when there is none).
pub fn table_rows(variant: &str, verticals: &[VerticalSummary], out: &mut String) {
    for v in verticals {
        if v.containers.is_empty() {
            let why = if v.skipped.is_empty() {
                "no recommendation yet".to_string()
            } else {
                v.skipped.join("; ")
            };
            let _ = writeln!(out, "{variant:<16} {:<22} {why}", v.workload);
            continue;
        }
        for c in &v.containers {
            let cpu = resource_text(v.requested_cpu, c.cpu.as_ref(), cpu_text);
            let memory = resource_text(v.requested_memory, c.memory.as_ref(), memory_text);
            let _ = writeln!(
                out,
                "{variant:<16} {:<22} {:<14} {cpu:<34} {memory:<38} {:>6.1} {:>9.3} {:>9.3}",
                v.workload,
                c.container,
                v.mean_ready,
                v.cost_per_hour_requested,
                v.cost_per_hour_recommended
            );
        }
    }
}
