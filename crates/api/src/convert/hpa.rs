//! `autoscaling/v2` (and v2beta2, v1) HorizontalPodAutoscaler → `HorizontalAutoscaler`.
//!
//! v2 and v2beta2 share our field names, so the spec is read as is. v1's
//! `targetCPUUtilizationPercentage` becomes one CPU Utilization metric. A field our spec does
//! not have is not an HPA field: an error, as the API server would give.

use super::{
    ConvertError, Converted, Note, NoteKind, carry_metadata, dropped_fields, object, read_as,
    to_value,
};
use crate::horizontal::HorizontalAutoscalerSpec;
use serde_json::{Value, json};

pub(super) fn convert(source: &Value, label: &str) -> Result<Converted, ConvertError> {
    let mut notes = Vec::new();
    let metadata = carry_metadata(source, true, &mut notes);
    let spec = source.get("spec").cloned().unwrap_or_else(|| json!({}));
    let api_version = source
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let typed = hpa_spec(&spec, api_version, label, &mut notes)?;
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

/// The `HorizontalAutoscaler` spec of a HorizontalPodAutoscaler's `spec` (given as JSON) of
/// `api_version` (`autoscaling/v2`, `v2beta2` or `v1`), the one mapping `convert` and the native
/// HPA reconciler share. `label` names the object in errors (`HorizontalPodAutoscaler ns/name`);
/// `notes` gets what was changed on the way. A field our spec does not hold is an error naming it.
pub fn hpa_spec(
    spec: &Value,
    api_version: &str,
    label: &str,
    notes: &mut Vec<Note>,
) -> Result<HorizontalAutoscalerSpec, ConvertError> {
    let mut spec = spec.clone();
    if api_version == "autoscaling/v1"
        && let Some(map) = spec.as_object_mut()
        && let Some(pct) = map.remove("targetCPUUtilizationPercentage")
    {
        map.insert(
                    "metrics".into(),
                    json!([{ "type": "Resource", "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": pct } } }]),
                );
        notes.push(Note {
            kind: NoteKind::Changed,
            field: "spec.targetCPUUtilizationPercentage".into(),
            message: "became a Resource cpu Utilization metric".into(),
        });
    }

    let typed: HorizontalAutoscalerSpec = read_as(&spec, "spec", label)?;
    let carried = to_value(&typed);
    // Our spec holds every HorizontalPodAutoscaler field: one it drops is not an HPA field at
    // all (a typo the API server would refuse too), not a loss.
    let mut unknown = Vec::new();
    dropped_fields(&spec, &carried, "spec", &mut unknown);
    if let Some(first) = unknown.first() {
        return Err(ConvertError::Invalid {
            source_object: label.to_string(),
            field: first.field.clone(),
            message: format!("unknown field: not part of {api_version} HorizontalPodAutoscaler"),
        });
    }
    Ok(typed)
}
