//! The status a pass writes: `Ready` (the pass went through, or the reason it stopped),
//! `Active` (a trigger has a backlog), the Job counts and the backlog.

use ballast_api::common::{Condition, Time};
use ballast_api::jobs::{JobAutoscaler, JobAutoscalerStatus};

/// Why a pass stopped before starting Jobs: the `Ready` condition's reason and message, and the
/// Warning event published with them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// `InvalidSpec`, `SourceFailed`, `FailedListPods` or `FailedCreateJob`.
    pub reason: &'static str,
    /// What failed, naming the field or carrying the API server's answer.
    pub message: String,
}

impl Problem {
    /// A spec the loop cannot act on; `message` names the field.
    pub fn invalid_spec(message: String) -> Problem {
        Problem {
            reason: "InvalidSpec",
            message,
        }
    }
}

/// The Jobs and backlog a pass saw.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Seen {
    /// Unfinished Jobs, with those started by this pass.
    pub active: u32,
    /// Of those, pending ones, with those started by this pass.
    pub pending: u32,
    /// The backlog summed over the triggers; None when it was not read.
    pub backlog: Option<f64>,
}

fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    object: &JobAutoscaler,
    now: &Time,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let previous = object
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_));
    let since = previous
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        last_transition_time: since,
        observed_generation: object.metadata.generation,
    }
}

/// The status after a pass: `Ready=True` when `problem` is None, else `Ready=False` with its
/// reason and message (the `Active` condition and `lastActiveTime` are then kept as they were,
/// unless the backlog was read).
pub fn status(
    object: &JobAutoscaler,
    seen: Seen,
    problem: Option<&Problem>,
    now: &Time,
) -> JobAutoscalerStatus {
    let mut status = object.status.clone().unwrap_or_default();
    status.observed_generation = object.metadata.generation;
    let ready = match problem {
        None => condition(
            "Ready",
            true,
            "SourcesRead",
            "every trigger was read".into(),
            object,
            now,
        ),
        Some(p) => condition("Ready", false, p.reason, p.message.clone(), object, now),
    };
    let mut conditions = vec![ready];
    match seen.backlog {
        Some(backlog) => {
            let active = backlog > 0.0;
            if active {
                status.last_active_time = Some(now.clone());
            }
            let reason = if active { "Backlog" } else { "NoBacklog" };
            let message = format!("backlog {backlog}");
            conditions.push(condition("Active", active, reason, message, object, now));
        }
        None => conditions.extend(
            status
                .conditions
                .iter()
                .filter(|c| c.type_ == "Active")
                .cloned(),
        ),
    }
    status.conditions = conditions;
    status.active_jobs = i32::try_from(seen.active).unwrap_or(i32::MAX);
    status.pending_jobs = i32::try_from(seen.pending).unwrap_or(i32::MAX);
    status.queue_length = seen.backlog.map(|b| b.round() as i64);
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Time {
        Time(text.parse().unwrap())
    }

    #[test]
    fn ready_carries_the_problem_and_keeps_its_transition_time() {
        let mut object = JobAutoscaler::new("work", Default::default());
        object.metadata.generation = Some(4);
        let t0 = at("2026-01-01T00:00:00Z");
        let t1 = at("2026-01-01T00:01:00Z");
        let seen = Seen {
            active: 2,
            pending: 1,
            backlog: Some(3.0),
        };
        let first = status(&object, seen, None, &t0);
        assert_eq!(first.conditions[0].reason, "SourcesRead");
        assert_eq!(first.conditions[1].status, "True");
        assert_eq!(first.last_active_time, Some(t0.clone()));
        assert_eq!(first.observed_generation, Some(4));
        object.status = Some(first);
        let bad = Problem::invalid_spec("spec.triggers[0].target: missing".into());
        let second = status(&object, Seen::default(), Some(&bad), &t1);
        let ready = &second.conditions[0];
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "InvalidSpec")
        );
        assert!(ready.message.contains("spec.triggers[0].target"));
        assert_eq!(ready.last_transition_time, t1);
        // The backlog was not read: Active and lastActiveTime stay as they were.
        assert_eq!(second.conditions[1].last_transition_time, t0);
        assert_eq!(second.last_active_time, Some(t0));
        assert_eq!(second.queue_length, None);
        object.status = Some(second);
        let third = status(
            &object,
            Seen::default(),
            Some(&bad),
            &at("2026-01-01T00:02:00Z"),
        );
        assert_eq!(third.conditions[0].last_transition_time, t1);
    }
}
