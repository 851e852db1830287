//! `JobAutoscaler` (autoscaling.ballast.dev/v1): starts Kubernetes Jobs from a template for the
//! work waiting in a queue (KEDA's ScaledJob use case). It reads the same event sources as a
//! `HorizontalAutoscaler`'s `Event` metrics; each trigger's `target` is the work one Job takes.
//!
//! How many Jobs to start is decided by `ballast_horizontal::jobs` (pure); the `jobs`
//! controller lists the object's Jobs, asks it, creates and deletes Jobs. See `docs/jobs.md`.

use crate::common::{Condition, Time};
use crate::horizontal::EventMetricSource;
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Default seconds between two reads of the sources (KEDA's `pollingInterval`).
pub const DEFAULT_POLLING_INTERVAL_SECONDS: i32 = 30;
/// Default number of finished Jobs of each outcome kept (KEDA's history limits).
pub const DEFAULT_HISTORY_LIMIT: i32 = 100;
/// Default maximum of unfinished Jobs.
pub const DEFAULT_MAX_REPLICA_COUNT: i32 = 100;
/// The label every Job started for an object carries, with the object's name as value.
pub const OWNER_LABEL: &str = "autoscaling.ballast.dev/job-autoscaler";
/// The annotation holding the hash of the Job template a Job was started from.
pub const TEMPLATE_HASH_ANNOTATION: &str = "autoscaling.ballast.dev/template-hash";

/// Spec of a `JobAutoscaler`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "autoscaling.ballast.dev",
    version = "v1",
    kind = "JobAutoscaler",
    plural = "jobautoscalers",
    shortname = "jba",
    namespaced,
    status = "JobAutoscalerStatus",
    printcolumn(name = "Max", type_ = "integer", json_path = ".spec.maxReplicaCount"),
    printcolumn(name = "Active", type_ = "integer", json_path = ".status.activeJobs"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = Rule::new("!has(self.minReplicaCount) || self.minReplicaCount <= (has(self.maxReplicaCount) ? self.maxReplicaCount : 100)").message("minReplicaCount must be less than or equal to maxReplicaCount").field_path(".minReplicaCount"),
    validation = Rule::new("!has(self.scalingStrategy) || self.scalingStrategy.strategy == 'custom' || (!has(self.scalingStrategy.customScalingQueueLengthDeduction) && !has(self.scalingStrategy.customScalingRunningJobPercentage))").message("the customScaling fields need strategy custom").field_path(".scalingStrategy"),
    validation = Rule::new("self.triggers.all(t, t.type != 'cron')").message("a JobAutoscaler needs a queue: cron triggers have no backlog").field_path(".triggers")
)]
#[serde(rename_all = "camelCase")]
pub struct JobAutoscalerSpec {
    /// The Job every start creates (a `batch/v1` JobSpec: parallelism, completions,
    /// activeDeadlineSeconds, backoffLimit, template, ...). Its `selector` is left to the API
    /// server.
    #[schemars(schema_with = "job_spec_schema")]
    pub job_target_ref: serde_json::Value,
    /// Seconds between two reads of the sources (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub polling_interval: Option<i32>,
    /// Succeeded Jobs kept (default 100); older ones are deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub successful_jobs_history_limit: Option<i32>,
    /// Failed Jobs kept (default 100); older ones are deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub failed_jobs_history_limit: Option<i32>,
    /// Unfinished Jobs kept at all times, work or not (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_replica_count: Option<i32>,
    /// Most unfinished Jobs at once (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_replica_count: Option<i32>,
    /// What happens to unfinished Jobs when the spec changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// How many Jobs to start for a backlog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling_strategy: Option<ScalingStrategy>,
    /// The queues: each trigger's backlog over its `target` (AverageValue or Value: the work
    /// of one Job) is the Jobs it asks for.
    #[schemars(length(min = 1, max = 16))]
    pub triggers: Vec<EventMetricSource>,
}

/// A `batch/v1` JobSpec kept as written (the API server checks it when the Job is created).
fn job_spec_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "required": ["template"],
        "properties": {
            "parallelism": {"type": "integer", "format": "int32", "minimum": 0},
            "completions": {"type": "integer", "format": "int32", "minimum": 0},
            "activeDeadlineSeconds": {"type": "integer", "format": "int64", "minimum": 1},
            "backoffLimit": {"type": "integer", "format": "int32", "minimum": 0},
            "template": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        },
    })
}

/// What a spec change does to unfinished Jobs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// `default` deletes unfinished Jobs of an older template; `gradual` lets them finish.
    #[serde(default)]
    pub strategy: RolloutStrategy,
    /// How the deletion reaches the Jobs' pods (default `background`).
    #[serde(default)]
    pub propagation_policy: PropagationPolicy,
}

/// What a spec change does to unfinished Jobs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum RolloutStrategy {
    /// Delete unfinished Jobs started from an older template.
    #[default]
    Default,
    /// Leave them to finish.
    Gradual,
}

/// The deletion propagation of Jobs this controller deletes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum PropagationPolicy {
    #[default]
    Background,
    Foreground,
}

impl PropagationPolicy {
    /// The API's spelling (`Background`, `Foreground`).
    pub fn as_api(self) -> &'static str {
        match self {
            PropagationPolicy::Background => "Background",
            PropagationPolicy::Foreground => "Foreground",
        }
    }
}

/// How many Jobs a backlog asks for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ScalingStrategy {
    #[serde(default)]
    pub strategy: JobScalingStrategy,
    /// Jobs subtracted from the wanted count (custom).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_scaling_queue_length_deduction: Option<i32>,
    /// Share of the unfinished Jobs subtracted from the wanted count, `0` to `1` (custom;
    /// a string as in KEDA, `"0.5"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0(\.[0-9]+)?|1(\.0+)?)$"))]
    pub custom_scaling_running_job_percentage: Option<String>,
    /// Pod conditions (`PodScheduled`, `Initialized`, `Ready`, ...) one pod of a Job must have,
    /// all True, for the Job not to count as pending (default: a pod is ready or succeeded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_pod_conditions: Vec<String>,
    /// How several triggers combine (default `max`).
    #[serde(default)]
    pub multiple_scalers_calculation: MultipleScalersCalculation,
}

/// The arithmetic of new Jobs (see `ballast_horizontal::jobs`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum JobScalingStrategy {
    #[default]
    Default,
    Custom,
    Accurate,
    Eager,
}

/// How the Jobs asked for by several triggers combine.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum MultipleScalersCalculation {
    #[default]
    Max,
    Min,
    Avg,
    Sum,
}

/// Observed state of a `JobAutoscaler`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct JobAutoscalerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (the pass went through; False with the reason it stopped: `InvalidSpec`,
    /// `SourceFailed`, `FailedListPods`, `FailedCreateJob`) and `Active` (there is work).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Last time a trigger had work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_active_time: Option<Time>,
    /// Unfinished Jobs at the last pass (running and pending).
    #[serde(default)]
    pub active_jobs: i32,
    /// Of those, pending Jobs (see `scalingStrategy.pendingPodConditions`).
    #[serde(default)]
    pub pending_jobs: i32,
    /// The backlog read at the last pass, summed over the triggers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_length: Option<i64>,
}

impl JobAutoscalerSpec {
    /// `pollingInterval` or its default, in seconds.
    pub fn polling_interval_seconds(&self) -> i32 {
        self.polling_interval
            .unwrap_or(DEFAULT_POLLING_INTERVAL_SECONDS)
    }

    /// `maxReplicaCount` or its default.
    pub fn max_replicas(&self) -> i32 {
        self.max_replica_count.unwrap_or(DEFAULT_MAX_REPLICA_COUNT)
    }

    /// `minReplicaCount` or 0, never above the maximum.
    pub fn min_replicas(&self) -> i32 {
        self.min_replica_count.unwrap_or(0).min(self.max_replicas())
    }
}
