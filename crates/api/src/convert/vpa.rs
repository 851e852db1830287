//! `autoscaling.k8s.io/v1` VerticalPodAutoscaler (and its checkpoints) → Ballast's vertical
//! objects. The field names are the same; the checkpoint's `vpaObjectName` is renamed.

use super::{
    ConvertError, Converted, Note, NoteKind, carry_metadata, dropped_fields, object, read_as,
    to_value,
};
use crate::vertical::{VerticalAutoscalerCheckpointSpec, VerticalAutoscalerSpec};
use serde_json::{Value, json};

pub(super) fn convert(source: &Value, label: &str) -> Result<Converted, ConvertError> {
    let mut notes = Vec::new();
    let metadata = carry_metadata(source, true, &mut notes);
    let spec = source.get("spec").cloned().unwrap_or_else(|| json!({}));
    let typed: VerticalAutoscalerSpec = read_as(&spec, "spec", label)?;
    let carried = to_value(&typed);
    dropped_fields(&spec, &carried, "spec", &mut notes);
    Ok(Converted {
        source: label.to_string(),
        object: object(
            "autoscaling.ballast.dev/v1",
            "VerticalAutoscaler",
            metadata,
            carried,
        ),
        notes,
    })
}

pub(super) fn convert_checkpoint(source: &Value, label: &str) -> Result<Converted, ConvertError> {
    let mut notes = Vec::new();
    let metadata = carry_metadata(source, true, &mut notes);
    let mut spec = source.get("spec").cloned().unwrap_or_else(|| json!({}));
    if let Some(map) = spec.as_object_mut()
        && let Some(name) = map.remove("vpaObjectName")
    {
        map.insert("verticalAutoscalerName".into(), name);
        notes.push(Note {
            kind: NoteKind::Changed,
            field: "spec.vpaObjectName".into(),
            message: "renamed to spec.verticalAutoscalerName".into(),
        });
    }
    let typed: VerticalAutoscalerCheckpointSpec = read_as(&spec, "spec", label)?;
    let carried = to_value(&typed);
    dropped_fields(&spec, &carried, "spec", &mut notes);
    let mut obj = object(
        "autoscaling.ballast.dev/v1",
        "VerticalAutoscalerCheckpoint",
        metadata,
        carried,
    );
    if let Some(status) = source.get("status") {
        obj["status"] = status.clone();
    }
    Ok(Converted {
        source: label.to_string(),
        object: obj,
        notes,
    })
}
