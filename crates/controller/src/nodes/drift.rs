//! Cloud-provider drift of launched NodeClaims (issue #6): the NodeClaim reconciler asks
//! [`ballast_cloud::CloudProvider::is_drifted`] about each initialized NodeClaim at most every
//! `drift_interval` (and at once when its nodeClassRef changes), and records the answer as a
//! `Drifted=True` condition (reason [`REASON`], message `node class drift: …`), removed again when
//! the provider no longer reports drift. The disruption core reads that condition as drift, like a
//! changed NodePool template.
//!
//! The decisions here are pure (when to ask, what the conditions become); the call itself is in
//! [`super::claims`]. A failed call is logged and asked again after [`RETRY`], never fatal.

use std::time::Duration;

use ballast_api::common::Condition;
use ballast_api::nodes::NodeClaim;
use ballast_nodes::{ConditionState, Status, merge_conditions};
use jiff::Timestamp;

/// The condition type the disruption core reads.
pub const CONDITION: &str = "Drifted";
/// The reason of the condition this module writes.
pub const REASON: &str = "NodeClassDrifted";
/// How soon a failed `is_drifted` call is retried (or the interval, when shorter).
pub const RETRY: Duration = Duration::from_secs(30);

/// The last time a NodeClaim was asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub at: Timestamp,
    /// [`class_key`] of the NodeClaim then.
    pub class: String,
    /// Whether the provider answered (false: an error, retried after [`RETRY`]).
    pub answered: bool,
}

/// The NodeClaim's nodeClassRef as one string (group/kind/name).
pub fn class_key(claim: &NodeClaim) -> String {
    let r = &claim.spec.node_class_ref;
    format!("{}/{}/{}", r.group, r.kind, r.name)
}

/// How long after `last` the next check is due (zero: now).
pub fn due_in(last: Option<&Checked>, class: &str, now: Timestamp, every: Duration) -> Duration {
    let Some(last) = last else {
        return Duration::ZERO;
    };
    if last.class != class {
        return Duration::ZERO;
    }
    let wait = if last.answered {
        every
    } else {
        every.min(RETRY)
    };
    let elapsed = now
        .duration_since(last.at)
        .try_into()
        .unwrap_or(Duration::ZERO);
    wait.saturating_sub(elapsed)
}

/// The message of the `Drifted` condition for what the provider said drifted.
pub fn message(why: &str) -> String {
    format!("node class drift: {why}")
}

/// The conditions once the provider answered: `Drifted=True` (reason [`REASON`]) when it reports
/// drift, no `Drifted` condition when it does not.
pub fn conditions(
    existing: &[Condition],
    drift: Option<&str>,
    now: Timestamp,
    generation: Option<i64>,
) -> Vec<Condition> {
    match drift {
        Some(why) => merge_conditions(
            existing,
            &[ConditionState {
                type_: CONDITION.into(),
                status: Status::True,
                reason: REASON.into(),
                message: message(why),
            }],
            now,
            generation,
        ),
        None => existing
            .iter()
            .filter(|c| c.type_ != CONDITION)
            .cloned()
            .collect(),
    }
}

/// Whether the conditions say the NodeClaim is drifted (`Drifted=True`).
pub fn is_drifted(conditions: &[Condition]) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == CONDITION && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_api::common::Time;
    use ballast_api::nodes::{NodeClaimSpec, NodeClassReference};

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn cond(t: &str, status: &str) -> Condition {
        Condition {
            type_: t.into(),
            status: status.into(),
            reason: "x".into(),
            message: "x".into(),
            last_transition_time: Time(ts(0)),
            observed_generation: None,
        }
    }

    #[test]
    fn when_a_check_is_due() {
        let every = Duration::from_secs(300);
        let ok = |at, class: &str| Checked {
            at: ts(at),
            class: class.into(),
            answered: true,
        };
        let failed = Checked {
            answered: false,
            ..ok(0, "g/K/a")
        };
        // (last check, class now, seconds now, due in seconds)
        let rows: Vec<(Option<Checked>, &str, i64, u64)> = vec![
            (None, "g/K/a", 0, 0),
            (Some(ok(0, "g/K/a")), "g/K/a", 0, 300),
            (Some(ok(0, "g/K/a")), "g/K/a", 120, 180),
            (Some(ok(0, "g/K/a")), "g/K/a", 300, 0),
            (Some(ok(0, "g/K/a")), "g/K/a", 900, 0),
            // The nodeClassRef changed: at once.
            (Some(ok(0, "g/K/a")), "g/K/b", 10, 0),
            // A failed call: retried after RETRY.
            (Some(failed.clone()), "g/K/a", 10, 20),
            (Some(failed), "g/K/a", 30, 0),
            // A clock that went back: the whole interval from now.
            (Some(ok(100, "g/K/a")), "g/K/a", 50, 300),
        ];
        for (i, (last, class, now, want)) in rows.into_iter().enumerate() {
            assert_eq!(
                due_in(last.as_ref(), class, ts(now), every),
                Duration::from_secs(want),
                "row {i}"
            );
        }
        // An interval shorter than RETRY bounds the retry too.
        let failed = Checked {
            at: ts(0),
            class: "c".into(),
            answered: false,
        };
        assert_eq!(
            due_in(Some(&failed), "c", ts(1), Duration::from_secs(5)),
            Duration::from_secs(4)
        );
    }

    #[test]
    fn the_drifted_condition_follows_the_answer() {
        let base = vec![cond("Initialized", "True"), cond("Ready", "True")];
        let d = conditions(
            &base,
            Some("subnet s-1 is no longer selected"),
            ts(5),
            Some(2),
        );
        assert!(is_drifted(&d));
        let c = d.iter().find(|c| c.type_ == CONDITION).unwrap();
        assert_eq!(c.reason, REASON);
        assert_eq!(
            c.message,
            "node class drift: subnet s-1 is no longer selected"
        );
        assert_eq!(c.last_transition_time, Time(ts(5)));
        assert_eq!(d.len(), 3);
        // Still drifted later (another reason): the transition time stays.
        let d2 = conditions(&d, Some("image i-2 is no longer selected"), ts(50), Some(2));
        let c2 = d2.iter().find(|c| c.type_ == CONDITION).unwrap();
        assert_eq!(c2.last_transition_time, Time(ts(5)));
        assert!(c2.message.contains("image i-2"));
        // No longer drifted: removed, the others untouched.
        let d3 = conditions(&d2, None, ts(60), Some(2));
        assert!(!is_drifted(&d3));
        assert_eq!(d3, base);
        // Not drifted and never was: unchanged.
        assert_eq!(conditions(&base, None, ts(60), None), base);
    }

    #[test]
    fn class_keys_name_group_kind_and_name() {
        let c = NodeClaim::new(
            "c",
            NodeClaimSpec {
                node_class_ref: NodeClassReference {
                    group: "nodes.ballast.dev".into(),
                    kind: "Ec2NodeClass".into(),
                    name: "default".into(),
                },
                ..Default::default()
            },
        );
        assert_eq!(class_key(&c), "nodes.ballast.dev/Ec2NodeClass/default");
    }
}
