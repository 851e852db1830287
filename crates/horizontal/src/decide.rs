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

// ---------------------------------------------------------------------------------------------
// Normalization: stabilization windows and limits.

fn normalize(
    p: &Prepared,
    out: &mut Outcome,
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
) -> i32 {
    match &p.spec.behavior {
        None => normalize_plain(p, out, current, desired, min, max),
        Some(b) => normalize_behavior(p, out, b, current, desired, min, max),
    }
}

/// Without `behavior`: the highest recommendation of the downscale window, then
/// [min, min(max, max(2 × current, 4))].
fn normalize_plain(
    p: &Prepared,
    out: &mut Outcome,
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
) -> i32 {
    let cutoff = p.now - p.config.downscale_window_ms;
    let mut stabilized = desired;
    for &(t, r) in &out.history.recommendations {
        // Upstream drops samples strictly before the cutoff.
        if t >= cutoff && r > stabilized {
            stabilized = r;
        }
    }
    record(&mut out.history, p.now, desired);
    out.stabilized = stabilized;
    out.stabilization = if stabilized != desired {
        Stabilization::ScaleDownStabilized
    } else {
        Stabilization::ReadyForNewScale
    };

    let scale_up_limit = clamp_i32((2 * i64::from(current)).max(4));
    out.rate_limit = Some(scale_up_limit);
    let (max_allowed, over) = if max > scale_up_limit {
        (scale_up_limit, Limit::ScaleUpLimit)
    } else {
        (max, Limit::TooManyReplicas)
    };
    let (result, limit) = if stabilized < min {
        (min, Limit::TooFewReplicas)
    } else if stabilized > max_allowed {
        (max_allowed, over)
    } else {
        (stabilized, Limit::DesiredWithinRange)
    };
    out.limit = limit;
    out.limited = result != stabilized;
    result
}

fn normalize_behavior(
    p: &Prepared,
    out: &mut Outcome,
    b: &Behavior,
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
) -> i32 {
    let now = p.now;
    let up_cutoff = now - b.up.window_ms;
    let down_cutoff = now - b.down.window_ms;
    let mut up = desired;
    let mut down = desired;
    for &(t, r) in &out.history.recommendations {
        // Upstream keeps samples strictly after each cutoff.
        if t > up_cutoff {
            up = up.min(r);
        }
        if t > down_cutoff {
            down = down.max(r);
        }
    }
    let mut stabilized = current;
    if stabilized < up {
        stabilized = up;
    }
    if stabilized > down {
        stabilized = down;
    }
    record(&mut out.history, now, desired);
    out.stabilized = stabilized;
    out.stabilization = if stabilized == desired {
        Stabilization::ReadyForNewScale
    } else if desired >= current {
        Stabilization::ScaleUpStabilized
    } else {
        Stabilization::ScaleDownStabilized
    };

    let (result, limit) = if stabilized > current {
        let mut lim = scale_up_limit(now, current, &out.history, &b.up);
        if lim < current {
            lim = current;
        }
        out.rate_limit = Some(lim);
        let (max_allowed, reason) = if max > lim {
            (lim, Limit::ScaleUpLimit)
        } else {
            (max, Limit::TooManyReplicas)
        };
        if stabilized > max_allowed {
            (max_allowed, reason)
        } else {
            (stabilized, Limit::DesiredWithinRange)
        }
    } else if stabilized < current {
        let mut lim = scale_down_limit(now, current, &out.history, &b.down);
        if lim > current {
            lim = current;
        }
        out.rate_limit = Some(lim);
        let (min_allowed, reason) = if min < lim {
            (lim, Limit::ScaleDownLimit)
        } else {
            (min, Limit::TooFewReplicas)
        };
        if stabilized < min_allowed {
            (min_allowed, reason)
        } else {
            (stabilized, Limit::DesiredWithinRange)
        }
    } else {
        (stabilized, Limit::DesiredWithinRange)
    };
    out.limit = limit;
    out.limited = result != stabilized;
    result
}

/// Replicas added and removed within the last `period` (events strictly after the cutoff).
fn changes_in_period(now: Millis, period: Millis, h: &crate::prepare::History) -> (i64, i64) {
    let cutoff = now - period;
    let added: i64 = h
        .scale_up_events
        .iter()
        .filter(|e| e.0 > cutoff)
        .map(|e| i64::from(e.1))
        .sum();
    let removed: i64 = h
        .scale_down_events
        .iter()
        .filter(|e| e.0 > cutoff)
        .map(|e| i64::from(e.1))
        .sum();
    (added, removed)
}

fn scale_up_limit(now: Millis, current: i32, h: &crate::prepare::History, rules: &Rules) -> i32 {
    let pick_min = match rules.select {
        SelectPolicy::Disabled => return current,
        SelectPolicy::Min => true,
        SelectPolicy::Max => false,
    };
    let mut result: i64 = if pick_min {
        i64::from(i32::MAX)
    } else {
        i64::from(i32::MIN)
    };
    for policy in &rules.policies {
        let (added, removed) = changes_in_period(now, policy.period_ms, h);
        let start = i64::from(current) - added + removed;
        let proposed = if policy.percent {
            // Rounded up so that a small target can always grow.
            (start as f64 * (1.0 + f64::from(policy.value) / 100.0)).ceil() as i64
        } else {
            start + i64::from(policy.value)
        };
        result = if pick_min {
            result.min(proposed)
        } else {
            result.max(proposed)
        };
    }
    clamp_i32(result)
}

fn scale_down_limit(now: Millis, current: i32, h: &crate::prepare::History, rules: &Rules) -> i32 {
    let pick_min_change = match rules.select {
        SelectPolicy::Disabled => return current,
        SelectPolicy::Min => true,
        SelectPolicy::Max => false,
    };
    let mut result: i64 = if pick_min_change {
        i64::from(i32::MIN)
    } else {
        i64::from(i32::MAX)
    };
    for policy in &rules.policies {
        let (added, removed) = changes_in_period(now, policy.period_ms, h);
        let start = i64::from(current) - added + removed;
        let proposed = if policy.percent {
            // Truncated toward zero, as Go's int32(float64) conversion.
            (start as f64 * (1.0 - f64::from(policy.value) / 100.0)) as i64
        } else {
            start - i64::from(policy.value)
        };
        result = if pick_min_change {
            result.max(proposed)
        } else {
            result.min(proposed)
        };
    }
    clamp_i32(result)
}

// ---------------------------------------------------------------------------------------------
// Per-metric replica calculation.

fn evaluate_metrics(p: &Prepared, out: &mut Outcome, current: i32, count_failures: bool) {
    let tol = Tol {
        up: p.spec.tol_up,
        down: p.spec.tol_down,
    };
    out.metrics_evaluated = true;
    out.metrics
        .resize(p.metrics.len(), MetricOutcome::default());
    for (i, m) in p.metrics.iter().enumerate() {
        let mut mo = MetricOutcome {
            ratio: f64::NAN,
            new_ratio: f64::NAN,
            ..Default::default()
        };
        match (&m.target, &m.reading) {
            (Err(_), _) => fail(&mut mo, MetricError::Spec),
            (_, Reading::Error(_)) => fail(&mut mo, MetricError::Reading),
            (Ok(target), reading) => evaluate_one(
                p,
                &m.kind,
                *target,
                reading,
                m.activation,
                current,
                tol,
                &mut mo,
            ),
        }
        let prev = p.history.failures.get(i).copied().unwrap_or(0);
        // A per-pod metric cannot be read while there are no pods: at zero replicas that is
        // expected, not a failure to count towards the fallback.
        let expected = current == 0 && mo.error == Some(MetricError::NoPods);
        if mo.state == MetricState::Failed && !expected {
            mo.failures = prev.saturating_add(1);
            if let Some(fb) = &p.spec.fallback {
                // Like KEDA: strictly more failures than the threshold. Not from zero replicas,
                // where the HPA part of KEDA is inactive.
                if mo.failures > fb.threshold && current > 0 {
                    mo.state = MetricState::Fallback;
                    mo.rule = Rule::Fallback;
                    mo.replicas = match fb.behavior {
                        FallbackBehavior::Static => fb.replicas,
                        FallbackBehavior::CurrentReplicas => current,
                        FallbackBehavior::CurrentReplicasIfHigher => current.max(fb.replicas),
                        FallbackBehavior::CurrentReplicasIfLower => current.min(fb.replicas),
                    };
                    out.fallback = true;
                }
            }
        }
        if count_failures {
            out.history.failures[i] = if mo.state == MetricState::Valid {
                0
            } else {
                mo.failures
            };
        }
        if mo.state == MetricState::Valid && mo.active {
            out.any_active = true;
            if out.first_active.is_none() {
                out.first_active = Some(i);
            }
        }
        if mo.state != MetricState::Valid {
            out.any_error = true;
        }
        out.metrics[i] = mo;
    }
}

#[inline]
fn fail(mo: &mut MetricOutcome, e: MetricError) {
    mo.state = MetricState::Failed;
    mo.error = Some(e);
}

#[allow(clippy::too_many_arguments)]
fn evaluate_one(
    p: &Prepared,
    kind: &Kind,
    target: Target,
    reading: &Reading,
    activation: i64,
    current: i32,
    tol: Tol,
    mo: &mut MetricOutcome,
) {
    match (kind, target, reading) {
        (Kind::Resource { cpu }, Target::Utilization(u), Reading::PerPod(pp)) => {
            resource_utilization(p, pp, u, *cpu, current, tol, mo);
            mo.active = mo.state == MetricState::Valid;
        }
        (Kind::Resource { cpu }, Target::AverageValue(v), Reading::PerPod(pp)) => {
            plain_metric(p, pp, v, *cpu, current, tol, mo);
            mo.active = mo.state == MetricState::Valid;
        }
        (Kind::Pods, Target::AverageValue(v), Reading::PerPod(pp)) => {
            plain_metric(p, pp, v, false, current, tol, mo);
            mo.active = mo.state == MetricState::Valid;
        }
        (Kind::Single { source }, t, Reading::Value(x)) => {
            match t {
                Target::Value(v) => value_metric(p, *x, v, current, tol, mo),
                Target::AverageValue(v) => average_metric(*x, v, p.scale.status_replicas, tol, mo),
                Target::Utilization(_) => fail(mo, MetricError::Spec),
            }
            use ballast_api::horizontal::MetricSourceType as S;
            let threshold = match source {
                S::Prometheus | S::Event => activation,
                _ => 0,
            };
            mo.active = mo.state == MetricState::Valid && *x > threshold;
        }
        (Kind::Cron(c), _, _) => cron_metric(p.now, c, mo),
        _ => fail(mo, MetricError::Reading),
    }
}

fn cron_metric(now: Millis, c: &crate::prepare::CronView, mo: &mut MetricOutcome) {
    let Ok(ts) = jiff::Timestamp::from_millisecond(now) else {
        return fail(mo, MetricError::Cron);
    };
    let zoned = ts.to_zoned(c.tz.clone());
    let (Ok(next_start), Ok(next_end)) = (
        c.start.find_next_occurrence(&zoned, false),
        c.end.find_next_occurrence(&zoned, false),
    ) else {
        return fail(mo, MetricError::Cron);
    };
    // Inside the window when the window closes before it opens again: [start, end).
    let inside = next_end.timestamp() < next_start.timestamp();
    if inside {
        mo.replicas = c.desired;
        mo.value = Some(i64::from(c.desired) * 1000);
        mo.rule = Rule::CronInside;
        mo.active = true;
    } else {
        mo.replicas = 0;
        mo.value = Some(0);
        mo.rule = Rule::CronOutside;
    }
}

/// Pods grouped as upstream's `groupPods` does, with the sums the two passes need.
#[derive(Default)]
struct Group {
    ready: u32,
    unready: u32,
    missing: u32,
    ignored: u32,
    /// Sum of the ready pods' samples.
    sum: i128,
    /// Sum of the ready pods' requests.
    requests: i128,
    missing_requests: i128,
    /// Σ request × max(100, target) / 100 over missing pods (utilization scale-down fill).
    missing_fill: i128,
    unready_requests: i128,
}

#[inline]
fn cpu_unready(pod: &PodView, s: &Sample, now: Millis, cfg: &ConfigView) -> bool {
    let (Some(ready), Some(start)) = (pod.ready, pod.start) else {
        return true;
    };
    if start + cfg.cpu_init_ms > now {
        // Still initializing: distrust the sample if unready, or if it does not cover a full
        // window since the last readiness change.
        ready.status == ConditionStatus::False || s.at < ready.since + s.window
    } else {
        // Unready and never been ready.
        ready.status == ConditionStatus::False && start + cfg.readiness_delay_ms > ready.since
    }
}

fn group(
    p: &Prepared,
    pp: &PerPod,
    cpu: bool,
    requests: Option<&[i64]>,
    fill_percent: i128,
) -> Group {
    let mut g = Group::default();
    let now = p.now;
    let cfg = &p.config;
    for (i, (pod, sample)) in p.pods.iter().zip(pp.samples.iter()).enumerate() {
        if pod.deleting || pod.phase == PodPhase::Failed {
            g.ignored += 1;
            continue;
        }
        let req = match requests {
            Some(r) => i128::from(r[i]),
            None => 0,
        };
        if pod.phase == PodPhase::Pending {
            g.unready += 1;
            g.unready_requests += req;
            continue;
        }
        let Some(s) = sample else {
            g.missing += 1;
            g.missing_requests += req;
            g.missing_fill += req * fill_percent / 100;
            continue;
        };
        if cpu && cpu_unready(pod, s, now, cfg) {
            g.unready += 1;
            g.unready_requests += req;
            continue;
        }
        g.ready += 1;
        g.sum += i128::from(s.value);
        g.requests += req;
    }
    g
}

fn set_counts(mo: &mut MetricOutcome, g: &Group, extra: u32) {
    mo.ready = g.ready;
    mo.unready = g.unready;
    mo.missing = g.missing;
    mo.ignored = g.ignored;
    mo.extra = extra;
}

fn utilization(sum: i128, requests: i128) -> Option<i32> {
    let u = sum * 100 / requests;
    i32::try_from(u).ok()
}

fn resource_utilization(
    p: &Prepared,
    pp: &PerPod,
    target: i32,
    cpu: bool,
    current: i32,
    tol: Tol,
    mo: &mut MetricOutcome,
) {
    if p.pods.is_empty() {
        return fail(mo, MetricError::NoPods);
    }
    let extra = pp.extra.len() as u32;
    let fill = i128::from(target.max(100));
    let requests = match &pp.requests {
        Ok(r) => r,
        Err(_) => {
            // Upstream reports "no metrics" before a missing request.
            let g = group(p, pp, cpu, None, fill);
            set_counts(mo, &g, extra);
            let e = if g.ready + extra == 0 {
                MetricError::NoPodMetrics
            } else {
                MetricError::Requests
            };
            return fail(mo, e);
        }
    };
    let g = group(p, pp, cpu, Some(requests), fill);
    set_counts(mo, &g, extra);
    let len = g.ready + extra;
    if len == 0 {
        return fail(mo, MetricError::NoPodMetrics);
    }
    if g.requests == 0 {
        return fail(mo, MetricError::NoMatchedPods);
    }
    let Some(util) = utilization(g.sum, g.requests) else {
        return fail(mo, MetricError::UtilizationRange);
    };
    let raw = g.sum / i128::from(g.ready);
    mo.utilization = Some(util);
    mo.average = Some(raw.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64);
    let ratio = f64::from(util) / f64::from(target);
    mo.ratio = ratio;

    let scale_up_with_unready = g.unready > 0 && ratio > 1.0;
    if !scale_up_with_unready && g.missing == 0 {
        if tol.within(ratio) {
            mo.replicas = current;
            mo.rule = Rule::WithinTolerance;
        } else {
            mo.replicas = ceil_i32(ratio * f64::from(g.ready));
            mo.rule = Rule::Plain;
        }
        return;
    }
    let (mut sum, mut reqs, mut n) = (g.sum, g.requests, len);
    if g.missing > 0 {
        if ratio < 1.0 {
            // Scale-down: missing pods use all of their request (or the target when above 100%).
            sum += g.missing_fill;
            reqs += g.missing_requests;
            n += g.missing;
        } else if ratio > 1.0 {
            // Scale-up: missing pods use nothing.
            reqs += g.missing_requests;
            n += g.missing;
        }
    }
    if scale_up_with_unready {
        reqs += g.unready_requests;
        n += g.unready;
    }
    let Some(new_util) = utilization(sum, reqs) else {
        return fail(mo, MetricError::UtilizationRange);
    };
    let new_ratio = f64::from(new_util) / f64::from(target);
    rebalanced(mo, ratio, new_ratio, n, current, tol);
}

/// The end of both calculations once missing and unready pods are filled in.
fn rebalanced(mo: &mut MetricOutcome, ratio: f64, new_ratio: f64, n: u32, current: i32, tol: Tol) {
    mo.new_ratio = new_ratio;
    mo.counted = n;
    if tol.within(new_ratio) {
        mo.replicas = current;
        mo.rule = Rule::RebalancedWithinTolerance;
        return;
    }
    if (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0) {
        mo.replicas = current;
        mo.rule = Rule::DirectionFlip;
        return;
    }
    let replicas = ceil_i32(new_ratio * f64::from(n));
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        mo.replicas = current;
        mo.rule = Rule::CountFlip;
        return;
    }
    mo.replicas = replicas;
    mo.rule = Rule::Rebalanced;
}

/// Pods metrics and Resource AverageValue targets: the average of the samples against the target.
fn plain_metric(
    p: &Prepared,
    pp: &PerPod,
    target: i64,
    cpu: bool,
    current: i32,
    tol: Tol,
    mo: &mut MetricOutcome,
) {
    if p.pods.is_empty() {
        return fail(mo, MetricError::NoPods);
    }
    let g = group(p, pp, cpu, None, 0);
    let extra = pp.extra.len() as u32;
    set_counts(mo, &g, extra);
    let len = g.ready + extra;
    if len == 0 {
        return fail(mo, MetricError::NoPodMetrics);
    }
    let extra_sum: i128 = pp.extra.iter().map(|s| i128::from(s.value)).sum();
    let sum = g.sum + extra_sum;
    let usage = sum / i128::from(len);
    mo.average = Some(usage.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64);
    let ratio = usage as f64 / target as f64;
    mo.ratio = ratio;

    let scale_up_with_unready = g.unready > 0 && ratio > 1.0;
    if !scale_up_with_unready && g.missing == 0 {
        if tol.within(ratio) {
            mo.replicas = current;
            mo.rule = Rule::WithinTolerance;
        } else {
            mo.replicas = ceil_i32(ratio * f64::from(g.ready));
            mo.rule = Rule::Plain;
        }
        return;
    }
    let (mut new_sum, mut n) = (sum, len);
    if g.missing > 0 {
        if ratio < 1.0 {
            // Scale-down: missing pods are taken to be exactly at the target.
            new_sum += i128::from(target) * i128::from(g.missing);
            n += g.missing;
        } else if ratio > 1.0 {
            n += g.missing;
        }
    }
    if scale_up_with_unready {
        n += g.unready;
    }
    let new_usage = new_sum / i128::from(n);
    let new_ratio = new_usage as f64 / target as f64;
    rebalanced(mo, ratio, new_ratio, n, current, tol);
}

/// Running pods whose Ready condition is True.
fn ready_pods(p: &Prepared) -> u32 {
    p.pods
        .iter()
        .filter(|pod| {
            pod.phase == PodPhase::Running
                && pod.ready.is_some_and(|r| r.status == ConditionStatus::True)
        })
        .count() as u32
}

/// Object/External/Prometheus/Event with a Value target.
fn value_metric(
    p: &Prepared,
    value: i64,
    target: i64,
    current: i32,
    tol: Tol,
    mo: &mut MetricOutcome,
) {
    let ratio = value as f64 / target as f64;
    mo.ratio = ratio;
    mo.value = Some(value);
    if current != 0 {
        if tol.within(ratio) {
            mo.replicas = current;
            mo.rule = Rule::WithinTolerance;
            return;
        }
        if p.pods.is_empty() {
            return fail(mo, MetricError::ReadyPodsNoPods);
        }
        let ready = ready_pods(p);
        mo.ready = ready;
        mo.replicas = ceil_i32(ratio * f64::from(ready));
        mo.rule = Rule::Plain;
    } else {
        // From zero: as many replicas as the ratio says, no tolerance.
        mo.replicas = ceil_i32(ratio);
        mo.rule = Rule::FromZero;
    }
}

/// Object/External/Prometheus/Event with an AverageValue target (per replica).
fn average_metric(value: i64, target: i64, status_replicas: i32, tol: Tol, mo: &mut MetricOutcome) {
    let ratio = value as f64 / (target as f64 * f64::from(status_replicas));
    mo.ratio = ratio;
    if tol.within(ratio) {
        mo.replicas = status_replicas;
        mo.rule = Rule::AverageWithinTolerance;
    } else {
        mo.replicas = ceil_i32(value as f64 / target as f64);
        mo.rule = Rule::AverageValue;
    }
    mo.average = Some(if status_replicas > 0 {
        (value as f64 / f64::from(status_replicas)).ceil() as i64
    } else {
        value
    });
    mo.value = Some(value);
}
