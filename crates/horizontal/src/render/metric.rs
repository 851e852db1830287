//! A metric's texts and status: its error worded as upstream's, its `status.currentMetrics`
//! entry, its `current/target` column and the explanation of its proposal.

use super::{format_milli, milli_quantity, ratio_text};
use crate::decide::{MetricError, MetricOutcome, MetricState, Rule};
use crate::prepare::{Kind, Prepared, Reading, Target};
use ballast_api::horizontal::{
    ContainerResourceMetricStatus, EventMetricStatus, FallbackBehavior, MetricSourceType,
    MetricSpec, MetricStatus, MetricValueStatus, NamedMetricStatus, ObjectMetricStatus,
    PrometheusMetricStatus, ResourceMetricStatus,
};

pub(super) fn failure_reason(spec: &MetricSpec) -> &'static str {
    match spec.type_ {
        MetricSourceType::Resource => "FailedGetResourceMetric",
        MetricSourceType::ContainerResource => "FailedGetContainerResourceMetric",
        MetricSourceType::Pods => "FailedGetPodsMetric",
        MetricSourceType::Object => "FailedGetObjectMetric",
        MetricSourceType::External => "FailedGetExternalMetric",
        MetricSourceType::Prometheus => "FailedGetPrometheusMetric",
        MetricSourceType::Event => "FailedGetEventMetric",
    }
}

fn resource_names(spec: &MetricSpec) -> (String, Option<String>) {
    match (&spec.resource, &spec.container_resource) {
        (Some(r), _) if spec.type_ == MetricSourceType::Resource => (r.name.clone(), None),
        (_, Some(c)) => (c.name.clone(), Some(c.container.clone())),
        _ => ("resource".into(), None),
    }
}

/// The error of a failed metric, worded as upstream's.
pub(super) fn metric_error_text(p: &Prepared, i: usize, e: MetricError) -> String {
    let m = &p.metrics[i];
    let spec = &p.metric_specs[i];
    let ns = p.object.metadata.namespace.as_deref().unwrap_or("default");
    let reading_msg = match &m.reading {
        Reading::Error(msg) => msg.as_str(),
        _ => "",
    };
    let resource_prefix = |inner: String| -> String {
        let (res, _) = resource_names(spec);
        match m.target {
            Ok(Target::Utilization(_)) => format!("failed to get {res} utilization: {inner}"),
            _ => format!("failed to get {res} usage: {inner}"),
        }
    };
    let is_resource = matches!(m.kind, Kind::Resource { .. });
    let text = match e {
        MetricError::Spec => return m.target.as_ref().err().cloned().unwrap_or_default(),
        MetricError::Reading => match spec.type_ {
            MetricSourceType::Resource | MetricSourceType::ContainerResource => {
                let (res, _) = resource_names(spec);
                format!("unable to get metrics for resource {res}: {reading_msg}")
            }
            MetricSourceType::Pods => {
                let name = spec.pods.as_ref().map(|p| p.metric.name.as_str()).unwrap_or("");
                format!("unable to get metric {name}: {reading_msg}")
            }
            MetricSourceType::Object => match &spec.object {
                Some(o) => format!(
                    "unable to get metric {}: {reading_msg} on {} {ns}/{}",
                    o.metric.name, o.described_object.kind, o.described_object.name
                ),
                None => reading_msg.to_string(),
            },
            MetricSourceType::External => {
                let name = spec.external.as_ref().map(|e| e.metric.name.as_str()).unwrap_or("");
                format!("unable to get external metric {ns}/{name}: {reading_msg}")
            }
            MetricSourceType::Prometheus => format!("unable to query Prometheus: {reading_msg}"),
            MetricSourceType::Event => format!("unable to read the {}: {reading_msg}", m.name),
        },
        MetricError::NoPods => "no pods returned by selector while calculating replica count".into(),
        MetricError::NoPodMetrics => "did not receive metrics for targeted pods (pods might be unready)".into(),
        MetricError::Requests => match &m.reading {
            Reading::PerPod(pp) => pp.requests.as_ref().err().cloned().unwrap_or_default(),
            _ => String::new(),
        },
        MetricError::NoMatchedPods => "no metrics returned matched known pods".into(),
        MetricError::UtilizationRange => "resource utilization is outside the int32 range".into(),
        MetricError::ReadyPodsNoPods => {
            "unable to calculate ready pods: no pods returned by selector while calculating replica count".into()
        }
        MetricError::Cron => "the cron window could not be evaluated (no next occurrence of start or end)".into(),
    };
    if is_resource && !matches!(e, MetricError::Spec) {
        resource_prefix(text)
    } else {
        text
    }
}

/// The outer wording upstream puts around a metric error in `FailedComputeMetricsReplicas`.
pub(super) fn metric_error_outer(spec: &MetricSpec, inner: &str) -> String {
    match spec.type_ {
        MetricSourceType::Resource => format!(
            "failed to get {} resource metric value: {inner}",
            resource_names(spec).0
        ),
        MetricSourceType::ContainerResource => {
            format!(
                "failed to get {} container metric value: {inner}",
                resource_names(spec).1.unwrap_or_default()
            )
        }
        MetricSourceType::Pods => format!("failed to get pods metric value: {inner}"),
        MetricSourceType::Object => format!("failed to get object metric value: {inner}"),
        MetricSourceType::External => {
            let name = spec
                .external
                .as_ref()
                .map(|e| e.metric.name.as_str())
                .unwrap_or("");
            format!("failed to get {name} external metric value: {inner}")
        }
        MetricSourceType::Prometheus => format!("failed to get prometheus metric value: {inner}"),
        MetricSourceType::Event => format!("failed to get event metric value: {inner}"),
    }
}

fn value_status(mo: &MetricOutcome, target: Option<&Target>) -> MetricValueStatus {
    let mut v = MetricValueStatus::default();
    match target {
        Some(Target::Utilization(_)) => {
            v.average_utilization = mo.utilization;
            v.average_value = mo.average.map(milli_quantity);
        }
        Some(Target::AverageValue(_)) => v.average_value = mo.average.map(milli_quantity),
        _ => v.value = mo.value.map(milli_quantity),
    }
    v
}

pub(super) fn metric_status(p: &Prepared, i: usize, mo: &MetricOutcome) -> Option<MetricStatus> {
    if mo.state != MetricState::Valid {
        return None;
    }
    let spec = &p.metric_specs[i];
    let m = &p.metrics[i];
    let current = value_status(mo, m.target.as_ref().ok());
    let mut s = MetricStatus {
        type_: spec.type_,
        ..Default::default()
    };
    match spec.type_ {
        MetricSourceType::Resource => {
            s.resource = Some(ResourceMetricStatus {
                name: resource_names(spec).0,
                current,
            });
        }
        MetricSourceType::ContainerResource => {
            let (name, container) = resource_names(spec);
            s.container_resource = Some(ContainerResourceMetricStatus {
                name,
                container: container.unwrap_or_default(),
                current,
            });
        }
        MetricSourceType::Pods => {
            s.pods = spec.pods.as_ref().map(|p| NamedMetricStatus {
                metric: p.metric.clone(),
                current,
            });
        }
        MetricSourceType::Object => {
            s.object = spec.object.as_ref().map(|o| ObjectMetricStatus {
                described_object: o.described_object.clone(),
                metric: o.metric.clone(),
                current,
            });
        }
        MetricSourceType::External => {
            s.external = spec.external.as_ref().map(|e| NamedMetricStatus {
                metric: e.metric.clone(),
                current,
            });
        }
        MetricSourceType::Prometheus => {
            s.prometheus = spec.prometheus.as_ref().map(|q| PrometheusMetricStatus {
                query: q.query.clone(),
                current,
            });
        }
        MetricSourceType::Event => {
            s.event = spec.event.as_ref().map(|e| EventMetricStatus {
                type_: e.type_,
                name: m
                    .name
                    .split(" event source ")
                    .nth(1)
                    .unwrap_or(&m.name)
                    .to_string(),
                current,
                active: mo.active,
            });
        }
    }
    Some(s)
}

pub(super) fn target_text(p: &Prepared, i: usize, mo: Option<&MetricOutcome>) -> String {
    let m = &p.metrics[i];
    let valid = mo.filter(|mo| mo.state == MetricState::Valid);
    let cur = |v: Option<String>| v.unwrap_or_else(|| "<unknown>".into());
    match (&m.kind, &m.target) {
        (Kind::Cron(c), _) => format!(
            "{}/{} (cron)",
            cur(valid.and_then(|mo| mo.value).map(format_milli)),
            c.desired
        ),
        (_, Ok(Target::Utilization(u))) => {
            format!(
                "{}/{u}%",
                cur(valid.and_then(|mo| mo.utilization).map(|u| format!("{u}%")))
            )
        }
        (_, Ok(Target::AverageValue(t))) => {
            format!(
                "{}/{} (avg)",
                cur(valid.and_then(|mo| mo.average).map(format_milli)),
                format_milli(*t)
            )
        }
        (_, Ok(Target::Value(t))) => {
            format!(
                "{}/{}",
                cur(valid.and_then(|mo| mo.value).map(format_milli)),
                format_milli(*t)
            )
        }
        (_, Err(_)) => "<unknown>/<invalid>".into(),
    }
}

fn tolerance_text(p: &Prepared) -> String {
    format!("[{:.3}, {:.3}]", 1.0 - p.spec.tol_down, 1.0 + p.spec.tol_up)
}

/// How one metric came to its proposal: the pods counted, the value against the target and the
/// rule applied (or the failure or fallback that replaced it).
pub(super) fn metric_explanation(
    p: &Prepared,
    i: usize,
    mo: &MetricOutcome,
    error: Option<&str>,
) -> String {
    if mo.state == MetricState::Fallback {
        return fallback_text(p, mo, error);
    }
    if let Some(e) = error {
        return format!("failed ({} in a row): {e}", mo.failures);
    }
    let m = &p.metrics[i];
    let target = m.target.as_ref().ok();
    if let Kind::Cron(c) = &m.kind {
        return if mo.rule == Rule::CronInside {
            format!("inside the cron window: proposes {} replicas", c.desired)
        } else {
            "outside the cron window: proposes 0".into()
        };
    }
    let mut s = value_text(p, &m.kind, target, mo);
    s.push_str(&rule_text(p, target, mo));
    s
}

/// The pods a per-pod metric counted.
fn pods_text(mo: &MetricOutcome) -> String {
    format!(
        "{} ready, {} unready, {} missing, {} ignored pod(s){}",
        mo.ready,
        mo.unready,
        mo.missing,
        mo.ignored,
        if mo.extra > 0 {
            format!(", {} sample(s) of unknown pods", mo.extra)
        } else {
            String::new()
        }
    )
}

/// A metric that failed past `fallback.failureThreshold`: what the fallback proposes.
fn fallback_text(p: &Prepared, mo: &MetricOutcome, error: Option<&str>) -> String {
    let fb = p.spec.fallback.as_ref();
    let behavior = match fb.map(|f| f.behavior) {
        Some(FallbackBehavior::Static) | None => "static",
        Some(FallbackBehavior::CurrentReplicas) => "currentReplicas",
        Some(FallbackBehavior::CurrentReplicasIfHigher) => "currentReplicasIfHigher",
        Some(FallbackBehavior::CurrentReplicasIfLower) => "currentReplicasIfLower",
    };
    format!(
        "failed {} time(s) in a row (more than fallback.failureThreshold {}): fallback ({behavior}) proposes {} — last error: {}",
        mo.failures,
        fb.map(|f| f.threshold).unwrap_or(0),
        mo.replicas,
        error.unwrap_or("")
    )
}

/// The value read against the target, with the ratio of the two (empty for an unknown pair).
fn value_text(p: &Prepared, kind: &Kind, target: Option<&Target>, mo: &MetricOutcome) -> String {
    match (kind, target) {
        (Kind::Resource { .. }, Some(Target::Utilization(t))) => format!(
            "{}; utilization {}% of requests (target {t}%), ratio {}",
            pods_text(mo),
            mo.utilization.unwrap_or(0),
            ratio_text(mo.ratio)
        ),
        (Kind::Resource { .. } | Kind::Pods, Some(Target::AverageValue(t))) => format!(
            "{}; average {} per pod (target {}), ratio {}",
            pods_text(mo),
            format_milli(mo.average.unwrap_or(0)),
            format_milli(*t),
            ratio_text(mo.ratio)
        ),
        (_, Some(Target::Value(t))) => format!(
            "value {} (target {}), ratio {}",
            format_milli(mo.value.unwrap_or(0)),
            format_milli(*t),
            ratio_text(mo.ratio)
        ),
        (_, Some(Target::AverageValue(t))) => format!(
            "value {} over {} replica(s) (target {} per replica), ratio {}",
            format_milli(mo.value.unwrap_or(0)),
            p.scale.status_replicas,
            format_milli(*t),
            ratio_text(mo.ratio)
        ),
        _ => String::new(),
    }
}

/// The rule that turned the ratio into a proposal, starting with `; ` (empty for none).
fn rule_text(p: &Prepared, target: Option<&Target>, mo: &MetricOutcome) -> String {
    let tol = tolerance_text(p);
    let current = p.scale.spec_replicas;
    match mo.rule {
        Rule::WithinTolerance => format!("; within tolerance {tol}: keep {current}"),
        Rule::Plain => format!(
            "; outside tolerance {tol}: ceil({} × {} ready) = {}",
            ratio_text(mo.ratio),
            mo.ready,
            mo.replicas
        ),
        Rule::FromZero => format!(
            "; from 0 replicas: ceil({}) = {}",
            ratio_text(mo.ratio),
            mo.replicas
        ),
        Rule::AverageWithinTolerance => format!("; within tolerance {tol}: keep {}", mo.replicas),
        Rule::AverageValue => format!(
            "; outside tolerance {tol}: ceil(value / target) = {}",
            mo.replicas
        ),
        Rule::Rebalanced
        | Rule::RebalancedWithinTolerance
        | Rule::DirectionFlip
        | Rule::CountFlip => rebalanced_text(target, mo, &tol, current),
        _ => String::new(),
    }
}

/// The second pass with missing and unready pods filled in, and what it concluded.
fn rebalanced_text(target: Option<&Target>, mo: &MetricOutcome, tol: &str, current: i32) -> String {
    let fill = if mo.ratio > 1.0 {
        "missing and unready pods counted as using 0"
    } else if matches!(target, Some(Target::Utilization(_))) {
        "missing pods counted at max(100%, target) of their request"
    } else {
        "missing pods counted at the target"
    };
    let tail = match mo.rule {
        Rule::Rebalanced => format!(
            "ceil({} × {}) = {}",
            ratio_text(mo.new_ratio),
            mo.counted,
            mo.replicas
        ),
        Rule::RebalancedWithinTolerance => format!("within tolerance {tol}: keep {current}"),
        Rule::DirectionFlip => format!("that reverses the direction: keep {current}"),
        _ => format!(
            "ceil({} × {}) would go the other way: keep {current}",
            ratio_text(mo.new_ratio),
            mo.counted
        ),
    };
    format!("; {fill}: new ratio {}, {tail}", ratio_text(mo.new_ratio))
}
