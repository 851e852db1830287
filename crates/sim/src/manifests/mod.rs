//! A cluster's own objects as the starting point of a simulation: a folder of manifests
//! (`ballast simulate --objects DIR`) or a read-only capture of a running cluster
//! (`--from-cluster`, whose I/O lives in the `ballast` binary and hands its objects here).
//!
//! `take` sorts documents into what the simulator models: autoscalers, vertical autoscalers,
//! NodePools and node classes (upstream kinds converted by `ballast_api::convert`, every one
//! checked against its CRD), workloads from Deployments and StatefulSets, PodDisruptionBudgets
//! and Nodes. Everything else is listed as not simulated, never dropped without a word.
//! `merge` puts them into a scenario (`docs/simulator.md`, "Your own objects").

mod merge;
mod node;
mod workload;

#[cfg(test)]
mod tests;

pub use merge::{Merged, merge};
pub use node::TakenNode;
pub use workload::{TakenBudget, TakenWorkload};

use ballast_api::convert::Authentications;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Where one object came from: a file and its document (1-based), or a live object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// A file's path, or `cluster`.
    pub origin: String,
    /// The document within the file (1-based), with the item of a `List` document.
    pub document: Option<(usize, Option<usize>)>,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.document {
            None => write!(f, "{}", self.origin),
            Some((d, None)) => write!(f, "{}: document {d}", self.origin),
            Some((d, Some(i))) => write!(f, "{}: document {d}: items[{i}]", self.origin),
        }
    }
}

/// Why a folder of manifests or a captured object cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A folder or file that cannot be read (the error is held, not chained: the message says it).
    #[error("{path}: cannot read it: {error}")]
    Read { path: String, error: std::io::Error },
    /// No manifest file in the folder: nothing to simulate.
    #[error(
        "{dir}: no *.yaml, *.yml or *.json file in this folder (subfolders are not read): give the folder that holds the manifests"
    )]
    Empty { dir: String },
    /// A document that does not parse or an object whose field is wrong.
    #[error("{at}: {object}{field}: {message}")]
    Invalid {
        at: Source,
        /// `Kind namespace/name: ` when known.
        object: String,
        field: String,
        message: String,
    },
}

impl ManifestError {
    fn invalid(
        at: &Source,
        object: &str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ManifestError::Invalid {
            at: at.clone(),
            object: if object.is_empty() {
                String::new()
            } else {
                format!("{object}: ")
            },
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A Ballast object the simulator reads (HorizontalAutoscaler, VerticalAutoscaler, NodePool or a
/// node class), in its Ballast form.
#[derive(Debug, Clone)]
pub struct TakenObject {
    pub at: Source,
    pub object: Value,
}

impl TakenObject {
    /// `(kind, namespace, name)` of the Ballast form: the key a scenario's object is replaced by.
    pub fn key(&self) -> (String, String, String) {
        key_of(&self.object)
    }
}

/// `(kind, namespace, name)` of an object.
pub fn key_of(object: &Value) -> (String, String, String) {
    let text = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (
        text("/kind"),
        text("/metadata/namespace"),
        text("/metadata/name"),
    )
}

/// Everything taken from a folder or a cluster, sorted by what the simulator does with it.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    pub objects: Vec<TakenObject>,
    pub workloads: Vec<TakenWorkload>,
    pub budgets: Vec<TakenBudget>,
    pub nodes: Vec<TakenNode>,
    /// Objects the simulator does not model: `source: apiVersion Kind namespace/name (why)`.
    pub not_simulated: Vec<String>,
    /// Objects taken, by the kind as written (`HorizontalPodAutoscaler`, `Deployment`...).
    pub counts: BTreeMap<String, usize>,
    /// Captured objects that could not be taken (a conversion or a field refused), each with its
    /// error: a cluster's objects are the API server's to judge, so one that does not map is left
    /// out rather than stopping the capture (`take_captured`).
    pub left_out: Vec<String>,
    /// The fields a conversion dropped, object by object (not errors).
    pub notes: Vec<String>,
}

impl Manifests {
    /// `2 Deployment, 1 HorizontalPodAutoscaler, 1 NodePool`: what was taken, by kind.
    pub fn counts_line(&self) -> String {
        if self.counts.is_empty() {
            return "nothing".into();
        }
        self.counts
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Reads every `*.yaml`, `*.yml` and `*.json` file of `dir` (not its subfolders), in name order,
/// and takes their documents; `dir` may also be one file.
pub fn read_dir(dir: &Path) -> Result<Manifests, ManifestError> {
    let read_err = |error| ManifestError::Read {
        path: dir.display().to_string(),
        error,
    };
    let files = if dir.is_file() {
        vec![dir.to_path_buf()]
    } else {
        manifest_files(dir).map_err(read_err)?
    };
    if files.is_empty() {
        return Err(ManifestError::Empty {
            dir: dir.display().to_string(),
        });
    }
    let mut documents = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|error| ManifestError::Read {
            path: file.display().to_string(),
            error,
        })?;
        documents.extend(documents_of(&text, &file.display().to_string())?);
    }
    take(documents)
}

/// The manifest files of `dir`, in name order.
fn manifest_files(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(|e| e.path())
        .filter(|p| p.is_file() && is_manifest(p))
        .collect();
    files.sort();
    Ok(files)
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// The documents of one file (YAML, several documents allowed; JSON is YAML too), each with its
/// place; the items of a `List` (`kubectl get -o yaml`) are documents of their own.
pub fn documents_of(text: &str, origin: &str) -> Result<Vec<(Source, Value)>, ManifestError> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let at = Source {
            origin: origin.to_string(),
            document: Some((index + 1, None)),
        };
        let value = Value::deserialize(doc)
            .map_err(|e| ManifestError::invalid(&at, "", "(yaml)", e.to_string()))?;
        match value {
            Value::Null => {}
            Value::Object(_) => out.extend(list_items(value, &at)?),
            _ => {
                return Err(ManifestError::invalid(
                    &at,
                    "",
                    "(document)",
                    "not an object: a manifest is a map with apiVersion, kind and metadata",
                ));
            }
        }
    }
    Ok(out)
}

/// A `List` document's items, each a document of its own; any other document as it is.
fn list_items(value: Value, at: &Source) -> Result<Vec<(Source, Value)>, ManifestError> {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !kind.ends_with("List") {
        return Ok(vec![(at.clone(), value)]);
    }
    let Some(items) = value.get("items").and_then(Value::as_array) else {
        return Err(ManifestError::invalid(
            at,
            kind,
            "items",
            "a List without a list of items",
        ));
    };
    let document = at.document.map(|(d, _)| d).unwrap_or(1);
    Ok(items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let place = Source {
                origin: at.origin.clone(),
                document: Some((document, Some(i))),
            };
            (place, item.clone())
        })
        .collect())
}

/// What the simulator does with one kind of object.
enum Role {
    /// A Ballast kind the simulator reads.
    Ours,
    /// An upstream kind converted to one the simulator reads.
    Upstream,
    Workload,
    Budget,
    Node,
    /// A KEDA TriggerAuthentication: read only to convert the ScaledObjects naming it.
    Authentication,
    /// Not modelled, with why.
    NotSimulated(&'static str),
}

fn role_of(api_version: &str, kind: &str) -> Role {
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    if ballast_api::validate::is_ballast_kind(api_version, kind) {
        return match kind {
            "HorizontalAutoscaler"
            | "VerticalAutoscaler"
            | "NodePool"
            | "Ec2NodeClass"
            | "KwokNodeClass" => Role::Ours,
            _ => Role::NotSimulated("the simulator does not model this Ballast kind"),
        };
    }
    match (group, kind) {
        ("autoscaling", "HorizontalPodAutoscaler")
        | ("keda.sh", "ScaledObject")
        | ("autoscaling.k8s.io", "VerticalPodAutoscaler")
        | ("karpenter.sh", "NodePool")
        | ("karpenter.k8s.aws", "EC2NodeClass") => Role::Upstream,
        ("keda.sh", "TriggerAuthentication" | "ClusterTriggerAuthentication") => {
            Role::Authentication
        }
        ("keda.sh", "ScaledJob") => Role::NotSimulated("Jobs from a queue are not simulated"),
        ("apps", "Deployment" | "StatefulSet") => Role::Workload,
        ("policy", "PodDisruptionBudget") => Role::Budget,
        ("", "Node") if api_version == "v1" => Role::Node,
        _ => Role::NotSimulated("not a kind the simulator models"),
    }
}

/// `Kind namespace/name` (or `Kind name`) of an object, for messages.
pub fn describe(object: &Value) -> String {
    let (kind, namespace, name) = key_of(object);
    let kind = if kind.is_empty() {
        "(no kind)".to_string()
    } else {
        kind
    };
    match (namespace.is_empty(), name.is_empty()) {
        (_, true) => kind,
        (true, false) => format!("{kind} {name}"),
        (false, false) => format!("{kind} {namespace}/{name}"),
    }
}

/// Sorts documents into what the simulator models, converting upstream kinds and checking every
/// Ballast object against its CRD; the first bad one is an error naming its place and field.
pub fn take(documents: Vec<(Source, Value)>) -> Result<Manifests, ManifestError> {
    let mut auths = Authentications::default();
    for (_, doc) in &documents {
        auths.offer(doc);
    }
    let mut out = Manifests::default();
    for (at, doc) in documents {
        take_one(&at, doc, &auths, &mut out)?;
    }
    Ok(out)
}

/// Same as [`take`] for objects a cluster serves: an object that cannot be taken is listed in
/// `left_out` with its error, and the others are taken.
pub fn take_captured(documents: Vec<(Source, Value)>) -> Manifests {
    let mut auths = Authentications::default();
    for (_, doc) in &documents {
        auths.offer(doc);
    }
    let mut out = Manifests::default();
    for (at, doc) in documents {
        if let Err(e) = take_one(&at, doc, &auths, &mut out) {
            out.left_out.push(e.to_string());
        }
    }
    out
}

fn take_one(
    at: &Source,
    doc: Value,
    auths: &Authentications,
    out: &mut Manifests,
) -> Result<(), ManifestError> {
    let text = |k: &str| {
        doc.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    let label = describe(&doc);
    if api_version.is_empty() || kind.is_empty() {
        let field = if api_version.is_empty() {
            "apiVersion"
        } else {
            "kind"
        };
        return Err(ManifestError::invalid(
            at,
            &label,
            field,
            "missing: every manifest names its apiVersion and kind",
        ));
    }
    let counted = match role_of(&api_version, &kind) {
        Role::Ours => {
            out.objects.push(checked(at, &label, doc)?);
            true
        }
        Role::Upstream => {
            let converted = ballast_api::convert::convert_in(&doc, auths)
                .map_err(|e| ManifestError::invalid(at, "", "(conversion)", e.to_string()))?;
            // Renamed keys and filled defaults change nothing the run shows; a dropped field may.
            let dropped = converted
                .notes
                .iter()
                .filter(|n| n.kind == ballast_api::convert::NoteKind::Dropped);
            for n in dropped {
                out.notes.push(format!("{at}: {label}: {n}"));
            }
            out.objects.push(checked(at, &label, converted.object)?);
            true
        }
        Role::Workload => {
            out.workloads.push(workload::take_workload(at, &doc)?);
            true
        }
        Role::Budget => {
            out.budgets.push(workload::take_budget(at, &doc)?);
            true
        }
        Role::Node => {
            out.nodes.push(node::take_node(at, &doc)?);
            true
        }
        Role::Authentication => false,
        Role::NotSimulated(why) => {
            out.not_simulated
                .push(format!("{at}: {api_version} {label} ({why})"));
            false
        }
    };
    if counted {
        *out.counts.entry(kind).or_default() += 1;
    }
    Ok(())
}

/// A Ballast object checked against its CRD's schema and rules, and read as its type.
fn checked(at: &Source, label: &str, object: Value) -> Result<TakenObject, ManifestError> {
    let report = ballast_api::validate::validate_object(&object);
    if let Some(first) = report.errors.first() {
        let more = report.errors.len() - 1;
        let message = if more == 0 {
            first.message.clone()
        } else {
            format!("{} (and {more} more problem(s))", first.message)
        };
        return Err(ManifestError::invalid(
            at,
            label,
            first.field.clone(),
            message,
        ));
    }
    let typed = match object.get("kind").and_then(Value::as_str) {
        Some("HorizontalAutoscaler") => typed::<ballast_api::HorizontalAutoscaler>(&object),
        Some("VerticalAutoscaler") => typed::<ballast_api::vertical::VerticalAutoscaler>(&object),
        Some("NodePool") => typed::<ballast_api::NodePool>(&object),
        _ => Ok(()),
    };
    typed.map_err(|(field, message)| ManifestError::invalid(at, label, field, message))?;
    Ok(TakenObject {
        at: at.clone(),
        object,
    })
}

fn typed<T: serde::de::DeserializeOwned>(object: &Value) -> Result<(), (String, String)> {
    serde_path_to_error::deserialize::<_, T>(object.clone())
        .map(|_| ())
        .map_err(|e| (e.path().to_string(), e.inner().to_string()))
}
