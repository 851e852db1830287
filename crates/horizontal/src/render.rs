//! From an [`Outcome`] (numbers) to a [`Decision`] (conditions, events, status, explanation).
//!
//! Condition types, reasons and messages, event reasons and the `New size: N; reason: ...`
//! message follow the HPA controller, so `kubectl describe` reads the same.

mod metric;
mod path;
mod prediction;

use crate::decide::{Cooldown, Limit, MetricState, Outcome, Path, Reason, Stabilization};
use crate::prepare::{Millis, Prepared};
use ballast_api::common::{Condition, Time};
use ballast_api::horizontal::{
    HorizontalAutoscalerStatus, MetricFailureCount, MetricStatus, ScaleEvent, ScalingHistory,
    TimestampedReplicas,
};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use metric::{metric_error_text, metric_explanation, metric_status, target_text};
use serde::Serialize;
use std::fmt;

/// Kubernetes event type.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// An event to emit on the autoscaler.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Event {
    #[serde(rename = "type")]
    pub type_: EventType,
    pub reason: String,
    pub message: String,
}

/// The reasons of a decision, in the order they were applied.
#[derive(Serialize, Clone, Debug, PartialEq, Default)]
#[serde(transparent)]
pub struct Explanation(pub Vec<String>);

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.0.iter().enumerate() {
            writeln!(f, "{:>2}. {line}", i + 1)?;
        }
        Ok(())
    }
}

/// One metric's proposal.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricProposal {
    /// Position in `spec.metrics`.
    pub index: usize,
    /// Stable key (`s0-cpu`), used for failure counts.
    pub key: String,
    /// Upstream-style description, used in the rescale reason.
    pub name: String,
    pub state: MetricState,
    /// Proposed replicas (absent when the metric failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// current / target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// The current value, in status form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<MetricStatus>,
    /// `current/target` as in the TARGETS column.
    pub target: String,
    /// Whether the metric is active (activation mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Consecutive failures so far.
    #[serde(skip_serializing_if = "is_zero")]
    pub failures: i32,
    pub explanation: String,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

/// The result of one decision, ready for the shell (status, scale, events) or for `explain`.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// `namespace/name` of the autoscaler.
    pub autoscaler: String,
    /// `Kind/name` of the target.
    pub target: String,
    pub now: Timestamp,
    pub path: Path,
    pub current_replicas: i32,
    pub desired_replicas: i32,
    /// Whether to write `desiredReplicas` to the target's scale.
    pub rescale: bool,
    /// The rescale reason (`cpu resource utilization (percentage of request) above target`).
    pub reason: String,
    pub metrics: Vec<MetricProposal>,
    /// The conditions of the new status (also in `status.conditions`).
    pub conditions: Vec<Condition>,
    pub events: Vec<Event>,
    /// The whole new status, history included.
    pub status: HorizontalAutoscalerStatus,
    /// When to look again.
    pub requeue_after_seconds: i32,
    pub explanation: Explanation,
    /// This decision's demand ([`Outcome::demand`]): what the caller appends to the demand
    /// history `spec.predictive` forecasts from. Not printed.
    #[serde(skip)]
    pub demand: Option<f64>,
    #[serde(skip)]
    previous_desired: i32,
    #[serde(skip)]
    previous_last_scale_time: Option<Time>,
}

fn time(ms: Millis) -> Time {
    Time(Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// A milli-value as Kubernetes prints a DecimalSI quantity (`250m`, `2`, `3k`).
pub fn milli_quantity(milli: i64) -> Quantity {
    Quantity(format_milli(milli))
}

pub(crate) fn format_milli(milli: i64) -> String {
    if milli % 1000 != 0 {
        return format!("{milli}m");
    }
    let mut v = milli / 1000;
    if v == 0 {
        return "0".into();
    }
    let mut suffix = "";
    for s in ["k", "M", "G", "T", "P", "E"] {
        if v % 1000 == 0 {
            v /= 1000;
            suffix = s;
        } else {
            break;
        }
    }
    format!("{v}{suffix}")
}

fn ratio_text(r: f64) -> String {
    if r.is_finite() {
        format!("{r:.3}")
    } else {
        format!("{r}")
    }
}

/// Sets a condition, keeping its transition time when the status does not change (upstream's
/// `setConditionInList`).
fn set_condition(
    list: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    now: &Time,
) {
    let status = if status { "True" } else { "False" };
    if let Some(c) = list.iter_mut().find(|c| c.type_ == type_) {
        if c.status != status {
            c.last_transition_time = now.clone();
        }
        c.status = status.to_string();
        c.reason = reason.to_string();
        c.message = message;
    } else {
        list.push(Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message,
            last_transition_time: now.clone(),
            observed_generation: None,
        });
    }
}

fn reason_text(p: &Prepared, out: &Outcome) -> String {
    match out.reason {
        Reason::None => String::new(),
        Reason::MetricAbove(i) => format!("{} above target", p.metrics[i].name),
        Reason::AllBelow => "All metrics below target".into(),
        Reason::AboveMax => "Current number of replicas above Spec.MaxReplicas".into(),
        Reason::BelowMin => "Current number of replicas below Spec.MinReplicas".into(),
        Reason::Paused => "paused at spec.pausedReplicas".into(),
        Reason::Activated(i) => format!("{} is active", p.metrics[i].name),
        Reason::Deactivated => format!(
            "no metric active for cooldownPeriodSeconds ({}s)",
            p.spec.cooldown_ms / 1000
        ),
    }
}

fn limit_name(l: Limit) -> &'static str {
    match l {
        Limit::DesiredWithinRange => "DesiredWithinRange",
        Limit::TooFewReplicas => "TooFewReplicas",
        Limit::TooManyReplicas => "TooManyReplicas",
        Limit::ScaleUpLimit => "ScaleUpLimit",
        Limit::ScaleDownLimit => "ScaleDownLimit",
    }
}

fn limit_message(l: Limit) -> &'static str {
    match l {
        Limit::DesiredWithinRange => "the desired count is within the acceptable range",
        Limit::TooFewReplicas => "the desired replica count is less than the minimum replica count",
        Limit::TooManyReplicas => {
            "the desired replica count is more than the maximum replica count"
        }
        Limit::ScaleUpLimit => {
            "the desired replica count is increasing faster than the maximum scale rate"
        }
        Limit::ScaleDownLimit => {
            "the desired replica count is decreasing faster than the maximum scale rate"
        }
    }
}

fn stabilization_condition(s: Stabilization) -> (&'static str, &'static str) {
    match s {
        Stabilization::ReadyForNewScale => {
            ("ReadyForNewScale", "recommended size matches current size")
        }
        Stabilization::ScaleUpStabilized => (
            "ScaleUpStabilized",
            "recent recommendations were lower than current one, applying the lowest recent recommendation",
        ),
        Stabilization::ScaleDownStabilized => (
            "ScaleDownStabilized",
            "recent recommendations were higher than current one, applying the highest recent recommendation",
        ),
    }
}

fn history(out: &Outcome, p: &Prepared) -> ScalingHistory {
    let h = &out.history;
    ScalingHistory {
        recommendations: h
            .recommendations
            .iter()
            .map(|&(t, r)| TimestampedReplicas {
                time: time(t),
                replicas: r,
            })
            .collect(),
        scale_up_events: h
            .scale_up_events
            .iter()
            .map(|&(t, c)| ScaleEvent {
                time: time(t),
                change: c,
            })
            .collect(),
        scale_down_events: h
            .scale_down_events
            .iter()
            .map(|&(t, c)| ScaleEvent {
                time: time(t),
                change: c,
            })
            .collect(),
        last_active_time: h.last_active.map(time),
        metric_failures: h
            .failures
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| MetricFailureCount {
                metric: p.metrics[i].key.clone(),
                count: *c,
            })
            .collect(),
    }
}

/// What the sections of [`render`] write, in order: the conditions of the new status, the events
/// and the explanation lines.
struct Draft {
    now: Time,
    conditions: Vec<Condition>,
    events: Vec<Event>,
    lines: Vec<String>,
}

impl Draft {
    /// Sets one condition at the decision's time.
    fn condition(&mut self, type_: &str, status: bool, reason: &str, message: String) {
        set_condition(
            &mut self.conditions,
            type_,
            status,
            reason,
            message,
            &self.now,
        );
    }

    /// Sets the `AbleToScale` condition.
    fn able(&mut self, status: bool, reason: &str, message: String) {
        self.condition("AbleToScale", status, reason, message);
    }
}

/// The inputs of one render with the metric proposals made from them.
struct Evaluated<'a> {
    p: &'a Prepared,
    out: &'a Outcome,
    metrics: &'a [MetricProposal],
    /// Each metric's error text, by position in `spec.metrics` (none if it did not fail).
    errors: &'a [Option<String>],
}

/// Turns the numbers of a decision into conditions, events, status and reasons.
pub fn render(p: &Prepared, out: &Outcome) -> Decision {
    let old = p.object.status.clone().unwrap_or_default();
    let mut d = Draft {
        now: time(p.now),
        conditions: old.conditions.clone(),
        events: Vec::new(),
        lines: Vec::new(),
    };
    let target_ref = p.object.spec.scale_target_ref.to_string();
    let reason = reason_text(p, out);
    let (metrics, errors) = metric_proposals(p, out);
    d.lines.push(target_line(p, &target_ref));
    if out.path != Path::FailedGetScale {
        d.able(
            true,
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale".into(),
        );
    }
    let evaluated = Evaluated {
        p,
        out,
        metrics: &metrics,
        errors: &errors,
    };
    path::explain_path(&mut d, &evaluated);
    activation_condition(&mut d, p, out);
    fallback_condition(&mut d, p, out);
    paused_condition(&mut d, p);
    prediction::prediction_section(&mut d, p, out);
    rescale(&mut d, out, &reason);
    let status = new_status(p, out, &old, &metrics, &d, &target_ref);
    Decision {
        autoscaler: p.key(),
        target: target_ref,
        now: d.now.0,
        path: out.path,
        current_replicas: out.current,
        desired_replicas: out.desired,
        rescale: out.rescale,
        reason,
        metrics,
        conditions: d.conditions,
        events: d.events,
        status,
        requeue_after_seconds: p.object.spec.sync_period_seconds(),
        explanation: Explanation(d.lines),
        demand: out.demand,
        previous_desired: old.desired_replicas,
        previous_last_scale_time: old.last_scale_time.clone(),
    }
}

/// The proposal of each evaluated metric, and each metric's error text.
fn metric_proposals(p: &Prepared, out: &Outcome) -> (Vec<MetricProposal>, Vec<Option<String>>) {
    let mut metrics = Vec::new();
    let mut errors: Vec<Option<String>> = vec![None; p.metrics.len()];
    if out.metrics_evaluated {
        for (i, mo) in out.metrics.iter().enumerate() {
            let error = mo.error.map(|e| metric_error_text(p, i, e));
            errors[i] = error.clone();
            let explanation = metric_explanation(p, i, mo, error.as_deref());
            metrics.push(MetricProposal {
                index: i,
                key: p.metrics[i].key.clone(),
                name: p.metrics[i].name.clone(),
                state: mo.state,
                replicas: (mo.state != MetricState::Failed).then_some(mo.replicas),
                ratio: mo.ratio.is_finite().then_some(mo.ratio),
                current: metric_status(p, i, mo),
                target: target_text(p, i, Some(mo)),
                active: p.spec.activation_mode.then_some(mo.active),
                error,
                failures: mo.failures,
                explanation,
            });
        }
    }
    (metrics, errors)
}

/// The first explanation line: the target, its replicas and the bounds.
fn target_line(p: &Prepared, target_ref: &str) -> String {
    format!(
        "target {target_ref}: {} replica(s) (scale spec), {} (scale status); bounds [{}, {}]{}",
        p.scale.spec_replicas,
        p.scale.status_replicas,
        p.spec.min,
        p.spec.max,
        match (p.spec.activation_mode, p.spec.idle) {
            (true, Some(idle)) => format!("; activation mode, idle at {idle}"),
            (true, None) => "; activation mode (scale to zero)".into(),
            _ => String::new(),
        }
    )
}

/// The KEDA-like `Active` condition (activation mode, metrics read, not paused).
fn activation_condition(d: &mut Draft, p: &Prepared, out: &Outcome) {
    let spec = &p.spec;
    if spec.activation_mode && out.metrics_evaluated && out.path != Path::Paused {
        let (status, reason, msg) = if out.any_active {
            let name = out
                .first_active
                .map(|i| p.metrics[i].name.as_str())
                .unwrap_or("");
            (
                true,
                "ScalerActive",
                format!("scaling is performed because {name} is active"),
            )
        } else if matches!(out.cooldown, Cooldown::CoolingDown { .. }) {
            (
                false,
                "ScalerCooldown",
                "scaler cooling down because no metric is active".to_string(),
            )
        } else {
            (
                false,
                "ScalerNotActive",
                "scaling is not performed because no metric is active".to_string(),
            )
        };
        d.condition("Active", status, reason, msg);
    }
}

/// The KEDA-like `Fallback` condition, when a fallback is set and metrics were read.
fn fallback_condition(d: &mut Draft, p: &Prepared, out: &Outcome) {
    let spec = &p.spec;
    if spec.fallback.is_some() && out.metrics_evaluated {
        if out.fallback {
            d.condition(
                "Fallback",
                true,
                "FallbackExists",
                "at least one metric keeps failing and proposes the fallback replica count".into(),
            );
            d.lines
                .push("fallback: a failing metric proposes the fallback replica count".into());
        } else {
            d.condition(
                "Fallback",
                false,
                "NoFallbackFound",
                "no metric is falling back".into(),
            );
        }
    }
}

/// The `Paused` condition: true while paused, false (`ScalingResumed`) once it exists and the
/// object is no longer paused.
fn paused_condition(d: &mut Draft, p: &Prepared) {
    let spec = &p.spec;
    if spec.paused || d.conditions.iter().any(|c| c.type_ == "Paused") {
        if spec.paused {
            d.condition(
                "Paused",
                true,
                "ScalingPaused",
                "autoscaling is paused (spec.paused)".into(),
            );
        } else {
            d.condition(
                "Paused",
                false,
                "ScalingResumed",
                "autoscaling is not paused".into(),
            );
        }
    }
}

/// The rescale (condition, event, line), or the line saying the count is kept.
fn rescale(d: &mut Draft, out: &Outcome, reason: &str) {
    if out.rescale {
        d.able(
            true,
            "SucceededRescale",
            format!(
                "the HPA controller was able to update the target scale to {}",
                out.desired
            ),
        );
        d.events.push(Event {
            type_: EventType::Normal,
            reason: "SuccessfulRescale".into(),
            message: format!("New size: {}; reason: {reason}", out.desired),
        });
        d.lines.push(format!(
            "decision: scale {} → {} (reason: {reason})",
            out.current, out.desired
        ));
    } else if !matches!(out.path, Path::FailedGetScale | Path::InvalidSpec) {
        d.lines
            .push(format!("decision: keep {} replica(s)", out.current));
    }
}

/// The new status: only the conditions change when the scale could not be read.
fn new_status(
    p: &Prepared,
    out: &Outcome,
    old: &HorizontalAutoscalerStatus,
    metrics: &[MetricProposal],
    d: &Draft,
    target_ref: &str,
) -> HorizontalAutoscalerStatus {
    let object = &p.object;
    let evaluated_statuses: Vec<MetricStatus> =
        metrics.iter().filter_map(|m| m.current.clone()).collect();
    let targets: Vec<String> = (0..p.metrics.len())
        .map(|i| {
            target_text(
                p,
                i,
                if out.metrics_evaluated {
                    out.metrics.get(i)
                } else {
                    None
                },
            )
        })
        .collect();
    match out.path {
        Path::FailedGetScale => HorizontalAutoscalerStatus {
            conditions: d.conditions.clone(),
            ..old.clone()
        },
        _ => {
            let keeps_desired = matches!(
                out.path,
                Path::MetricsFailed | Path::InvalidSelector | Path::InvalidSpec
            );
            HorizontalAutoscalerStatus {
                observed_generation: object.metadata.generation,
                last_scale_time: if out.rescale {
                    Some(d.now.clone())
                } else {
                    old.last_scale_time.clone()
                },
                current_replicas: out.current,
                desired_replicas: if out.rescale {
                    out.desired
                } else if keeps_desired {
                    old.desired_replicas
                } else {
                    out.current
                },
                current_metrics: evaluated_statuses,
                conditions: d.conditions.clone(),
                reference: Some(target_ref.to_string()),
                targets: Some(targets.join(", ")),
                history: Some(history(out, p)),
                prediction: prediction::prediction_status(p, out, old.prediction.as_ref()),
            }
        }
    }
}

impl Decision {
    /// What the shell applies when writing the scale failed: `AbleToScale=False/FailedUpdateScale`,
    /// a `FailedRescale` event instead of `SuccessfulRescale`, the stored desired count and last
    /// scale time kept, and the scale event not recorded.
    pub fn rescale_failed(&mut self, error: &str) {
        if !self.rescale {
            return;
        }
        let now = Time(self.now);
        set_condition(
            &mut self.conditions,
            "AbleToScale",
            false,
            "FailedUpdateScale",
            format!("the HPA controller was unable to update the target scale: {error}"),
            &now,
        );
        self.events.retain(|e| e.reason != "SuccessfulRescale");
        self.events.push(Event {
            type_: EventType::Warning,
            reason: "FailedRescale".into(),
            message: format!(
                "New size: {}; reason: {}; error: {error}",
                self.desired_replicas, self.reason
            ),
        });
        let change = (self.desired_replicas - self.current_replicas).abs();
        if let Some(h) = self.status.history.as_mut() {
            let list = if self.desired_replicas > self.current_replicas {
                &mut h.scale_up_events
            } else {
                &mut h.scale_down_events
            };
            if let Some(pos) = list
                .iter()
                .rposition(|e| e.time.0 == self.now && e.change == change)
            {
                list.remove(pos);
            }
        }
        self.status.conditions = self.conditions.clone();
        self.status.desired_replicas = self.previous_desired;
        self.status.last_scale_time = self.previous_last_scale_time.clone();
        self.rescale = false;
        self.explanation
            .0
            .push(format!("writing the scale failed: {error}"));
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "HorizontalAutoscaler {} → {} at {}",
            self.autoscaler, self.target, self.now
        )?;
        if self.rescale {
            writeln!(
                f,
                "Decision:  scale {} → {}  ({})",
                self.current_replicas, self.desired_replicas, self.reason
            )?;
        } else {
            writeln!(
                f,
                "Decision:  keep {} replica(s)  [{:?}]",
                self.current_replicas, self.path
            )?;
        }
        if !self.metrics.is_empty() {
            writeln!(f, "Metrics:")?;
            for m in &self.metrics {
                let proposal = match m.replicas {
                    Some(r) => format!("→ {r}"),
                    None => "→ error".into(),
                };
                let active = match m.active {
                    Some(true) => " (active)",
                    Some(false) => " (inactive)",
                    None => "",
                };
                writeln!(
                    f,
                    "  [{}] {}: {} {proposal}{active}",
                    m.index, m.name, m.target
                )?;
                if let Some(e) = &m.error {
                    writeln!(f, "      error: {e}")?;
                }
            }
        }
        writeln!(f, "Conditions:")?;
        for c in &self.conditions {
            writeln!(
                f,
                "  {:<14} {:<5} {:<28} {}",
                c.type_, c.status, c.reason, c.message
            )?;
        }
        if !self.events.is_empty() {
            writeln!(f, "Events:")?;
            for e in &self.events {
                writeln!(
                    f,
                    "  {:<7} {:<30} {}",
                    format!("{:?}", e.type_),
                    e.reason,
                    e.message
                )?;
            }
        }
        writeln!(f, "Why:")?;
        write!(f, "{}", self.explanation)
    }
}
