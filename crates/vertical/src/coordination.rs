//! Horizontal and vertical autoscaling on one target: when they fight, and what vertical holds.
//!
//! A `HorizontalAutoscaler` scaling on the `Utilization` of a resource divides usage by the pods'
//! requests; a `VerticalAutoscaler` that changes those requests moves that ratio under it (a lower
//! request reads as a higher utilization: more replicas, less usage each, a lower request again).
//! [`clashes`] finds, for one pair of objects, every metric where that happens:
//!
//! - same namespace, and the same target (`kind` and `name` equal; the API group of `apiVersion`
//!   equal when both give one);
//! - the vertical object applies requests (`updateMode` other than `Off`);
//! - a `Resource` metric of resource R with a `Utilization` target, and some container of the
//!   target whose R request the vertical object controls (container policy not `Off`, R in
//!   `controlledResources`); or a `ContainerResource` metric of R on container C with a
//!   `Utilization` target, and C's R request controlled. `AverageValue` and `Value` targets do not
//!   depend on requests and never clash.
//!
//! Which containers exist is known from the recommendation (`status.recommendation` names every
//! container the object sizes); before the first recommendation, any container policy (or the
//! default one, when no `"*"` policy exists) controlling R counts.
//!
//! With `spec.horizontalCoordination: Coordinated` (the default) the clashing requests are
//! [`Held`]: [`crate::apply::pod::plan_held`] never lowers them and raises them only to the
//! recommendation's lower bound. With `Ignore` they are applied as recommended. Both objects get a
//! condition ([`VERTICAL_CONDITION`], [`HORIZONTAL_CONDITION`]) and a warning event when it changes.

use ballast_api::common::{Condition, CrossVersionObjectReference};
use ballast_api::horizontal::{HorizontalAutoscaler, MetricSourceType, MetricTargetType};
use ballast_api::vertical::{HorizontalCoordination, UpdateMode, VerticalAutoscaler};
use jiff::Timestamp;

use crate::policy::{Resource, container_policy, fallback_policy};
use crate::status::{Note, set_condition};

/// Condition type on a `VerticalAutoscaler` (always present).
pub const VERTICAL_CONDITION: &str = "HorizontalConflict";
/// Condition type on a `HorizontalAutoscaler` (present while a conflict exists, or once did).
pub const HORIZONTAL_CONDITION: &str = "VerticalConflict";

/// One metric of a horizontal object that depends on a request the vertical object controls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clash {
    /// Name of the `VerticalAutoscaler`.
    pub vertical: String,
    /// Name of the `HorizontalAutoscaler`.
    pub horizontal: String,
    /// Index of the metric in the horizontal object's `spec.metrics`.
    pub metric: usize,
    pub resource: Resource,
    /// The container of a `ContainerResource` metric; None: the whole pod.
    pub container: Option<String>,
    /// Whether the vertical object holds the request (`horizontalCoordination: Coordinated`).
    pub coordinated: bool,
}

impl Clash {
    /// `spec.metrics[0] (cpu utilization)` or `spec.metrics[1] (cpu utilization of container app)`.
    fn metric_text(&self) -> String {
        let of = self
            .container
            .as_ref()
            .map(|c| format!(" of container {c}"))
            .unwrap_or_default();
        format!(
            "spec.metrics[{}] ({} utilization{of})",
            self.metric,
            self.resource.name()
        )
    }

    fn handling(&self) -> &'static str {
        if self.coordinated {
            "held by vertical (never lowered, raised only to the lower bound)"
        } else {
            "applied anyway (horizontalCoordination: Ignore): the two may fight"
        }
    }
}

/// Every clash between `vertical` and `horizontal` (empty when they do not share a target).
pub fn clashes(vertical: &VerticalAutoscaler, horizontal: &HorizontalAutoscaler) -> Vec<Clash> {
    let mode = vertical
        .spec
        .update_policy
        .as_ref()
        .and_then(|p| p.update_mode)
        .unwrap_or_default();
    if mode == UpdateMode::Off
        || vertical.metadata.namespace != horizontal.metadata.namespace
        || !same_target(&vertical.spec.target_ref, &horizontal.spec.scale_target_ref)
    {
        return Vec::new();
    }
    let coordinated = vertical.spec.horizontal_coordination.unwrap_or_default()
        == HorizontalCoordination::Coordinated;
    let name = vertical.metadata.name.clone().unwrap_or_default();
    let mut out = Vec::new();
    for (index, metric) in horizontal.spec.metrics.iter().enumerate() {
        let (resource, container, target) = match metric.type_ {
            MetricSourceType::Resource => match &metric.resource {
                Some(r) => (r.name.as_str(), None, r.target.type_),
                None => continue,
            },
            MetricSourceType::ContainerResource => match &metric.container_resource {
                Some(r) => (r.name.as_str(), Some(r.container.clone()), r.target.type_),
                None => continue,
            },
            _ => continue,
        };
        let resource = match resource {
            "cpu" => Resource::Cpu,
            "memory" => Resource::Memory,
            _ => continue,
        };
        if target != MetricTargetType::Utilization
            || !controls(vertical, &name, resource, container.as_deref())
        {
            continue;
        }
        out.push(Clash {
            vertical: name.clone(),
            horizontal: horizontal.metadata.name.clone().unwrap_or_default(),
            metric: index,
            resource,
            container,
            coordinated,
        });
    }
    out
}

/// Whether two references name the same object: kind and name equal, and the API group equal
/// when both references give an `apiVersion`.
pub fn same_target(a: &CrossVersionObjectReference, b: &CrossVersionObjectReference) -> bool {
    let group = |r: &CrossVersionObjectReference| {
        r.api_version
            .as_deref()
            .map(|v| v.rsplit_once('/').map_or("", |(g, _)| g).to_owned())
    };
    let groups_agree = match (group(a), group(b)) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    };
    a.kind == b.kind && a.name == b.name && groups_agree
}

/// Whether `vertical` applies `resource` requests to `container` (None: to some container).
fn controls(
    vertical: &VerticalAutoscaler,
    name: &str,
    resource: Resource,
    container: Option<&str>,
) -> bool {
    let spec = &vertical.spec;
    let controlled = |c: &str| {
        container_policy(spec, name, c)
            .map(|p| p.controls(resource))
            .unwrap_or(false)
    };
    if let Some(c) = container {
        return controlled(c);
    }
    let known: Vec<&str> = vertical
        .status
        .as_ref()
        .and_then(|s| s.recommendation.as_ref())
        .map(|r| {
            r.container_recommendations
                .iter()
                .map(|c| c.container_name.as_str())
                .collect()
        })
        .unwrap_or_default();
    if !known.is_empty() {
        return known.into_iter().any(controlled);
    }
    // No recommendation yet: any policy, or the default one for containers none names.
    let policies = spec
        .resource_policy
        .as_ref()
        .map(|p| p.container_policies.as_slice())
        .unwrap_or_default();
    let fallback = fallback_policy(spec, name).is_ok_and(|p| p.controls(resource));
    fallback
        || policies
            .iter()
            .filter_map(|p| p.container_name.as_deref())
            .filter(|n| *n != "*")
            .any(controlled)
}

/// The requests a vertical object holds: per resource, every container or the named ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    entries: Vec<(Resource, Option<String>)>,
}

impl Held {
    /// Nothing held.
    pub fn none() -> Held {
        Held::default()
    }

    /// What the coordinated clashes hold (`Ignore` ones hold nothing).
    pub fn from_clashes(clashes: &[Clash]) -> Held {
        let mut entries: Vec<(Resource, Option<String>)> = clashes
            .iter()
            .filter(|c| c.coordinated)
            .map(|c| (c.resource, c.container.clone()))
            .collect();
        entries.sort();
        entries.dedup();
        Held { entries }
    }

    /// Whether `container`'s `resource` request is held.
    pub fn holds(&self, resource: Resource, container: &str) -> bool {
        self.entries
            .iter()
            .any(|(r, c)| *r == resource && c.as_deref().is_none_or(|c| c == container))
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What a condition says: its status, reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub conflict: bool,
    pub reason: &'static str,
    pub message: String,
}

/// The finding of a vertical object, from its clashes with every horizontal object.
pub fn vertical_finding(clashes: &[Clash]) -> Finding {
    let lines: Vec<String> = clashes
        .iter()
        .map(|c| {
            format!(
                "HorizontalAutoscaler {} scales on {}: the {} requests are {}",
                c.horizontal,
                c.metric_text(),
                c.resource.name(),
                c.handling()
            )
        })
        .collect();
    finding(clashes, lines)
}

/// The finding of a horizontal object, from its clashes with every vertical object.
pub fn horizontal_finding(clashes: &[Clash]) -> Finding {
    let lines: Vec<String> = clashes
        .iter()
        .map(|c| {
            format!(
                "VerticalAutoscaler {} controls the {} requests that {} divides by: they are {}",
                c.vertical,
                c.resource.name(),
                c.metric_text(),
                c.handling()
            )
        })
        .collect();
    finding(clashes, lines)
}

fn finding(clashes: &[Clash], lines: Vec<String>) -> Finding {
    if clashes.is_empty() {
        return Finding {
            conflict: false,
            reason: "NoConflict",
            message: String::new(),
        };
    }
    let reason = if clashes.iter().all(|c| c.coordinated) {
        "Coordinated"
    } else {
        "NotCoordinated"
    };
    Finding {
        conflict: true,
        reason,
        message: lines.join("; "),
    }
}

/// Sets the condition `type_` from `finding`; returns the event of a change: a warning when a
/// conflict appears or its message changes, a normal event when it ends.
pub fn record(
    conditions: &mut Vec<Condition>,
    type_: &'static str,
    finding: &Finding,
    now: Timestamp,
) -> Option<Note> {
    let before = conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status == "True", c.message.clone()));
    set_condition(
        conditions,
        type_,
        finding.conflict,
        finding.reason,
        finding.message.clone(),
        now,
    );
    match (before, finding.conflict) {
        (Some((true, m)), true) if m == finding.message => None,
        (_, true) => Some(Note {
            warning: true,
            reason: type_,
            message: finding.message.clone(),
        }),
        (Some((true, _)), false) => Some(Note {
            warning: false,
            reason: "ConflictResolved",
            message: format!("{type_}: no conflict any more"),
        }),
        _ => None,
    }
}

#[cfg(test)]
#[path = "coordination_tests.rs"]
mod tests;
