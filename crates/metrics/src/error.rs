//! Typed errors: every failed read says which metric, which source and what failed, and carries
//! the condition reason the HPA would report.

use std::fmt;
use std::time::Duration;

use ballast_api::horizontal::MetricSourceType;

/// The `ScalingActive=False` reason of a failed read, as upstream names it (plus ours for
/// Prometheus and event sources).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureReason {
    FailedGetResourceMetric,
    FailedGetContainerResourceMetric,
    FailedGetPodsMetric,
    FailedGetObjectMetric,
    FailedGetExternalMetric,
    FailedGetPrometheusMetric,
    FailedGetEventMetric,
}

impl FailureReason {
    /// The reason of a metric of this type.
    pub fn of(type_: MetricSourceType) -> FailureReason {
        match type_ {
            MetricSourceType::Resource => FailureReason::FailedGetResourceMetric,
            MetricSourceType::ContainerResource => FailureReason::FailedGetContainerResourceMetric,
            MetricSourceType::Pods => FailureReason::FailedGetPodsMetric,
            MetricSourceType::Object => FailureReason::FailedGetObjectMetric,
            MetricSourceType::External => FailureReason::FailedGetExternalMetric,
            MetricSourceType::Prometheus => FailureReason::FailedGetPrometheusMetric,
            MetricSourceType::Event => FailureReason::FailedGetEventMetric,
        }
    }

    /// The reason as written in conditions and events.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::FailedGetResourceMetric => "FailedGetResourceMetric",
            FailureReason::FailedGetContainerResourceMetric => "FailedGetContainerResourceMetric",
            FailureReason::FailedGetPodsMetric => "FailedGetPodsMetric",
            FailureReason::FailedGetObjectMetric => "FailedGetObjectMetric",
            FailureReason::FailedGetExternalMetric => "FailedGetExternalMetric",
            FailureReason::FailedGetPrometheusMetric => "FailedGetPrometheusMetric",
            FailureReason::FailedGetEventMetric => "FailedGetEventMetric",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed read of one metric: `spec.metrics[index]`, described by `metric` (type, name and
/// endpoint), failed because of `error`.
#[derive(Debug, thiserror::Error)]
#[error("{reason}: spec.metrics[{index}] ({metric}): {error}")]
pub struct MetricError {
    /// Position in `spec.metrics`.
    pub index: usize,
    /// The condition/event reason.
    pub reason: FailureReason,
    /// Which metric and which source, e.g. `Prometheus query "up" at http://127.0.0.1:9090`.
    pub metric: String,
    /// What failed.
    #[source]
    pub error: ReadError,
}

impl MetricError {
    /// The text stored in `MetricReading::error` (the decision core shows it in conditions): what
    /// failed and on which source, without the reason (the core adds it).
    pub fn reading_message(&self) -> String {
        format!("{}: {}", self.metric, self.error)
    }
}

/// What went wrong while reading a metric.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The aggregated API is not registered (no APIService): e.g. metrics-server is not
    /// installed.
    #[error("the cluster does not serve {group_version} (no APIService registered for it)")]
    NotServed { group_version: String },
    /// The aggregated API is registered but its backend does not answer discovery.
    #[error("{group_version} is registered but unavailable: {message}")]
    Unavailable {
        group_version: String,
        message: String,
    },
    /// A Kubernetes API request failed.
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// The metrics API answered with no item at all.
    #[error("no metrics returned from {api}")]
    NoMetrics { api: String },
    /// ContainerResource: a pod's metrics do not list the container.
    #[error("container {container} not present in metrics for pod {pod}")]
    ContainerNotPresent { container: String, pod: String },
    /// Object metrics: the API must return exactly one value.
    #[error("the custom metrics API returned {count} results when asked for exactly one")]
    NotExactlyOne { count: usize },
    /// An answer could not be understood.
    #[error("unreadable answer from {what}: {message}")]
    Parse { what: String, message: String },
    /// No Prometheus server address in the metric nor in the controller's settings.
    #[error(
        "no Prometheus server address: set prometheus.serverAddress or the controller's Prometheus URL"
    )]
    NoServerAddress,
    /// Prometheus rejected or failed the query.
    #[error("query failed: {0}")]
    Query(String),
    /// The query's result is empty.
    #[error("query returned no data")]
    EmptyResult,
    /// A value is NaN or infinite.
    #[error("value {0} is not a finite number")]
    NotFinite(f64),
    /// A value does not fit a quantity in thousandths (|v| < 9.2e15).
    #[error("value {0} is out of range")]
    OutOfRange(f64),
    /// The result has a shape the reader cannot turn into a value (range vector, string...).
    #[error("unsupported result: {0}")]
    UnsupportedResult(String),
    /// The credentials Secret could not be used.
    #[error("secret {namespace}/{name}: {message}")]
    Secret {
        namespace: String,
        name: String,
        message: String,
    },
    /// The read did not finish in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The source could not be reached.
    #[error("cannot connect to {endpoint}: {message}")]
    Connect { endpoint: String, message: String },
    /// The source answered with an error.
    #[error("{0}")]
    Source(String),
    /// The metric's settings are incomplete or invalid.
    #[error("invalid metric settings: {0}")]
    InvalidSpec(String),
    /// A feature Ballast does not implement (yet).
    #[error("{0}")]
    Unsupported(String),
}
