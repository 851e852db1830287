//! Builders for test snapshots: short to write, explicit in what they set.
#![allow(dead_code)]

use ballast_api::common::{CrossVersionObjectReference, Time};
use ballast_api::horizontal::*;
use ballast_horizontal::*;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

pub const NOW: &str = "2025-03-01T12:00:00Z";

pub fn now() -> Timestamp {
    NOW.parse().unwrap()
}

/// `now` minus `secs` seconds.
pub fn ago(secs: i64) -> Timestamp {
    now() - SignedDuration::from_secs(secs)
}

pub fn q(s: &str) -> Quantity {
    Quantity(s.to_string())
}

// ---- metric specs ----

pub fn target_util(u: i32) -> MetricTarget {
    MetricTarget {
        type_: MetricTargetType::Utilization,
        average_utilization: Some(u),
        ..Default::default()
    }
}
pub fn target_avg(v: &str) -> MetricTarget {
    MetricTarget {
        type_: MetricTargetType::AverageValue,
        average_value: Some(q(v)),
        ..Default::default()
    }
}
pub fn target_value(v: &str) -> MetricTarget {
    MetricTarget {
        type_: MetricTargetType::Value,
        value: Some(q(v)),
        ..Default::default()
    }
}

pub fn cpu_util(u: i32) -> MetricSpec {
    resource("cpu", target_util(u))
}
pub fn resource(name: &str, target: MetricTarget) -> MetricSpec {
    MetricSpec {
        type_: MetricSourceType::Resource,
        resource: Some(ResourceMetricSource {
            name: name.into(),
            target,
        }),
        ..Default::default()
    }
}
pub fn container_resource(name: &str, container: &str, target: MetricTarget) -> MetricSpec {
    MetricSpec {
        type_: MetricSourceType::ContainerResource,
        container_resource: Some(ContainerResourceMetricSource {
            name: name.into(),
            container: container.into(),
            target,
        }),
        ..Default::default()
    }
}
pub fn pods_metric(name: &str, avg: &str) -> MetricSpec {
    MetricSpec {
        type_: MetricSourceType::Pods,
        pods: Some(PodsMetricSource {
            metric: MetricIdentifier {
                name: name.into(),
                selector: None,
            },
            target: target_avg(avg),
        }),
        ..Default::default()
    }
}
pub fn object_metric(name: &str, target: MetricTarget) -> MetricSpec {
    MetricSpec {
        type_: MetricSourceType::Object,
        object: Some(ObjectMetricSource {
            described_object: CrossVersionObjectReference {
                api_version: Some("v1".into()),
                kind: "Service".into(),
                name: "front".into(),
            },
            target,
            metric: MetricIdentifier {
                name: name.into(),
                selector: None,
            },
        }),
        ..Default::default()
    }
}
pub fn external_metric(name: &str, target: MetricTarget) -> MetricSpec {
    MetricSpec {
        type_: MetricSourceType::External,
        external: Some(ExternalMetricSource {
            metric: MetricIdentifier {
                name: name.into(),
                selector: None,
            },
            target,
        }),
        ..Default::default()
    }
}
pub fn prometheus(target: MetricTarget, activation: Option<&str>) -> MetricSpec {
    MetricSpec {
        type_: MetricSourceType::Prometheus,
        prometheus: Some(PrometheusMetricSource {
            server_address: None,
            query: "sum(queue_depth)".into(),
            target,
            activation_threshold: activation.map(q),
            credentials_ref: None,
        }),
        ..Default::default()
    }
}
pub fn redis(target: MetricTarget, activation: Option<&str>) -> MetricSpec {
    MetricSpec {
        type_: MetricSourceType::Event,
        event: Some(EventMetricSource {
            type_: EventSourceType::RedisList,
            redis_list: Some(RedisListSource {
                address: "127.0.0.1:6379".into(),
                list_name: "jobs".into(),
                database: None,
                enable_tls: None,
            }),
            target: Some(target),
            activation_threshold: activation.map(q),
            ..Default::default()
        }),
        ..Default::default()
    }
}
pub fn cron(start: &str, end: &str, tz: Option<&str>, desired: i32) -> MetricSpec {
    MetricSpec {
        type_: MetricSourceType::Event,
        event: Some(EventMetricSource {
            type_: EventSourceType::Cron,
            cron: Some(CronSource {
                timezone: tz.map(String::from),
                start: start.into(),
                end: end.into(),
                desired_replicas: desired,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn rules(
    window: Option<i32>,
    select: Option<SelectPolicy>,
    policies: &[(ScalingPolicyType, i32, i32)],
) -> ScalingRules {
    ScalingRules {
        stabilization_window_seconds: window,
        select_policy: select,
        policies: policies
            .iter()
            .map(|&(t, v, p)| ScalingPolicy {
                type_: t,
                value: v,
                period_seconds: p,
            })
            .collect(),
        tolerance: None,
    }
}
#[allow(unused_imports)]
pub use ScalingPolicyType::{Percent, Pods as PodsPolicy};

// ---- pods ----

/// A running pod, ready for an hour, with one container requesting `cpu` (and 1Gi memory).
pub fn pod(name: &str, cpu: &str) -> PodSnapshot {
    PodSnapshot {
        name: name.into(),
        phase: PodPhase::Running,
        ready: Some(ReadyCondition {
            status: ConditionStatus::True,
            last_transition_time: ago(3590),
        }),
        start_time: Some(ago(3600)),
        deleting: false,
        containers: vec![ContainerSnapshot {
            name: "app".into(),
            requests: BTreeMap::from([
                ("cpu".to_string(), q(cpu)),
                ("memory".to_string(), q("1Gi")),
            ]),
            restart_policy: None,
        }],
        init_containers: vec![],
        requests: BTreeMap::new(),
    }
}

/// `n` pods `p0..` requesting 1 cpu each.
pub fn pods(n: usize) -> Vec<PodSnapshot> {
    (0..n).map(|i| pod(&format!("p{i}"), "1")).collect()
}

/// Never became ready: Ready=False since 10 s after its start an hour ago.
pub fn never_ready(mut p: PodSnapshot) -> PodSnapshot {
    p.ready = Some(ReadyCondition {
        status: ConditionStatus::False,
        last_transition_time: ago(3590),
    });
    p
}

// ---- readings ----

/// Per-pod samples `(pod, value)` taken now over 30 s.
pub fn samples(values: &[(&str, &str)]) -> MetricReading {
    MetricReading {
        pods: Some(
            values
                .iter()
                .map(|(p, v)| PodSample {
                    pod: p.to_string(),
                    value: q(v),
                    timestamp: Some(now()),
                    window: Some("30s".into()),
                })
                .collect(),
        ),
        ..Default::default()
    }
}
/// Samples for pods p0, p1, ... in order.
pub fn seq(values: &[&str]) -> MetricReading {
    let names: Vec<String> = (0..values.len()).map(|i| format!("p{i}")).collect();
    let pairs: Vec<(&str, &str)> = names
        .iter()
        .map(String::as_str)
        .zip(values.iter().copied())
        .collect();
    samples(&pairs)
}
pub fn value(v: &str) -> MetricReading {
    MetricReading {
        value: Some(q(v)),
        ..Default::default()
    }
}
pub fn values(vs: &[&str]) -> MetricReading {
    MetricReading {
        values: Some(vs.iter().map(|v| q(v)).collect()),
        ..Default::default()
    }
}
pub fn error(msg: &str) -> MetricReading {
    MetricReading {
        error: Some(msg.into()),
        ..Default::default()
    }
}

// ---- the snapshot builder ----

#[derive(Clone)]
pub struct B(pub Snapshot);

pub fn hpa(min: Option<i32>, max: i32, metrics: Vec<MetricSpec>) -> B {
    let spec = HorizontalAutoscalerSpec {
        scale_target_ref: CrossVersionObjectReference {
            api_version: Some("apps/v1".into()),
            kind: "Deployment".into(),
            name: "web".into(),
        },
        min_replicas: min,
        max_replicas: max,
        metrics,
        ..Default::default()
    };
    let mut object = HorizontalAutoscaler::new("web", spec);
    object.metadata = ObjectMeta {
        name: Some("web".into()),
        namespace: Some("shop".into()),
        generation: Some(1),
        creation_timestamp: Some(Time(ago(86_400))),
        ..Default::default()
    };
    B(Snapshot {
        autoscaler: object,
        scale: TargetScale {
            spec_replicas: 1,
            status_replicas: None,
            selector: "app=web".into(),
            error: None,
        },
        pods: vec![],
        metrics: vec![],
        other_autoscalers: vec![],
        demand_history: Vec::new(),
        config: ControllerConfig::default(),
        now: now(),
    })
}

impl B {
    pub fn current(mut self, n: i32) -> Self {
        self.0.scale.spec_replicas = n;
        self
    }
    pub fn status_replicas(mut self, n: i32) -> Self {
        self.0.scale.status_replicas = Some(n);
        self
    }
    pub fn pods(mut self, pods: Vec<PodSnapshot>) -> Self {
        self.0.pods = pods;
        self
    }
    pub fn reading(mut self, r: MetricReading) -> Self {
        self.0.metrics.push(r);
        self
    }
    pub fn spec(mut self, f: impl FnOnce(&mut HorizontalAutoscalerSpec)) -> Self {
        f(&mut self.0.autoscaler.spec);
        self
    }
    pub fn behavior(self, up: Option<ScalingRules>, down: Option<ScalingRules>) -> Self {
        self.spec(|s| {
            s.behavior = Some(HorizontalAutoscalerBehavior {
                scale_up: up,
                scale_down: down,
            })
        })
    }
    pub fn selector(mut self, s: &str) -> Self {
        self.0.scale.selector = s.into();
        self
    }
    fn history_mut(&mut self) -> &mut ScalingHistory {
        let status = self
            .0
            .autoscaler
            .status
            .get_or_insert_with(Default::default);
        status.history.get_or_insert_with(Default::default)
    }
    /// Past recommendations: (seconds ago, replicas).
    pub fn recs(mut self, recs: &[(i64, i32)]) -> Self {
        self.history_mut().recommendations = recs
            .iter()
            .map(|&(s, r)| TimestampedReplicas {
                time: Time(ago(s)),
                replicas: r,
            })
            .collect();
        self
    }
    /// A recommendation long gone, so no initial recommendation is seeded.
    pub fn no_stabilization(self) -> Self {
        self.recs(&[(3600, 0)])
    }
    pub fn ups(mut self, events: &[(i64, i32)]) -> Self {
        self.history_mut().scale_up_events = events
            .iter()
            .map(|&(s, c)| ScaleEvent {
                time: Time(ago(s)),
                change: c,
            })
            .collect();
        self
    }
    pub fn downs(mut self, events: &[(i64, i32)]) -> Self {
        self.history_mut().scale_down_events = events
            .iter()
            .map(|&(s, c)| ScaleEvent {
                time: Time(ago(s)),
                change: c,
            })
            .collect();
        self
    }
    pub fn last_active(mut self, secs_ago: i64) -> Self {
        self.history_mut().last_active_time = Some(Time(ago(secs_ago)));
        self
    }
    pub fn failures(mut self, key: &str, count: i32) -> Self {
        self.history_mut().metric_failures.push(MetricFailureCount {
            metric: key.into(),
            count,
        });
        self
    }
    pub fn created(mut self, secs_ago: i64) -> Self {
        self.0.autoscaler.metadata.creation_timestamp = Some(Time(ago(secs_ago)));
        self
    }
    pub fn conditions(mut self, conds: Vec<ballast_api::common::Condition>) -> Self {
        self.0
            .autoscaler
            .status
            .get_or_insert_with(Default::default)
            .conditions = conds;
        self
    }
    pub fn snapshot(self) -> Snapshot {
        self.0
    }
    pub fn decide(&self) -> Decision {
        explain(&self.0).unwrap_or_else(|e| panic!("snapshot rejected: {e}"))
    }
}

/// The reason of a condition type in a decision.
pub fn cond<'a>(d: &'a Decision, type_: &str) -> Option<(&'a str, &'a str)> {
    d.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.as_str(), c.reason.as_str()))
}

pub fn event_reasons(d: &Decision) -> Vec<&str> {
    d.events.iter().map(|e| e.reason.as_str()).collect()
}
