//! When the status must be written, and what a restart assumes about decisions it did not see.
//!
//! Each decision appends a recommendation to the stored history, so its status would change at
//! every sync if we wrote it every time: one PATCH and one watch event per object per period, the
//! largest cost of a steady-state controller (upstream's HPA writes its status only when it
//! changes, and keeps its history in memory only, so a restart forgets it).
//!
//! We keep the exact history in memory and write the status when anything but the passage of time
//! changed: a condition, a metric value, the replicas, a scale event, a failure count, or a
//! recommendation whose value differs from the last one written. A decision that only repeats the
//! last written recommendation (or only drops entries that aged out) is not written.
//!
//! What a restart then knows: the last written recommendation (value `v` at `t`) is the last
//! *different* one; every decision after `t` recommended `v` too (else it would have been
//! written), until the process stopped at some unknown time before now. [`resume`] assumes it
//! held until now: stabilization then holds at most the downtime longer than an uninterrupted
//! controller would, never shorter. The activation time (scale to and from zero) is treated the
//! same way when it was current at the last write.

use ballast_api::horizontal::{HorizontalAutoscalerStatus, ScalingHistory};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// True when `new` differs from `written` (the status as last written) only by the passage of
/// time, so that writing it can be skipped.
pub fn only_time_moved(
    written: &HorizontalAutoscalerStatus,
    new: &HorizontalAutoscalerStatus,
) -> bool {
    let strip = |s: &HorizontalAutoscalerStatus| HorizontalAutoscalerStatus {
        history: None,
        ..s.clone()
    };
    if strip(written) != strip(new) {
        return false;
    }
    match (&written.history, &new.history) {
        (None, None) => true,
        (Some(w), Some(n)) => history_only_aged(w, n),
        _ => false,
    }
}

fn history_only_aged(w: &ScalingHistory, n: &ScalingHistory) -> bool {
    if w.metric_failures != n.metric_failures {
        return false;
    }
    // Scale events only age out: a new one is a change.
    let subset = |new: &[ballast_api::horizontal::ScaleEvent],
                  old: &[ballast_api::horizontal::ScaleEvent]| {
        new.iter().all(|e| old.contains(e))
    };
    if !subset(&n.scale_up_events, &w.scale_up_events)
        || !subset(&n.scale_down_events, &w.scale_down_events)
    {
        return false;
    }
    let Some(last) = w.recommendations.last() else {
        return n.recommendations.is_empty() && w.last_active_time == n.last_active_time;
    };
    if !n
        .recommendations
        .iter()
        .all(|r| r.replicas == last.replicas || w.recommendations.contains(r))
    {
        return false;
    }
    // The activation time either stayed, or was current at the last write and still is.
    w.last_active_time == n.last_active_time
        || (w.last_active_time.as_ref() == Some(&last.time)
            && n.last_active_time.is_some()
            && n.last_active_time.as_ref() == n.recommendations.last().map(|r| &r.time))
}

/// The history a process that did not make the previous decisions starts from: the last written
/// recommendation (and the activation time, when it was current then) held until `now`.
pub fn resume(history: &mut ScalingHistory, now: Time) {
    let Some(last) = history.recommendations.last_mut() else {
        return;
    };
    if last.time >= now {
        return;
    }
    let was_active = history.last_active_time.as_ref() == Some(&last.time);
    last.time = now.clone();
    if was_active {
        history.last_active_time = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_api::horizontal::{MetricFailureCount, ScaleEvent, TimestampedReplicas};
    use jiff::Timestamp;

    fn t(s: i64) -> Time {
        Time(Timestamp::from_second(1_800_000_000 + s).unwrap())
    }
    fn rec(s: i64, r: i32) -> TimestampedReplicas {
        TimestampedReplicas {
            time: t(s),
            replicas: r,
        }
    }
    fn status(recs: &[(i64, i32)]) -> HorizontalAutoscalerStatus {
        HorizontalAutoscalerStatus {
            current_replicas: 3,
            desired_replicas: 3,
            history: Some(ScalingHistory {
                recommendations: recs.iter().map(|&(s, r)| rec(s, r)).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn h(s: &mut HorizontalAutoscalerStatus) -> &mut ScalingHistory {
        s.history.as_mut().unwrap()
    }

    #[test]
    fn skip_or_write() {
        let written = status(&[(0, 5), (15, 3)]);
        let with = |f: &dyn Fn(&mut HorizontalAutoscalerStatus)| {
            let mut s = status(&[(0, 5), (15, 3), (30, 3), (45, 3)]);
            f(&mut s);
            s
        };

        let cases: Vec<(&str, HorizontalAutoscalerStatus, bool)> = vec![
            ("the last value repeated", with(&|_| {}), true),
            (
                "an old entry aged out",
                with(&|s| {
                    h(s).recommendations.remove(0);
                }),
                true,
            ),
            (
                "a different value",
                with(&|s| h(s).recommendations.push(rec(60, 4))),
                false,
            ),
            (
                "an older value again",
                with(&|s| h(s).recommendations.push(rec(60, 5))),
                false,
            ),
            ("desired replicas", with(&|s| s.desired_replicas = 4), false),
            (
                "a scale event",
                with(&|s| {
                    h(s).scale_down_events.push(ScaleEvent {
                        time: t(45),
                        change: 1,
                    })
                }),
                false,
            ),
            (
                "a failure count",
                with(&|s| {
                    h(s).metric_failures.push(MetricFailureCount {
                        metric: "m".into(),
                        count: 1,
                    })
                }),
                false,
            ),
            (
                "activation starts",
                with(&|s| h(s).last_active_time = Some(t(45))),
                false,
            ),
            ("no history any more", with(&|s| s.history = None), false),
        ];
        for (name, new, skip) in cases {
            assert_eq!(only_time_moved(&written, &new), skip, "{name}");
        }
    }

    #[test]
    fn activation_that_stays_current_is_time_only() {
        let mut written = status(&[(0, 2)]);
        written.history.as_mut().unwrap().last_active_time = Some(t(0));
        let mut new = status(&[(0, 2), (15, 2)]);
        new.history.as_mut().unwrap().last_active_time = Some(t(15));
        assert!(only_time_moved(&written, &new));
        // It stopped being active: the time it was last active must be stored.
        new.history.as_mut().unwrap().last_active_time = Some(t(5));
        assert!(!only_time_moved(&written, &new));
    }

    #[test]
    fn resume_extends_the_last_recommendation() {
        let mut h = status(&[(0, 5), (15, 3)]).history.unwrap();
        h.last_active_time = Some(t(15));
        resume(&mut h, t(100));
        assert_eq!(h.recommendations, vec![rec(0, 5), rec(100, 3)]);
        assert_eq!(h.last_active_time, Some(t(100)));

        let mut h = status(&[(15, 3)]).history.unwrap();
        h.last_active_time = Some(t(5));
        resume(&mut h, t(100));
        assert_eq!(h.last_active_time, Some(t(5)), "inactive since 5: kept");

        let mut empty = ScalingHistory::default();
        resume(&mut empty, t(100));
        assert_eq!(empty, ScalingHistory::default());
    }
}
