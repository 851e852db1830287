//! Input errors. Bad input never panics: it comes back as an [`Error`] naming the object and field.

use std::fmt;

/// Which kind of object an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ObjectKind {
    NodePool,
    NodeClaim,
    Node,
    Pod,
    PodDisruptionBudget,
    DaemonSet,
    InstanceType,
    Snapshot,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::NodePool => "NodePool",
            ObjectKind::NodeClaim => "NodeClaim",
            ObjectKind::Node => "node",
            ObjectKind::Pod => "pod",
            ObjectKind::PodDisruptionBudget => "PodDisruptionBudget",
            ObjectKind::DaemonSet => "DaemonSet",
            ObjectKind::InstanceType => "instance type",
            ObjectKind::Snapshot => "snapshot",
        })
    }
}

/// A bad input: which object, which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{kind} {name:?}: {field}: {why}")]
pub struct Error {
    pub kind: ObjectKind,
    pub name: String,
    pub field: String,
    pub why: String,
}

impl Error {
    pub fn new(
        kind: ObjectKind,
        name: impl Into<String>,
        field: impl Into<String>,
        why: impl Into<String>,
    ) -> Self {
        Error {
            kind,
            name: name.into(),
            field: field.into(),
            why: why.into(),
        }
    }
}

impl From<ballast_scheduling::ModelError> for Error {
    fn from(e: ballast_scheduling::ModelError) -> Self {
        use ballast_scheduling::Kind;
        let kind = match e.kind {
            Kind::Pod => ObjectKind::Pod,
            Kind::Node => ObjectKind::Node,
            Kind::InFlightClaim => ObjectKind::NodeClaim,
            Kind::NodePool => ObjectKind::NodePool,
            Kind::InstanceType => ObjectKind::InstanceType,
            Kind::Snapshot => ObjectKind::Snapshot,
        };
        Error {
            kind,
            name: e.name,
            field: e.field,
            why: e.why,
        }
    }
}
