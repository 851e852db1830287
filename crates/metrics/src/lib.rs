//! The I/O side of Ballast's horizontal reconciler: reads every metric of a
//! `HorizontalAutoscaler` into the decision core's [`MetricReading`], one per `spec.metrics`
//! entry, in order.
//!
//! | type | source | reading |
//! | --- | --- | --- |
//! | Resource, ContainerResource | `metrics.k8s.io/v1beta1` PodMetrics (label selector) | per-pod samples |
//! | Pods | `custom.metrics.k8s.io/v1beta2` `pods/*/{metric}` | per-pod samples |
//! | Object | `custom.metrics.k8s.io/v1beta2` `{resource}/{name}/{metric}` | one value |
//! | External | `external.metrics.k8s.io/v1beta1` `{metric}` | several values (summed by the core) |
//! | Prometheus | PromQL instant query | one value, or several (one per series) |
//! | Event redis-list / rabbitmq / postgresql / aws-sqs / kafka | the service itself | one value |
//! | Event cron | nothing (the core evaluates the schedule) | empty |
//!
//! A read never panics and never hangs: each runs under a timeout and a global concurrency
//! limit, clients are cached per endpoint in bounded caches, and every failure is a
//! [`MetricError`] naming the metric, the source, what failed and the condition reason
//! (`FailedGetResourceMetric`, ..., `FailedGetPrometheusMetric`, `FailedGetEventMetric`).
//!
//! ```no_run
//! # async fn demo(client: kube::Client, hza: ballast_api::horizontal::HorizontalAutoscaler) {
//! use ballast_metrics::{MetricSource, MetricsConfig};
//! let config = MetricsConfig { prometheus_url: Some("http://127.0.0.1:9090".into()), ..Default::default() };
//! let source = MetricSource::new(client, config).expect("HTTP client");
//! // `selector` is the target scale's `status.selector`.
//! let readings = source.readings(&hza, "app=web").await; // Vec<MetricReading> for the Snapshot
//! # }
//! ```
//!
//! See `docs/metrics.md` for every source's settings, secret keys and errors.
//!
//! The same SigV4 SQS client is public as [`SqsClient`] (receive, delete, send, raw calls): the
//! node controller long-polls its interruption queue with it.

mod cache;
pub mod convert;
mod error;
mod event;
pub mod kube_metrics;
pub mod prometheus;
mod secrets;

use std::sync::Arc;
use std::time::Duration;

use ballast_api::horizontal::{
    EventMetricSource, HorizontalAutoscaler, MetricSourceType, MetricSpec, PrometheusMetricSource,
};
use ballast_horizontal::effective_metrics;
pub use ballast_horizontal::snapshot::{MetricReading, PodSample};
use futures::future::join_all;
use kube::Client;
use tokio::sync::Semaphore;

pub use error::{FailureReason, MetricError, ReadError};
pub use event::kafka::admin::KafkaAdmin;
pub use event::sqs::{AwsCredentials, SqsClient, SqsClientOptions, SqsMessage, create_queue};
pub use secrets::SecretData;

use crate::cache::Cache;

/// Controller-wide settings of the readers.
#[derive(Clone, Debug)]
pub struct MetricsConfig {
    /// Prometheus base URL for metrics that set no `serverAddress` (the controller's
    /// `--prometheus-url`).
    pub prometheus_url: Option<String>,
    /// Longest time one metric read may take, from the Secret lookup to the value (10 s).
    pub read_timeout: Duration,
    /// Longest time to open a connection (5 s).
    pub connect_timeout: Duration,
    /// Reads running at once over all autoscalers (64); more wait for a slot.
    pub max_concurrent_reads: usize,
    /// How long an API group's discovery answer (served or not) is trusted (30 s).
    pub discovery_ttl: Duration,
    /// How long a credentials Secret is cached (30 s).
    pub secret_ttl: Duration,
    /// Most connections kept per kind of source (Redis, RabbitMQ, PostgreSQL) (256).
    pub max_cached_connections: usize,
    /// A cached connection unused for this long is dropped (10 min).
    pub idle_connection_ttl: Duration,
    /// Region for SQS queues whose URL and spec name none.
    pub aws_region: Option<String>,
    /// Credentials for SQS metrics without a `credentialsRef`.
    pub aws_credentials: Option<AwsCredentials>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            prometheus_url: None,
            read_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_concurrent_reads: 64,
            discovery_ttl: Duration::from_secs(30),
            secret_ttl: Duration::from_secs(30),
            max_cached_connections: 256,
            idle_connection_ttl: Duration::from_secs(600),
            aws_region: None,
            aws_credentials: None,
        }
    }
}

impl MetricsConfig {
    /// Fills the AWS defaults from the environment (`AWS_REGION` or `AWS_DEFAULT_REGION`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) where unset.
    pub fn with_aws_env(mut self) -> Self {
        if self.aws_region.is_none() {
            self.aws_region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
                .iter()
                .find_map(|k| std::env::var(k).ok().filter(|s| !s.is_empty()));
        }
        if self.aws_credentials.is_none() {
            self.aws_credentials = AwsCredentials::from_env();
        }
        self
    }
}

/// Reads metrics for autoscalers. Cheap to clone (shared caches); one per controller.
#[derive(Clone)]
pub struct MetricSource {
    inner: Arc<Inner>,
}

struct Inner {
    config: MetricsConfig,
    kube: kube_metrics::KubeMetrics,
    secrets: secrets::Secrets,
    prometheus: prometheus::PrometheusReader,
    events: event::EventReaders,
    permits: Semaphore,
}

/// The reading to put in a snapshot: the value, or the error's message.
pub fn to_reading(result: Result<MetricReading, MetricError>) -> MetricReading {
    result.unwrap_or_else(|e| MetricReading {
        error: Some(e.reading_message()),
        ..Default::default()
    })
}

impl MetricSource {
    /// Readers on `client` (the controller's client: it reads PodMetrics, custom and external
    /// metrics and Secrets) with `config`. Fails only if the HTTP client cannot be built.
    pub fn new(client: Client, config: MetricsConfig) -> Result<MetricSource, reqwest::Error> {
        // kube and reqwest compile in two rustls providers; settle on ring (harmless if set).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(config.connect_timeout)
            .timeout(config.read_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(8)
            .build()?;
        let cap = config.max_cached_connections;
        let idle = config.idle_connection_ttl;
        let inner = Inner {
            kube: kube_metrics::KubeMetrics::new(client.clone(), config.discovery_ttl),
            secrets: secrets::Secrets::new(client, config.secret_ttl, 1024),
            prometheus: prometheus::PrometheusReader {
                http: http.clone(),
                default_url: config.prometheus_url.clone(),
                timeout: config.read_timeout,
            },
            events: event::EventReaders {
                redis: event::redis::RedisReader {
                    connections: Cache::new(cap, idle),
                    connect_timeout: config.connect_timeout,
                    read_timeout: config.read_timeout,
                },
                rabbitmq: event::rabbitmq::RabbitReader {
                    http: http.clone(),
                    tls_http: Cache::new(cap, idle),
                    connections: Cache::new(cap, idle),
                    connect_timeout: config.connect_timeout,
                    read_timeout: config.read_timeout,
                },
                postgres: event::postgres::PostgresReader {
                    connections: Cache::new(cap, idle),
                    connect_timeout: config.connect_timeout,
                    read_timeout: config.read_timeout,
                },
                kafka: event::kafka::KafkaReader {
                    previous: Cache::new(cap, idle),
                    connect_timeout: config.connect_timeout,
                    read_timeout: config.read_timeout,
                },
                http,
                aws_region: config.aws_region.clone(),
                aws_credentials: config.aws_credentials.clone(),
                read_timeout: config.read_timeout,
            },
            permits: Semaphore::new(config.max_concurrent_reads.max(1)),
            config,
        };
        Ok(MetricSource {
            inner: Arc::new(inner),
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &MetricsConfig {
        &self.inner.config
    }

    /// Reads every metric of `hza` concurrently: one result per [`effective_metrics`] entry,
    /// in order. `selector` is the target scale's `status.selector` (label-selector string); it
    /// picks the pods of Resource, ContainerResource and Pods metrics. Samples are not filtered
    /// by pod list: the core, like upstream, ignores or counts pods it does not know.
    pub async fn read_all(
        &self,
        hza: &HorizontalAutoscaler,
        selector: &str,
    ) -> Vec<Result<MetricReading, MetricError>> {
        let metrics = effective_metrics(hza);
        join_all(
            metrics
                .iter()
                .enumerate()
                .map(|(i, m)| self.read(hza, i, m, selector)),
        )
        .await
    }

    /// [`MetricSource::read_all`] with errors folded into the readings (`error` set), ready for
    /// `Snapshot::metrics`.
    pub async fn readings(&self, hza: &HorizontalAutoscaler, selector: &str) -> Vec<MetricReading> {
        self.read_all(hza, selector)
            .await
            .into_iter()
            .map(to_reading)
            .collect()
    }

    /// Reads one metric (`index` is its position, used in messages).
    pub async fn read(
        &self,
        hza: &HorizontalAutoscaler,
        index: usize,
        metric: &MetricSpec,
        selector: &str,
    ) -> Result<MetricReading, MetricError> {
        let fail = |error: ReadError| MetricError {
            index,
            reason: FailureReason::of(metric.type_),
            metric: self.describe(metric),
            error,
        };
        let Ok(_permit) = self.inner.permits.acquire().await else {
            return Err(fail(ReadError::Source(
                "metric reader is shutting down".into(),
            )));
        };
        let timeout = self.inner.config.read_timeout;
        match tokio::time::timeout(timeout, self.read_inner(hza, metric, selector)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(fail(e)),
            Err(_) => Err(fail(ReadError::Timeout(timeout))),
        }
    }

    /// The past of a Prometheus metric of `namespace`: `src.query` as a range query from
    /// `start` to `end` every `step` (seconds), summed across series per instant (the demand
    /// history's backfill). Credentials as for [`MetricSource::read`]; each piece of the range
    /// within the read timeout.
    pub async fn read_prometheus_range(
        &self,
        namespace: &str,
        src: &PrometheusMetricSource,
        range: (i64, i64, i64),
    ) -> Result<Vec<prometheus::RangePoint>, ReadError> {
        let secret = match &src.credentials_ref {
            Some(r) => Some(self.inner.secrets.get(namespace, &r.name).await?),
            None => None,
        };
        let Ok(_permit) = self.inner.permits.acquire().await else {
            return Err(ReadError::Source("metric reader is shutting down".into()));
        };
        self.inner
            .prometheus
            .read_range(src, secret.as_deref(), range)
            .await
    }

    async fn read_inner(
        &self,
        hza: &HorizontalAutoscaler,
        m: &MetricSpec,
        selector: &str,
    ) -> Result<MetricReading, ReadError> {
        let namespace = hza
            .metadata
            .namespace
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ReadError::InvalidSpec("the autoscaler has no namespace".into()))?;
        let missing = |field: &str| {
            ReadError::InvalidSpec(format!("type {:?} needs the {field} field", m.type_))
        };
        let kube = &self.inner.kube;
        match m.type_ {
            MetricSourceType::Resource => {
                let r = m.resource.as_ref().ok_or_else(|| missing("resource"))?;
                kube.resource(namespace, selector, &r.name, None).await
            }
            MetricSourceType::ContainerResource => {
                let r = m
                    .container_resource
                    .as_ref()
                    .ok_or_else(|| missing("containerResource"))?;
                kube.resource(namespace, selector, &r.name, Some(&r.container))
                    .await
            }
            MetricSourceType::Pods => {
                let p = m.pods.as_ref().ok_or_else(|| missing("pods"))?;
                let metric_selector = convert::selector_string(p.metric.selector.as_ref())?;
                kube.pods(namespace, selector, &p.metric.name, &metric_selector)
                    .await
            }
            MetricSourceType::Object => {
                let o = m.object.as_ref().ok_or_else(|| missing("object"))?;
                let metric_selector = convert::selector_string(o.metric.selector.as_ref())?;
                kube.object(
                    namespace,
                    &o.described_object,
                    &o.metric.name,
                    &metric_selector,
                )
                .await
            }
            MetricSourceType::External => {
                let x = m.external.as_ref().ok_or_else(|| missing("external"))?;
                let metric_selector = convert::selector_string(x.metric.selector.as_ref())?;
                kube.external(namespace, &x.metric.name, &metric_selector)
                    .await
            }
            MetricSourceType::Prometheus => {
                let p = m.prometheus.as_ref().ok_or_else(|| missing("prometheus"))?;
                let secret = match &p.credentials_ref {
                    Some(r) => Some(self.inner.secrets.get(namespace, &r.name).await?),
                    None => None,
                };
                self.inner.prometheus.read(p, secret.as_deref()).await
            }
            MetricSourceType::Event => {
                let e = m.event.as_ref().ok_or_else(|| missing("event"))?;
                self.read_event_inner(namespace, e).await
            }
        }
    }

    /// Reads one event source for an object in `namespace` (a `JobAutoscaler`'s trigger), with
    /// the same readers, caches, concurrency limit and timeout as the autoscalers' `Event`
    /// metrics. `index` is the trigger's position, used in messages.
    pub async fn read_event(
        &self,
        namespace: &str,
        index: usize,
        event: &EventMetricSource,
    ) -> Result<MetricReading, MetricError> {
        let fail = |error: ReadError| MetricError {
            index,
            reason: FailureReason::of(MetricSourceType::Event),
            metric: event::describe(event),
            error,
        };
        let Ok(_permit) = self.inner.permits.acquire().await else {
            return Err(fail(ReadError::Source(
                "metric reader is shutting down".into(),
            )));
        };
        let timeout = self.inner.config.read_timeout;
        match tokio::time::timeout(timeout, self.read_event_inner(namespace, event)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(fail(e)),
            Err(_) => Err(fail(ReadError::Timeout(timeout))),
        }
    }

    async fn read_event_inner(
        &self,
        namespace: &str,
        e: &EventMetricSource,
    ) -> Result<MetricReading, ReadError> {
        let secret = match &e.credentials_ref {
            Some(r) if e.type_ != ballast_api::horizontal::EventSourceType::Cron => {
                Some(self.inner.secrets.get(namespace, &r.name).await?)
            }
            _ => None,
        };
        self.inner.events.read(e, secret.as_deref()).await
    }

    /// Which metric and which source, for messages: `Resource cpu (metrics.k8s.io/v1beta1)`,
    /// `Prometheus query "up" at http://...`, `event source redis-list "jobs" at host:6379`.
    pub fn describe(&self, m: &MetricSpec) -> String {
        use kube_metrics::{CUSTOM_METRICS_API, EXTERNAL_METRICS_API, RESOURCE_METRICS_API};
        match m.type_ {
            MetricSourceType::Resource => match &m.resource {
                Some(r) => format!("Resource {} from {RESOURCE_METRICS_API}", r.name),
                None => "Resource".into(),
            },
            MetricSourceType::ContainerResource => match &m.container_resource {
                Some(r) => format!(
                    "ContainerResource {} of container {} from {RESOURCE_METRICS_API}",
                    r.name, r.container
                ),
                None => "ContainerResource".into(),
            },
            MetricSourceType::Pods => match &m.pods {
                Some(p) => format!("Pods metric {} from {CUSTOM_METRICS_API}", p.metric.name),
                None => "Pods".into(),
            },
            MetricSourceType::Object => match &m.object {
                Some(o) => format!(
                    "Object metric {} of {} from {CUSTOM_METRICS_API}",
                    o.metric.name, o.described_object
                ),
                None => "Object".into(),
            },
            MetricSourceType::External => match &m.external {
                Some(x) => format!(
                    "External metric {} from {EXTERNAL_METRICS_API}",
                    x.metric.name
                ),
                None => "External".into(),
            },
            MetricSourceType::Prometheus => match &m.prometheus {
                Some(p) => match self.inner.prometheus.server(p) {
                    Some(url) => format!(
                        "Prometheus query {:?} at {}",
                        p.query,
                        event::rabbitmq::redact(url)
                    ),
                    None => format!("Prometheus query {:?}", p.query),
                },
                None => "Prometheus".into(),
            },
            MetricSourceType::Event => match &m.event {
                Some(e) => event::describe(e),
                None => "Event".into(),
            },
        }
    }
}
