//! The observed snapshot: everything one decision looks at.
//!
//! A snapshot is what the live controller gathers on each sync (the object, the target's
//! `scale` subresource, the selected pods, one reading per metric) plus `now`. The same shape is
//! read from a file by `ballast explain horizontal -f SNAPSHOT` (YAML or JSON, camelCase keys);
//! `docs/horizontal.md` documents it field by field and `examples/snapshot.yaml` is a complete
//! example.

use ballast_api::horizontal::HorizontalAutoscaler;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One observation of a `HorizontalAutoscaler` and its target, taken at `now`.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Snapshot {
    /// The autoscaler object: metadata, spec and status (the stored `status.history` and
    /// `status.conditions` are inputs of the decision).
    pub autoscaler: HorizontalAutoscaler,
    /// The target's `scale` subresource, or the error met reading it.
    pub scale: TargetScale,
    /// The pods the scale's selector selects (as the pod informer lists them).
    #[serde(default)]
    pub pods: Vec<PodSnapshot>,
    /// One reading per entry of `spec.metrics`, by position. A missing entry counts as a failed
    /// read. Cron event sources need none (they are evaluated against `now`).
    #[serde(default)]
    pub metrics: Vec<MetricReading>,
    /// Other autoscalers (`namespace/name`) whose selectors select some of these pods. Non-empty
    /// means `AmbiguousSelector`, as upstream.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_autoscalers: Vec<String>,
    /// Controller-wide settings (the kube-controller-manager flags of the HPA).
    #[serde(default)]
    pub config: ControllerConfig,
    /// The decision time. Every time comparison is made against it; no clock is read.
    pub now: Timestamp,
    /// Past demands (what the metrics asked for in replicas before rounding, one per decision),
    /// oldest first: the history `spec.predictive` forecasts from. The caller keeps it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub demand_history: Vec<DemandSample>,
}

/// One past demand: replicas before rounding, at a time.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DemandSample {
    pub time: Timestamp,
    pub replicas: f64,
}

/// The target's `scale` subresource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetScale {
    /// `spec.replicas` of the scale: the current replica count of every rule.
    #[serde(default)]
    pub spec_replicas: i32,
    /// `status.replicas` (used by AverageValue targets of Object, External, Prometheus and Event
    /// metrics). Defaults to `specReplicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_replicas: Option<i32>,
    /// `status.selector`, in label-selector string form (`app=web,tier in (a,b)`).
    #[serde(default)]
    pub selector: String,
    /// Set when the scale could not be read (target missing, no scale subresource...): the
    /// decision is then `AbleToScale=False/FailedGetScale`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Phase of a pod.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PodPhase {
    Pending,
    #[default]
    Running,
    Succeeded,
    Failed,
    Unknown,
}

/// Status of a pod condition.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// The pod's `Ready` condition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadyCondition {
    pub status: ConditionStatus,
    pub last_transition_time: Timestamp,
}

/// A container (or init container) and its resource requests.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerSnapshot {
    pub name: String,
    /// `resources.requests` (`cpu: 500m`, `memory: 1Gi`).
    #[serde(default)]
    pub requests: BTreeMap<String, Quantity>,
    /// For init containers: `Always` marks a restartable sidecar, whose requests count like a
    /// regular container's. Ignored on regular containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
}

/// One selected pod, reduced to what the replica calculation reads.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSnapshot {
    pub name: String,
    /// `status.phase` (default `Running`).
    #[serde(default)]
    pub phase: PodPhase,
    /// The `Ready` condition, if the pod has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<ReadyCondition>,
    /// `status.startTime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    /// Whether `metadata.deletionTimestamp` is set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleting: bool,
    #[serde(default)]
    pub containers: Vec<ContainerSnapshot>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<ContainerSnapshot>,
    /// Pod-level `spec.resources.requests` (KEP-2837). When it names the resource, it is used
    /// instead of the containers' sum (not for ContainerResource metrics).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, Quantity>,
}

/// What was read for one metric. Set exactly one of `pods`, `value`, `values`, `error`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricReading {
    /// Per-pod samples (Resource, ContainerResource and Pods metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<Vec<PodSample>>,
    /// One value (Object, External, Prometheus, Event metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Quantity>,
    /// Several series, summed (External metrics; a Prometheus query returning several series).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<Quantity>>,
    /// The read failed with this message (API error, query error, empty result...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One pod's sample of a per-pod metric.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSample {
    /// Name of the pod the sample describes.
    pub pod: String,
    /// The value (cpu in cores, `250m`; memory in bytes; custom metrics as served).
    pub value: Quantity,
    /// When the sample was taken (default: `now`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    /// The window the sample averages over, as a Go duration (default `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

/// Controller-wide settings, with the HPA's defaults.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ControllerConfig {
    /// Tolerance used when `behavior.scaleUp/scaleDown.tolerance` is not set (0.1).
    pub tolerance: f64,
    /// After a pod starts, CPU samples are distrusted for this long (300 s).
    pub cpu_initialization_period_seconds: i64,
    /// A pod whose readiness flipped to false within this long after its start is taken as never
    /// having been ready (30 s).
    pub initial_readiness_delay_seconds: i64,
    /// Scale-down stabilization window when `behavior.scaleDown` does not set one (300 s).
    pub downscale_stabilization_seconds: i64,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            tolerance: ballast_api::horizontal::DEFAULT_TOLERANCE,
            cpu_initialization_period_seconds: 300,
            initial_readiness_delay_seconds: 30,
            downscale_stabilization_seconds: 300,
        }
    }
}

/// Why a snapshot could not be read or used. Always names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot: {field}: {message}")]
    Invalid { field: String, message: String },
    #[error("snapshot: {0}")]
    Parse(String),
}

impl SnapshotError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        SnapshotError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl Snapshot {
    /// Reads a snapshot from YAML (JSON is YAML too); errors name the offending field path.
    pub fn from_yaml(text: &str) -> Result<Snapshot, SnapshotError> {
        let de = serde_yaml::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            SnapshotError::Parse(format!("{path}: {}", e.into_inner()))
        })
    }

    /// Writes the snapshot as YAML that [`Snapshot::from_yaml`] reads back to an equal snapshot
    /// (the file `ballast explain horizontal --live --save-snapshot` writes).
    pub fn to_yaml(&self) -> Result<String, SnapshotError> {
        serde_yaml::to_string(self).map_err(|e| SnapshotError::Parse(e.to_string()))
    }

    /// Reads a snapshot from JSON; errors name the offending field path.
    pub fn from_json(text: &str) -> Result<Snapshot, SnapshotError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            SnapshotError::Parse(format!("{path}: {}", e.into_inner()))
        })
    }
}
