//! What a run counts while it goes: the time series, pod waits, events by kind, errors. The
//! cluster fills it as things happen; the report reads it at the end.

use crate::state::{Millis, SimPod, secs};
use serde::Serialize;
use std::collections::BTreeMap;

/// One sample of the time series.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SampleRow {
    pub t_seconds: f64,
    pub nodes: usize,
    pub nodes_ready: usize,
    /// $ per hour of every live node.
    pub cost_per_hour: f64,
    /// Lower bound of $ per hour for the demand at this instant.
    pub lower_bound_per_hour: f64,
    pub pending_pods: usize,
    /// Requested ÷ allocatable CPU over ready nodes, percent.
    pub cpu_allocation: f64,
    /// Used ÷ allocatable CPU over ready nodes, percent.
    pub cpu_usage: f64,
    pub memory_allocation: f64,
    pub workloads: Vec<WorkloadSample>,
}

/// One workload in a sample.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSample {
    pub load: f64,
    /// Replicas the load needs at 100% of a pod's capacity.
    pub needed: f64,
    pub desired: i32,
    pub ready: usize,
    pub backlog: f64,
}

/// One sample of the time series, with what it adds to the run's lower bound of cost.
pub(crate) struct Sample {
    pub row: SampleRow,
    /// $ the demand of this sample's step costs at least (None for the sample at the end).
    pub lower_bound_cost: Option<f64>,
}

/// Accumulators filled while the simulation runs.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    pub series: Vec<SampleRow>,
    /// Seconds each pod waited between creation and binding (till the end for pods never bound).
    pub waits: Vec<f64>,
    pub never_scheduled: usize,
    pub scale_events: u64,
    pub evictions: u64,
    pub nodes_launched: u64,
    pub nodes_terminated: u64,
    pub batch_finished: u64,
    /// (t seconds, method, nodes, savings $/h)
    pub disruptions: Vec<(f64, String, usize, f64)>,
    pub lower_bound_cost: f64,
    pub errors: Vec<String>,
    /// Why the provisioner left pods pending, grouped by reason.
    pub pending_reasons: crate::outcome::PendingReasons,
    /// CPU seconds spent per phase (for benchmarks; not part of the report, which must be
    /// byte-identical across runs).
    pub phase_seconds: BTreeMap<&'static str, f64>,
    /// How often each phase ran (a disruption pass counts as "disrupt pass").
    pub phase_counts: BTreeMap<&'static str, u64>,
}

impl Recorder {
    /// Adds a sample to the series.
    pub(crate) fn add_sample(&mut self, sample: Sample) {
        if let Some(cost) = sample.lower_bound_cost {
            self.lower_bound_cost += cost;
        }
        self.series.push(sample.row);
    }

    /// Notes an error at virtual time `now` (the report lists them).
    pub(crate) fn error(&mut self, now: Millis, message: impl std::fmt::Display) {
        self.errors.push(format!("t={}s: {message}", secs(now)));
    }

    /// Counts how long pod `pod`, leaving or still there at the end, waited for a node.
    pub(crate) fn pod_done(&mut self, pod: &SimPod, now: Millis) {
        match pod.bound_at {
            Some(b) => self.waits.push(secs(b - pod.created)),
            None => {
                self.waits.push(secs(now - pod.created));
                self.never_scheduled += 1;
            }
        }
    }
}
