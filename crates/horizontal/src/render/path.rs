//! The part of a decision's explanation, conditions and events that depends on the [`Path`] it
//! took.

use super::metric::{failure_reason, metric_error_outer};
use super::{Draft, Evaluated, limit_message, limit_name, stabilization_condition, time};
use super::{Event, EventType};
use crate::decide::{Cooldown, MetricError, Outcome, Path};
use crate::prepare::{Prepared, SelectorCheck};

impl Evaluated<'_> {
    /// One explanation line per evaluated metric, with its proposal.
    fn metric_lines(&self, d: &mut Draft) {
        for m in self.metrics {
            let act = match m.active {
                Some(true) => " [active]",
                Some(false) => " [inactive]",
                None => "",
            };
            let prop = m.replicas.map(|r| format!(" → {r}")).unwrap_or_default();
            d.lines.push(format!(
                "metric {} ({}){act}: {}{prop}",
                m.index, m.name, m.explanation
            ));
        }
    }

    /// A warning event per failed metric.
    fn fail_events(&self, d: &mut Draft) {
        for (i, mo) in self.out.metrics.iter().enumerate() {
            // At zero or idle replicas a per-pod metric has no pods to read: not worth a warning.
            let expected = matches!(self.out.path, Path::Idle | Path::Activated)
                && mo.error == Some(MetricError::NoPods);
            if mo.error.is_some() && !expected {
                d.events.push(Event {
                    type_: EventType::Warning,
                    reason: failure_reason(&self.p.metric_specs[i]).into(),
                    message: self.errors[i].clone().unwrap_or_default(),
                });
            }
        }
    }
}

/// Explains the path the decision took and sets the conditions and events it calls for.
pub(super) fn explain_path(d: &mut Draft, e: &Evaluated) {
    let (p, out) = (e.p, e.out);
    match out.path {
        Path::FailedGetScale => failed_get_scale(d, p),
        Path::InvalidSpec => invalid_spec(d, p),
        Path::Paused => paused(d, e),
        Path::ScalingDisabled => scaling_disabled(d, p),
        Path::InvalidSelector => invalid_selector(d, p),
        Path::AboveMax => {
            d.lines.push(format!(
                "current replicas {} above maxReplicas {}: set to {} without reading metrics",
                out.current, p.spec.max, out.desired
            ));
        }
        Path::BelowMin => {
            d.lines.push(format!(
                "current replicas {} below minReplicas {}: set to {} without reading metrics",
                out.current, out.floor, out.desired
            ));
        }
        Path::MetricsFailed => metrics_failed(d, e),
        Path::Normal | Path::Activated => {
            e.metric_lines(d);
            e.fail_events(d);
            scaling(d, e);
            stabilization(d, p, out);
            limits(d, p, out);
        }
        Path::Deactivated | Path::Idle => idle(d, e),
    }
}

/// The target's scale could not be read.
fn failed_get_scale(d: &mut Draft, p: &Prepared) {
    let err = p.scale.error.clone().unwrap_or_default();
    d.able(
        false,
        "FailedGetScale",
        format!("the HPA controller was unable to get the target's current scale: {err}"),
    );
    d.events.push(Event {
        type_: EventType::Warning,
        reason: "FailedGetScale".into(),
        message: err.clone(),
    });
    d.lines.push(format!(
        "the target's scale could not be read ({err}): nothing is changed"
    ));
}

/// The spec failed validation.
fn invalid_spec(d: &mut Draft, p: &Prepared) {
    let (field, msg) = p.spec.error.clone().unwrap_or_default();
    d.condition(
        "ScalingActive",
        false,
        "InvalidSpec",
        format!("{field}: {msg}"),
    );
    d.events.push(Event {
        type_: EventType::Warning,
        reason: "InvalidSpec".into(),
        message: format!("{field}: {msg}"),
    });
    d.lines.push(format!(
        "the spec is invalid ({field}: {msg}): nothing is changed"
    ));
}

/// `spec.paused`: the metrics are shown, the count is left or set to `spec.pausedReplicas`.
fn paused(d: &mut Draft, e: &Evaluated) {
    e.metric_lines(d);
    let out = e.out;
    d.condition(
        "ScalingActive",
        false,
        "ScalingPaused",
        "autoscaling is paused (spec.paused)".into(),
    );
    if out.rescale {
        d.lines.push(format!(
            "paused: setting the target to spec.pausedReplicas = {}",
            out.desired
        ));
    } else {
        d.lines
            .push("paused: the replica count is left as it is".into());
    }
}

/// The target has 0 replicas and `minReplicas` is not 0.
fn scaling_disabled(d: &mut Draft, p: &Prepared) {
    d.condition(
        "ScalingActive",
        false,
        "ScalingDisabled",
        "scaling is disabled since the replica count of the target is zero".into(),
    );
    d.lines.push(format!(
        "the target has 0 replicas and minReplicas is {}: autoscaling is disabled until something else scales it up",
        p.spec.min
    ));
}

/// The target's scale selector is missing, invalid or shared with another autoscaler.
fn invalid_selector(d: &mut Draft, p: &Prepared) {
    let (reason, cond_msg, event_reason, event_msg) = match &p.scale.selector {
        SelectorCheck::Empty => (
            "InvalidSelector",
            "the HPA target's scale is missing a selector".to_string(),
            "SelectorRequired",
            "selector is required".to_string(),
        ),
        SelectorCheck::Invalid(e) => {
            let msg = format!(
                "couldn't convert selector into a corresponding internal selector object: {e}"
            );
            ("InvalidSelector", msg.clone(), "InvalidSelector", msg)
        }
        SelectorCheck::Ambiguous(others) => {
            let msg = format!(
                "pods by selector {} are controlled by multiple HPAs: [{}, {others}]",
                p.object.spec.scale_target_ref.name,
                p.key()
            );
            ("AmbiguousSelector", msg.clone(), "AmbiguousSelector", msg)
        }
        SelectorCheck::Ok => (
            "InvalidSelector",
            String::new(),
            "InvalidSelector",
            String::new(),
        ),
    };
    d.condition("ScalingActive", false, reason, cond_msg);
    d.events.push(Event {
        type_: EventType::Warning,
        reason: event_reason.into(),
        message: event_msg.clone(),
    });
    d.events.push(Event {
        type_: EventType::Warning,
        reason: "FailedComputeMetricsReplicas".into(),
        message: event_msg.clone(),
    });
    d.lines.push(format!(
        "selector problem ({event_msg}): nothing is changed"
    ));
}

/// Every metric failed, or the valid ones would scale down on partial data.
fn metrics_failed(d: &mut Draft, e: &Evaluated) {
    let (p, out) = (e.p, e.out);
    e.metric_lines(d);
    e.fail_events(d);
    let first = out.first_invalid.unwrap_or(0);
    let first_err = e.errors[first].clone().unwrap_or_default();
    d.condition(
        "ScalingActive",
        false,
        failure_reason(&p.metric_specs[first]),
        format!("the HPA was unable to compute the replica count: {first_err}"),
    );
    let msg = format!(
        "invalid metrics ({} invalid out of {}), first error is: {}",
        out.invalid,
        out.metrics.len(),
        metric_error_outer(&p.metric_specs[first], &first_err)
    );
    d.events.push(Event {
        type_: EventType::Warning,
        reason: "FailedComputeMetricsReplicas".into(),
        message: msg,
    });
    if out.invalid as usize >= out.metrics.len() {
        d.lines
            .push("every metric failed: nothing is changed".into());
    } else {
        let best = out.best.map(|i| out.metrics[i].replicas).unwrap_or(0);
        d.lines.push(format!(
            "{} metric(s) failed and the valid ones propose {best} < current {}: no scale-down on partial data, nothing is changed",
            out.invalid, out.current
        ));
    }
}

/// A replica count was computed from the metrics: where it came from.
fn scaling(d: &mut Draft, e: &Evaluated) {
    let (p, out) = (e.p, e.out);
    let best_name = out
        .best
        .map(|i| p.metrics[i].name.clone())
        .unwrap_or_default();
    d.condition(
        "ScalingActive",
        true,
        "ValidMetricFound",
        format!("the HPA was able to successfully calculate a replica count from {best_name}"),
    );
    if out.invalid > 0 {
        d.lines.push(format!(
            "{} metric(s) failed, but the valid ones scale up: going on, the failures are reported",
            out.invalid
        ));
    }
    if out.path == Path::Activated {
        d.lines.push(format!(
            "{} is active while at {} replica(s): activating to at least {} (max of the proposals: {})",
            out.first_active.map(|i| p.metrics[i].name.as_str()).unwrap_or("a metric"),
            out.current,
            out.floor,
            out.prenormalized
        ));
    } else {
        if let Cooldown::CoolingDown { until } = out.cooldown {
            d.lines.push(format!(
                "no metric is active; cooling down until {} before going to {} replica(s)",
                time(until).0,
                p.spec.idle.unwrap_or(0)
            ));
        }
        d.lines.push(format!(
            "largest proposal: {} ({})",
            out.prenormalized,
            if best_name.is_empty() {
                "no metric".into()
            } else {
                best_name.clone()
            }
        ));
    }
}

/// The stabilization window applied to the largest proposal.
fn stabilization(d: &mut Draft, p: &Prepared, out: &Outcome) {
    let (sreason, smsg) = stabilization_condition(out.stabilization);
    d.able(true, sreason, smsg.into());
    let window = match &p.spec.behavior {
        None => format!(
            "highest recommendation of the last {}s (downscale window)",
            p.config.downscale_window_ms / 1000
        ),
        Some(b) => format!(
            "between the lowest recommendation of the last {}s (scale-up window) and the highest of the last {}s (scale-down window), starting from {}",
            b.up.window_ms / 1000,
            b.down.window_ms / 1000,
            out.current
        ),
    };
    d.lines.push(format!(
        "stabilization, {window}: {} → {} ({sreason})",
        out.prenormalized, out.stabilized
    ));
}

/// The bounds and rate limits applied to the stabilized count.
fn limits(d: &mut Draft, p: &Prepared, out: &Outcome) {
    let bound = match (&p.spec.behavior, out.rate_limit) {
        (None, Some(l)) => format!(
            "bounds [{}, min({}, scale-up limit max(2×{}, 4) = {l})]",
            out.floor, p.spec.max, out.current
        ),
        (Some(_), Some(l)) if out.stabilized > out.current => {
            format!(
                "scale-up policies allow up to {l}, maxReplicas {}",
                p.spec.max
            )
        }
        (Some(_), Some(l)) => format!(
            "scale-down policies allow down to {l}, minReplicas {}",
            out.floor
        ),
        _ => format!("bounds [{}, {}]", out.floor, p.spec.max),
    };
    d.condition(
        "ScalingLimited",
        out.limited,
        limit_name(out.limit),
        limit_message(out.limit).into(),
    );
    d.lines.push(format!(
        "limits, {bound}: {} → {} ({})",
        out.stabilized,
        out.desired,
        limit_name(out.limit)
    ));
}

/// No metric is active (activation mode): held at the idle count, or going to it.
fn idle(d: &mut Draft, e: &Evaluated) {
    let (p, out) = (e.p, e.out);
    e.metric_lines(d);
    e.fail_events(d);
    let idle = p.spec.idle.unwrap_or(0);
    d.condition(
        "ScalingActive",
        false,
        "ScalingIdle",
        format!("no metric is active: the target is held at {idle} replica(s) until one is"),
    );
    if out.path == Path::Deactivated {
        d.lines.push(format!(
            "no metric active for more than cooldownPeriodSeconds ({}s): going to {} replica(s)",
            p.spec.cooldown_ms / 1000,
            out.desired
        ));
    } else {
        d.lines.push(format!(
            "no metric is active: staying at {} replica(s)",
            out.current
        ));
    }
}
