//! One entry of `spec.metrics` prepared: its kind, checked target, key and name, and its reading
//! lined up with the pods (per-pod samples and requests, or one summed value).

use super::{
    CronView, DEFAULT_SAMPLE_WINDOW_MS, Kind, MetricView, PerPod, Reading, Sample, Target, millis,
};
use crate::snapshot::{PodSample, Snapshot, SnapshotError};
use ballast_api::common::{parse_duration_seconds, quantity_milli};
use ballast_api::horizontal::{
    EventSourceType, MetricSourceType, MetricSpec, MetricTarget, MetricTargetType,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::HashMap;

fn positive_milli(q: &Quantity, field: &str) -> Result<i64, String> {
    match quantity_milli(q) {
        Ok(v) if v > 0 => Ok(v),
        Ok(_) => Err(format!("{field}: must be greater than 0")),
        Err(e) => Err(format!("{field}: {e}")),
    }
}

/// The target of Object metrics: the `type` field decides, as upstream.
fn typed_target(t: &MetricTarget, field: &str, what: &str) -> Result<Target, String> {
    match (t.type_, &t.value, &t.average_value) {
        (MetricTargetType::Value, Some(v), _) => {
            positive_milli(v, &format!("{field}.value")).map(Target::Value)
        }
        (MetricTargetType::AverageValue, _, Some(v)) => {
            positive_milli(v, &format!("{field}.averageValue")).map(Target::AverageValue)
        }
        _ => Err(format!(
            "invalid {what} metric source: neither a value target nor an average value target was set"
        )),
    }
}

/// The target of External-like metrics: averageValue wins over value, as upstream.
pub(crate) fn value_target(t: &MetricTarget, field: &str, what: &str) -> Result<Target, String> {
    if let Some(v) = &t.average_value {
        return positive_milli(v, &format!("{field}.averageValue")).map(Target::AverageValue);
    }
    if let Some(v) = &t.value {
        return positive_milli(v, &format!("{field}.value")).map(Target::Value);
    }
    Err(format!(
        "invalid {what} metric source: neither a value target nor an average value target was set"
    ))
}

fn resource_target(t: &MetricTarget, field: &str) -> Result<Target, String> {
    if let Some(v) = &t.average_value {
        return positive_milli(v, &format!("{field}.averageValue")).map(Target::AverageValue);
    }
    match t.average_utilization {
        Some(u) if u > 0 => Ok(Target::Utilization(u)),
        Some(_) => Err(format!("{field}.averageUtilization: must be greater than 0")),
        None => Err("invalid resource metric source: neither an average utilization target nor an average value (usage) target was set".into()),
    }
}

fn selector_text(sel: &Option<ballast_api::common::LabelSelector>) -> String {
    let Some(sel) = sel else { return String::new() };
    let mut parts: Vec<String> = Vec::new();
    if let Some(labels) = &sel.match_labels {
        parts.extend(labels.iter().map(|(k, v)| format!("{k}={v}")));
    }
    if let Some(exprs) = &sel.match_expressions {
        for e in exprs {
            let values = e.values.as_deref().unwrap_or_default().join(",");
            parts.push(match e.operator.as_str() {
                "Exists" => e.key.clone(),
                "DoesNotExist" => format!("!{}", e.key),
                op => format!("{} {} ({values})", e.key, op.to_lowercase()),
            });
        }
    }
    parts.join(",")
}

fn event_name(e: &ballast_api::horizontal::EventMetricSource) -> String {
    if let Some(n) = &e.name {
        return n.clone();
    }
    let derived = match e.type_ {
        EventSourceType::RedisList => e.redis_list.as_ref().map(|s| s.list_name.clone()),
        EventSourceType::Rabbitmq => e.rabbitmq.as_ref().map(|s| s.queue_name.clone()),
        EventSourceType::Postgresql => e.postgresql.as_ref().map(|s| s.database.clone()),
        EventSourceType::Kafka => e.kafka.as_ref().map(|s| match &s.topic {
            Some(t) => format!("{}/{t}", s.consumer_group),
            None => s.consumer_group.clone(),
        }),
        EventSourceType::AwsSqs => e.aws_sqs.as_ref().map(|s| {
            s.queue_url
                .rsplit('/')
                .next()
                .unwrap_or(&s.queue_url)
                .to_string()
        }),
        EventSourceType::Cron => Some("cron".to_string()),
    };
    derived.unwrap_or_else(|| event_type_name(e.type_).to_string())
}

pub(crate) fn event_type_name(t: EventSourceType) -> &'static str {
    match t {
        EventSourceType::RedisList => "redis-list",
        EventSourceType::Rabbitmq => "rabbitmq",
        EventSourceType::Postgresql => "postgresql",
        EventSourceType::Kafka => "kafka",
        EventSourceType::AwsSqs => "aws-sqs",
        EventSourceType::Cron => "cron",
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// What a metric source names: its kind, its checked target, its stable key (`s0-cpu`) and its
/// upstream-style name.
type Source = (Kind, Result<Target, String>, String, String);

/// One entry of `spec.metrics`, checked, with its reading lined up with the pods.
pub(super) fn prepare_metric(
    i: usize,
    ms: &MetricSpec,
    snapshot: &Snapshot,
    index: &HashMap<&str, usize>,
) -> Result<MetricView, SnapshotError> {
    let field = format!("spec.metrics[{i}]");
    let (activation, activation_error) = match ms.type_ {
        MetricSourceType::Prometheus => activation_threshold(
            ms.prometheus
                .as_ref()
                .and_then(|p| p.activation_threshold.as_ref()),
            &format!("{field}.prometheus.activationThreshold"),
        ),
        MetricSourceType::Event => activation_threshold(
            ms.event
                .as_ref()
                .and_then(|e| e.activation_threshold.as_ref()),
            &format!("{field}.event.activationThreshold"),
        ),
        _ => (0, None),
    };
    let (kind, target, key, name) = match ms.type_ {
        MetricSourceType::Resource => resource_source(i, &field, ms),
        MetricSourceType::ContainerResource => container_resource_source(i, &field, ms),
        MetricSourceType::Pods => pods_source(i, &field, ms),
        MetricSourceType::Object => object_source(i, &field, ms),
        MetricSourceType::External => external_source(i, &field, ms),
        MetricSourceType::Prometheus => prometheus_source(i, &field, ms),
        MetricSourceType::Event => event_source(i, &field, ms),
    };
    let target = match (target, activation_error) {
        (Ok(_), Some(e)) => Err(e),
        (t, _) => t,
    };

    let reading = prepare_reading(i, ms, &kind, &target, snapshot, index)?;
    Ok(MetricView {
        kind,
        target,
        activation,
        key,
        name,
        reading,
    })
}

/// The error of a metric whose type names a source field that is not set.
fn missing_source(field: &str, ms: &MetricSpec, what: &str) -> Result<Target, String> {
    Err(format!(
        "{field}: type {:?} needs the {what} field",
        ms.type_
    ))
}

/// The activation threshold in milli-units (0 when unset), or the error that voids the target.
fn activation_threshold(q: Option<&Quantity>, field: &str) -> (i64, Option<String>) {
    match q.map(quantity_milli) {
        None => (0, None),
        Some(Ok(v)) => (v, None),
        Some(Err(e)) => (0, Some(format!("{field}: {e}"))),
    }
}

/// A `resource` metric: utilization or average value of a pod resource.
fn resource_source(i: usize, field: &str, ms: &MetricSpec) -> Source {
    match &ms.resource {
        Some(r) => {
            let t = resource_target(&r.target, &format!("{field}.resource.target"));
            let name = match t {
                Ok(Target::Utilization(_)) => {
                    format!("{} resource utilization (percentage of request)", r.name)
                }
                _ => format!("{} resource", r.name),
            };
            (
                Kind::Resource {
                    cpu: r.name == "cpu",
                },
                t,
                format!("s{i}-{}", sanitize(&r.name)),
                name,
            )
        }
        None => (
            Kind::Resource { cpu: false },
            missing_source(field, ms, "resource"),
            format!("s{i}-resource"),
            "resource".into(),
        ),
    }
}

/// A `containerResource` metric: the same for one container of each pod.
fn container_resource_source(i: usize, field: &str, ms: &MetricSpec) -> Source {
    match &ms.container_resource {
        Some(r) => {
            let t = resource_target(&r.target, &format!("{field}.containerResource.target"));
            let name = match t {
                Ok(Target::Utilization(_)) => {
                    format!(
                        "{} container resource utilization (percentage of request)",
                        r.name
                    )
                }
                _ => format!("{} resource", r.name),
            };
            (
                Kind::Resource {
                    cpu: r.name == "cpu",
                },
                t,
                format!("s{i}-{}-{}", sanitize(&r.container), sanitize(&r.name)),
                name,
            )
        }
        None => (
            Kind::Resource { cpu: false },
            missing_source(field, ms, "containerResource"),
            format!("s{i}-container-resource"),
            "container resource".into(),
        ),
    }
}

/// A `pods` metric: an average value per pod.
fn pods_source(i: usize, field: &str, ms: &MetricSpec) -> Source {
    match &ms.pods {
        Some(p) => {
            let t = match &p.target.average_value {
                Some(v) => positive_milli(v, &format!("{field}.pods.target.averageValue"))
                    .map(Target::AverageValue),
                None => Err(format!(
                    "{field}.pods.target.averageValue: a Pods metric needs an average value target"
                )),
            };
            (
                Kind::Pods,
                t,
                format!("s{i}-pods-{}", sanitize(&p.metric.name)),
                format!("pods metric {}", p.metric.name),
            )
        }
        None => (
            Kind::Pods,
            missing_source(field, ms, "pods"),
            format!("s{i}-pods"),
            "pods metric".into(),
        ),
    }
}

/// An `object` metric: one value of a described object.
fn object_source(i: usize, field: &str, ms: &MetricSpec) -> Source {
    match &ms.object {
        Some(o) => (
            Kind::Single {
                source: MetricSourceType::Object,
            },
            typed_target(&o.target, &format!("{field}.object.target"), "object"),
            format!("s{i}-object-{}", sanitize(&o.metric.name)),
            format!("{} metric {}", o.described_object.kind, o.metric.name),
        ),
        None => (
            Kind::Single {
                source: MetricSourceType::Object,
            },
            missing_source(field, ms, "object"),
            format!("s{i}-object"),
            "object metric".into(),
        ),
    }
}

/// An `external` metric, named with its selector.
fn external_source(i: usize, field: &str, ms: &MetricSpec) -> Source {
    match &ms.external {
        Some(e) => {
            let sel = selector_text(&e.metric.selector);
            let name = if sel.is_empty() {
                format!("external metric {}", e.metric.name)
            } else {
                format!("external metric {}({sel})", e.metric.name)
            };
            (
                Kind::Single {
                    source: MetricSourceType::External,
                },
                value_target(&e.target, &format!("{field}.external.target"), "external"),
                format!("s{i}-external-{}", sanitize(&e.metric.name)),
                name,
            )
        }
        None => (
            Kind::Single {
                source: MetricSourceType::External,
            },
            missing_source(field, ms, "external"),
            format!("s{i}-external"),
            "external metric".into(),
        ),
    }
}

/// A `prometheus` query.
fn prometheus_source(i: usize, field: &str, ms: &MetricSpec) -> Source {
    match &ms.prometheus {
        Some(p) => (
            Kind::Single {
                source: MetricSourceType::Prometheus,
            },
            value_target(
                &p.target,
                &format!("{field}.prometheus.target"),
                "prometheus",
            ),
            format!("s{i}-prometheus"),
            format!("prometheus query {}", p.query),
        ),
        None => (
            Kind::Single {
                source: MetricSourceType::Prometheus,
            },
            missing_source(field, ms, "prometheus"),
            format!("s{i}-prometheus"),
            "prometheus query".into(),
        ),
    }
}

/// An `event` source; a cron source carries its parsed window as its kind.
fn event_source(i: usize, field: &str, ms: &MetricSpec) -> Source {
    match &ms.event {
        Some(e) => {
            let ename = event_name(e);
            let key = format!("s{i}-{}-{}", event_type_name(e.type_), sanitize(&ename));
            let name = format!("{} event source {ename}", event_type_name(e.type_));
            if e.type_ == EventSourceType::Cron {
                match e
                    .cron
                    .as_ref()
                    .map(|c| prepare_cron(c, &format!("{field}.event.cron")))
                {
                    Some(Ok(cv)) => (Kind::Cron(Box::new(cv)), Ok(Target::Value(1000)), key, name),
                    Some(Err(msg)) => (
                        Kind::Single {
                            source: MetricSourceType::Event,
                        },
                        Err(msg),
                        key,
                        name,
                    ),
                    None => (
                        Kind::Single {
                            source: MetricSourceType::Event,
                        },
                        Err(format!("{field}.event: type cron needs the cron field")),
                        key,
                        name,
                    ),
                }
            } else {
                let t = match &e.target {
                    Some(t) => value_target(t, &format!("{field}.event.target"), "event"),
                    None => Err(format!(
                        "{field}.event.target: every event source but cron needs a target"
                    )),
                };
                (
                    Kind::Single {
                        source: MetricSourceType::Event,
                    },
                    t,
                    key,
                    name,
                )
            }
        }
        None => (
            Kind::Single {
                source: MetricSourceType::Event,
            },
            missing_source(field, ms, "event"),
            format!("s{i}-event"),
            "event source".into(),
        ),
    }
}

fn prepare_cron(c: &ballast_api::horizontal::CronSource, field: &str) -> Result<CronView, String> {
    let start =
        ballast_api::validate::parse_cron(&c.start).map_err(|e| format!("{field}.start: {e}"))?;
    let end = ballast_api::validate::parse_cron(&c.end).map_err(|e| format!("{field}.end: {e}"))?;
    let tz = match c.timezone.as_deref() {
        None | Some("") | Some("UTC") | Some("Etc/UTC") => jiff::tz::TimeZone::UTC,
        Some(name) => {
            jiff::tz::TimeZone::get(name).map_err(|e| format!("{field}.timezone: {name:?}: {e}"))?
        }
    };
    if c.desired_replicas < 0 {
        return Err(format!("{field}.desiredReplicas: must not be negative"));
    }
    Ok(CronView {
        start,
        end,
        tz,
        desired: c.desired_replicas,
    })
}

fn prepare_reading(
    i: usize,
    ms: &MetricSpec,
    kind: &Kind,
    target: &Result<Target, String>,
    snapshot: &Snapshot,
    index: &HashMap<&str, usize>,
) -> Result<Reading, SnapshotError> {
    if matches!(kind, Kind::Cron(_)) {
        return Ok(Reading::None);
    }
    let field = format!("metrics[{i}]");
    let Some(r) = snapshot.metrics.get(i) else {
        return Ok(Reading::Error(format!(
            "no reading for spec.metrics[{i}] in the snapshot"
        )));
    };
    let set = usize::from(r.pods.is_some())
        + usize::from(r.value.is_some())
        + usize::from(r.values.is_some())
        + usize::from(r.error.is_some());
    if set != 1 {
        return Err(SnapshotError::invalid(
            field,
            "set exactly one of pods, value, values, error",
        ));
    }
    if let Some(e) = &r.error {
        return Ok(Reading::Error(e.clone()));
    }
    let per_pod = matches!(kind, Kind::Resource { .. } | Kind::Pods);
    if per_pod {
        return per_pod_reading(&field, ms, kind, target, r.pods.as_deref(), snapshot, index);
    }
    let values: Vec<&Quantity> = match (&r.value, &r.values) {
        (Some(v), _) => vec![v],
        (_, Some(vs)) => vs.iter().collect(),
        _ => {
            return Ok(Reading::Error(format!(
                "{field}: a {:?} metric is read as a value (`value` or `values`), got per-pod samples",
                ms.type_
            )));
        }
    };
    let mut total: i64 = 0;
    for (j, q) in values.iter().enumerate() {
        match quantity_milli(q) {
            // Several series are summed, saturating like upstream does on overflow.
            Ok(v) => total = total.saturating_add(v),
            Err(e) => return Ok(Reading::Error(format!("{field}.values[{j}]: {e}"))),
        }
    }
    Ok(Reading::Value(total))
}

/// A per-pod reading: the samples lined up with the pods by name (the rest kept as extra), and the
/// pods' requests when the target is a utilization.
fn per_pod_reading(
    field: &str,
    ms: &MetricSpec,
    kind: &Kind,
    target: &Result<Target, String>,
    pods: Option<&[PodSample]>,
    snapshot: &Snapshot,
    index: &HashMap<&str, usize>,
) -> Result<Reading, SnapshotError> {
    let Some(samples) = pods else {
        return Ok(Reading::Error(format!(
            "{field}: a {:?} metric is read as per-pod samples (`pods`), got a single value",
            ms.type_
        )));
    };
    let mut aligned = vec![None; snapshot.pods.len()];
    let mut extra = Vec::new();
    for (j, s) in samples.iter().enumerate() {
        let value = match quantity_milli(&s.value) {
            Ok(v) => v,
            Err(e) => return Ok(Reading::Error(format!("{field}.pods[{j}].value: {e}"))),
        };
        let window = match &s.window {
            None => DEFAULT_SAMPLE_WINDOW_MS,
            Some(w) => match parse_duration_seconds(w) {
                Ok(secs) => (secs * 1000.0).round() as i64,
                Err(e) => {
                    return Err(SnapshotError::invalid(
                        format!("{field}.pods[{j}].window"),
                        e.to_string(),
                    ));
                }
            },
        };
        let at = s
            .timestamp
            .as_ref()
            .map(millis)
            .unwrap_or_else(|| millis(&snapshot.now));
        let sample = Sample { value, at, window };
        match index.get(s.pod.as_str()) {
            Some(&p) => {
                if aligned[p].is_some() {
                    return Err(SnapshotError::invalid(
                        format!("{field}.pods[{j}].pod"),
                        format!("a second sample for pod {:?}", s.pod),
                    ));
                }
                aligned[p] = Some(sample);
            }
            None => extra.push(sample),
        }
    }
    let requests = match (kind, target) {
        (Kind::Resource { .. }, Ok(Target::Utilization(_))) => pod_requests(ms, snapshot),
        _ => Ok(Vec::new()),
    };
    Ok(Reading::PerPod(PerPod {
        samples: aligned,
        extra,
        requests,
    }))
}

/// Per-pod requests of the metric's resource: the named container, else pod-level requests,
/// else the sum over containers and restartable init containers. Errors like upstream.
fn pod_requests(ms: &MetricSpec, snapshot: &Snapshot) -> Result<Vec<i64>, String> {
    let (resource, container) = match (&ms.resource, &ms.container_resource) {
        (Some(r), _) if ms.type_ == MetricSourceType::Resource => (r.name.as_str(), None),
        (_, Some(c)) => (c.name.as_str(), Some(c.container.as_str())),
        _ => return Ok(Vec::new()),
    };
    let mut out = Vec::with_capacity(snapshot.pods.len());
    for pod in &snapshot.pods {
        if container.is_none()
            && let Some(q) = pod.requests.get(resource)
        {
            out.push(quantity_milli(q).map_err(|e| {
                format!(
                    "invalid pod-level request for {resource} in Pod {}: {e}",
                    pod.name
                )
            })?);
            continue;
        }
        let sidecars = pod
            .init_containers
            .iter()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"));
        let mut sum: i64 = 0;
        let mut found = false;
        for c in pod.containers.iter().chain(sidecars) {
            if container.is_none() || container == Some(c.name.as_str()) {
                let q = c.requests.get(resource).ok_or_else(|| {
                    format!(
                        "missing request for {resource} in container {} of Pod {}",
                        c.name, pod.name
                    )
                })?;
                let v = quantity_milli(q).map_err(|e| {
                    format!(
                        "invalid request for {resource} in container {} of Pod {}: {e}",
                        c.name, pod.name
                    )
                })?;
                sum = sum.saturating_add(v);
                if container.is_some() {
                    found = true;
                    break;
                }
            }
        }
        if let Some(name) = container
            && !found
        {
            return Err(format!("container {name} not found in Pod {}", pod.name));
        }
        out.push(sum);
    }
    Ok(out)
}
