//! Per-metric replica calculation: each metric's proposal from its readings (upstream's
//! `replica_calculator.go`), with the missing-pod and not-ready rebalancing.

use super::*;
pub(super) fn evaluate_metrics(
    p: &Prepared,
    out: &mut Outcome,
    current: i32,
    count_failures: bool,
) {
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
