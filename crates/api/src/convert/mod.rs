//! Conversions from upstream objects (HPA, KEDA ScaledObject and ScaledJob, VPA, Karpenter NodePool and
//! EC2NodeClass) to Ballast objects.
//!
//! Each conversion returns the new object and a list of notes: every field that could not be
//! carried over, and every value that was changed on the way (renamed labels, defaults filled
//! in). Nothing is dropped silently.

mod hpa;
pub use hpa::hpa_spec;
mod karpenter;
mod keda;
mod keda_auth;
mod keda_job;
mod keda_triggers;
mod vpa;

pub use keda_auth::Authentications;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// What happened to one field during a conversion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum NoteKind {
    /// The field has no equivalent and was left out.
    Dropped,
    /// The field was carried over with a different name or value.
    Changed,
    /// The object is not an upstream autoscaler and was kept as it is (a Secret, a Deployment,
    /// a Ballast object), or was used by another conversion and is not emitted.
    Kept,
}

/// A remark about one field of the source object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    pub kind: NoteKind,
    /// Path of the field in the source object, e.g. `spec.triggers[2]`.
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let word = match self.kind {
            NoteKind::Dropped => "dropped",
            NoteKind::Changed => "changed",
            NoteKind::Kept => "kept",
        };
        write!(f, "{word} {}: {}", self.field, self.message)
    }
}

/// A converted object with its notes.
#[derive(Debug, Clone, Serialize)]
pub struct Converted {
    /// `Kind namespace/name` of the source object.
    pub source: String,
    /// The Ballast object, ready to serialize as YAML; `Null` when nothing is emitted (a KEDA
    /// TriggerAuthentication, whose Secret the converted metrics name directly).
    pub object: Value,
    pub notes: Vec<Note>,
}

/// Why an object could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("{source_object}: {field}: {message}")]
    Invalid {
        source_object: String,
        field: String,
        message: String,
    },
    #[error(
        "{source_object}: apiVersion {api_version:?} kind {kind:?} is not something Ballast converts (it converts HorizontalPodAutoscaler, ScaledObject, ScaledJob, VerticalPodAutoscaler, Karpenter NodePool and EC2NodeClass)"
    )]
    Unsupported {
        source_object: String,
        api_version: String,
        kind: String,
    },
}

/// Converts one upstream object, given as JSON, alone (a KEDA `authenticationRef` cannot be
/// resolved: see [`convert_in`]).
pub fn convert(source: &Value) -> Result<Converted, ConvertError> {
    convert_in(source, &Authentications::default())
}

/// Converts one upstream object among the TriggerAuthentications of its input.
pub fn convert_in(source: &Value, auths: &Authentications) -> Result<Converted, ConvertError> {
    let api_version = str_at(source, "apiVersion");
    let kind = str_at(source, "kind");
    let label = describe(source);
    let group = api_version.split('/').next().unwrap_or_default();
    match (group, kind.as_str()) {
        ("autoscaling", "HorizontalPodAutoscaler") => hpa::convert(source, &label),
        ("keda.sh", "ScaledObject") => keda::convert(source, &label, auths),
        ("keda.sh", "ScaledJob") => keda_job::convert(source, &label, auths),
        ("keda.sh", "TriggerAuthentication" | "ClusterTriggerAuthentication") => Ok(Converted {
            source: label,
            object: Value::Null,
            notes: vec![Note {
                kind: NoteKind::Kept,
                field: "(object)".into(),
                message: "not emitted: Ballast has no TriggerAuthentication; the converted metrics name its Secret in credentialsRef".into(),
            }],
        }),
        (g, _) if !UPSTREAM_GROUPS.contains(&g) => Ok(Converted {
            source: label,
            object: source.clone(),
            notes: vec![Note {
                kind: NoteKind::Kept,
                field: "(object)".into(),
                message: "not an upstream autoscaling object: kept unchanged".into(),
            }],
        }),
        ("autoscaling.k8s.io", "VerticalPodAutoscaler") => vpa::convert(source, &label),
        ("autoscaling.k8s.io", "VerticalPodAutoscalerCheckpoint") => {
            vpa::convert_checkpoint(source, &label)
        }
        ("karpenter.sh", "NodePool") => karpenter::convert_nodepool(source, &label),
        ("karpenter.k8s.aws", "EC2NodeClass") => karpenter::convert_ec2nodeclass(source, &label),
        _ => Err(ConvertError::Unsupported {
            source_object: label,
            api_version,
            kind,
        }),
    }
}

/// API groups whose objects are converted (or refused); objects of other groups are kept as they
/// are, so a whole manifest (Deployments, Secrets...) can go through `convert`.
const UPSTREAM_GROUPS: [&str; 5] = [
    "autoscaling",
    "keda.sh",
    "autoscaling.k8s.io",
    "karpenter.sh",
    "karpenter.k8s.aws",
];

/// Converts every document of a YAML stream; a `kind: List` (what `kubectl get -o yaml`
/// prints) counts as its items. Empty documents are skipped; each other object yields its own
/// result, so one bad object never hides the others. TriggerAuthentications anywhere in the
/// stream resolve the `authenticationRef`s of its ScaledObjects.
pub fn convert_yaml_stream(text: &str) -> Vec<Result<Converted, ConvertError>> {
    let mut objects = Vec::new();
    let mut results = Vec::new();
    for doc in crate::validate::yaml_documents(text) {
        match doc {
            Ok(value) => objects.extend(list_items(value)),
            Err(e) => results.push(Err(ConvertError::Invalid {
                source_object: format!("document {}", e.index + 1),
                field: "(yaml)".into(),
                message: e.message,
            })),
        }
    }
    let mut auths = Authentications::default();
    for object in &objects {
        auths.offer(object);
    }
    let mut converted: Vec<_> = objects.iter().map(|o| convert_in(o, &auths)).collect();
    converted.append(&mut results);
    converted
}

/// The items of a `v1 List`, or the object itself.
fn list_items(value: Value) -> Vec<Value> {
    let is_list = str_at(&value, "kind") == "List" && str_at(&value, "apiVersion") == "v1";
    match value.get("items").and_then(Value::as_array) {
        Some(items) if is_list => items.clone(),
        _ => vec![value],
    }
}

/// Adds one note about `field` of the source object to a conversion's notes.
pub(crate) fn note(
    notes: &mut Vec<Note>,
    kind: NoteKind,
    field: impl Into<String>,
    message: impl Into<String>,
) {
    notes.push(Note {
        kind,
        field: field.into(),
        message: message.into(),
    });
}

pub(crate) fn str_at(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// `Kind namespace/name` of an object.
pub(crate) fn describe(v: &Value) -> String {
    let kind = str_at(v, "kind");
    let meta = v.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>");
    match meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
    {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// The metadata a converted object keeps: name, namespace, labels, annotations (less the
/// ones `kubectl apply` and controllers write). Server-set fields are not user intent and are
/// left out without a note.
pub(crate) fn carry_metadata(source: &Value, namespaced: bool, notes: &mut Vec<Note>) -> Value {
    let mut out = Map::new();
    let meta = source
        .get("metadata")
        .cloned()
        .unwrap_or(Value::Object(Map::new()));
    for key in ["name", "labels"] {
        if let Some(v) = meta.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    if namespaced {
        if let Some(v) = meta.get("namespace") {
            out.insert("namespace".into(), v.clone());
        }
    } else if meta.get("namespace").is_some() {
        notes.push(Note {
            kind: NoteKind::Dropped,
            field: "metadata.namespace".into(),
            message: "the Ballast object is cluster-scoped".into(),
        });
    }
    if let Some(Value::Object(ann)) = meta.get("annotations") {
        let kept: Map<String, Value> = ann
            .iter()
            .filter(|(k, _)| k.as_str() != "kubectl.kubernetes.io/last-applied-configuration")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !kept.is_empty() {
            out.insert("annotations".into(), Value::Object(kept));
        }
    }
    Value::Object(out)
}

/// Reads `value` (found at `path` in the source) into a Ballast type, with an error that names
/// the offending field.
pub(crate) fn read_as<T: DeserializeOwned>(
    value: &Value,
    path: &str,
    label: &str,
) -> Result<T, ConvertError> {
    serde_path_to_error::deserialize(value.clone()).map_err(|e| {
        let inner = e.path().to_string();
        let field = if inner == "." || inner.is_empty() {
            path.to_string()
        } else {
            format!("{path}.{inner}")
        };
        ConvertError::Invalid {
            source_object: label.to_string(),
            field,
            message: e.inner().to_string(),
        }
    })
}

/// Serializes a Ballast type back to JSON.
pub(crate) fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("API types always serialize")
}

/// Lists the leaf fields of `source` that have no counterpart in `carried`, as `Dropped`
/// notes under `prefix`. Used after a same-shape conversion to find what the target type
/// could not hold.
pub(crate) fn dropped_fields(source: &Value, carried: &Value, prefix: &str, notes: &mut Vec<Note>) {
    match (source, carried) {
        (Value::Object(s), Value::Object(c)) => {
            for (k, sv) in s {
                let path = format!("{prefix}.{k}");
                match c.get(k) {
                    Some(cv) => dropped_fields(sv, cv, &path, notes),
                    None if sv.is_null() => {}
                    None => notes.push(Note {
                        kind: NoteKind::Dropped,
                        field: path,
                        message: "no Ballast equivalent".into(),
                    }),
                }
            }
        }
        (Value::Array(s), Value::Array(c)) => {
            for (i, sv) in s.iter().enumerate() {
                match c.get(i) {
                    Some(cv) => dropped_fields(sv, cv, &format!("{prefix}[{i}]"), notes),
                    None => notes.push(Note {
                        kind: NoteKind::Dropped,
                        field: format!("{prefix}[{i}]"),
                        message: "no Ballast equivalent".into(),
                    }),
                }
            }
        }
        _ => {}
    }
}

/// Builds a full object from its parts.
pub(crate) fn object(api_version: &str, kind: &str, metadata: Value, spec: Value) -> Value {
    let mut m = Map::new();
    m.insert("apiVersion".into(), Value::String(api_version.into()));
    m.insert("kind".into(), Value::String(kind.into()));
    m.insert("metadata".into(), metadata);
    m.insert("spec".into(), spec);
    Value::Object(m)
}

#[cfg(test)]
mod tests;
