//! From a [`Snapshot`] to the compact, pre-parsed form the decision core runs on.
//!
//! Everything that allocates or parses happens here, once: quantities become integer
//! milli-units, times become Unix milliseconds, samples are lined up with the pods by position,
//! per-pod requests are summed per metric, behavior defaults are filled in, cron expressions and
//! time zones are parsed. [`crate::decide`] then only does arithmetic over these arrays.

mod metric;

use crate::snapshot::{ConditionStatus, PodPhase, Snapshot, SnapshotError};
use ballast_api::common::quantity_value;
use ballast_api::horizontal::{
    FallbackBehavior, HorizontalAutoscaler, MetricSourceType, MetricSpec, MetricTarget,
    MetricTargetType, ScalingPolicyType, ScalingRules, SelectPolicy,
};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use metric::prepare_metric;
pub(crate) use metric::value_target;
use std::collections::HashMap;

/// Unix time in milliseconds.
pub type Millis = i64;

pub(crate) fn millis(t: &Timestamp) -> Millis {
    t.as_millisecond()
}

/// Default window of a per-pod sample when the snapshot gives none.
pub const DEFAULT_SAMPLE_WINDOW_MS: Millis = 30_000;

/// The autoscaler's spec, checked and with every default applied.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    pub min: i32,
    pub max: i32,
    pub behavior: Option<Behavior>,
    pub tol_up: f64,
    pub tol_down: f64,
    pub idle: Option<i32>,
    pub cooldown_ms: Millis,
    pub initial_cooldown_ms: Millis,
    pub fallback: Option<FallbackView>,
    pub paused: bool,
    pub paused_replicas: Option<i32>,
    /// KEDA-style activation (0/idle ↔ min) applies: idle replicas are set, or minReplicas is 0
    /// with at least one Prometheus or Event metric.
    pub activation_mode: bool,
    /// The first problem found in the spec (field, message); the decision then does nothing.
    pub error: Option<(String, String)>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct FallbackView {
    pub threshold: i32,
    pub replicas: i32,
    pub behavior: FallbackBehavior,
}

/// Rate policy, with its period in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Policy {
    pub percent: bool,
    pub value: i32,
    pub period_ms: Millis,
}

/// One direction of `behavior`, defaults applied.
#[derive(Clone, Debug)]
pub(crate) struct Rules {
    pub window_ms: Millis,
    pub select: SelectPolicy,
    pub policies: Vec<Policy>,
}

#[derive(Clone, Debug)]
pub(crate) struct Behavior {
    pub up: Rules,
    pub down: Rules,
}

impl Rules {
    pub(crate) fn longest_period_ms(&self) -> Millis {
        self.policies.iter().map(|p| p.period_ms).max().unwrap_or(0)
    }
}

/// The target's scale.
#[derive(Clone, Debug)]
pub(crate) struct ScaleView {
    pub spec_replicas: i32,
    pub status_replicas: i32,
    pub error: Option<String>,
    pub selector: SelectorCheck,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum SelectorCheck {
    Ok,
    Empty,
    Invalid(String),
    Ambiguous(String),
}

/// A pod in numbers, for [`Prepared::set_pods`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PodFacts {
    pub phase: PodPhase,
    /// The Ready condition: (ready, last transition), if the pod has one.
    pub ready: Option<(bool, Millis)>,
    pub start: Option<Millis>,
}

/// Readiness as the replica calculation sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Ready {
    pub status: ConditionStatus,
    pub since: Millis,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct PodView {
    pub phase: PodPhase,
    pub deleting: bool,
    pub ready: Option<Ready>,
    pub start: Option<Millis>,
}

/// One pod sample, in milli-units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Sample {
    pub value: i64,
    pub at: Millis,
    pub window: Millis,
}

/// Per-pod samples lined up with `Prepared::pods`.
#[derive(Clone, Debug)]
pub(crate) struct PerPod {
    pub samples: Vec<Option<Sample>>,
    /// Samples naming pods that are not in the pod list (still counted, as upstream does).
    pub extra: Vec<Sample>,
    /// Per-pod requests in milli-units (Utilization targets only), or the first error met.
    pub requests: Result<Vec<i64>, String>,
}

#[derive(Clone, Debug)]
pub(crate) enum Reading {
    PerPod(PerPod),
    Value(i64),
    Error(String),
    /// Cron sources: nothing to read.
    None,
}

/// What kind of computation a metric takes.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    /// Resource or ContainerResource.
    Resource {
        cpu: bool,
    },
    Pods,
    /// Object, External, Prometheus and non-cron Event sources: one value.
    Single {
        source: MetricSourceType,
    },
    Cron(Box<CronView>),
}

#[derive(Clone, Debug)]
pub(crate) struct CronView {
    pub start: croner::Cron,
    pub end: croner::Cron,
    pub tz: jiff::tz::TimeZone,
    pub desired: i32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Target {
    Utilization(i32),
    AverageValue(i64),
    Value(i64),
}

#[derive(Clone, Debug)]
pub(crate) struct MetricView {
    pub kind: Kind,
    /// The target, or why the spec gives none usable.
    pub target: Result<Target, String>,
    /// Activation threshold in milli-units (Prometheus and Event; 0 otherwise).
    pub activation: i64,
    /// Stable key of the metric (for failure counts): `s<index>-<source>[-<name>]`.
    pub key: String,
    /// Upstream-style description (`cpu resource utilization (percentage of request)`).
    pub name: String,
    pub reading: Reading,
}

/// The stored history in compact form. Also the history a decision hands back.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// Unstabilized recommendations: (time, replicas).
    pub recommendations: Vec<(Millis, i32)>,
    /// Replicas added: (time, change).
    pub scale_up_events: Vec<(Millis, i32)>,
    /// Replicas removed: (time, change).
    pub scale_down_events: Vec<(Millis, i32)>,
    /// Last time a metric was active (activation mode).
    pub last_active: Option<Millis>,
    /// Consecutive failures per metric, lined up with `spec.metrics`.
    pub failures: Vec<i32>,
}

impl History {
    pub(crate) fn copy_from(&mut self, other: &History) {
        self.recommendations.clear();
        self.recommendations
            .extend_from_slice(&other.recommendations);
        self.scale_up_events.clear();
        self.scale_up_events
            .extend_from_slice(&other.scale_up_events);
        self.scale_down_events.clear();
        self.scale_down_events
            .extend_from_slice(&other.scale_down_events);
        self.last_active = other.last_active;
        self.failures.clear();
        self.failures.extend_from_slice(&other.failures);
    }
}

/// Controller settings in milliseconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConfigView {
    pub tolerance: f64,
    pub cpu_init_ms: Millis,
    pub readiness_delay_ms: Millis,
    pub downscale_window_ms: Millis,
}

/// A snapshot made ready for [`crate::decide`]: parsed once, decided many times.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub(crate) object: HorizontalAutoscaler,
    /// The metrics the decision uses (the 80% CPU default when the spec lists none).
    pub(crate) metric_specs: Vec<MetricSpec>,
    pub(crate) now: Millis,
    pub(crate) created: Option<Millis>,
    pub(crate) spec: Spec,
    pub(crate) scale: ScaleView,
    pub(crate) pods: Vec<PodView>,
    pub(crate) metrics: Vec<MetricView>,
    pub(crate) history: History,
    pub(crate) config: ConfigView,
    /// `spec.predictive` unless absent or `Off`.
    pub(crate) prediction: Option<crate::predict::view::PredictionView>,
}

impl Prepared {
    /// The decision time (Unix milliseconds, whole seconds).
    pub fn now(&self) -> Millis {
        self.now
    }

    /// Moves the decision time (the simulator steps a prepared snapshot through virtual time).
    /// Taken to the whole second, like the snapshot's `now`.
    pub fn set_now(&mut self, now: Millis) {
        self.now = now - now.rem_euclid(1000);
    }

    /// The history the next decision starts from.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Replaces the stored history (e.g. with the one a previous decision handed back).
    pub fn set_history(&mut self, history: &History) {
        self.history.copy_from(history);
        self.history.failures.resize(self.metrics.len(), 0);
    }

    /// Replaces the scale's replica counts (the simulator applies its own decisions).
    pub fn set_replicas(&mut self, spec_replicas: i32, status_replicas: i32) {
        self.scale.spec_replicas = spec_replicas;
        self.scale.status_replicas = status_replicas;
    }

    /// Adds one demand to the prediction history (what a previous decision's
    /// [`crate::Outcome::demand`] said); nothing without `spec.predictive`. The simulator's way
    /// of keeping the history without building a [`Snapshot`].
    pub fn record_demand(&mut self, at: Millis, replicas: f64) {
        if let Some(view) = self.prediction.as_mut() {
            view.series.record(at, replicas);
        }
    }

    /// Replaces the pods with numeric facts (the simulator's way of observing its pods without
    /// building a [`Snapshot`]). Per-pod readings keep their length in step: call
    /// [`Prepared::set_pod_sample`] afterwards for each pod that has a sample.
    pub fn set_pods(&mut self, pods: &[PodFacts]) {
        self.pods.clear();
        self.pods.extend(pods.iter().map(|p| PodView {
            phase: p.phase,
            deleting: false,
            ready: p.ready.map(|(ready, since)| Ready {
                status: if ready {
                    ConditionStatus::True
                } else {
                    ConditionStatus::False
                },
                since,
            }),
            start: p.start,
        }));
        for m in &mut self.metrics {
            if let Reading::PerPod(pp) = &mut m.reading {
                pp.samples.clear();
                pp.samples.resize(pods.len(), None);
                pp.extra.clear();
                if let Ok(req) = &mut pp.requests {
                    req.clear();
                    req.resize(pods.len(), 0);
                }
            }
        }
    }

    /// Sets pod `pod`'s request of the resource per-pod metric `metric` reads (milli-units; used
    /// by Utilization targets). Ignored for metrics that do not read per-pod samples.
    pub fn set_pod_request(&mut self, metric: usize, pod: usize, request_milli: i64) {
        if let Some(MetricView {
            reading: Reading::PerPod(PerPod {
                requests: Ok(req), ..
            }),
            ..
        }) = self.metrics.get_mut(metric)
            && let Some(slot) = req.get_mut(pod)
        {
            *slot = request_milli;
        }
    }

    /// Sets pod `pod`'s sample of per-pod metric `metric` (milli-units, taken at `at`, averaged
    /// over `window`). Ignored for metrics that do not read per-pod samples.
    pub fn set_pod_sample(
        &mut self,
        metric: usize,
        pod: usize,
        value_milli: i64,
        at: Millis,
        window: Millis,
    ) {
        if let Some(MetricView {
            reading: Reading::PerPod(pp),
            ..
        }) = self.metrics.get_mut(metric)
            && let Some(slot) = pp.samples.get_mut(pod)
        {
            *slot = Some(Sample {
                value: value_milli,
                at,
                window,
            });
        }
    }

    /// Sets the single value read for metric `metric` (Object, External, Prometheus, Event).
    pub fn set_value(&mut self, metric: usize, value_milli: i64) {
        if let Some(m) = self.metrics.get_mut(metric)
            && matches!(m.reading, Reading::Value(_))
        {
            m.reading = Reading::Value(value_milli);
        }
    }

    /// `namespace/name` of the autoscaler.
    pub fn key(&self) -> String {
        let m = &self.object.metadata;
        format!(
            "{}/{}",
            m.namespace.as_deref().unwrap_or("default"),
            m.name.as_deref().unwrap_or("")
        )
    }
}

/// Checks and compacts a snapshot.
pub fn prepare(snapshot: &Snapshot) -> Result<Prepared, SnapshotError> {
    let object = &snapshot.autoscaler;
    let now_ms = millis(&snapshot.now);
    let now = now_ms - now_ms.rem_euclid(1000);

    // Pods, indexed by name.
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(snapshot.pods.len());
    let mut pods = Vec::with_capacity(snapshot.pods.len());
    for (i, pod) in snapshot.pods.iter().enumerate() {
        if pod.name.is_empty() {
            return Err(SnapshotError::invalid(
                format!("pods[{i}].name"),
                "must not be empty",
            ));
        }
        if index.insert(pod.name.as_str(), i).is_some() {
            return Err(SnapshotError::invalid(
                format!("pods[{i}].name"),
                format!("pod {:?} is listed twice", pod.name),
            ));
        }
        pods.push(PodView {
            phase: pod.phase,
            deleting: pod.deleting,
            ready: pod.ready.as_ref().map(|r| Ready {
                status: r.status,
                since: millis(&r.last_transition_time),
            }),
            start: pod.start_time.as_ref().map(millis),
        });
    }

    let c = &snapshot.config;
    if !(c.tolerance.is_finite() && c.tolerance >= 0.0) {
        return Err(SnapshotError::invalid(
            "config.tolerance",
            "must be a number >= 0",
        ));
    }
    for (field, v) in [
        (
            "config.cpuInitializationPeriodSeconds",
            c.cpu_initialization_period_seconds,
        ),
        (
            "config.initialReadinessDelaySeconds",
            c.initial_readiness_delay_seconds,
        ),
        (
            "config.downscaleStabilizationSeconds",
            c.downscale_stabilization_seconds,
        ),
    ] {
        if !(0..=86_400 * 365).contains(&v) {
            return Err(SnapshotError::invalid(
                field,
                "must be between 0 and one year",
            ));
        }
    }
    let config = ConfigView {
        tolerance: c.tolerance,
        cpu_init_ms: c.cpu_initialization_period_seconds * 1000,
        readiness_delay_ms: c.initial_readiness_delay_seconds * 1000,
        downscale_window_ms: c.downscale_stabilization_seconds * 1000,
    };

    let metric_specs = effective_metrics(object);
    if snapshot.metrics.len() > metric_specs.len() {
        return Err(SnapshotError::invalid(
            format!("metrics[{}]", metric_specs.len()),
            format!(
                "{} readings for {} metrics in spec.metrics of {}",
                snapshot.metrics.len(),
                metric_specs.len(),
                object_label(object)
            ),
        ));
    }

    let mut spec = prepare_spec(object, &metric_specs, &config);
    let prediction = match crate::predict::view::from_spec(
        object.spec.predictive.as_ref(),
        object.spec.sync_period_seconds(),
        &snapshot.demand_history,
        |sample| millis(&sample.time),
    ) {
        Ok(view) => view,
        Err(problem) => {
            spec.error.get_or_insert(problem);
            None
        }
    };

    let mut metrics = Vec::with_capacity(metric_specs.len());
    for (i, ms) in metric_specs.iter().enumerate() {
        metrics.push(prepare_metric(i, ms, snapshot, &index)?);
    }

    let scale = ScaleView {
        spec_replicas: snapshot.scale.spec_replicas,
        status_replicas: snapshot
            .scale
            .status_replicas
            .unwrap_or(snapshot.scale.spec_replicas),
        error: snapshot.scale.error.clone(),
        selector: if !snapshot.other_autoscalers.is_empty() {
            SelectorCheck::Ambiguous(snapshot.other_autoscalers.join(", "))
        } else {
            match crate::selector::check(&snapshot.scale.selector) {
                Ok(()) if snapshot.scale.selector.trim().is_empty() => SelectorCheck::Empty,
                Ok(()) => SelectorCheck::Ok,
                Err(e) => SelectorCheck::Invalid(e),
            }
        },
    };
    if scale.error.is_none() && (scale.spec_replicas < 0 || scale.status_replicas < 0) {
        return Err(SnapshotError::invalid(
            "scale.specReplicas",
            "replica counts must not be negative",
        ));
    }

    let history = prepare_history(object, &metrics);

    Ok(Prepared {
        object: object.clone(),
        metric_specs,
        now,
        created: object
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| millis(&t.0)),
        spec,
        scale,
        pods,
        metrics,
        history,
        config,
        prediction,
    })
}

fn object_label(o: &HorizontalAutoscaler) -> String {
    format!(
        "HorizontalAutoscaler {}/{}",
        o.metadata.namespace.as_deref().unwrap_or("default"),
        o.metadata.name.as_deref().unwrap_or("")
    )
}

/// The metrics an autoscaler's decision uses, in order: its `spec.metrics`, or one metric of 80%
/// average CPU utilization when it lists none (the HPA's default). The shell reads one value for
/// each of these, in this order.
pub fn effective_metrics(object: &HorizontalAutoscaler) -> Vec<MetricSpec> {
    if object.spec.metrics.is_empty() {
        vec![default_cpu_metric()]
    } else {
        object.spec.metrics.clone()
    }
}

fn default_cpu_metric() -> MetricSpec {
    use ballast_api::horizontal::ResourceMetricSource;
    MetricSpec {
        type_: MetricSourceType::Resource,
        resource: Some(ResourceMetricSource {
            name: "cpu".into(),
            target: MetricTarget {
                type_: MetricTargetType::Utilization,
                average_utilization: Some(80),
                ..Default::default()
            },
        }),
        ..Default::default()
    }
}

fn prepare_history(object: &HorizontalAutoscaler, metrics: &[MetricView]) -> History {
    let mut h = History {
        failures: vec![0; metrics.len()],
        ..Default::default()
    };
    let Some(stored) = object.status.as_ref().and_then(|s| s.history.as_ref()) else {
        return h;
    };
    h.recommendations = stored
        .recommendations
        .iter()
        .map(|r| (millis(&r.time.0), r.replicas))
        .collect();
    h.scale_up_events = stored
        .scale_up_events
        .iter()
        .map(|e| (millis(&e.time.0), e.change))
        .collect();
    h.scale_down_events = stored
        .scale_down_events
        .iter()
        .map(|e| (millis(&e.time.0), e.change))
        .collect();
    h.last_active = stored.last_active_time.as_ref().map(|t| millis(&t.0));
    for f in &stored.metric_failures {
        if let Some(i) = metrics.iter().position(|m| m.key == f.metric) {
            h.failures[i] = f.count.max(0);
        }
    }
    h
}

fn tolerance(q: Option<&Quantity>, field: &str, default: f64) -> Result<f64, (String, String)> {
    match q {
        None => Ok(default),
        Some(q) => match quantity_value(q) {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
            Ok(_) => Err((field.to_string(), "must be >= 0".into())),
            Err(e) => Err((field.to_string(), e.to_string())),
        },
    }
}

fn rules(
    r: Option<&ScalingRules>,
    up: bool,
    config: &ConfigView,
    field: &str,
) -> Result<Rules, (String, String)> {
    let default_policies = if up {
        vec![
            Policy {
                percent: false,
                value: 4,
                period_ms: 15_000,
            },
            Policy {
                percent: true,
                value: 100,
                period_ms: 15_000,
            },
        ]
    } else {
        vec![Policy {
            percent: true,
            value: 100,
            period_ms: 15_000,
        }]
    };
    let default_window = if up { 0 } else { config.downscale_window_ms };
    let Some(r) = r else {
        return Ok(Rules {
            window_ms: default_window,
            select: SelectPolicy::Max,
            policies: default_policies,
        });
    };
    let window_ms = match r.stabilization_window_seconds {
        None => default_window,
        Some(w) if (0..=3600).contains(&w) => i64::from(w) * 1000,
        Some(_) => {
            return Err((
                format!("{field}.stabilizationWindowSeconds"),
                "must be between 0 and 3600".into(),
            ));
        }
    };
    let policies = if r.policies.is_empty() {
        default_policies
    } else {
        let mut out = Vec::with_capacity(r.policies.len());
        for (i, p) in r.policies.iter().enumerate() {
            if p.value < 1 {
                return Err((
                    format!("{field}.policies[{i}].value"),
                    "must be at least 1".into(),
                ));
            }
            if !(1..=1800).contains(&p.period_seconds) {
                return Err((
                    format!("{field}.policies[{i}].periodSeconds"),
                    "must be between 1 and 1800".into(),
                ));
            }
            out.push(Policy {
                percent: p.type_ == ScalingPolicyType::Percent,
                value: p.value,
                period_ms: i64::from(p.period_seconds) * 1000,
            });
        }
        out
    };
    Ok(Rules {
        window_ms,
        select: r.select_policy.unwrap_or(SelectPolicy::Max),
        policies,
    })
}

fn prepare_spec(
    object: &HorizontalAutoscaler,
    metric_specs: &[MetricSpec],
    config: &ConfigView,
) -> Spec {
    let s = &object.spec;
    let min = s.min_replicas();
    let mut error: Option<(String, String)> = None;
    let mut fail = |field: &str, msg: &str| {
        if error.is_none() {
            error = Some((format!("spec.{field}"), msg.to_string()));
        }
    };
    if s.max_replicas < 1 {
        fail("maxReplicas", "must be at least 1");
    }
    if min < 0 {
        fail("minReplicas", "must not be negative");
    }
    if min > s.max_replicas {
        fail("minReplicas", "must be less than or equal to maxReplicas");
    }
    if let Some(idle) = s.idle_replicas
        && (idle < 0 || idle >= min.max(1))
    {
        fail(
            "idleReplicas",
            "must be at least 0 and less than minReplicas",
        );
    }
    if s.cooldown_period_seconds.is_some_and(|v| v < 0) {
        fail("cooldownPeriodSeconds", "must not be negative");
    }
    if s.initial_cooldown_period_seconds.is_some_and(|v| v < 0) {
        fail("initialCooldownPeriodSeconds", "must not be negative");
    }
    if s.paused_replicas
        .is_some_and(|v| v < 0 || v > s.max_replicas)
    {
        fail("pausedReplicas", "must be between 0 and maxReplicas");
    }
    let fallback = s.fallback.as_ref().map(|f| {
        if f.failure_threshold < 1 {
            fail("fallback.failureThreshold", "must be at least 1");
        }
        if f.replicas < 0 || f.replicas > s.max_replicas {
            fail("fallback.replicas", "must be between 0 and maxReplicas");
        }
        FallbackView {
            threshold: f.failure_threshold,
            replicas: f.replicas,
            behavior: f.behavior.unwrap_or_default(),
        }
    });

    let mut tol_up = config.tolerance;
    let mut tol_down = config.tolerance;
    let mut behavior = None;
    if let Some(b) = &s.behavior {
        match tolerance(
            b.scale_up.as_ref().and_then(|r| r.tolerance.as_ref()),
            "spec.behavior.scaleUp.tolerance",
            config.tolerance,
        ) {
            Ok(t) => tol_up = t,
            Err((f, m)) => fail(f.trim_start_matches("spec."), &m),
        }
        match tolerance(
            b.scale_down.as_ref().and_then(|r| r.tolerance.as_ref()),
            "spec.behavior.scaleDown.tolerance",
            config.tolerance,
        ) {
            Ok(t) => tol_down = t,
            Err((f, m)) => fail(f.trim_start_matches("spec."), &m),
        }
        let up = rules(b.scale_up.as_ref(), true, config, "spec.behavior.scaleUp");
        let down = rules(
            b.scale_down.as_ref(),
            false,
            config,
            "spec.behavior.scaleDown",
        );
        match (up, down) {
            (Ok(up), Ok(down)) => behavior = Some(Behavior { up, down }),
            (Err((f, m)), _) | (_, Err((f, m))) => fail(f.trim_start_matches("spec."), &m),
        }
    }

    let event_like = metric_specs.iter().any(|m| {
        matches!(
            m.type_,
            MetricSourceType::Prometheus | MetricSourceType::Event
        )
    });
    let activation_mode = s.idle_replicas.is_some() || (min == 0 && event_like);

    Spec {
        min,
        max: s.max_replicas,
        behavior,
        tol_up,
        tol_down,
        idle: s.idle_replicas,
        cooldown_ms: i64::from(s.cooldown_period_seconds()) * 1000,
        initial_cooldown_ms: i64::from(s.initial_cooldown_period_seconds.unwrap_or(0)) * 1000,
        fallback,
        paused: s.paused == Some(true),
        paused_replicas: s.paused_replicas,
        activation_mode,
        error,
    }
}
