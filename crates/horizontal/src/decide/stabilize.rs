//! Normalization: the stabilization windows and the scale-up / scale-down limits applied to the
//! best proposal (upstream's `normalizeDesiredReplicas` and its behavior-aware variant).

use super::*;
pub(super) fn normalize(
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
