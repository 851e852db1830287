//! `VerticalAutoscaler` and `VerticalAutoscalerCheckpoint` (autoscaling.ballast.dev/v1): the
//! VPA `autoscaling.k8s.io/v1` spec and status under Ballast's group.

use crate::common::{Condition, CrossVersionObjectReference, Time, resource_list_schema};
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
}

/// A decaying histogram stored sparsely: bucket index → weight scaled to at most 10000.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct HistogramCheckpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_timestamp: Option<Time>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bucket_weights: BTreeMap<String, u32>,
    #[serde(default)]
    pub total_weight: f64,
}
