//! The vertical recommender's (and updater's) own Prometheus metrics (served on `/metrics`), prefixed
//! `ballast_vertical_`.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::metric_labels::Labels;

/// Counters and gauges of the vertical recommender.
#[derive(Clone)]
pub struct Metrics {
    /// Passes over every autoscaler.
    pub passes: Counter,
    /// Seconds one pass took.
    pub pass_seconds: Histogram,
    /// Usage samples counted (`live`: metrics API, `history`: Prometheus).
    pub samples: Family<Labels, Counter>,
    /// OOM kills counted.
    pub oom_kills: Counter,
    /// Status patches sent (only when the status changed).
    pub status_patches: Counter,
    /// Checkpoints written, and failures to write one.
    pub checkpoints: Counter,
    pub checkpoint_errors: Counter,
    /// Events published, by reason; and failures to publish.
    pub events: Family<Labels, Counter>,
    pub event_errors: Counter,
    /// Autoscalers tracked, and containers with a usage history.
    pub objects: Gauge<i64, AtomicI64>,
    pub containers: Gauge<i64, AtomicI64>,
    /// Passes of the updater over every autoscaler.
    pub updater_passes: Counter,
    /// Evictions asked, by `cause` (`recommendation`: the pod's requests; `resize`: an in-place
    /// resize refused or overdue) and `result` (`evicted`, `blocked` by a PDB, `failed`).
    pub evictions: Family<Labels, Counter>,
    /// In-place resizes asked, by `result` (`resized`, `refused`: the API server would not,
    /// `failed`).
    pub resizes: Family<Labels, Counter>,
}

impl Metrics {
    /// New metrics, registered in `registry` under `ballast_vertical_`.
    pub fn new(registry: &mut Registry) -> Arc<Metrics> {
        let m = Metrics {
            passes: Counter::default(),
            pass_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            samples: Family::default(),
            oom_kills: Counter::default(),
            status_patches: Counter::default(),
            checkpoints: Counter::default(),
            checkpoint_errors: Counter::default(),
            events: Family::default(),
            event_errors: Counter::default(),
            objects: Gauge::default(),
            containers: Gauge::default(),
            updater_passes: Counter::default(),
            evictions: Family::default(),
            resizes: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("ballast_vertical");
        r.register("passes", "Passes over every autoscaler", m.passes.clone());
        r.register(
            "pass_seconds",
            "Seconds one pass took",
            m.pass_seconds.clone(),
        );
        r.register(
            "samples",
            "Usage samples counted, by source",
            m.samples.clone(),
        );
        r.register("oom_kills", "OOM kills counted", m.oom_kills.clone());
        r.register(
            "status_patches",
            "Status patches sent",
            m.status_patches.clone(),
        );
        r.register(
            "checkpoints_written",
            "Checkpoints written",
            m.checkpoints.clone(),
        );
        r.register(
            "checkpoint_errors",
            "Checkpoint writes that failed",
            m.checkpoint_errors.clone(),
        );
        r.register("events", "Events published, by reason", m.events.clone());
        r.register(
            "event_errors",
            "Events that could not be published",
            m.event_errors.clone(),
        );
        r.register("objects", "Autoscalers tracked", m.objects.clone());
        r.register(
            "containers",
            "Containers with a usage history",
            m.containers.clone(),
        );
        r.register(
            "updater_passes",
            "Passes of the updater over every autoscaler",
            m.updater_passes.clone(),
        );
        r.register(
            "evictions",
            "Evictions asked by the updater, by cause and result",
            m.evictions.clone(),
        );
        r.register(
            "resizes",
            "In-place resizes asked by the updater, by result",
            m.resizes.clone(),
        );
        Arc::new(m)
    }

    /// A one-label set.
    pub fn label(key: &'static str, value: &str) -> Labels {
        crate::metric_labels::label(key, value)
    }
}
