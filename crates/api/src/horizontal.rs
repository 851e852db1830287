//! `HorizontalAutoscaler` (autoscaling.ballast.dev/v1): the complete `autoscaling/v2`
//! HorizontalPodAutoscaler spec, plus Prometheus and event-source metrics and KEDA-style
//! idle replicas, cooldown, fallback and pause.
//!
//! An existing HPA becomes a `HorizontalAutoscaler` by changing `apiVersion` and `kind`: every
//! `autoscaling/v2` field keeps its name and meaning.

use crate::common::{
    Condition, CrossVersionObjectReference, LabelSelector, SecretReference, Time, quantity_schema,
};
pub use crate::predictive::{
    ForecastPoint, PredictionStatus, PredictiveMode, PredictiveSeasonality, PredictiveSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Default seconds between two reconciliations of one object (the HPA's sync period).
pub const DEFAULT_SYNC_PERIOD_SECONDS: i32 = 15;
/// Default tolerance around the target ratio inside which no scaling happens.
pub const DEFAULT_TOLERANCE: f64 = 0.1;
/// Default seconds an autoscaler stays active after its last active reading before it may go
/// to idle or zero replicas (KEDA's `cooldownPeriod`).
pub const DEFAULT_COOLDOWN_SECONDS: i32 = 300;

/// Spec of a `HorizontalAutoscaler`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "autoscaling.ballast.dev",
    version = "v1",
    kind = "HorizontalAutoscaler",
    plural = "horizontalautoscalers",
    shortname = "hza",
    namespaced,
    status = "HorizontalAutoscalerStatus",
    printcolumn(name = "Reference", type_ = "string", json_path = ".status.reference"),
    printcolumn(name = "Targets", type_ = "string", json_path = ".status.targets"),
    printcolumn(name = "MinPods", type_ = "integer", json_path = ".spec.minReplicas"),
    printcolumn(name = "MaxPods", type_ = "integer", json_path = ".spec.maxReplicas"),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".status.currentReplicas"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = Rule::new("!has(self.minReplicas) || self.minReplicas <= self.maxReplicas").message("minReplicas must be less than or equal to maxReplicas").field_path(".minReplicas"),
    validation = Rule::new("!has(self.minReplicas) || self.minReplicas > 0 || (has(self.metrics) && self.metrics.exists(m, m.type in ['Object', 'External', 'Prometheus', 'Event']))").message("minReplicas may be 0 only with at least one Object, External, Prometheus or Event metric").field_path(".minReplicas"),
    validation = Rule::new("!has(self.idleReplicas) || self.idleReplicas < (has(self.minReplicas) ? self.minReplicas : 1)").message("idleReplicas must be less than minReplicas").field_path(".idleReplicas"),
    validation = Rule::new("!has(self.fallback) || self.fallback.replicas <= self.maxReplicas").message("fallback.replicas must not exceed maxReplicas").field_path(".fallback.replicas"),
    validation = Rule::new("!has(self.pausedReplicas) || self.pausedReplicas <= self.maxReplicas").message("pausedReplicas must not exceed maxReplicas").field_path(".pausedReplicas")
)]
#[serde(rename_all = "camelCase")]
pub struct HorizontalAutoscalerSpec {
    /// The object to scale: anything with a `scale` subresource.
    pub scale_target_ref: CrossVersionObjectReference,
    /// Lower bound of the replica count (default 1). 0 is allowed with at least one Object,
    /// External, Prometheus or Event metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_replicas: Option<i32>,
    /// Upper bound of the replica count.
    #[schemars(range(min = 1))]
    pub max_replicas: i32,
    /// The metrics whose maximum proposal sets the replica count. Empty means 80% CPU
    /// utilization, as with the HPA.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub metrics: Vec<MetricSpec>,
    /// Scale-up and scale-down behavior (stabilization windows, rate policies, tolerance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalAutoscalerBehavior>,

    // ---- Ballast additions ----
    /// Seconds between reconciliations of this object (default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub sync_period_seconds: Option<i32>,
    /// While the target rests at zero (or idle) replicas, milliseconds between two reads of its
    /// event sources between syncs, so that the first item wakes it at once (default: the
    /// controller's `--activation-poll`, 250 ms). 0 turns the poll off for this object (it then
    /// wakes at its next sync); values from 1 to 99 count as 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 60000))]
    pub activation_poll_milliseconds: Option<i32>,
    /// Replicas to keep while no metric is active (KEDA's idleReplicaCount); must be below
    /// minReplicas. Usually 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub idle_replicas: Option<i32>,
    /// Seconds after the last active reading before going to idleReplicas (or to 0 when
    /// minReplicas is 0). Default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub cooldown_period_seconds: Option<i32>,
    /// Seconds after creation before the first scale to idle or zero (KEDA's
    /// initialCooldownPeriod). Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub initial_cooldown_period_seconds: Option<i32>,
    /// What to do when metrics keep failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
    /// Stop changing the target's replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// With `paused`, first set the target to this many replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub paused_replicas: Option<i32>,
    /// Scale ahead of a forecast of the metrics (`Scale`), or only report it (`ForecastOnly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictive: Option<PredictiveSpec>,
}

impl HorizontalAutoscalerSpec {
    /// minReplicas with the HPA default of 1.
    pub fn min_replicas(&self) -> i32 {
        self.min_replicas.unwrap_or(1)
    }
    /// syncPeriodSeconds with its default.
    pub fn sync_period_seconds(&self) -> i32 {
        self.sync_period_seconds
            .unwrap_or(DEFAULT_SYNC_PERIOD_SECONDS)
    }
    /// cooldownPeriodSeconds with its default.
    pub fn cooldown_period_seconds(&self) -> i32 {
        self.cooldown_period_seconds
            .unwrap_or(DEFAULT_COOLDOWN_SECONDS)
    }
}

/// The kind of a metric source.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema, Default)]
pub enum MetricSourceType {
    /// A resource (cpu, memory) of the pods, averaged over them.
    #[default]
    Resource,
    /// A resource of one named container in each pod.
    ContainerResource,
    /// A metric describing each pod, averaged over them (custom metrics API).
    Pods,
    /// A metric describing one Kubernetes object (custom metrics API).
    Object,
    /// A metric not tied to any Kubernetes object (external metrics API).
    External,
    /// The result of a PromQL query, read straight from Prometheus.
    Prometheus,
    /// The backlog of an event source (queue, database, cron), read straight from it.
    Event,
}

/// One metric to scale on: `type` names which of the other fields is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(
    validation = Rule::new("(has(self.resource) ? 1 : 0) + (has(self.containerResource) ? 1 : 0) + (has(self.pods) ? 1 : 0) + (has(self.object) ? 1 : 0) + (has(self.external) ? 1 : 0) + (has(self.prometheus) ? 1 : 0) + (has(self.event) ? 1 : 0) == 1").message("exactly one metric source must be set"),
    validation = Rule::new("self.type == 'Resource' ? has(self.resource) : self.type == 'ContainerResource' ? has(self.containerResource) : self.type == 'Pods' ? has(self.pods) : self.type == 'Object' ? has(self.object) : self.type == 'External' ? has(self.external) : self.type == 'Prometheus' ? has(self.prometheus) : has(self.event)").message("the field named by type must be set (type Resource needs resource, Pods needs pods, ...)")
)]
#[serde(rename_all = "camelCase")]
pub struct MetricSpec {
    /// Which source this metric reads.
    #[serde(rename = "type")]
    pub type_: MetricSourceType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceMetricSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_resource: Option<ContainerResourceMetricSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodsMetricSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectMetricSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalMetricSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusMetricSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventMetricSource>,
}

/// How a metric's value is compared with the target.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema, Default)]
pub enum MetricTargetType {
    /// Percent of the pods' requests (Resource and ContainerResource only).
    #[default]
    Utilization,
    /// The value itself.
    Value,
    /// The value divided by the number of pods.
    AverageValue,
}

/// Target value of a metric.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(
    validation = Rule::new("self.type != 'Utilization' || has(self.averageUtilization)").message("a Utilization target needs averageUtilization"),
    validation = Rule::new("self.type != 'Value' || has(self.value)").message("a Value target needs value"),
    validation = Rule::new("self.type != 'AverageValue' || has(self.averageValue)").message("an AverageValue target needs averageValue")
)]
#[serde(rename_all = "camelCase")]
pub struct MetricTarget {
    #[serde(rename = "type")]
    pub type_: MetricTargetType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "quantity_schema")]
    pub value: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "quantity_schema")]
    pub average_value: Option<Quantity>,
    /// Percent of the requested resource, averaged over the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub average_utilization: Option<i32>,
}

/// Identifies a metric by name and optional label selector.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct MetricIdentifier {
    #[schemars(length(min = 1))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// A resource of the selected pods (cpu, memory...).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("self.target.type != 'Value'").message("a resource metric takes a Utilization or AverageValue target"))]
#[serde(rename_all = "camelCase")]
pub struct ResourceMetricSource {
    #[schemars(length(min = 1))]
    pub name: String,
    pub target: MetricTarget,
}

/// A resource of one container of the selected pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("self.target.type != 'Value'").message("a container resource metric takes a Utilization or AverageValue target"))]
#[serde(rename_all = "camelCase")]
pub struct ContainerResourceMetricSource {
    #[schemars(length(min = 1))]
    pub name: String,
    #[schemars(length(min = 1))]
    pub container: String,
    pub target: MetricTarget,
}

/// A per-pod metric from the custom metrics API.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("self.target.type == 'AverageValue'").message("a Pods metric takes an AverageValue target"))]
#[serde(rename_all = "camelCase")]
pub struct PodsMetricSource {
    pub metric: MetricIdentifier,
    pub target: MetricTarget,
}

/// A metric of one Kubernetes object from the custom metrics API.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("self.target.type != 'Utilization'").message("an Object metric takes a Value or AverageValue target"))]
#[serde(rename_all = "camelCase")]
pub struct ObjectMetricSource {
    pub described_object: CrossVersionObjectReference,
    pub target: MetricTarget,
    pub metric: MetricIdentifier,
}

/// A metric from the external metrics API.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("self.target.type != 'Utilization'").message("an External metric takes a Value or AverageValue target"))]
#[serde(rename_all = "camelCase")]
pub struct ExternalMetricSource {
    pub metric: MetricIdentifier,
    pub target: MetricTarget,
}

/// A PromQL query read straight from Prometheus. The query should return one series (or
/// several, which are summed). With an AverageValue target the value is divided by the current
/// replica count, as for External metrics.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("self.target.type != 'Utilization'").message("a Prometheus metric takes a Value or AverageValue target"))]
#[serde(rename_all = "camelCase")]
pub struct PrometheusMetricSource {
    /// Base URL of the Prometheus HTTP API. Default: the controller's `--prometheus-url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_address: Option<String>,
    /// The PromQL instant query.
    #[schemars(length(min = 1))]
    pub query: String,
    pub target: MetricTarget,
    /// The autoscaler is active (may leave idle or zero replicas) while the value is above
    /// this. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "quantity_schema")]
    pub activation_threshold: Option<Quantity>,
    /// Secret with `token` (bearer) or `username` and `password` (basic auth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_ref: Option<SecretReference>,
}

/// The kind of an event source.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema, Default)]
pub enum EventSourceType {
    /// Length of a Redis list.
    #[default]
    #[serde(rename = "redis-list")]
    RedisList,
    /// Messages ready (or message rate) in a RabbitMQ queue.
    #[serde(rename = "rabbitmq")]
    Rabbitmq,
    /// A number returned by a PostgreSQL query.
    #[serde(rename = "postgresql")]
    Postgresql,
    /// Consumer-group lag of a Kafka topic.
    #[serde(rename = "kafka")]
    Kafka,
    /// Visible (and in-flight) messages of an AWS SQS queue.
    #[serde(rename = "aws-sqs")]
    AwsSqs,
    /// A fixed replica count inside a cron schedule.
    #[serde(rename = "cron")]
    Cron,
}

/// The backlog of an event source, read straight from it (no external metrics adapter).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(
    validation = Rule::new("(has(self.redisList) ? 1 : 0) + (has(self.rabbitmq) ? 1 : 0) + (has(self.postgresql) ? 1 : 0) + (has(self.kafka) ? 1 : 0) + (has(self.awsSqs) ? 1 : 0) + (has(self.cron) ? 1 : 0) == 1").message("exactly one event source must be set"),
    validation = Rule::new("self.type == 'redis-list' ? has(self.redisList) : self.type == 'rabbitmq' ? has(self.rabbitmq) : self.type == 'postgresql' ? has(self.postgresql) : self.type == 'kafka' ? has(self.kafka) : self.type == 'aws-sqs' ? has(self.awsSqs) : has(self.cron)").message("the field named by type must be set (redis-list needs redisList, aws-sqs needs awsSqs, ...)"),
    validation = Rule::new("self.type == 'cron' || has(self.target)").message("every event source but cron needs a target"),
    validation = Rule::new("!has(self.target) || self.target.type != 'Utilization'").message("an Event metric takes a Value or AverageValue target"),
    validation = Rule::new("!has(self.rabbitmq) || has(self.rabbitmq.url) || has(self.credentialsRef)").message("a rabbitmq source needs rabbitmq.url or a credentialsRef whose Secret holds the url").field_path(".rabbitmq.url")
)]
#[serde(rename_all = "camelCase")]
pub struct EventMetricSource {
    #[serde(rename = "type")]
    pub type_: EventSourceType,
    /// Name shown in status and events (default: derived from the source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_list: Option<RedisListSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rabbitmq: Option<RabbitmqSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgresql: Option<PostgresqlSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_sqs: Option<AwsSqsSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<CronSource>,
    /// Target backlog (AverageValue: per replica; Value: in total). Not used by cron.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<MetricTarget>,
    /// Active while the backlog is above this (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "quantity_schema")]
    pub activation_threshold: Option<Quantity>,
    /// Secret holding the credentials. Keys read per source: redis-list `password`; rabbitmq
    /// `url` (full AMQP or HTTP URL with user and password); postgresql `password`; kafka
    /// `username`, `password`, `sasl`, `tls` (`enable`/`disable`); for these four, TLS: `ca.crt`
    /// (PEM CA), `tls.crt` and `tls.key` (client certificate and unencrypted key; KEDA's `ca`,
    /// `cert` and `key` are read too); aws-sqs `awsAccessKeyID`, `awsSecretAccessKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_ref: Option<SecretReference>,
}

/// Length of a Redis list.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RedisListSource {
    /// `host:port` of the Redis server.
    #[schemars(length(min = 1))]
    pub address: String,
    #[schemars(length(min = 1))]
    pub list_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 15))]
    pub database: Option<i32>,
    /// Connect with TLS, verifying the chain (to the credentials Secret's `ca.crt` when set, else
    /// the system roots) and the host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_tls: Option<bool>,
}

/// How a RabbitMQ queue is measured.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum RabbitmqMode {
    /// Messages ready in the queue.
    #[default]
    QueueLength,
    /// Publish rate, messages per second (needs the management API).
    MessageRate,
}

/// A RabbitMQ queue.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RabbitmqSource {
    /// `amqp://host:port/vhost` or `http://host:15672/` (management API). Credentials come
    /// from the secret's `url` key when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[schemars(length(min = 1))]
    pub queue_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<RabbitmqMode>,
}

/// A PostgreSQL query returning one number.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct PostgresqlSource {
    #[schemars(length(min = 1))]
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    #[schemars(length(min = 1))]
    pub database: String,
    #[schemars(length(min = 1))]
    pub user: String,
    /// A query returning a single numeric value, e.g. `SELECT count(*) FROM jobs WHERE done = false`.
    #[schemars(length(min = 1))]
    pub query: String,
    /// TLS as libpq's `sslmode`: `disable` (default), `prefer` (TLS when offered, certificate
    /// not checked), `require` (TLS, certificate not checked) or `verify-full` (TLS, chain to the
    /// system roots or the credentials Secret's `ca.crt`, and host name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_mode: Option<String>,
}

/// Consumer-group lag of a Kafka topic (or of every topic the group has committed offsets for).
/// Per partition the lag is the log-end offset minus the group's committed offset; the value is
/// their sum, with KEDA's rules below.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(
    validation = Rule::new("!(has(self.allowIdleConsumers) && self.allowIdleConsumers && has(self.limitToPartitionsWithLag) && self.limitToPartitionsWithLag)").message("allowIdleConsumers and limitToPartitionsWithLag cannot both be true"),
    validation = Rule::new("!has(self.partitionLimitation) || has(self.topic)").message("partitionLimitation needs a topic").field_path(".partitionLimitation")
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSource {
    /// `host:port` of one or more brokers; the first that answers is used.
    #[schemars(length(min = 1))]
    pub bootstrap_servers: Vec<String>,
    #[schemars(length(min = 1))]
    pub consumer_group: String,
    /// The topic; unset: every topic the group has committed offsets for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Only these partitions of `topic` count (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_limitation: Option<Vec<i32>>,
    /// What a partition without a committed offset counts: `latest` (default; 1, or 0 with
    /// `scaleToZeroOnInvalidOffset`) or `earliest` (every record it holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_reset_policy: Option<KafkaOffsetResetPolicy>,
    /// With `offsetResetPolicy: latest`, a partition without a committed offset counts 0 instead
    /// of 1 (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_to_zero_on_invalid_offset: Option<bool>,
    /// Allow more replicas than partitions (default false: the lag asks for at most one replica
    /// per partition under an AverageValue target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_idle_consumers: Option<bool>,
    /// Cap at the number of partitions with lag instead of all partitions (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_to_partitions_with_lag: Option<bool>,
    /// Leave out the lag of partitions whose committed offset has not moved since the previous
    /// read (a consumer stuck on a message; default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_persistent_lag: Option<bool>,
    /// SASL mechanism (default none). Username and password come from the credentials Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<KafkaSasl>,
    /// Connect with TLS, verifying the chain (to the Secret's CA when set, else the system roots)
    /// and the host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_tls: Option<bool>,
    /// With TLS, accept any server certificate (encrypts, does not authenticate the broker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsafe_ssl: Option<bool>,
}

/// Where a Kafka consumer starts on a partition without a committed offset.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub enum KafkaOffsetResetPolicy {
    /// At the end: nothing is behind yet.
    #[default]
    Latest,
    /// At the start: every record is behind.
    Earliest,
}

/// A SASL mechanism of a Kafka broker (KEDA's names).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum KafkaSasl {
    /// No SASL.
    #[default]
    #[serde(rename = "none")]
    None,
    /// SASL/PLAIN.
    #[serde(rename = "plaintext")]
    Plaintext,
    /// SASL/SCRAM-SHA-256.
    #[serde(rename = "scram_sha256")]
    ScramSha256,
    /// SASL/SCRAM-SHA-512.
    #[serde(rename = "scram_sha512")]
    ScramSha512,
}

/// An AWS SQS queue.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AwsSqsSource {
    #[schemars(length(min = 1))]
    pub queue_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Endpoint override (for local SQS implementations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Count in-flight messages too (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_in_flight: Option<bool>,
}

/// A fixed replica count while inside a schedule.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct CronSource {
    /// IANA time zone, e.g. `Europe/Paris` (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Five-field cron expression opening the window, e.g. `0 8 * * 1-5`.
    #[schemars(length(min = 1))]
    pub start: String,
    /// Five-field cron expression closing the window.
    #[schemars(length(min = 1))]
    pub end: String,
    #[schemars(range(min = 0))]
    pub desired_replicas: i32,
}

/// What the replica count becomes when metrics keep failing (KEDA's fallback).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Fallback {
    /// Consecutive failed reads of a metric before falling back.
    #[schemars(range(min = 1))]
    pub failure_threshold: i32,
    #[schemars(range(min = 0))]
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<FallbackBehavior>,
}

/// Which replica count a fallback applies.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub enum FallbackBehavior {
    /// Always `fallback.replicas`.
    #[default]
    Static,
    /// Keep the current replica count.
    CurrentReplicas,
    /// max(current, fallback.replicas).
    CurrentReplicasIfHigher,
    /// min(current, fallback.replicas).
    CurrentReplicasIfLower,
}

/// Scaling behavior in both directions.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct HorizontalAutoscalerBehavior {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up: Option<ScalingRules>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<ScalingRules>,
}

/// Which policy wins when several apply.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum SelectPolicy {
    /// The policy allowing the largest change.
    #[default]
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// Rules for one scaling direction.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ScalingRules {
    /// Look back this many seconds at past recommendations (0–3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub stabilization_window_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select_policy: Option<SelectPolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub policies: Vec<ScalingPolicy>,
    /// Ratio of metric to target inside which this direction does not act (default 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "quantity_schema")]
    pub tolerance: Option<Quantity>,
}

/// Kind of a rate-limit policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum ScalingPolicyType {
    /// An absolute number of pods.
    #[default]
    Pods,
    /// A percent of the replicas at the start of the period.
    Percent,
}

/// A rate limit: at most `value` pods (or percent) per `periodSeconds`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ScalingPolicy {
    #[serde(rename = "type")]
    pub type_: ScalingPolicyType,
    #[schemars(range(min = 1))]
    pub value: i32,
    #[schemars(range(min = 1, max = 1800))]
    pub period_seconds: i32,
}

/// Observed state of a `HorizontalAutoscaler`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct HorizontalAutoscalerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Last time the target's replicas were changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<Time>,
    #[serde(default)]
    pub current_replicas: i32,
    #[serde(default)]
    pub desired_replicas: i32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub current_metrics: Vec<MetricStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// `Kind/name` of the target, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Current/target per metric, for `kubectl get` (like the HPA's TARGETS column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<String>,
    /// What stabilization windows and rate policies need, kept so a restart forgets nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<ScalingHistory>,
    /// The last forecast, with `spec.predictive` not `Off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction: Option<PredictionStatus>,
}

/// Past recommendations and scale events (pruned to the longest window in use).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ScalingHistory {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recommendations: Vec<TimestampedReplicas>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scale_up_events: Vec<ScaleEvent>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scale_down_events: Vec<ScaleEvent>,
    /// Last time a metric was above its activation threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_active_time: Option<Time>,
    /// Consecutive failed reads per metric (by metric name), for fallback.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_failures: Vec<MetricFailureCount>,
}

/// A replica recommendation and when it was made.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimestampedReplicas {
    pub time: Time,
    pub replicas: i32,
}

/// A change of the replica count and when it was made.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleEvent {
    pub time: Time,
    /// Replicas added (scale-up events) or removed (scale-down events), always positive.
    pub change: i32,
}

/// Consecutive failures of one metric.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct MetricFailureCount {
    pub metric: String,
    pub count: i32,
}

/// The current value of one metric.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct MetricStatus {
    #[serde(rename = "type")]
    pub type_: MetricSourceType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceMetricStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_resource: Option<ContainerResourceMetricStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<NamedMetricStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectMetricStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<NamedMetricStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusMetricStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventMetricStatus>,
}

/// A current metric value in the forms the target may take.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct MetricValueStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "quantity_schema")]
    pub value: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "quantity_schema")]
    pub average_value: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_utilization: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourceMetricStatus {
    pub name: String,
    pub current: MetricValueStatus,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ContainerResourceMetricStatus {
    pub name: String,
    pub container: String,
    pub current: MetricValueStatus,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct NamedMetricStatus {
    pub metric: MetricIdentifier,
    pub current: MetricValueStatus,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMetricStatus {
    pub described_object: CrossVersionObjectReference,
    pub metric: MetricIdentifier,
    pub current: MetricValueStatus,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusMetricStatus {
    pub query: String,
    pub current: MetricValueStatus,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct EventMetricStatus {
    #[serde(rename = "type")]
    pub type_: EventSourceType,
    pub name: String,
    pub current: MetricValueStatus,
    /// Whether the reading was above the activation threshold.
    #[serde(default)]
    pub active: bool,
}
