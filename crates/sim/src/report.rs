//! What a run measures, and the report files: JSON, CSV, an HTML page with plots, and a
//! terminal summary.

use crate::record::Sample;
use crate::scenario::WorkloadKind;
use crate::state::*;
use crate::world::World;
use ballast_scheduling::model::Resources;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

pub use crate::record::{Recorder, SampleRow, WorkloadSample};
pub use crate::vertical_report::{
    AppliedSizing, ContainerSizing, ResourceSizing, VerticalComparison, VerticalSummary,
};
pub use crate::world::{InterruptionEntry, InterruptionSummary};

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub scenario: String,
    pub variant: String,
    pub description: String,
    pub hours: f64,
    /// $ over the run: Σ node-hours × price.
    pub cost: f64,
    /// $ the same demand needs at least (fractional packing at the cheapest $/resource some
    /// NodePool may launch for each pod: its requirements, taints and DaemonSet overhead).
    pub lower_bound_cost: f64,
    pub cost_over_lower_bound: f64,
    pub node_hours_by_type: BTreeMap<String, f64>,
    pub cost_by_type: BTreeMap<String, f64>,
    pub nodes_launched: u64,
    pub nodes_terminated: u64,
    pub peak_nodes: usize,
    pub cpu_allocation_mean: f64,
    pub cpu_allocation_p95: f64,
    pub cpu_usage_mean: f64,
    pub cpu_usage_p95: f64,
    pub pending_pod_seconds: f64,
    pub pod_wait_p95_seconds: f64,
    pub pod_wait_max_seconds: f64,
    pub pods_created: usize,
    pub pods_never_scheduled: usize,
    pub under_provision_minutes: f64,
    pub scale_events: u64,
    pub evictions: u64,
    pub disruptions: usize,
    pub batch_pods_finished: u64,
    pub workloads: Vec<WorkloadSummary>,
    pub disruption_log: Vec<DisruptionEntry>,
    /// Why the provisioner left pods pending: reason → the pods it was given for (how many, the
    /// first few) and how often.
    pub pending_reasons: BTreeMap<String, crate::outcome::PendingReason>,
    /// What is wrong with the variant's objects (conflicting names, NodePools no instance type
    /// satisfies), found before the run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// What loading the variant noticed and accepted (a merge patch replacing a whole list).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
    /// Each `VerticalAutoscaler`'s requests against its recommendation (absent when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vertical: Vec<VerticalSummary>,
    /// The same variant with every `VerticalAutoscaler` `Off`, side by side (absent when no
    /// object applies its recommendations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vertical_comparison: Option<VerticalComparison>,
    /// Spot interruptions and the pod-seconds they cost (absent unless the scenario sets
    /// `settings.spotInterruptions`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spot_interruptions: Option<InterruptionSummary>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSummary {
    pub name: String,
    pub under_provision_minutes: f64,
    /// Load units not served (service) — or the final backlog (queue).
    pub unserved: f64,
    pub rescales: u32,
    pub mean_ready: f64,
    pub max_desired: i32,
    /// How its autoscaler's forecast did (absent without `spec.predictive`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<crate::prediction_report::ForecastSummary>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DisruptionEntry {
    pub t_seconds: f64,
    pub method: String,
    pub nodes: usize,
    pub savings_per_hour: f64,
}

fn percentile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Rounds for stable, readable output (the JSON is compared byte for byte across runs).
fn r(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    // + 0.0 turns -0.0 (the sum of nothing) into 0.0, so no "-0.00" is printed.
    (x * f).round() / f + 0.0
}

/// The live nodes now: how many, how many Ready, their $ per hour, and the allocatable and
/// requested resources of the Ready ones.
struct NodeTotals {
    nodes: usize,
    ready: usize,
    cost: f64,
    alloc: Resources,
    req: Resources,
}

fn node_totals(world: &World) -> NodeTotals {
    let mut alloc = Resources::default();
    let mut req = Resources::default();
    let mut cost = 0.0;
    let (mut nodes, mut ready) = (0, 0);
    for n in world.live_nodes.iter().map(|&n| &world.nodes[n]) {
        nodes += 1;
        cost += n.price;
        if n.ready_at.is_some() {
            ready += 1;
            for (k, v) in n.allocatable.iter() {
                let c = alloc.get(k);
                alloc.set(k, c + v);
            }
            for (k, v) in n.used.iter() {
                let c = req.get(k);
                req.set(k, c + v);
            }
        }
    }
    NodeTotals {
        nodes,
        ready,
        cost,
        alloc,
        req,
    }
}

/// The sample of the cluster as it is now.
pub(crate) fn sample(world: &World) -> Sample {
    let now = world.now;
    let NodeTotals {
        nodes,
        ready,
        cost,
        alloc,
        req,
    } = node_totals(world);
    let mut used_cpu = 0.0;
    let mut workloads = Vec::new();
    // (requests, pods asking for them).
    let mut demand: Vec<(Resources, usize)> = Vec::new();
    // The demand class of each row (what its pods ask of a node), for the bound.
    let mut classes: Vec<usize> = Vec::new();
    for w in 0..world.workloads.len() {
        let spec = &world.sc.workloads[w];
        let load = world.load(w, now);
        let ready_pods = world.ready_pods(w);
        let needed = load / spec.per_pod.capacity;
        // CPU the ready pods use for the load they serve.
        let served = load.min(ready_pods as f64 * spec.per_pod.capacity);
        used_cpu += ready_pods as f64 * spec.per_pod.base_cpu + served * spec.per_pod.cpu_per_unit;
        // The fewest pods that serve the load (a queue: its arrival rate) at full capacity; a
        // workload no autoscaler scales needs its replicas whatever the load.
        let autoscaled = world.autoscaled[w];
        let floor = if autoscaled {
            0
        } else {
            world.workloads[w].desired.max(0) as usize
        };
        // A new pod's requests: the template's, or a vertical recommendation's once applied.
        let mut per_pod = world.workloads[w].pod_requests.clone();
        per_pod.pods = 1;
        demand.push((per_pod, (needed.ceil() as usize).max(floor)));
        classes.push(world.bound.workload(w));
        workloads.push(WorkloadSample {
            load: r3(load),
            needed: r3(needed),
            desired: world.workloads[w].desired,
            ready: ready_pods,
            backlog: r3(world.workloads[w].backlog),
        });
    }
    // Batch pods that have arrived and not finished are demand too; so is what static pods use.
    for p in world.live_batch.iter().map(|&p| &world.pods[p]) {
        demand.push((p.requests.clone(), 1));
        classes.push(match p.owner {
            Owner::Batch(b) => world.bound.batch(b),
            Owner::Workload(w) => world.bound.workload(w),
        });
        if p.node.is_some() {
            used_cpu += p.requests.cpu_millis as f64;
        }
    }
    // Static nodes (no NodePool) are paid whatever the policy, so any plan costs at least their
    // price; and at least the demand's fractional packing. The larger of the two is a valid bound.
    let static_cost: f64 = world
        .live_nodes
        .iter()
        .map(|&n| &world.nodes[n])
        .filter(|n| n.node_pool.is_none())
        .map(|n| n.price)
        .sum();
    // Each pod priced only where some NodePool may launch a node for it.
    let lb = world.bound.per_hour(&demand, &classes).max(static_cost);
    let dt_h = world.sc.settings.sample_seconds / 3600.0;
    // The bound is integrated over the same steps as the samples (left rule).
    let lower_bound_cost = (now < world.end).then(|| lb * dt_h.min(secs(world.end - now) / 3600.0));
    let pct = |a: i64, b: i64| {
        if b > 0 {
            100.0 * a as f64 / b as f64
        } else {
            0.0
        }
    };
    let row = SampleRow {
        t_seconds: secs(now),
        nodes,
        nodes_ready: ready,
        cost_per_hour: r3(cost),
        lower_bound_per_hour: r3(lb),
        pending_pods: world.pending.len(),
        cpu_allocation: r3(pct(req.cpu_millis, alloc.cpu_millis)),
        cpu_usage: r3(if alloc.cpu_millis > 0 {
            100.0 * used_cpu / alloc.cpu_millis as f64
        } else {
            0.0
        }),
        memory_allocation: r3(pct(req.memory_bytes, alloc.memory_bytes)),
        workloads,
    };
    Sample {
        row,
        lower_bound_cost,
    }
}

fn r3(x: f64) -> f64 {
    r(x, 3)
}

/// Node-hours and $ of every node the run launched, by instance type, up to the end.
fn hours_by_type(world: &World) -> (BTreeMap<String, f64>, BTreeMap<String, f64>) {
    let end = world.end;
    let mut node_hours: BTreeMap<String, f64> = BTreeMap::new();
    let mut cost_by_type: BTreeMap<String, f64> = BTreeMap::new();
    for n in &world.nodes {
        let stop = n.terminated.unwrap_or(end).min(end);
        let hours = secs(stop - n.created).max(0.0) / 3600.0;
        *node_hours.entry(n.instance_type.clone()).or_insert(0.0) += hours;
        *cost_by_type.entry(n.instance_type.clone()).or_insert(0.0) += hours * n.price;
    }
    (node_hours, cost_by_type)
}

/// The summary of a run that has come to its end.
pub(crate) fn finish(world: &World) -> Summary {
    let end = world.end;
    let (node_hours, cost_by_type) = hours_by_type(world);
    let cost: f64 = cost_by_type.values().sum();
    let rec = &world.rec;
    let alloc: Vec<f64> = rec
        .series
        .iter()
        .filter(|s| s.nodes_ready > 0)
        .map(|s| s.cpu_allocation)
        .collect();
    let usage: Vec<f64> = rec
        .series
        .iter()
        .filter(|s| s.nodes_ready > 0)
        .map(|s| s.cpu_usage)
        .collect();
    let workloads = world
        .sc
        .workloads
        .iter()
        .enumerate()
        .map(|(w, spec)| {
            let st = &world.workloads[w];
            let ready: Vec<f64> = rec
                .series
                .iter()
                .map(|s| s.workloads[w].ready as f64)
                .collect();
            WorkloadSummary {
                name: spec.name.clone(),
                under_provision_minutes: r(secs(st.under_ms) / 60.0, 2),
                unserved: r3(match spec.kind {
                    WorkloadKind::Service => st.unserved,
                    WorkloadKind::Queue => st.backlog,
                }),
                rescales: st.rescales,
                mean_ready: r3(mean(&ready)),
                max_desired: rec
                    .series
                    .iter()
                    .map(|s| s.workloads[w].desired)
                    .max()
                    .unwrap_or(0),
                forecast: st.forecast.summary(),
            }
        })
        .collect::<Vec<_>>();
    let lb = rec.lower_bound_cost;

    Summary {
        scenario: world.sc.name.clone(),
        variant: world.sc.variant.clone(),
        description: world.sc.description.clone(),
        hours: r3(secs(end) / 3600.0),
        cost: r(cost, 4),
        lower_bound_cost: r(lb, 4),
        cost_over_lower_bound: if lb > 0.0 { r(cost / lb, 4) } else { 0.0 },
        node_hours_by_type: node_hours.into_iter().map(|(k, v)| (k, r(v, 4))).collect(),
        cost_by_type: cost_by_type
            .into_iter()
            .map(|(k, v)| (k, r(v, 4)))
            .collect(),
        nodes_launched: rec.nodes_launched,
        nodes_terminated: rec.nodes_terminated,
        peak_nodes: rec.series.iter().map(|s| s.nodes).max().unwrap_or(0),
        cpu_allocation_mean: r(mean(&alloc), 2),
        cpu_allocation_p95: r(percentile(&alloc, 0.95), 2),
        cpu_usage_mean: r(mean(&usage), 2),
        cpu_usage_p95: r(percentile(&usage, 0.95), 2),
        pending_pod_seconds: r(rec.waits.iter().sum(), 2),
        pod_wait_p95_seconds: r(percentile(&rec.waits, 0.95), 2),
        pod_wait_max_seconds: r(rec.waits.iter().copied().fold(0.0, f64::max), 2),
        pods_created: world.pods.len(),
        pods_never_scheduled: rec.never_scheduled,
        under_provision_minutes: r(workloads.iter().map(|w| w.under_provision_minutes).sum(), 2),
        scale_events: rec.scale_events,
        evictions: rec.evictions,
        disruptions: rec.disruptions.len(),
        batch_pods_finished: rec.batch_finished,
        workloads,
        disruption_log: rec
            .disruptions
            .iter()
            .map(|(t, m, n, s)| DisruptionEntry {
                t_seconds: *t,
                method: m.clone(),
                nodes: *n,
                savings_per_hour: r(*s, 4),
            })
            .collect(),
        pending_reasons: rec.pending_reasons.by_reason.clone(),
        problems: Vec::new(),
        warnings: world.sc.warnings.clone(),
        errors: rec.errors.clone(),
        vertical: Vec::new(),
        vertical_comparison: None,
        spot_interruptions: world.spot.as_ref().map(|s| {
            let mut summary = s.report.clone();
            summary.displaced_pod_seconds = r(summary.displaced_pod_seconds, 2);
            summary
        }),
    }
}

/// One variant's results.
pub struct VariantResult {
    pub summary: Summary,
    /// CPU seconds per phase of the engine (not deterministic; not in the report files).
    pub phase_seconds: BTreeMap<&'static str, f64>,
    /// How often each phase ran (not in the report files either).
    pub phase_counts: BTreeMap<&'static str, u64>,
    pub series: Vec<SampleRow>,
    pub workload_names: Vec<String>,
}

/// The whole report of a scenario (all variants).
#[derive(Serialize)]
pub struct ReportFile<'a> {
    pub scenario: &'a str,
    pub variants: Vec<&'a Summary>,
}

pub fn json(results: &[VariantResult]) -> String {
    let file = ReportFile {
        scenario: results
            .first()
            .map(|r| r.summary.scenario.as_str())
            .unwrap_or(""),
        variants: results.iter().map(|r| &r.summary).collect(),
    };
    serde_json::to_string_pretty(&file).expect("reports serialize") + "\n"
}

pub fn summary_csv(results: &[VariantResult]) -> String {
    let mut out = String::from(
        "variant,cost,lower_bound_cost,cost_over_lower_bound,peak_nodes,nodes_launched,cpu_allocation_mean,cpu_allocation_p95,cpu_usage_mean,cpu_usage_p95,pending_pod_seconds,pod_wait_p95_seconds,pod_wait_max_seconds,under_provision_minutes,scale_events,evictions,disruptions\n",
    );
    for v in results {
        let s = &v.summary;
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            s.variant,
            s.cost,
            s.lower_bound_cost,
            s.cost_over_lower_bound,
            s.peak_nodes,
            s.nodes_launched,
            s.cpu_allocation_mean,
            s.cpu_allocation_p95,
            s.cpu_usage_mean,
            s.cpu_usage_p95,
            s.pending_pod_seconds,
            s.pod_wait_p95_seconds,
            s.pod_wait_max_seconds,
            s.under_provision_minutes,
            s.scale_events,
            s.evictions,
            s.disruptions
        );
    }
    out
}

pub fn series_csv(v: &VariantResult) -> String {
    let mut out = String::from(
        "t_seconds,nodes,nodes_ready,cost_per_hour,lower_bound_per_hour,pending_pods,cpu_allocation,cpu_usage,memory_allocation",
    );
    for name in &v.workload_names {
        let _ = write!(
            out,
            ",{name}_load,{name}_needed,{name}_desired,{name}_ready,{name}_backlog"
        );
    }
    out.push('\n');
    for s in &v.series {
        let _ = write!(
            out,
            "{},{},{},{},{},{},{},{},{}",
            s.t_seconds,
            s.nodes,
            s.nodes_ready,
            s.cost_per_hour,
            s.lower_bound_per_hour,
            s.pending_pods,
            s.cpu_allocation,
            s.cpu_usage,
            s.memory_allocation
        );
        for w in &s.workloads {
            let _ = write!(
                out,
                ",{},{},{},{},{}",
                w.load, w.needed, w.desired, w.ready, w.backlog
            );
        }
        out.push('\n');
    }
    out
}

/// A fixed-width table for the terminal.
pub fn terminal_table(results: &[VariantResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:>10} {:>10} {:>7} {:>6} {:>8} {:>8} {:>9} {:>9} {:>8} {:>7}",
        "variant",
        "cost $",
        "bound $",
        "×bound",
        "nodes",
        "cpu avg%",
        "cpu p95%",
        "wait p95",
        "wait max",
        "under m",
        "evict"
    );
    for v in results {
        let s = &v.summary;
        let _ = writeln!(
            out,
            "{:<24} {:>10.2} {:>10.2} {:>7.3} {:>6} {:>8.1} {:>8.1} {:>8.1}s {:>8.1}s {:>8.1} {:>7}",
            s.variant,
            s.cost,
            s.lower_bound_cost,
            s.cost_over_lower_bound,
            s.peak_nodes,
            s.cpu_allocation_mean,
            s.cpu_allocation_p95,
            s.pod_wait_p95_seconds,
            s.pod_wait_max_seconds,
            s.under_provision_minutes,
            s.evictions
        );
    }
    out
}

/// The vertical recommendations of every variant as a fixed-width table for the terminal; empty
/// when no variant has a `VerticalAutoscaler`.
pub fn vertical_table(results: &[VariantResult]) -> String {
    if results.iter().all(|v| v.summary.vertical.is_empty()) {
        return String::new();
    }
    let applied = results
        .iter()
        .any(|v| v.summary.vertical_comparison.is_some());
    let mut out = crate::vertical_report::table_header(applied);
    for v in results {
        crate::vertical_report::table_rows(&v.summary.variant, &v.summary.vertical, &mut out);
    }
    let summaries: Vec<&Summary> = results.iter().map(|v| &v.summary).collect();
    out.push_str(&crate::vertical_compare::table(&summaries));
    out
}

/// The spot interruptions of every variant as a fixed-width table for the terminal; empty when
/// no variant has `settings.spotInterruptions`.
pub fn interruption_table(results: &[VariantResult]) -> String {
    if results
        .iter()
        .all(|v| v.summary.spot_interruptions.is_none())
    {
        return String::new();
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:>13} {:>14} {:>16}",
        "spot interruptions", "interruptions", "pods displaced", "displaced pod·s"
    );
    for v in results {
        let Some(s) = &v.summary.spot_interruptions else {
            continue;
        };
        let _ = writeln!(
            out,
            "{:<24} {:>13} {:>14} {:>16.1}",
            v.summary.variant, s.interruptions, s.pods_displaced, s.displaced_pod_seconds
        );
    }
    out
}
