//! The decision core: desired replicas from a [`Prepared`] snapshot.
//!
//! This is the hot path. It allocates nothing once the [`Outcome`] buffers have grown to the
//! object's size, reads no clock (the time is `Prepared::now`) and uses no randomness. Strings
//! (conditions, events, explanations) are made afterwards by [`crate::render`].
//!
//! The rules follow the Kubernetes HPA controller (`replica_calculator.go`, `horizontal.go`)
//! number for number; the KEDA-style additions (activation, cooldown, idle replicas, fallback,
//! pause) follow KEDA's scale executor. `docs/horizontal.md` lists where Ballast differs.

use crate::prepare::{
    Behavior, ConfigView, Kind, Millis, PerPod, PodView, Prepared, Reading, Rules, Sample,
    SelectorCheck, Target,
};
use crate::snapshot::{ConditionStatus, PodPhase};
use ballast_api::horizontal::{FallbackBehavior, SelectPolicy};
use serde::Serialize;

mod metrics;
mod stabilize;

use metrics::evaluate_metrics;
use stabilize::normalize;

/// Which way the decision went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
pub enum Path {
    /// The scale subresource could not be read: nothing is done.
    #[default]
    FailedGetScale,
    /// The spec is unusable (a field out of range): nothing is done.
    InvalidSpec,
    /// `spec.paused`: the target is left alone (or set once to `pausedReplicas`).
    Paused,
    /// The target has 0 replicas and minReplicas is not 0: autoscaling is off (upstream).
    ScalingDisabled,
    /// The scale's selector is empty, unparsable, or shared with another autoscaler.
    InvalidSelector,
    /// Current replicas above maxReplicas: set to maxReplicas without reading metrics.
    AboveMax,
    /// Current replicas below minReplicas: set to minReplicas without reading metrics.
    BelowMin,
    /// Metrics failed (all of them, or some while the rest would scale down): no scaling.
    MetricsFailed,
    /// The replica count follows the metrics (the HPA algorithm).
    Normal,
    /// From zero or idle replicas to at least minReplicas (or 1) because a metric is active.
    Activated,
    /// No metric active for the cooldown period: to idleReplicas (or 0).
    Deactivated,
    /// At zero or idle replicas and no metric is active: nothing to do.
    Idle,
}

/// Why the replica count changes (the `reason` of the `SuccessfulRescale` event).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
pub enum Reason {
    #[default]
    None,
    /// `<metric> above target` (index of the metric with the largest proposal).
    MetricAbove(usize),
    /// `All metrics below target`.
    AllBelow,
    AboveMax,
    BelowMin,
    Paused,
    /// Activation by this metric.
    Activated(usize),
    Deactivated,
}

/// How a metric fared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
pub enum MetricState {
    #[default]
    Valid,
    Failed,
    /// Failed more than `fallback.failureThreshold` times in a row: proposes the fallback count.
    Fallback,
}

/// Which rule produced a metric's proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
pub enum Rule {
    #[default]
    None,
    /// Ratio within tolerance: keep the current count.
    WithinTolerance,
    /// `ceil(ratio × ready pods)`.
    Plain,
    /// Missing/unready pods filled in, `ceil(newRatio × pods counted)`.
    Rebalanced,
    /// After filling in missing/unready pods the ratio is within tolerance: keep.
    RebalancedWithinTolerance,
    /// Filling in missing/unready pods flipped the direction: keep.
    DirectionFlip,
    /// `ceil(newRatio × pods counted)` went against the direction: keep.
    CountFlip,
    /// Current replicas 0: `ceil(ratio)`, no tolerance.
    FromZero,
    /// AverageValue target within tolerance: keep the status replica count.
    AverageWithinTolerance,
    /// AverageValue target: `ceil(value / target)`.
    AverageValue,
    /// Cron window open: its desired replicas.
    CronInside,
    /// Cron window closed: proposes 0.
    CronOutside,
    /// Fallback replicas.
    Fallback,
}

/// Why a metric failed (turned into upstream-like messages by the renderer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum MetricError {
    /// The spec gives no usable target (message kept in the prepared metric).
    Spec,
    /// The reading failed (message kept in the prepared metric).
    Reading,
    /// No pods selected.
    NoPods,
    /// No sample for any pod that counts (all unready, ignored or missing).
    NoPodMetrics,
    /// A request is missing or unreadable (message kept in the prepared metric).
    Requests,
    /// Samples exist but none for a pod with a request.
    NoMatchedPods,
    /// The utilization does not fit an int32.
    UtilizationRange,
    /// Ready pods could not be counted: no pods selected.
    ReadyPodsNoPods,
    /// The cron window could not be evaluated.
    Cron,
}

/// One metric's result.
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize)]
pub struct MetricOutcome {
    pub state: MetricState,
    /// Proposed replicas (meaningful unless `state` is `Failed`).
    pub replicas: i32,
    /// Usage ratio (current / target); NaN when not computed.
    pub ratio: f64,
    /// Ratio after filling in missing and unready pods; NaN when not computed.
    pub new_ratio: f64,
    pub rule: Rule,
    /// Current average utilization in percent (Utilization targets).
    pub utilization: Option<i32>,
    /// Current average value in milli-units.
    pub average: Option<i64>,
    /// Current value in milli-units (Value targets, AverageValue of single-value metrics).
    pub value: Option<i64>,
    pub ready: u32,
    pub unready: u32,
    pub missing: u32,
    pub ignored: u32,
    /// Samples for pods that are not in the pod list.
    pub extra: u32,
    /// Pods counted in `ceil(newRatio × counted)`.
    pub counted: u32,
    /// Above its activation threshold (activation mode).
    pub active: bool,
    pub error: Option<MetricError>,
    /// Consecutive failures including this one.
    pub failures: i32,
}

/// `AbleToScale` after stabilization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
pub enum Stabilization {
    #[default]
    ReadyForNewScale,
    ScaleUpStabilized,
    ScaleDownStabilized,
}

/// `ScalingLimited` reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
pub enum Limit {
    #[default]
    DesiredWithinRange,
    TooFewReplicas,
    TooManyReplicas,
    ScaleUpLimit,
    ScaleDownLimit,
}

/// Cooldown state (activation mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
pub enum Cooldown {
    #[default]
    NotApplicable,
    /// Not active, cooling down until this time.
    CoolingDown { until: Millis },
    /// Not active for longer than the cooldown period.
    Elapsed,
}

/// A scale event stored for the rate policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ScaleEventRecord {
    pub up: bool,
    pub change: i32,
}

/// Everything a decision found, in numbers. Reuse one across decisions to avoid allocating.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub path: Path,
    /// `scale.spec.replicas`.
    pub current: i32,
    /// `scale.status.replicas`.
    pub status_replicas: i32,
    /// The replica count to set (equal to `current` when not rescaling).
    pub desired: i32,
    pub rescale: bool,
    pub reason: Reason,
    /// One per metric, lined up with the spec (empty when metrics were not evaluated).
    pub metrics: Vec<MetricOutcome>,
    pub metrics_evaluated: bool,
    /// Metric with the largest proposal.
    pub best: Option<usize>,
    pub invalid: u32,
    pub first_invalid: Option<usize>,
    /// The lower bound used (minReplicas, or max(minReplicas, 1) in activation mode).
    pub floor: i32,
    /// The recommendation before stabilization.
    pub prenormalized: i32,
    /// After the stabilization window(s).
    pub stabilized: i32,
    pub stabilization: Stabilization,
    pub limit: Limit,
    pub limited: bool,
    /// The rate limit computed in the scaling direction (upstream's scaleUpLimit or the policies'
    /// limit), for the explanation.
    pub rate_limit: Option<i32>,
    pub any_active: bool,
    pub first_active: Option<usize>,
    pub any_error: bool,
    pub fallback: bool,
    pub cooldown: Cooldown,
    pub scale_event: Option<ScaleEventRecord>,
    /// The history to store.
    pub history: crate::prepare::History,
    /// What the metrics asked for in replicas before rounding (`Normal` path): record it in
    /// the demand history the next decision forecasts from.
    pub demand: Option<f64>,
    /// The prediction step (`spec.predictive`).
    pub prediction: crate::predict::decision::PredictionOutcome,
    /// The forecaster's buffers, made on first use and reused.
    pub forecaster: Option<crate::predict::Forecaster>,
}

#[derive(Clone, Copy)]
struct Tol {
    up: f64,
    down: f64,
}

impl Tol {
    #[inline]
    fn within(self, r: f64) -> bool {
        (1.0 - self.down) <= r && r <= (1.0 + self.up)
    }
}

#[inline]
fn ceil_i32(x: f64) -> i32 {
    // `as` saturates at the i32 range and maps NaN to 0, which is what upstream's overflow
    // guards amount to.
    x.ceil() as i32
}

fn clamp_i32(x: i64) -> i32 {
    x.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// Runs the decision for `p` into `out`.
pub fn decide(p: &Prepared, out: &mut Outcome) {
    let spec = &p.spec;
    let now = p.now;
    let current = p.scale.spec_replicas;
    reset(p, out);
    out.current = current;
    out.status_replicas = p.scale.status_replicas;
    out.desired = current;

    if p.scale.error.is_some() {
        out.path = Path::FailedGetScale;
        return;
    }
    if spec.error.is_some() {
        out.path = Path::InvalidSpec;
        return;
    }
    if spec.paused {
        // Metrics are read for the status only; the history is left as it was.
        evaluate_metrics(p, out, current, false);
        out.path = Path::Paused;
        if let Some(n) = spec.paused_replicas
            && n != current
        {
            out.desired = n;
            out.rescale = true;
            out.reason = Reason::Paused;
            store_scale_event(p, out, current, n);
        }
        prune(p, out);
        return;
    }
    // Upstream seeds the recommendations with the current count the first time it sees the
    // object, so a fresh controller does not scale down at once.
    if out.history.recommendations.is_empty() {
        out.history.recommendations.push((now, current));
    }
    if current == 0 && spec.min != 0 && spec.idle.is_none() {
        out.path = Path::ScalingDisabled;
        out.desired = 0;
        prune(p, out);
        return;
    }
    let idle_state =
        spec.activation_mode && (current == 0 || (spec.idle.is_some() && current < spec.min));
    let floor = if spec.activation_mode {
        spec.min.max(1)
    } else {
        spec.min
    };
    out.floor = floor;
    if !idle_state {
        if current > spec.max {
            out.path = Path::AboveMax;
            out.reason = Reason::AboveMax;
            set_desired(p, out, current, spec.max);
            prune(p, out);
            return;
        }
        if current < floor {
            out.path = Path::BelowMin;
            out.reason = Reason::BelowMin;
            set_desired(p, out, current, floor);
            prune(p, out);
            return;
        }
    }
    if p.scale.selector != SelectorCheck::Ok {
        out.path = Path::InvalidSelector;
        prune(p, out);
        return;
    }

    evaluate_metrics(p, out, current, true);

    if spec.activation_mode {
        if out.any_active {
            out.history.last_active = Some(now);
        }
        if idle_state && out.any_active {
            activate(p, out, current);
            prune(p, out);
            return;
        }
        let may_deactivate =
            (spec.idle.is_some_and(|idle| current > idle)) || (current > 0 && spec.min == 0);
        if !out.any_active && !out.any_error && may_deactivate {
            let last_active = p.history.last_active;
            let elapsed = match last_active {
                Some(t) => t.saturating_add(spec.cooldown_ms) < now,
                None => {
                    p.created
                        .unwrap_or(i64::MIN / 2)
                        .saturating_add(spec.initial_cooldown_ms)
                        < now
                }
            };
            if elapsed {
                out.cooldown = Cooldown::Elapsed;
                let target = spec.idle.unwrap_or(spec.min);
                out.path = Path::Deactivated;
                out.reason = Reason::Deactivated;
                out.prenormalized = target;
                out.stabilized = target;
                record(&mut out.history, now, target);
                set_desired(p, out, current, target);
                prune(p, out);
                return;
            }
            let until = match last_active {
                Some(t) => t.saturating_add(spec.cooldown_ms),
                None => p
                    .created
                    .unwrap_or(0)
                    .saturating_add(spec.initial_cooldown_ms),
            };
            out.cooldown = Cooldown::CoolingDown { until };
        }
        if idle_state {
            // Below minReplicas and nothing active: stay (KEDA's scaler leaves it there too).
            out.path = Path::Idle;
            prune(p, out);
            return;
        }
    }

    // Several metrics: the largest valid proposal; errors block a scale-down.
    let (best, best_replicas) = best_proposal(out);
    out.best = best;
    let n = out.metrics.len() as u32;
    if out.invalid >= n || (out.invalid > 0 && best_replicas < current) {
        out.path = Path::MetricsFailed;
        prune(p, out);
        return;
    }
    out.path = Path::Normal;
    out.demand = crate::predict::decision::demand(out, p.scale.status_replicas);
    let best_replicas = crate::predict::decision::apply(p, out, best_replicas);
    out.prenormalized = best_replicas;
    out.reason = if best_replicas > current {
        Reason::MetricAbove(best.unwrap_or(0))
    } else if best_replicas < current {
        Reason::AllBelow
    } else {
        Reason::None
    };
    let desired = normalize(p, out, current, best_replicas, floor, spec.max);
    set_desired(p, out, current, desired);
    prune(p, out);
}

fn reset(p: &Prepared, out: &mut Outcome) {
    let history = std::mem::take(&mut out.history);
    let mut metrics = std::mem::take(&mut out.metrics);
    metrics.clear();
    let forecaster = out.forecaster.take();
    *out = Outcome {
        history,
        metrics,
        forecaster,
        ..Default::default()
    };
    out.history.copy_from(&p.history);
    out.history.failures.resize(p.metrics.len(), 0);
    out.prenormalized = p.scale.spec_replicas;
    out.stabilized = p.scale.spec_replicas;
}

fn best_proposal(out: &mut Outcome) -> (Option<usize>, i32) {
    let mut best = None;
    let mut replicas = 0;
    out.invalid = 0;
    out.first_invalid = None;
    for (i, m) in out.metrics.iter().enumerate() {
        if m.state == MetricState::Failed {
            if out.first_invalid.is_none() {
                out.first_invalid = Some(i);
            }
            out.invalid += 1;
            continue;
        }
        // Upstream's test: the first proposal, or a strictly larger one.
        if replicas == 0 || m.replicas > replicas {
            replicas = m.replicas;
            best = Some(i);
        }
    }
    (best, replicas)
}

fn set_desired(p: &Prepared, out: &mut Outcome, current: i32, desired: i32) {
    out.desired = desired;
    out.rescale = desired != current;
    if out.rescale {
        store_scale_event(p, out, current, desired);
    }
}

fn store_scale_event(p: &Prepared, out: &mut Outcome, current: i32, desired: i32) {
    if p.spec.behavior.is_none() || desired == current {
        return; // upstream keeps scale events only for the behavior policies
    }
    let rec = if desired > current {
        out.history.scale_up_events.push((p.now, desired - current));
        ScaleEventRecord {
            up: true,
            change: desired - current,
        }
    } else {
        out.history
            .scale_down_events
            .push((p.now, current - desired));
        ScaleEventRecord {
            up: false,
            change: current - desired,
        }
    };
    out.scale_event = Some(rec);
}

/// From zero or idle replicas: at least minReplicas (or 1), more if the metrics ask for it,
/// within the rate limits.
fn activate(p: &Prepared, out: &mut Outcome, current: i32) {
    let spec = &p.spec;
    let floor = if spec.min > 0 { spec.min } else { 1 };
    out.floor = floor;
    let (best, best_replicas) = best_proposal(out);
    out.best = best;
    out.path = Path::Activated;
    out.reason = Reason::Activated(out.first_active.unwrap_or(0));
    let pre = best_replicas.max(floor);
    out.prenormalized = pre;
    let desired = normalize(p, out, current, pre, floor, spec.max)
        .max(floor)
        .min(spec.max);
    set_desired(p, out, current, desired);
}

/// Records an unstabilized recommendation. A run of equal recommendations is kept as one entry
/// with the latest time: the highest (or lowest) recommendation within any window is the same,
/// because a run has a sample inside a window exactly when its latest one is. This keeps the
/// stored history short (usually one to three entries) without changing any decision.
fn record(h: &mut crate::prepare::History, now: Millis, replicas: i32) {
    match h.recommendations.last_mut() {
        Some(last) if last.1 == replicas && last.0 <= now => last.0 = now,
        _ => h.recommendations.push((now, replicas)),
    }
}

/// Drops history that no rule will look at again.
fn prune(p: &Prepared, out: &mut Outcome) {
    let now = p.now;
    let (window, period) = match &p.spec.behavior {
        Some(b) => (
            b.up.window_ms.max(b.down.window_ms),
            b.up.longest_period_ms().max(b.down.longest_period_ms()),
        ),
        None => (p.config.downscale_window_ms, 0),
    };
    let keep_from = now - window;
    out.history.recommendations.retain(|&(t, _)| t >= keep_from);
    if p.spec.behavior.is_none() {
        out.history.scale_up_events.clear();
        out.history.scale_down_events.clear();
    } else {
        let after = now - period;
        out.history.scale_up_events.retain(|&(t, _)| t > after);
        out.history.scale_down_events.retain(|&(t, _)| t > after);
    }
}
