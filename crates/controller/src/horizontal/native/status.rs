//! Between an `autoscaling/v2` HorizontalPodAutoscaler and the `HorizontalAutoscaler` the core
//! decides on: the object to decide ([`autoscaler_of`]: the spec through
//! `ballast_api::convert::hpa_spec`, the status read back, the stored history), and the HPA's
//! status to write ([`hpa_status`]: upstream's fields and condition types only) with the history
//! as an annotation ([`HISTORY_ANNOTATION`]).
//!
//! Pure: no client, no clock.

use ballast_api::convert::{ConvertError, hpa_spec};
use ballast_api::horizontal::{
    HorizontalAutoscaler, HorizontalAutoscalerStatus, MetricSourceType, MetricStatus,
    ScalingHistory,
};
use k8s_openapi::api::autoscaling::v2 as upstream;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::ObjectMeta;
use serde_json::Value;

/// The annotation on a HorizontalPodAutoscaler holding what stabilization windows and rate
/// policies need (`HorizontalAutoscaler`'s `status.history`, as JSON): the HPA's status has no
/// field for it, and other clients ignore an annotation.
pub const HISTORY_ANNOTATION: &str = "autoscaling.ballast.dev/scaling-history";

/// The condition types an HPA's status carries: upstream's three, and the conflict with a
/// `VerticalAutoscaler` this controller adds. Others (KEDA-like `Active`, `Fallback`, `Paused`)
/// cannot arise from an HPA spec and are not written.
const CONDITION_TYPES: [&str; 4] = [
    "AbleToScale",
    "ScalingActive",
    "ScalingLimited",
    "VerticalConflict",
];

/// `HorizontalPodAutoscaler namespace/name`, how errors and events name the object.
pub fn label(hpa: &upstream::HorizontalPodAutoscaler) -> String {
    format!(
        "HorizontalPodAutoscaler {}/{}",
        hpa.metadata.namespace.as_deref().unwrap_or_default(),
        hpa.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The `HorizontalAutoscaler` the core decides for `hpa`: the same metadata (name, namespace,
/// uid, generation), the spec mapped as `ballast convert` maps it with `sync_period_seconds` (the
/// HPA has no field for it: the controller's `--native-hpa-sync-period`), and the status read
/// back from the HPA's with the history of [`HISTORY_ANNOTATION`]. A spec that does not map is
/// an error naming the object and the field; an unreadable annotation is an empty history (the
/// second value says why it was dropped).
pub fn autoscaler_of(
    hpa: &upstream::HorizontalPodAutoscaler,
    sync_period_seconds: i32,
) -> Result<(HorizontalAutoscaler, Option<String>), ConvertError> {
    let label = label(hpa);
    let spec_json = serde_json::to_value(&hpa.spec).unwrap_or(Value::Null);
    let mut notes = Vec::new();
    let mut spec = hpa_spec(&spec_json, "autoscaling/v2", &label, &mut notes)?;
    spec.sync_period_seconds = Some(sync_period_seconds);
    let (history, dropped) = match history_of(&hpa.metadata) {
        Ok(h) => (h, None),
        Err(why) => (None, Some(why)),
    };
    let status = hpa
        .status
        .as_ref()
        .map(|s| our_status(s, history.clone()))
        .or_else(|| {
            history.map(|h| HorizontalAutoscalerStatus {
                history: Some(h),
                ..Default::default()
            })
        });
    let metadata = ObjectMeta {
        name: hpa.metadata.name.clone(),
        namespace: hpa.metadata.namespace.clone(),
        uid: hpa.metadata.uid.clone(),
        generation: hpa.metadata.generation,
        resource_version: hpa.metadata.resource_version.clone(),
        deletion_timestamp: hpa.metadata.deletion_timestamp.clone(),
        ..Default::default()
    };
    let mut object = HorizontalAutoscaler::new("", spec);
    object.metadata = metadata;
    object.status = status;
    Ok((object, dropped))
}

/// The history stored in [`HISTORY_ANNOTATION`]: `Ok(None)` without one, an error saying why a
/// stored one cannot be read.
pub fn history_of(meta: &ObjectMeta) -> Result<Option<ScalingHistory>, String> {
    let Some(text) = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(HISTORY_ANNOTATION))
    else {
        return Ok(None);
    };
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| format!("annotation {HISTORY_ANNOTATION}: {e}"))
}

/// The text of [`HISTORY_ANNOTATION`] for `history` (`None` for an empty one).
pub fn history_text(history: Option<&ScalingHistory>) -> Option<String> {
    history
        .filter(|h| **h != ScalingHistory::default())
        .and_then(|h| serde_json::to_string(h).ok())
}

/// Our status from an HPA's (what the core reads of the previous decision: conditions with their
/// transition times, the replica counts, the last scale time) with `history`.
fn our_status(
    s: &upstream::HorizontalPodAutoscalerStatus,
    history: Option<ScalingHistory>,
) -> HorizontalAutoscalerStatus {
    HorizontalAutoscalerStatus {
        observed_generation: s.observed_generation,
        last_scale_time: s.last_scale_time.clone(),
        current_replicas: s.current_replicas.unwrap_or_default(),
        desired_replicas: s.desired_replicas,
        current_metrics: s
            .current_metrics
            .iter()
            .flatten()
            .filter_map(|m| serde_json::to_value(m).ok())
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect(),
        conditions: s
            .conditions
            .iter()
            .flatten()
            .map(|c| Condition {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone().unwrap_or_default(),
                message: c.message.clone().unwrap_or_default(),
                last_transition_time: c
                    .last_transition_time
                    .clone()
                    .unwrap_or(Time(jiff::Timestamp::UNIX_EPOCH)),
                observed_generation: None,
            })
            .collect(),
        reference: None,
        targets: None,
        history,
        // An HPA has no predictive scaling.
        prediction: None,
    }
}

/// The HPA status upstream's controller would write for our decided `status`: currentReplicas,
/// desiredReplicas, currentMetrics (the metric types an HPA has), lastScaleTime,
/// observedGeneration and the conditions of [`CONDITION_TYPES`], in the order decided.
pub fn hpa_status(status: &HorizontalAutoscalerStatus) -> upstream::HorizontalPodAutoscalerStatus {
    let metrics: Vec<upstream::MetricStatus> = status
        .current_metrics
        .iter()
        .filter(|m| upstream_type(m))
        .filter_map(|m| serde_json::to_value(m).ok())
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect();
    let conditions: Vec<upstream::HorizontalPodAutoscalerCondition> = status
        .conditions
        .iter()
        .filter(|c| CONDITION_TYPES.contains(&c.type_.as_str()))
        .map(|c| upstream::HorizontalPodAutoscalerCondition {
            type_: c.type_.clone(),
            status: c.status.clone(),
            reason: Some(c.reason.clone()),
            message: Some(c.message.clone()),
            last_transition_time: Some(c.last_transition_time.clone()),
        })
        .collect();
    upstream::HorizontalPodAutoscalerStatus {
        current_replicas: Some(status.current_replicas),
        desired_replicas: status.desired_replicas,
        current_metrics: Some(metrics),
        last_scale_time: status.last_scale_time.clone(),
        observed_generation: status.observed_generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
    }
}

/// Whether an HPA's `currentMetrics` can hold this metric's type.
fn upstream_type(m: &MetricStatus) -> bool {
    !matches!(
        m.type_,
        MetricSourceType::Prometheus | MetricSourceType::Event
    )
}

/// What a status write on the HPA carries: `{"metadata": {"annotations": ...}, "status": ...}`
/// as one JSON document for both `written` (`Null` when nothing is known to be written) and
/// `decided`, so their merge-patch difference is the one patch to send.
pub fn document(status: Option<&HorizontalAutoscalerStatus>) -> Value {
    let Some(status) = status else {
        return Value::Null;
    };
    let history = history_text(status.history.as_ref());
    serde_json::json!({
        "metadata": { "annotations": { HISTORY_ANNOTATION: history } },
        "status": serde_json::to_value(hpa_status(status)).unwrap_or(Value::Null),
    })
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
