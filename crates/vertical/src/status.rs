//! What a `VerticalAutoscaler`'s status says after one pass: the recommendation and the
//! conditions, and the events that go with them. Pure: the controller and the simulator pass what
//! they observed and `now`.
//!
//! Conditions (always all present, so `kubectl wait --for=condition=...` works either way):
//!
//! | type | True when |
//! | --- | --- |
//! | `RecommendationProvided` | the status holds a recommendation computed this pass |
//! | `LowConfidence` | a recommended container has less than a day of history |
//! | `NoPodsMatched` | the target's selector matches no pod |
//! | `FetchingHistory` | the history is being read from Prometheus |
//! | `ConfigUnsupported` | the target or the spec cannot be used (reason says which) |
//! | `MetricsUnavailable` | the usage of the pods could not be read this pass (ours) |
//! | `HorizontalConflict` | a `HorizontalAutoscaler` on the target scales on the utilization of a resource whose requests this object applies (ours; reason `Coordinated` or `NotCoordinated`, see [`crate::coordination`]) |
//!
//! A configuration problem keeps the last recommendation in the status (an updater keeps what it
//! had) but sets `RecommendationProvided` False. Warnings are returned every pass while a problem
//! lasts (the event recorder folds repeats into a series); normal events only on a transition.

use ballast_api::common::{Condition, Time};
use ballast_api::vertical::VerticalAutoscalerStatus;
use jiff::Timestamp;

use crate::coordination::{Finding, VERTICAL_CONDITION, record};
use crate::recommend::Recommendation;

/// Why an object cannot be served.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigProblem {
    /// The condition's and the event's reason (`TargetNotFound`, `NoScaleSubresource`,
    /// `InvalidSpec`, `InvalidSelector`).
    pub reason: &'static str,
    /// What is wrong and where (names the field).
    pub message: String,
}

/// Where the history read from Prometheus stands.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum History {
    /// No history source is configured, or the object had a checkpoint.
    #[default]
    NotNeeded,
    /// Being read now.
    Fetching,
    /// Read: this many samples.
    Loaded { samples: u64 },
    /// The read failed (the recommender goes on from live samples).
    Failed { message: String },
}

/// What the controller observed in one pass over an object.
#[derive(Debug, Clone, Default)]
pub struct Observation<'a> {
    pub problem: Option<ConfigProblem>,
    /// Pods matched by the target's selector.
    pub pods_matched: usize,
    /// `Kind/name` of the target, for messages.
    pub target: String,
    /// Why usage could not be read this pass.
    pub metrics_error: Option<String>,
    pub history: History,
    /// The recommendation of this pass (None with a problem, or when it failed).
    pub recommendation: Option<&'a Recommendation>,
    /// The clashes with horizontal autoscalers (None: not known this pass, the condition stays).
    pub horizontal: Option<Finding>,
}

/// An event to publish on the object.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// The new status and the events of one pass.
pub fn status(
    previous: Option<&VerticalAutoscalerStatus>,
    observed: &Observation<'_>,
    now: Timestamp,
) -> (VerticalAutoscalerStatus, Vec<Note>) {
    let mut conditions = previous.map(|p| p.conditions.clone()).unwrap_or_default();
    let mut notes = Vec::new();
    let mut set = |type_: &'static str, value: bool, reason: &'static str, message: String| {
        set_condition(&mut conditions, type_, value, reason, message, now)
    };
    let provided = provided(observed);
    let was_provided = previous.is_some_and(|p| is_true(&p.conditions, "RecommendationProvided"));
    match (&observed.problem, provided) {
        (Some(p), _) => {
            set("ConfigUnsupported", true, p.reason, p.message.clone());
            notes.push(warning(p.reason, p.message.clone()));
        }
        (None, _) => set("ConfigUnsupported", false, "ConfigSupported", String::new()),
    }
    let (reason, message) = provided_reason(observed, provided);
    set("RecommendationProvided", provided, reason, message.clone());
    if provided && !was_provided {
        notes.push(Note {
            warning: false,
            reason: "RecommendationProvided",
            message,
        });
    }
    let low = observed.recommendation.is_some_and(|r| r.low_confidence) && provided;
    set(
        "LowConfidence",
        low,
        if low {
            "LowConfidence"
        } else {
            "EnoughHistory"
        },
        if low {
            "less than a day of usage history: the bounds are wide".into()
        } else {
            String::new()
        },
    );
    no_pods(observed, &mut set, &mut notes);
    metrics(observed, &mut set, &mut notes);
    history(observed, &mut set, &mut notes);
    horizontal(observed, &mut conditions, &mut notes, now);
    let recommendation = match (observed.recommendation, &observed.problem) {
        (Some(r), None) if provided => Some(r.to_status()),
        _ => previous.and_then(|p| p.recommendation.clone()),
    };
    let status = VerticalAutoscalerStatus {
        recommendation,
        conditions,
    };
    (status, notes)
}

type Setter<'s> = dyn FnMut(&'static str, bool, &'static str, String) + 's;

fn provided(observed: &Observation<'_>) -> bool {
    observed.problem.is_none()
        && observed
            .recommendation
            .is_some_and(|r| !r.containers.is_empty())
}

fn provided_reason(observed: &Observation<'_>, provided: bool) -> (&'static str, String) {
    if provided {
        let what = observed.recommendation.map(summary).unwrap_or_default();
        return ("RecommendationProvided", what);
    }
    if let Some(p) = &observed.problem {
        return ("ConfigUnsupported", p.message.clone());
    }
    match observed.recommendation {
        None => ("NoRecommendation", "no recommendation was computed".into()),
        Some(r) if r.skipped.is_empty() => (
            "NoUsageYet",
            format!("no usage sample yet for the pods of {}", observed.target),
        ),
        Some(r) => ("NoUsageYet", r.skipped.join("; ")),
    }
}

fn no_pods(observed: &Observation<'_>, set: &mut Setter<'_>, notes: &mut Vec<Note>) {
    if observed.problem.is_some() {
        return;
    }
    if observed.pods_matched == 0 {
        let message = format!("no pod matches the selector of {}", observed.target);
        set("NoPodsMatched", true, "NoPodsMatched", message.clone());
        notes.push(warning("NoPodsMatched", message));
    } else {
        set(
            "NoPodsMatched",
            false,
            "PodsMatched",
            format!("{} pods of {}", observed.pods_matched, observed.target),
        );
    }
}

fn metrics(observed: &Observation<'_>, set: &mut Setter<'_>, notes: &mut Vec<Note>) {
    match &observed.metrics_error {
        Some(e) => {
            set(
                "MetricsUnavailable",
                true,
                "FailedGetResourceMetric",
                e.clone(),
            );
            notes.push(warning("FailedGetResourceMetric", e.clone()));
        }
        None => set("MetricsUnavailable", false, "MetricsRead", String::new()),
    }
}

fn history(observed: &Observation<'_>, set: &mut Setter<'_>, notes: &mut Vec<Note>) {
    match &observed.history {
        History::NotNeeded => set("FetchingHistory", false, "NotNeeded", String::new()),
        History::Fetching => set(
            "FetchingHistory",
            true,
            "FetchingHistory",
            "reading usage history from Prometheus".into(),
        ),
        History::Loaded { samples } => set(
            "FetchingHistory",
            false,
            "HistoryLoaded",
            format!("{samples} samples read from Prometheus"),
        ),
        History::Failed { message } => {
            set(
                "FetchingHistory",
                false,
                "FailedGetHistory",
                message.clone(),
            );
            notes.push(warning("FailedGetHistory", message.clone()));
        }
    }
}

fn horizontal(
    observed: &Observation<'_>,
    conditions: &mut Vec<Condition>,
    notes: &mut Vec<Note>,
    now: Timestamp,
) {
    let known = conditions.iter().any(|c| c.type_ == VERTICAL_CONDITION);
    let finding = match &observed.horizontal {
        Some(f) => f.clone(),
        None if known => return,
        None => Finding {
            conflict: false,
            reason: "NotChecked",
            message: "the horizontal autoscalers are not read yet".into(),
        },
    };
    notes.extend(record(conditions, VERTICAL_CONDITION, &finding, now));
}

fn warning(reason: &'static str, message: String) -> Note {
    Note {
        warning: true,
        reason,
        message,
    }
}

fn summary(r: &Recommendation) -> String {
    let parts: Vec<String> = r
        .containers
        .iter()
        .map(|c| {
            let cpu = c
                .cpu
                .map(|v| format!(" cpu {}", crate::recommend::cpu_quantity(v.target).0))
                .unwrap_or_default();
            let memory = c
                .memory
                .map(|v| format!(" memory {}", crate::recommend::memory_quantity(v.target).0))
                .unwrap_or_default();
            format!("{}:{cpu}{memory}", c.container_name)
        })
        .collect();
    parts.join(", ")
}

fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// Sets a condition; its transition time moves only when its status flips.
pub fn set_condition(
    list: &mut Vec<Condition>,
    type_: &str,
    value: bool,
    reason: &str,
    message: String,
    now: Timestamp,
) {
    let status = if value { "True" } else { "False" };
    match list.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Time(now);
            }
            c.status = status.to_owned();
            c.reason = reason.to_owned();
            c.message = message;
        }
        None => list.push(Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message,
            last_transition_time: Time(now),
            observed_generation: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recommend::{ContainerRecommendation, ResourceRecommendation};

    fn recommendation(low: bool) -> Recommendation {
        let r = ResourceRecommendation {
            target: 0.25,
            lower_bound: 0.2,
            upper_bound: 0.4,
            uncapped_target: 0.25,
        };
        Recommendation {
            containers: vec![ContainerRecommendation {
                container_name: "app".into(),
                cpu: Some(r),
                memory: None,
                confidence: 2.0,
                reasons: vec![],
            }],
            low_confidence: low,
            skipped: vec![],
        }
    }

    fn condition<'a>(s: &'a VerticalAutoscalerStatus, t: &str) -> (&'a str, &'a str) {
        let c = s.conditions.iter().find(|c| c.type_ == t);
        c.map_or(("absent", ""), |c| (c.status.as_str(), c.reason.as_str()))
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn conditions_follow_what_was_observed() {
        let rec = recommendation(true);
        let empty = Recommendation {
            containers: vec![],
            low_confidence: false,
            skipped: vec!["app: no usage sample yet".into()],
        };
        let problem = ConfigProblem {
            reason: "TargetNotFound",
            message: "spec.targetRef: deployments.apps \"web\" not found".into(),
        };
        // (observation, condition type, expected status, expected reason)
        let cases: Vec<(Observation<'_>, &str, &str, &str)> = vec![
            (
                Observation {
                    pods_matched: 2,
                    recommendation: Some(&rec),
                    ..Default::default()
                },
                "RecommendationProvided",
                "True",
                "RecommendationProvided",
            ),
            (
                Observation {
                    pods_matched: 2,
                    recommendation: Some(&rec),
                    ..Default::default()
                },
                "LowConfidence",
                "True",
                "LowConfidence",
            ),
            (
                Observation {
                    pods_matched: 0,
                    recommendation: Some(&empty),
                    ..Default::default()
                },
                "NoPodsMatched",
                "True",
                "NoPodsMatched",
            ),
            (
                Observation {
                    pods_matched: 1,
                    recommendation: Some(&empty),
                    ..Default::default()
                },
                "RecommendationProvided",
                "False",
                "NoUsageYet",
            ),
            (
                Observation {
                    problem: Some(problem.clone()),
                    ..Default::default()
                },
                "ConfigUnsupported",
                "True",
                "TargetNotFound",
            ),
            (
                Observation {
                    problem: Some(problem),
                    recommendation: Some(&rec),
                    ..Default::default()
                },
                "RecommendationProvided",
                "False",
                "ConfigUnsupported",
            ),
            (
                Observation {
                    pods_matched: 1,
                    metrics_error: Some("503".into()),
                    ..Default::default()
                },
                "MetricsUnavailable",
                "True",
                "FailedGetResourceMetric",
            ),
            (
                Observation {
                    pods_matched: 1,
                    history: History::Fetching,
                    ..Default::default()
                },
                "FetchingHistory",
                "True",
                "FetchingHistory",
            ),
            (
                Observation {
                    pods_matched: 1,
                    horizontal: Some(Finding {
                        conflict: true,
                        reason: "Coordinated",
                        message: "HorizontalAutoscaler web scales on spec.metrics[0]".into(),
                    }),
                    ..Default::default()
                },
                "HorizontalConflict",
                "True",
                "Coordinated",
            ),
            (
                Observation {
                    pods_matched: 1,
                    ..Default::default()
                },
                "HorizontalConflict",
                "False",
                "NotChecked",
            ),
        ];
        for (i, (observed, type_, status_, reason)) in cases.iter().enumerate() {
            let (s, _) = status(None, observed, now());
            assert_eq!(condition(&s, type_), (*status_, *reason), "case {i}");
        }
    }

    #[test]
    fn a_problem_keeps_the_last_recommendation_and_warns() {
        let rec = recommendation(false);
        let ok = Observation {
            pods_matched: 1,
            recommendation: Some(&rec),
            ..Default::default()
        };
        let (first, notes) = status(None, &ok, now());
        assert_eq!(notes.len(), 1);
        assert!(!notes[0].warning);
        let (again, notes) = status(Some(&first), &ok, now());
        assert!(notes.is_empty(), "no event without a transition: {notes:?}");
        assert_eq!(again, first);
        let broken = Observation {
            problem: Some(ConfigProblem {
                reason: "NoScaleSubresource",
                message: "spec.targetRef: kind ConfigMap v1 has no scale subresource".into(),
            }),
            ..Default::default()
        };
        let (after, notes) = status(Some(&first), &broken, now());
        assert_eq!(after.recommendation, first.recommendation);
        assert!(
            notes
                .iter()
                .any(|n| n.warning && n.reason == "NoScaleSubresource")
        );
    }
}
