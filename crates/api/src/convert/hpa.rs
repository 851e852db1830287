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
    let mut spec = source.get("spec").cloned().unwrap_or_else(|| json!({}));
    let api_version = source
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();

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
    Ok(Converted {
        source: label.to_string(),
        object: object(
            "autoscaling.ballast.dev/v1",
            "HorizontalAutoscaler",
            metadata,
            carried,
        ),
        notes,
    })
}
