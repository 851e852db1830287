//! `VerticalAutoscaler` and `VerticalAutoscalerCheckpoint` (autoscaling.ballast.dev/v1): the
//! VPA `autoscaling.k8s.io/v1` spec and status under Ballast's group.

use crate::common::{
    Condition, CrossVersionObjectReference, Time, duration_schema, quantity_schema,
    resource_list_schema,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Resource name → quantity (`cpu: 250m`, `memory: 256Mi`).
pub type ResourceList = BTreeMap<String, Quantity>;

/// Spec of a `VerticalAutoscaler`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "autoscaling.ballast.dev",
    version = "v1",
    kind = "VerticalAutoscaler",
    plural = "verticalautoscalers",
    shortname = "vza",
    namespaced,
    status = "VerticalAutoscalerStatus",
    printcolumn(
        name = "Mode",
        type_ = "string",
        json_path = ".spec.updatePolicy.updateMode"
    ),
    printcolumn(
        name = "CPU",
        type_ = "string",
        json_path = ".status.recommendation.containerRecommendations[0].target.cpu"
    ),
    printcolumn(
        name = "Mem",
        type_ = "string",
        json_path = ".status.recommendation.containerRecommendations[0].target.memory"
    ),
    printcolumn(
        name = "Provided",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='RecommendationProvided')].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct VerticalAutoscalerSpec {
    /// The controller whose pods are sized (anything with a `scale` subresource).
    pub target_ref: CrossVersionObjectReference,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_policy: Option<UpdatePolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_policy: Option<ResourcePolicy>,
    /// Named recommenders to use (empty: the default one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recommenders: Vec<RecommenderSelector>,
    /// How recommendations are estimated from usage (absent: the VPA recommender's defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimation: Option<Estimation>,
    /// What to do when a `HorizontalAutoscaler` on the same target scales on the utilization of
    /// a resource this object controls (Ballast's; default Coordinated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizontal_coordination: Option<HorizontalCoordination>,
}

/// How requests are applied while a `HorizontalAutoscaler` on the same target scales on the
/// utilization (usage / request) of a resource this object controls.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum HorizontalCoordination {
    /// Hold that resource's requests: never lowered, raised only up to the recommendation's
    /// lower bound; the other resources are applied as recommended.
    #[default]
    Coordinated,
    /// Apply every recommendation anyway (the two autoscalers may fight).
    Ignore,
}

/// Which estimator turns usage histograms into a recommendation.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum EstimatorMode {
    /// Fixed percentiles plus a safety margin (the VPA recommender's way).
    #[default]
    Percentile,
    /// Per container, the candidate estimator with the lowest recent cost of overrun, slack and
    /// change.
    Adaptive,
}

/// Per-object overrides of the estimation; every field is optional.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Estimation {
    /// Estimator (default Percentile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<EstimatorMode>,
    /// CPU overrides (default: P90 target, P50 lower, P95 upper, 24h half-life, 15% margin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<ResourceEstimation>,
    /// Memory overrides, over per-interval peaks (same defaults as CPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ResourceEstimation>,
    /// Smallest CPU of a whole pod, split evenly across its containers (default 25m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "quantity_schema")]
    pub pod_min_cpu: Option<Quantity>,
    /// Smallest memory of a whole pod, split evenly across its containers (default 250Mi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "quantity_schema")]
    pub pod_min_memory: Option<Quantity>,
}

/// How one resource's usage histogram is read.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("!has(self.lowerBoundPercentile) || !has(self.targetPercentile) || self.lowerBoundPercentile <= self.targetPercentile").message("lowerBoundPercentile must not exceed targetPercentile"))]
#[x_kube(validation = Rule::new("!has(self.upperBoundPercentile) || !has(self.targetPercentile) || self.targetPercentile <= self.upperBoundPercentile").message("targetPercentile must not exceed upperBoundPercentile"))]
#[serde(rename_all = "camelCase")]
pub struct ResourceEstimation {
    /// Percentile of the target, in (0, 100] (default 90).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.001, max = 100))]
    pub target_percentile: Option<f64>,
    /// Percentile of the lower bound, in (0, 100] (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.001, max = 100))]
    pub lower_bound_percentile: Option<f64>,
    /// Percentile of the upper bound, in (0, 100] (default 95).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.001, max = 100))]
    pub upper_bound_percentile: Option<f64>,
    /// Age at which a sample weighs half as much as a new one (default 24h, at least 1m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "duration_schema")]
    pub half_life: Option<String>,
    /// Percent added on top of each percentile, 0 to 1000 (default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub safety_margin_percent: Option<f64>,
}

/// How recommendations are applied.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum UpdateMode {
    /// Only compute recommendations.
    Off,
    /// Set requests when pods are created, never evict.
    Initial,
    /// Set requests at creation and evict pods whose requests are far off.
    #[default]
    Recreate,
    /// Resize pods in place, evicting only when a resize cannot happen.
    InPlaceOrRecreate,
    /// Deprecated alias of Recreate.
    Auto,
}

/// When pods may be updated.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_mode: Option<UpdateMode>,
    /// Fewest live replicas for the updater to evict (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eviction_requirements: Vec<EvictionRequirement>,
}

/// Evict only when the recommendation moves the named resources in this direction.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct EvictionRequirement {
    pub resources: Vec<String>,
    pub change_requirement: ChangeRequirement,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum ChangeRequirement {
    #[default]
    TargetHigherThanRequests,
    TargetLowerThanRequests,
}

/// Per-container limits on recommendations.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourcePolicy {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub container_policies: Vec<ContainerResourcePolicy>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum ContainerScalingMode {
    #[default]
    Auto,
    Off,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum ControlledValues {
    /// Scale requests and keep the limit/request ratio.
    #[default]
    RequestsAndLimits,
    /// Scale requests only.
    RequestsOnly,
}

/// Limits on one container's recommendation (`containerName: "*"` for all).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("!has(self.minAllowed) || !has(self.maxAllowed) || self.minAllowed.all(k, !(k in self.maxAllowed) || quantity(string(self.minAllowed[k])).compareTo(quantity(string(self.maxAllowed[k]))) <= 0)").message("minAllowed must not exceed maxAllowed"))]
#[serde(rename_all = "camelCase")]
pub struct ContainerResourcePolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ContainerScalingMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resource_list_schema")]
    pub min_allowed: Option<ResourceList>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resource_list_schema")]
    pub max_allowed: Option<ResourceList>,
    /// Resources to recommend (default cpu and memory).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controlled_resources: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controlled_values: Option<ControlledValues>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RecommenderSelector {
    pub name: String,
}

/// Observed state of a `VerticalAutoscaler`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct VerticalAutoscalerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommendation: Option<RecommendedPodResources>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RecommendedPodResources {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_recommendations: Vec<RecommendedContainerResources>,
}

/// Recommendation for one container.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RecommendedContainerResources {
    pub container_name: String,
    #[schemars(schema_with = "resource_list_schema")]
    pub target: ResourceList,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resource_list_schema")]
    pub lower_bound: Option<ResourceList>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resource_list_schema")]
    pub upper_bound: Option<ResourceList>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resource_list_schema")]
    pub uncapped_target: Option<ResourceList>,
}

/// Spec of a `VerticalAutoscalerCheckpoint`: which autoscaler and container it saves.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[kube(
    group = "autoscaling.ballast.dev",
    version = "v1",
    kind = "VerticalAutoscalerCheckpoint",
    plural = "verticalautoscalercheckpoints",
    shortname = "vzacheckpoint",
    namespaced,
    status = "VerticalAutoscalerCheckpointStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct VerticalAutoscalerCheckpointSpec {
    pub vertical_autoscaler_name: String,
    pub container_name: String,
}

/// The saved histograms of one container.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct VerticalAutoscalerCheckpointStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_histogram: Option<HistogramCheckpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_histogram: Option<HistogramCheckpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_sample_start: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sample_start: Option<Time>,
    #[serde(default)]
    pub total_samples_count: i64,
    /// Peak of the current memory interval, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_peak: Option<f64>,
    /// When the current memory interval ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_interval_end: Option<Time>,
    /// State of the Adaptive estimator (absent in Percentile mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<AdaptiveCheckpoint>,
}

/// The Adaptive estimator's short histograms and candidates.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AdaptiveCheckpoint {
    pub cpu_short_histogram: HistogramCheckpoint,
    pub memory_short_histogram: HistogramCheckpoint,
    pub cpu: CandidatesCheckpoint,
    pub memory: CandidatesCheckpoint,
    /// Peaks of the recent CPU usage windows (the window candidates' signal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_windows: Option<WindowPeaksCheckpoint>,
    /// Peaks of the recent memory usage windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_windows: Option<WindowPeaksCheckpoint>,
}

/// The peaks of a resource's recent fixed-length usage windows.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct WindowPeaksCheckpoint {
    /// When the open (current) window started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_start: Option<Time>,
    /// Peak of the open window.
    #[serde(default)]
    pub open_peak: f64,
    /// Peaks of the closed windows, newest first (entry j: the window that started j + 1 windows
    /// before the open one; 0 when it saw no sample).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 96))]
    pub closed_peaks: Vec<f64>,
}

/// Limits and decayed costs of one resource's candidate estimators.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct CandidatesCheckpoint {
    #[schemars(length(max = 64))]
    pub limits: Vec<f64>,
    #[schemars(length(max = 64))]
    pub costs: Vec<f64>,
    /// Index of the candidate followed.
    #[schemars(range(min = 0, max = 63))]
    pub chosen: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sample: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refresh: Option<Time>,
}

/// A decaying histogram stored sparsely: bucket index → weight relative to the reference time,
/// exact (unlike the VPA's checkpoints, which scale weights to integers up to 10000, so a restored
/// histogram gives the very same percentiles as the saved one).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct HistogramCheckpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_timestamp: Option<Time>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bucket_weights: BTreeMap<String, f64>,
    #[serde(default)]
    pub total_weight: f64,
}
