//! KEDA `keda.sh/v1alpha1` ScaledObject → `HorizontalAutoscaler`.
//!
//! KEDA splits the work between its operator (activation 0↔1, fallback) and an HPA fed
//! through the external metrics API (1↔N). Ballast does both in one reconciler, reading the
//! sources directly, so each trigger becomes one metric of the autoscaler (`keda_triggers`
//! converts each trigger type). KEDA's pause annotations become fields.

use super::keda_auth::{Authentications, secret_of};
use super::keda_triggers;
use super::{
    ConvertError, Converted, Note, NoteKind, carry_metadata, note, object, read_as, to_value,
};
use crate::horizontal::HorizontalAutoscalerSpec;
use serde_json::{Map, Value, json};

pub(super) fn convert(
    source: &Value,
    label: &str,
    auths: &Authentications,
) -> Result<Converted, ConvertError> {
    let namespace = source
        .pointer("/metadata/namespace")
        .and_then(Value::as_str);
    let mut notes = Vec::new();
    let mut metadata = carry_metadata(source, true, &mut notes);
    let spec = source.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut out = Map::new();
    out.insert("scaleTargetRef".into(), target_reference(&spec, &mut notes));
    let min = bounds_and_timing(&spec, &mut out);
    advanced(&spec, &mut out, &mut notes);
    let triggers = Triggers {
        spec: &spec,
        label,
        namespace,
        auths,
    };
    let (metrics, any_event_metric) = triggers.metrics(&mut notes)?;
    // KEDA's minReplicaCount 0 needs a metric that can wake the workload from zero.
    let min = if min == 0 && !any_event_metric {
        note(
            &mut notes,
            NoteKind::Changed,
            "spec.minReplicaCount",
            "0 needs an event or Prometheus trigger; set to 1",
        );
        1
    } else {
        min
    };
    out.insert("minReplicas".into(), json!(min));
    out.insert("metrics".into(), Value::Array(metrics));
    if let Some(metadata) = metadata.as_object_mut() {
        pause_annotations(metadata, &mut out, &mut notes, label)?;
    }
    let spec_value = Value::Object(out);
    let typed: HorizontalAutoscalerSpec = read_as(&spec_value, "spec", label)?;
    Ok(Converted {
        source: label.to_string(),
        object: object(
            "autoscaling.ballast.dev/v1",
            "HorizontalAutoscaler",
            metadata,
            to_value(&typed),
        ),
        notes,
    })
}

/// `spec.scaleTargetRef` with KEDA's defaults (`apps/v1` Deployment).
fn target_reference(spec: &Value, notes: &mut Vec<Note>) -> Value {
    let target_ref = spec
        .get("scaleTargetRef")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let field = |key: &str, default: Value| target_ref.get(key).cloned().unwrap_or(default);
    let mut reference = Map::new();
    reference.insert("apiVersion".into(), field("apiVersion", json!("apps/v1")));
    reference.insert("kind".into(), field("kind", json!("Deployment")));
    reference.insert("name".into(), field("name", Value::Null));
    if target_ref.get("envSourceContainerName").is_some() {
        note(
            notes,
            NoteKind::Dropped,
            "spec.scaleTargetRef.envSourceContainerName",
            "Ballast reads settings from the trigger and its secret, not from container env",
        );
    }
    Value::Object(reference)
}

/// Replica bounds and timing, with KEDA's defaults (min 0, max 100, polling 30 s); returns the
/// minimum, which depends on the triggers.
fn bounds_and_timing(spec: &Value, out: &mut Map<String, Value>) -> i64 {
    let min = spec
        .get("minReplicaCount")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    out.insert(
        "maxReplicas".into(),
        spec.get("maxReplicaCount").cloned().unwrap_or(json!(100)),
    );
    out.insert(
        "syncPeriodSeconds".into(),
        spec.get("pollingInterval").cloned().unwrap_or(json!(30)),
    );
    for (from, to) in [
        ("cooldownPeriod", "cooldownPeriodSeconds"),
        ("initialCooldownPeriod", "initialCooldownPeriodSeconds"),
        ("idleReplicaCount", "idleReplicas"),
        ("fallback", "fallback"),
    ] {
        if let Some(v) = spec.get(from) {
            out.insert(to.into(), v.clone());
        }
    }
    min
}

/// `spec.advanced`: the HPA behavior carries over; the rest is noted as dropped.
fn advanced(spec: &Value, out: &mut Map<String, Value>, notes: &mut Vec<Note>) {
    let Some(advanced) = spec.get("advanced") else {
        return;
    };
    if let Some(b) = advanced.pointer("/horizontalPodAutoscalerConfig/behavior") {
        out.insert("behavior".into(), b.clone());
    }
    let dropped = [
        (
            advanced.pointer("/horizontalPodAutoscalerConfig/name"),
            "spec.advanced.horizontalPodAutoscalerConfig.name",
            "Ballast makes no HPA object",
        ),
        (
            advanced.get("restoreToOriginalReplicaCount"),
            "spec.advanced.restoreToOriginalReplicaCount",
            "deleting a HorizontalAutoscaler leaves the replica count as it is",
        ),
        (
            advanced.get("scalingModifiers"),
            "spec.advanced.scalingModifiers",
            "Ballast has no formulas over triggers: each trigger scales on its own and the largest proposal wins",
        ),
    ];
    for (value, field, why) in dropped {
        if value.is_some() {
            note(notes, NoteKind::Dropped, field, why);
        }
    }
}

/// A ScaledObject's triggers and what converting them needs.
struct Triggers<'a> {
    spec: &'a Value,
    label: &'a str,
    namespace: Option<&'a str>,
    auths: &'a Authentications,
}

impl Triggers<'_> {
    /// One metric per convertible trigger, and whether any of them is not a resource metric
    /// (so it can wake the workload from zero).
    fn metrics(&self, notes: &mut Vec<Note>) -> Result<(Vec<Value>, bool), ConvertError> {
        let mut metrics = Vec::new();
        let mut any_event_metric = false;
        let triggers = self.spec.get("triggers").and_then(Value::as_array);
        for (i, trigger) in triggers.into_iter().flatten().enumerate() {
            let path = format!("spec.triggers[{i}]");
            let trigger_in = Trigger {
                value: trigger,
                path: &path,
                label: self.label,
                namespace: self.namespace,
                auths: self.auths,
            };
            if let Some(metric) = trigger_metric(&trigger_in, notes)? {
                any_event_metric |=
                    metric["type"] != "Resource" && metric["type"] != "ContainerResource";
                metrics.push(metric);
            }
        }
        Ok((metrics, any_event_metric))
    }
}

/// KEDA's pause annotations become `spec.paused`, `spec.pausedReplicas` and disabled behavior
/// directions; they are taken out of the carried annotations.
fn pause_annotations(
    metadata: &mut Map<String, Value>,
    out: &mut Map<String, Value>,
    notes: &mut Vec<Note>,
    label: &str,
) -> Result<(), ConvertError> {
    let Some(ann) = metadata
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
    else {
        return Ok(());
    };
    if let Some(v) = ann.remove("autoscaling.keda.sh/paused") {
        out.insert("paused".into(), json!(v.as_str() == Some("true")));
        note(
            notes,
            NoteKind::Changed,
            "metadata.annotations[autoscaling.keda.sh/paused]",
            "became spec.paused",
        );
    }
    if let Some(v) = ann.remove("autoscaling.keda.sh/paused-replicas") {
        let n: i64 =
            v.as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| ConvertError::Invalid {
                    source_object: label.to_string(),
                    field: "metadata.annotations[autoscaling.keda.sh/paused-replicas]".into(),
                    message: format!("{v} is not a whole number"),
                })?;
        out.insert("paused".into(), json!(true));
        out.insert("pausedReplicas".into(), json!(n));
        note(
            notes,
            NoteKind::Changed,
            "metadata.annotations[autoscaling.keda.sh/paused-replicas]",
            "became spec.paused and spec.pausedReplicas",
        );
    }
    for (key, direction) in [
        ("autoscaling.keda.sh/paused-scale-in", "scaleDown"),
        ("autoscaling.keda.sh/paused-scale-out", "scaleUp"),
    ] {
        if let Some(v) = ann.remove(key) {
            if v.as_str() == Some("true") {
                disable_direction(out, direction, label)?;
            }
            note(
                notes,
                NoteKind::Changed,
                format!("metadata.annotations[{key}]"),
                format!("became spec.behavior.{direction}.selectPolicy: Disabled"),
            );
        }
    }
    if ann.is_empty() {
        metadata.remove("annotations");
    }
    Ok(())
}

/// Sets `behavior.<direction>.selectPolicy: Disabled`, the behavior being the one carried from
/// `spec.advanced.horizontalPodAutoscalerConfig.behavior` if any.
fn disable_direction(
    out: &mut Map<String, Value>,
    direction: &str,
    label: &str,
) -> Result<(), ConvertError> {
    let not_an_object = |field: String| ConvertError::Invalid {
        source_object: label.to_string(),
        field,
        message: "is not an object".into(),
    };
    let behavior = out
        .entry("behavior")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| {
            not_an_object("spec.advanced.horizontalPodAutoscalerConfig.behavior".into())
        })?;
    let rules = behavior
        .entry(direction)
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| {
            not_an_object(format!(
                "spec.advanced.horizontalPodAutoscalerConfig.behavior.{direction}"
            ))
        })?;
    rules.insert("selectPolicy".into(), json!("Disabled"));
    Ok(())
}

/// One trigger of a ScaledObject and what converting it needs.
pub(super) struct Trigger<'a> {
    pub(super) value: &'a Value,
    /// `spec.triggers[i]`.
    pub(super) path: &'a str,
    pub(super) label: &'a str,
    /// The ScaledObject's namespace (TriggerAuthentications are looked up in it).
    pub(super) namespace: Option<&'a str>,
    pub(super) auths: &'a Authentications,
}

/// One KEDA trigger as one Ballast metric (None when the trigger type is not supported, with a
/// note saying so), its `authenticationRef` resolved to a `credentialsRef`.
pub(super) fn trigger_metric(
    t: &Trigger,
    notes: &mut Vec<Note>,
) -> Result<Option<Value>, ConvertError> {
    let kind = t
        .value
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Some(key) = t
        .value
        .get("metadata")
        .and_then(Value::as_object)
        .and_then(|m| m.keys().find(|k| k.ends_with("FromEnv")))
    {
        return Err(ConvertError::Invalid {
            source_object: t.label.to_string(),
            field: format!("{}.metadata.{key}", t.path),
            message: "Ballast does not read the target's container environment: write the value itself in the metadata, or a secret value in a Secret named by an authenticationRef".into(),
        });
    }
    let secret = secret_of(t.value, kind, t.namespace, t.path, t.label, t.auths)?;
    let Some(mut metric) = keda_triggers::source_metric(t.value, t.path, t.label, notes)? else {
        return Ok(None);
    };
    if let Some(name) = secret {
        let source = if kind == "prometheus" {
            "prometheus"
        } else {
            "event"
        };
        metric[source]["credentialsRef"] = json!({ "name": name });
        note(
            notes,
            NoteKind::Changed,
            format!("{}.authenticationRef", t.path),
            format!(
                "became {source}.credentialsRef {name:?} (the Secret its TriggerAuthentication names)"
            ),
        );
    }
    Ok(Some(metric))
}
