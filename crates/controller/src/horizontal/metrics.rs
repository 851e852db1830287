//! The reconciler's own Prometheus metrics (served on `/metrics`), prefixed
//! `ballast_horizontal_`.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::metric_labels::Labels;

/// Counters, gauges and histograms of the horizontal reconciler.
#[derive(Clone)]
pub struct Metrics {
    /// Reconciles by outcome: `ok`, `failed` (the decision reported an error: target, selector,
    /// metrics, rescale), `error` (the controller could not finish: status write...), `skipped`
    /// (woken by a watch event before the object was due, e.g. by its own status write).
    pub reconciles: Family<Labels, Counter>,
    /// Decisions by path (`Normal`, `FailedGetScale`, `MetricsFailed`, ...).
    pub decisions: Family<Labels, Counter>,
    /// Scale writes by direction (`up`, `down`) and result (`ok`, `error`).
    pub rescales: Family<Labels, Counter>,
    /// Events published, by reason; and failures to publish.
    pub events: Family<Labels, Counter>,
    pub event_errors: Counter,
    /// Status patches sent (only when the status changed).
    pub status_patches: Counter,
    /// Decisions whose status was not written because only time moved (see `persist`).
    pub status_writes_skipped: Counter,
    /// Seconds from the start of a reconcile to its end (API reads, metrics, decision, writes).
    pub reconcile_seconds: Histogram,
    /// Seconds a periodic sync ran after it was due (how well the sync period is kept).
    pub sync_delay_seconds: Histogram,
    /// Seconds spent per step of a reconcile: `scale` (discovery + GET scale), `metrics`,
    /// `decide`, `rescale`, `status`, `events`.
    pub step_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    /// Event-source reads of the activation poll (one per distinct source per tick), by result
    /// (`ok`, `error`).
    pub activation_reads: Family<Labels, Counter>,
    /// Objects resting at zero woken by the activation poll (a decision asked at once).
    pub activation_wakes: Counter,
    /// Objects resting at zero or idle replicas that the activation poll looks after.
    pub resting: Gauge<i64, AtomicI64>,
    /// Autoscalers the controller tracks.
    pub objects: Gauge<i64, AtomicI64>,
    /// Pods in the pod index.
    pub pods: Gauge<i64, AtomicI64>,
}

impl Metrics {
    /// New metrics, registered in `registry` under `ballast_horizontal_`.
    pub fn new(registry: &mut Registry) -> Arc<Metrics> {
        let m = Metrics {
            reconciles: Family::default(),
            decisions: Family::default(),
            rescales: Family::default(),
            events: Family::default(),
            event_errors: Counter::default(),
            status_patches: Counter::default(),
            status_writes_skipped: Counter::default(),
            reconcile_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            sync_delay_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            step_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            }),
            activation_reads: Family::default(),
            activation_wakes: Counter::default(),
            resting: Gauge::default(),
            objects: Gauge::default(),
            pods: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("ballast_horizontal");
        r.register(
            "reconciles",
            "Reconciles by outcome (ok, failed, error, skipped)",
            m.reconciles.clone(),
        );
        r.register("decisions", "Decisions by path", m.decisions.clone());
        r.register(
            "rescales",
            "Scale subresource writes by direction and result",
            m.rescales.clone(),
        );
        r.register(
            "events",
            "Kubernetes events published, by reason",
            m.events.clone(),
        );
        r.register(
            "event_errors",
            "Kubernetes events that could not be published",
            m.event_errors.clone(),
        );
        r.register(
            "status_patches",
            "Status patches sent",
            m.status_patches.clone(),
        );
        r.register(
            "status_writes_skipped",
            "Decisions whose status was not written because only time moved",
            m.status_writes_skipped.clone(),
        );
        r.register(
            "reconcile_seconds",
            "Duration of one reconcile",
            m.reconcile_seconds.clone(),
        );
        r.register(
            "sync_delay_seconds",
            "Delay of periodic syncs past their due time",
            m.sync_delay_seconds.clone(),
        );
        r.register(
            "step_seconds",
            "Duration of the steps of a reconcile",
            m.step_seconds.clone(),
        );
        r.register(
            "activation_reads",
            "Event-source reads of the activation poll, by result",
            m.activation_reads.clone(),
        );
        r.register(
            "activation_wakes",
            "Objects at rest woken by the activation poll",
            m.activation_wakes.clone(),
        );
        r.register(
            "resting",
            "Objects at zero or idle replicas under the activation poll",
            m.resting.clone(),
        );
        r.register(
            "objects",
            "HorizontalAutoscalers tracked",
            m.objects.clone(),
        );
        r.register("pods", "Pods in the pod index", m.pods.clone());
        Arc::new(m)
    }

    pub(crate) fn step(&self, step: &'static str, started: std::time::Instant) {
        self.step_seconds
            .get_or_create(&vec![("step", step.to_owned())])
            .observe(started.elapsed().as_secs_f64());
    }

    pub(crate) fn label(key: &'static str, value: impl Into<String>) -> Labels {
        crate::metric_labels::label(key, value)
    }
}
