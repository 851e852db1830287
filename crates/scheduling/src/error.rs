//! Input errors. Bad input never panics: it comes back as one of these, naming the object and field.

/// Which kind of object an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pod,
    Node,
    InFlightClaim,
    NodePool,
    InstanceType,
    Snapshot,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Pod => "pod",
            Kind::Node => "node",
            Kind::InFlightClaim => "in-flight NodeClaim",
            Kind::NodePool => "NodePool",
            Kind::InstanceType => "instance type",
            Kind::Snapshot => "snapshot",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {name:?}: {field}: {why}")]
pub struct ModelError {
    pub kind: Kind,
    pub name: String,
    pub field: String,
    pub why: String,
}

impl ModelError {
    pub fn new(
        kind: Kind,
        name: impl Into<String>,
        field: impl Into<String>,
        why: impl Into<String>,
    ) -> Self {
        ModelError {
            kind,
            name: name.into(),
            field: field.into(),
            why: why.into(),
        }
    }
}
