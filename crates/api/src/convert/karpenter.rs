//! Karpenter `karpenter.sh/v1` and `v1beta1` NodePool, and `karpenter.k8s.aws/v1`
//! EC2NodeClass → Ballast `NodePool` and `Ec2NodeClass`.
//!
//! Karpenter's spellings of label keys are renamed to Ballast's through the one alias table
//! (`ballast_scheduling::aliases`: `karpenter.sh/capacity-type` → `nodes.ballast.dev/capacity-type`,
//! `karpenter.k8s.aws/instance-*` → `nodes.ballast.dev/instance-*`), each rename noted; Ballast
//! reads both spellings, so the rename only shows the canonical one. v1beta1's moved fields are
//! moved.

use super::{
    ConvertError, Converted, Note, NoteKind, carry_metadata, dropped_fields, note, object, read_as,
    to_value,
};
use crate::nodes::{Ec2NodeClassSpec, NodePoolSpec, labels};
use ballast_scheduling::aliases::canonical_key;
use serde_json::{Map, Value, json};

const GROUP: &str = "nodes.ballast.dev";

/// Ballast's name for a Karpenter label key, if it differs.
fn rename_label(key: &str) -> Option<String> {
    let ours = canonical_key(key);
    (ours != key).then(|| ours.to_string())
}

/// Renames the keys of a requirement list in place and drops requirements on labels Ballast
/// sets itself.
fn carry_requirements(reqs: &mut Value, path: &str, notes: &mut Vec<Note>) {
    let Some(list) = reqs.as_array_mut() else {
        return;
    };
    let mut kept = Vec::with_capacity(list.len());
    for (i, req) in list.drain(..).enumerate() {
        let key = req
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if labels::RESTRICTED.contains(&canonical_key(&key)) {
            note(
                notes,
                NoteKind::Dropped,
                format!("{path}[{i}]"),
                format!("Ballast sets {key} itself"),
            );
            continue;
        }
        let mut req = req;
        if let Some(new) = rename_label(&key) {
            note(
                notes,
                NoteKind::Changed,
                format!("{path}[{i}].key"),
                format!("{key} → {new}"),
            );
            req["key"] = Value::String(new);
        }
        kept.push(req);
    }
    *list = kept;
}

fn carry_label_map(map: &mut Value, path: &str, notes: &mut Vec<Note>) {
    let Some(obj) = map.as_object_mut() else {
        return;
    };
    let renamed: Map<String, Value> = std::mem::take(obj)
        .into_iter()
        .map(|(k, v)| match rename_label(&k) {
            Some(new) => {
                note(
                    notes,
                    NoteKind::Changed,
                    format!("{path}.{k}"),
                    format!("key renamed to {new}"),
                );
                (new, v)
            }
            None => (k, v),
        })
        .collect();
    *obj = renamed;
}

/// Maps a Karpenter node class reference (v1 `group` or v1beta1 `apiVersion`) to Ballast's.
fn carry_node_class_ref(spec: &mut Map<String, Value>, path: &str, notes: &mut Vec<Note>) {
    let Some(reference) = spec.get("nodeClassRef").cloned() else {
        spec.insert(
            "nodeClassRef".into(),
            json!({ "group": GROUP, "kind": "Ec2NodeClass", "name": "default" }),
        );
        note(
            notes,
            NoteKind::Changed,
            format!("{path}.nodeClassRef"),
            "missing in the source: set to Ec2NodeClass \"default\"; create that class or point the pool at yours",
        );
        return;
    };
    let kind = reference
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("EC2NodeClass");
    let name = reference
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let new_kind = match kind {
        "EC2NodeClass" => "Ec2NodeClass",
        "KWOKNodeClass" | "KwokNodeClass" => "KwokNodeClass",
        other => {
            note(
                notes,
                NoteKind::Changed,
                format!("{path}.nodeClassRef.kind"),
                format!("{other} has no Ballast provider; kept as is"),
            );
            other
        }
    };
    if reference.get("apiVersion").is_some() {
        note(
            notes,
            NoteKind::Changed,
            format!("{path}.nodeClassRef.apiVersion"),
            format!("became group {GROUP}"),
        );
    }
    spec.insert(
        "nodeClassRef".into(),
        json!({ "group": GROUP, "kind": new_kind, "name": name }),
    );
}

pub(super) fn convert_nodepool(source: &Value, label: &str) -> Result<Converted, ConvertError> {
    let mut notes = Vec::new();
    let metadata = carry_metadata(source, false, &mut notes);
    let beta = source.get("apiVersion").and_then(Value::as_str) == Some("karpenter.sh/v1beta1");
    let mut spec = source.get("spec").cloned().unwrap_or_else(|| json!({}));

    // v1beta1 → v1 shape.
    if beta {
        if let Some(disruption) = spec.get_mut("disruption").and_then(Value::as_object_mut) {
            if disruption
                .get("consolidationPolicy")
                .and_then(Value::as_str)
                == Some("WhenUnderutilized")
            {
                disruption.insert(
                    "consolidationPolicy".into(),
                    json!("WhenEmptyOrUnderutilized"),
                );
                note(
                    &mut notes,
                    NoteKind::Changed,
                    "spec.disruption.consolidationPolicy",
                    "WhenUnderutilized → WhenEmptyOrUnderutilized",
                );
            }
            if let Some(expire) = disruption.remove("expireAfter") {
                if let Some(tspec) = spec
                    .pointer_mut("/template/spec")
                    .and_then(Value::as_object_mut)
                {
                    tspec.insert("expireAfter".into(), expire);
                }
                note(
                    &mut notes,
                    NoteKind::Changed,
                    "spec.disruption.expireAfter",
                    "moved to spec.template.spec.expireAfter",
                );
            }
        }
        if let Some(tspec) = spec
            .pointer_mut("/template/spec")
            .and_then(Value::as_object_mut)
            && tspec.remove("kubelet").is_some()
        {
            note(
                &mut notes,
                NoteKind::Dropped,
                "spec.template.spec.kubelet",
                "kubelet settings belong to the node class: set them in Ec2NodeClass.spec.kubelet",
            );
        }
    }

    if spec.pointer("/template/spec").is_none() {
        spec["template"]["spec"] = json!({});
    }
    if let Some(tspec) = spec
        .pointer_mut("/template/spec")
        .and_then(Value::as_object_mut)
    {
        carry_node_class_ref(tspec, "spec.template.spec", &mut notes);
        if let Some(reqs) = tspec.get_mut("requirements") {
            carry_requirements(reqs, "spec.template.spec.requirements", &mut notes);
        }
    }
    if let Some(labels) = spec.pointer_mut("/template/metadata/labels") {
        carry_label_map(labels, "spec.template.metadata.labels", &mut notes);
    }

    let typed: NodePoolSpec = read_as(&spec, "spec", label)?;
    let carried = to_value(&typed);
    // Compared with the reshaped spec, so moves are not reported twice.
    dropped_fields(&spec, &carried, "spec", &mut notes);
    Ok(Converted {
        source: label.to_string(),
        object: object(&format!("{GROUP}/v1"), "NodePool", metadata, carried),
        notes,
    })
}

pub(super) fn convert_ec2nodeclass(source: &Value, label: &str) -> Result<Converted, ConvertError> {
    let mut notes = Vec::new();
    let metadata = carry_metadata(source, false, &mut notes);
    let spec = source.get("spec").cloned().unwrap_or_else(|| json!({}));
    let typed: Ec2NodeClassSpec = read_as(&spec, "spec", label)?;
    let carried = to_value(&typed);
    dropped_fields(&spec, &carried, "spec", &mut notes);
    Ok(Converted {
        source: label.to_string(),
        object: object(&format!("{GROUP}/v1"), "Ec2NodeClass", metadata, carried),
        notes,
    })
}
