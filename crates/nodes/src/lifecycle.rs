//! NodeClaim lifecycle rules: the Launched, Registered and Initialized conditions from observed
//! facts, and the launch / registration timeouts after which a NodeClaim is deleted and its pods
//! provisioned again.

use ballast_api::common::{Condition, Time};
use ballast_api::nodes::NodeClaim;
use ballast_scheduling::{EPHEMERAL_TAINTS, Resources, Taint};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::adapt;

/// What the shell observed about a NodeClaim's instance and node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimObservation {
    /// The cloud instance, once the launch succeeded.
    #[serde(default)]
    pub provider_id: Option<String>,
    /// The last launch error (insufficient capacity, throttling...).
    #[serde(default)]
    pub launch_error: Option<String>,
    /// The Node with the same provider ID, once it registered.
    #[serde(default)]
    pub node: Option<ObservedNode>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedNode {
    pub name: String,
    pub ready: bool,
    #[serde(default)]
    pub taints: Vec<Taint>,
    #[serde(default)]
    pub allocatable: Resources,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    True,
    False,
    Unknown,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

/// One condition as it should be now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionState {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: Status,
    pub reason: String,
    pub message: String,
}

fn cond(t: &str, status: Status, reason: &str, message: impl Into<String>) -> ConditionState {
    ConditionState {
        type_: t.into(),
        status,
        reason: reason.into(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Timeout {
    /// Not launched within the launch timeout.
    Launch,
    /// Launched, but no node registered within the registration timeout.
    Registration,
}

/// Lifecycle knobs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LifecycleOptions {
    pub launch_timeout_seconds: f64,
    pub registration_timeout_seconds: f64,
}

impl Default for LifecycleOptions {
    fn default() -> Self {
        LifecycleOptions {
            launch_timeout_seconds: 300.0,
            registration_timeout_seconds: 900.0,
        }
    }
}

/// What the lifecycle rules say about one NodeClaim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    /// Launched, Registered, Initialized.
    pub conditions: Vec<ConditionState>,
    /// Delete the NodeClaim (its pods get provisioned again).
    pub delete: Option<Timeout>,
    /// When to look again (a timeout deadline), if nothing else happens first.
    pub requeue_at: Option<Timestamp>,
}

fn plus(t: Timestamp, s: f64) -> Timestamp {
    t.checked_add(SignedDuration::from_secs_f64(s.max(0.0)))
        .unwrap_or(Timestamp::MAX)
}

/// The lifecycle rules. Both timeouts run from the NodeClaim's creation (when its conditions
/// started Unknown); a NodeClaim already being deleted never times out again.
pub fn claim_lifecycle(
    claim: &NodeClaim,
    obs: &ClaimObservation,
    now: Timestamp,
    opts: &LifecycleOptions,
) -> Lifecycle {
    let created = claim
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let deleting = claim.metadata.deletion_timestamp.is_some();
    let provider = obs
        .provider_id
        .clone()
        .or_else(|| claim.status.as_ref().and_then(|s| s.provider_id.clone()));
    let mut conditions = vec![];
    let launched = provider.is_some();
    conditions.push(match (&provider, &obs.launch_error) {
        (Some(id), _) => cond(
            "Launched",
            Status::True,
            "Launched",
            format!("instance {id}"),
        ),
        (None, Some(e)) => cond("Launched", Status::False, "LaunchFailed", e.clone()),
        (None, None) => cond(
            "Launched",
            Status::Unknown,
            "AwaitingLaunch",
            "launch in progress",
        ),
    });
    let registered = launched && obs.node.is_some();
    conditions.push(match (&obs.node, launched) {
        (Some(n), true) => cond(
            "Registered",
            Status::True,
            "Registered",
            format!("node {}", n.name),
        ),
        _ => cond(
            "Registered",
            Status::Unknown,
            "AwaitingRegistration",
            "no node with this provider ID yet",
        ),
    });
    conditions.push(match (&obs.node, registered) {
        (Some(n), true) => initialized(claim, n),
        _ => cond(
            "Initialized",
            Status::Unknown,
            "NotRegistered",
            "node not registered",
        ),
    });
    let mut delete = None;
    let mut requeue_at = None;
    if !deleting {
        if !launched {
            let deadline = plus(created, opts.launch_timeout_seconds);
            if now >= deadline {
                delete = Some(Timeout::Launch)
            } else {
                requeue_at = Some(deadline)
            }
        } else if !registered {
            let deadline = plus(created, opts.registration_timeout_seconds);
            if now >= deadline {
                delete = Some(Timeout::Registration)
            } else {
                requeue_at = Some(deadline)
            }
        }
    }
    Lifecycle {
        conditions,
        delete,
        requeue_at,
    }
}

fn initialized(claim: &NodeClaim, n: &ObservedNode) -> ConditionState {
    if !n.ready {
        return cond(
            "Initialized",
            Status::Unknown,
            "NodeNotReady",
            "node is not ready",
        );
    }
    let startup: Vec<Taint> = claim
        .spec
        .startup_taints
        .iter()
        .map(adapt::model_taint)
        .collect();
    if let Some(t) = n.taints.iter().find(|t| {
        startup
            .iter()
            .any(|s| s.key == t.key && s.effect == t.effect && s.value == t.value)
    }) {
        return cond(
            "Initialized",
            Status::Unknown,
            "StartupTaintsExist",
            format!("startup taint {t} still present"),
        );
    }
    if let Some(t) = n
        .taints
        .iter()
        .find(|t| EPHEMERAL_TAINTS.contains(&t.key.as_str()))
    {
        return cond(
            "Initialized",
            Status::Unknown,
            "KnownEphemeralTaintsExist",
            format!("taint {t} still present"),
        );
    }
    let requests = claim
        .spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.clone())
        .unwrap_or_default();
    for (name, q) in &requests {
        if matches!(
            name.as_str(),
            "cpu" | "memory" | "pods" | "ephemeral-storage"
        ) || q.0.trim() == "0"
        {
            continue;
        }
        if n.allocatable.get(name) <= 0 {
            return cond(
                "Initialized",
                Status::Unknown,
                "ResourceNotRegistered",
                format!("{name} requested but not registered"),
            );
        }
    }
    cond(
        "Initialized",
        Status::True,
        "Initialized",
        "ready, startup taints gone",
    )
}

/// Folds condition states into a status's conditions, keeping the transition time of those
/// whose status did not change.
pub fn merge_conditions(
    existing: &[Condition],
    states: &[ConditionState],
    now: Timestamp,
    generation: Option<i64>,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = existing
        .iter()
        .filter(|c| !states.iter().any(|s| s.type_ == c.type_))
        .cloned()
        .collect();
    for s in states {
        let prev = existing.iter().find(|c| c.type_ == s.type_);
        let ltt = match prev {
            Some(p) if p.status == s.status.as_str() => p.last_transition_time.clone(),
            _ => Time(now),
        };
        out.push(Condition {
            type_: s.type_.clone(),
            status: s.status.as_str().into(),
            reason: s.reason.clone(),
            message: s.message.clone(),
            last_transition_time: ltt,
            observed_generation: generation,
        });
    }
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}
