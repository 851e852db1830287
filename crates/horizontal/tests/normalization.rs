//! Table tests of what happens to a proposal: stabilization windows, the scale-up limit without
//! behavior, behavior policies and select policies, min/max and the ScalingLimited reasons
//! (upstream's horizontal.go scenarios, as our own rows).

mod common;
use ballast_api::horizontal::SelectPolicy;
use common::*;

/// An autoscaler whose single metric proposes exactly `p` replicas (External, AverageValue 1).
fn proposing(min: i32, max: i32, current: i32, p: i32) -> B {
    hpa(
        Some(min),
        max,
        vec![external_metric("work", target_avg("1"))],
    )
    .current(current)
    .reading(value(&p.to_string()))
}

struct Row {
    name: &'static str,
    case: B,
    desired: i32,
    /// (condition type, status, reason) that must hold.
    conditions: &'static [(&'static str, &'static str, &'static str)],
}

fn run(rows: Vec<Row>) {
    let mut failed = Vec::new();
    for row in rows {
        let d = row.case.decide();
        let mut problems = Vec::new();
        if d.desired_replicas != row.desired {
            problems.push(format!(
                "desired {}, want {}",
                d.desired_replicas, row.desired
            ));
        }
        if d.rescale != (d.desired_replicas != d.current_replicas) {
            problems.push(format!(
                "rescale {} with desired {} current {}",
                d.rescale, d.desired_replicas, d.current_replicas
            ));
        }
        for &(t, s, r) in row.conditions {
            if cond(&d, t) != Some((s, r)) {
                problems.push(format!("{t}: {:?}, want ({s}, {r})", cond(&d, t)));
            }
        }
        if !problems.is_empty() {
            failed.push(format!(
                "{}: {}\n{}",
                row.name,
                problems.join("; "),
                d.explanation
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{} row(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn without_behavior() {
    run(vec![
        Row {
            name: "scale-up limit max(2 × 3, 4) = 6",
            case: proposing(1, 20, 3, 10).no_stabilization(),
            desired: 6,
            conditions: &[
                ("ScalingLimited", "True", "ScaleUpLimit"),
                ("AbleToScale", "True", "SucceededRescale"),
            ],
        },
        Row {
            name: "scale-up limit is at least 4",
            case: proposing(1, 20, 1, 10).no_stabilization(),
            desired: 4,
            conditions: &[("ScalingLimited", "True", "ScaleUpLimit")],
        },
        Row {
            name: "maxReplicas below the scale-up limit: TooManyReplicas",
            case: proposing(1, 10, 8, 15).no_stabilization(),
            desired: 10,
            conditions: &[("ScalingLimited", "True", "TooManyReplicas")],
        },
        Row {
            name: "below minReplicas: TooFewReplicas",
            case: proposing(2, 10, 3, 1).no_stabilization(),
            desired: 2,
            conditions: &[("ScalingLimited", "True", "TooFewReplicas")],
        },
        Row {
            name: "within range",
            case: proposing(1, 10, 4, 6).no_stabilization(),
            desired: 6,
            conditions: &[
                ("ScalingLimited", "False", "DesiredWithinRange"),
                ("ScalingActive", "True", "ValidMetricFound"),
            ],
        },
        Row {
            name: "downscale stabilization: a higher recommendation 2 min ago holds",
            case: proposing(1, 10, 5, 3).recs(&[(120, 5)]),
            desired: 5,
            conditions: &[("AbleToScale", "True", "ScaleDownStabilized")],
        },
        Row {
            name: "downscale stabilization takes the highest within the window, not the current",
            case: proposing(1, 10, 6, 3).recs(&[(200, 4), (100, 5)]),
            desired: 5,
            conditions: &[("AbleToScale", "True", "SucceededRescale")],
        },
        Row {
            name: "a recommendation exactly 300 s old still counts (upstream drops only older ones)",
            case: proposing(1, 10, 5, 3).recs(&[(300, 5)]),
            desired: 5,
            conditions: &[("AbleToScale", "True", "ScaleDownStabilized")],
        },
        Row {
            name: "a recommendation 301 s old does not",
            case: proposing(1, 10, 5, 3).recs(&[(301, 5)]),
            desired: 3,
            conditions: &[("AbleToScale", "True", "SucceededRescale")],
        },
        Row {
            name: "no history: the current count is the first recommendation (no immediate scale-down)",
            case: proposing(1, 10, 5, 3),
            desired: 5,
            conditions: &[("AbleToScale", "True", "ScaleDownStabilized")],
        },
        Row {
            name: "no history does not hold a scale-up",
            case: proposing(1, 10, 5, 8),
            desired: 8,
            conditions: &[],
        },
        Row {
            name: "stabilization without behavior never slows a scale-up",
            case: proposing(1, 20, 5, 8).recs(&[(10, 2)]),
            desired: 8,
            conditions: &[],
        },
        Row {
            name: "configured downscale window (60 s)",
            case: {
                let mut b = proposing(1, 10, 5, 3).recs(&[(90, 5)]);
                b.0.config.downscale_stabilization_seconds = 60;
                b
            },
            desired: 3,
            conditions: &[],
        },
    ]);
}

#[test]
fn with_behavior() {
    let up = |window: Option<i32>,
              select: Option<SelectPolicy>,
              policies: &[(ballast_api::horizontal::ScalingPolicyType, i32, i32)]| {
        Some(rules(window, select, policies))
    };
    let down0 = || Some(rules(Some(0), None, &[]));
    run(vec![
        Row {
            name: "Pods policy: +2 per 60 s",
            case: proposing(1, 50, 4, 20).behavior(up(None, None, &[(PodsPolicy, 2, 60)]), down0()),
            desired: 6,
            conditions: &[("ScalingLimited", "True", "ScaleUpLimit")],
        },
        Row {
            name: "Percent policy rounds up: 150% of 5 = 7.5 → 8",
            case: proposing(1, 50, 5, 20).behavior(up(None, None, &[(Percent, 50, 60)]), down0()),
            desired: 8,
            conditions: &[("ScalingLimited", "True", "ScaleUpLimit")],
        },
        Row {
            name: "selectPolicy Max (default) picks the larger change: max(10 + 2, 15) = 15",
            case: proposing(1, 50, 10, 40).behavior(
                up(None, None, &[(PodsPolicy, 2, 60), (Percent, 50, 60)]),
                down0(),
            ),
            desired: 15,
            conditions: &[],
        },
        Row {
            name: "selectPolicy Min picks the smaller change: 12",
            case: proposing(1, 50, 10, 40).behavior(
                up(
                    None,
                    Some(SelectPolicy::Min),
                    &[(PodsPolicy, 2, 60), (Percent, 50, 60)],
                ),
                down0(),
            ),
            desired: 12,
            conditions: &[("ScalingLimited", "True", "ScaleUpLimit")],
        },
        Row {
            name: "selectPolicy Disabled: no scale-up at all",
            case: proposing(1, 50, 10, 40)
                .behavior(up(None, Some(SelectPolicy::Disabled), &[]), down0()),
            desired: 10,
            conditions: &[("ScalingLimited", "True", "ScaleUpLimit")],
        },
        Row {
            name: "maxReplicas below the policy limit: TooManyReplicas",
            case: proposing(1, 12, 10, 40).behavior(up(None, None, &[(Percent, 100, 60)]), down0()),
            desired: 12,
            conditions: &[("ScalingLimited", "True", "TooManyReplicas")],
        },
        Row {
            name: "replicas added within the period count against the policy",
            case: proposing(1, 50, 8, 20)
                .behavior(up(None, None, &[(PodsPolicy, 4, 60)]), down0())
                .ups(&[(30, 4)]),
            desired: 8,
            conditions: &[("ScalingLimited", "True", "ScaleUpLimit")],
        },
        Row {
            name: "an event exactly one period old no longer counts",
            case: proposing(1, 50, 8, 20)
                .behavior(up(None, None, &[(PodsPolicy, 4, 60)]), down0())
                .ups(&[(60, 4)]),
            desired: 12,
            conditions: &[],
        },
        Row {
            name: "replicas removed within the period raise the start of the period",
            case: proposing(1, 50, 6, 20)
                .behavior(up(None, None, &[(PodsPolicy, 2, 60)]), down0())
                .downs(&[(20, 3)]),
            desired: 11,
            conditions: &[],
        },
        Row {
            name: "default scale-up policies: max(2 + 4, 2 × 2) = 6",
            case: proposing(1, 100, 2, 100).behavior(None, down0()),
            desired: 6,
            conditions: &[("ScalingLimited", "True", "ScaleUpLimit")],
        },
        Row {
            name: "default scale-up policies from 10: max(14, 20) = 20",
            case: proposing(1, 100, 10, 100).behavior(None, down0()),
            desired: 20,
            conditions: &[],
        },
        Row {
            name: "scale-down Percent truncates: 70% of 10 = 7",
            case: proposing(1, 50, 10, 1)
                .behavior(None, Some(rules(Some(0), None, &[(Percent, 30, 60)]))),
            desired: 7,
            conditions: &[("ScalingLimited", "True", "ScaleDownLimit")],
        },
        Row {
            name: "scale-down Percent truncates: 50% of 5 = 2.5 → 2",
            case: proposing(1, 50, 5, 1)
                .behavior(None, Some(rules(Some(0), None, &[(Percent, 50, 60)]))),
            desired: 2,
            conditions: &[("ScalingLimited", "True", "ScaleDownLimit")],
        },
        Row {
            name: "scale-down Max picks the larger change: min(10 - 2, 5) = 5",
            case: proposing(1, 50, 10, 1).behavior(
                None,
                Some(rules(
                    Some(0),
                    None,
                    &[(PodsPolicy, 2, 60), (Percent, 50, 60)],
                )),
            ),
            desired: 5,
            conditions: &[],
        },
        Row {
            name: "scale-down Min picks the smaller change: 8",
            case: proposing(1, 50, 10, 1).behavior(
                None,
                Some(rules(
                    Some(0),
                    Some(SelectPolicy::Min),
                    &[(PodsPolicy, 2, 60), (Percent, 50, 60)],
                )),
            ),
            desired: 8,
            conditions: &[],
        },
        Row {
            name: "scale-down Disabled",
            case: proposing(1, 50, 10, 1).behavior(
                None,
                Some(rules(Some(0), Some(SelectPolicy::Disabled), &[])),
            ),
            desired: 10,
            conditions: &[("ScalingLimited", "True", "ScaleDownLimit")],
        },
        Row {
            name: "replicas removed within the period count: start 10, 50% → 5",
            case: proposing(1, 50, 7, 1)
                .behavior(None, Some(rules(Some(0), None, &[(Percent, 50, 60)])))
                .downs(&[(20, 3)]),
            desired: 5,
            conditions: &[],
        },
        Row {
            name: "minReplicas above the policy limit: TooFewReplicas",
            case: proposing(4, 50, 5, 0)
                .behavior(None, Some(rules(Some(0), None, &[(Percent, 100, 15)]))),
            desired: 4,
            conditions: &[("ScalingLimited", "True", "TooFewReplicas")],
        },
        Row {
            name: "scale-up window: lowest recommendation of the last 120 s",
            case: proposing(1, 50, 4, 10)
                .behavior(up(Some(120), None, &[]), down0())
                .recs(&[(60, 5)]),
            desired: 5,
            conditions: &[("AbleToScale", "True", "SucceededRescale")],
        },
        Row {
            name: "scale-up window holds at current when a recent recommendation was lower",
            case: proposing(1, 50, 4, 10)
                .behavior(up(Some(120), None, &[]), down0())
                .recs(&[(60, 3)]),
            desired: 4,
            conditions: &[("AbleToScale", "True", "ScaleUpStabilized")],
        },
        Row {
            name: "scale-down window defaults to the controller's 300 s",
            case: proposing(1, 50, 9, 3)
                .behavior(None, None)
                .recs(&[(100, 9)]),
            desired: 9,
            conditions: &[("AbleToScale", "True", "ScaleDownStabilized")],
        },
        Row {
            name: "with behavior a recommendation exactly at the window's edge is out (strictly after)",
            case: proposing(1, 50, 9, 3)
                .behavior(None, Some(rules(Some(60), None, &[])))
                .recs(&[(60, 9)]),
            desired: 3,
            conditions: &[],
        },
        Row {
            name: "scale-down window: highest of the last 60 s",
            case: proposing(1, 50, 9, 3)
                .behavior(None, Some(rules(Some(60), None, &[])))
                .recs(&[(30, 6), (90, 9)]),
            desired: 6,
            conditions: &[],
        },
    ]);
}

#[test]
fn history_is_pruned_and_recorded() {
    let d = proposing(1, 50, 4, 6)
        .behavior(
            Some(rules(Some(60), None, &[(PodsPolicy, 4, 120)])),
            Some(rules(Some(30), None, &[(Percent, 10, 90)])),
        )
        .recs(&[(30, 7), (59, 8), (61, 9), (3000, 1)])
        .ups(&[(100, 1), (121, 2)])
        .downs(&[(89, 1), (200, 3)])
        .decide();
    let h = d.status.history.unwrap();
    let recs: Vec<i32> = h.recommendations.iter().map(|r| r.replicas).collect();
    // Kept: within the longest window (60 s) plus the new recommendation.
    assert_eq!(recs, vec![7, 8, 6]);
    // Longest policy period is 120 s; the new scale-up event (+2, 4 → 6) is appended.
    let ups: Vec<i32> = h.scale_up_events.iter().map(|e| e.change).collect();
    assert_eq!(ups, vec![1, 2]);
    let downs: Vec<i32> = h.scale_down_events.iter().map(|e| e.change).collect();
    assert_eq!(downs, vec![1]);
    assert_eq!(d.desired_replicas, 6);

    // Without behavior no scale events are kept at all.
    let d = proposing(1, 50, 4, 6).ups(&[(10, 1)]).decide();
    let h = d.status.history.unwrap();
    assert!(h.scale_up_events.is_empty() && h.scale_down_events.is_empty());
}

#[test]
fn rescale_reasons_match_upstream() {
    let d = proposing(1, 50, 4, 6).no_stabilization().decide();
    assert_eq!(
        d.events[0].message,
        "New size: 6; reason: external metric work above target"
    );
    let d = proposing(1, 50, 8, 6).no_stabilization().decide();
    assert_eq!(
        d.events[0].message,
        "New size: 6; reason: All metrics below target"
    );
}

#[test]
fn equal_recommendations_in_a_row_are_stored_once() {
    // Steady load: each sync recommends 5; the stored history keeps one entry, at the latest time.
    let mut status = None;
    for step in 0..4 {
        let mut b = proposing(1, 10, 5, 5);
        b.0.now = now() + jiff::SignedDuration::from_secs(15 * step);
        b.0.autoscaler.status = status.take();
        let d = b.decide();
        let recs = &d.status.history.as_ref().unwrap().recommendations;
        assert_eq!(recs.len(), 1, "{recs:?}");
        assert_eq!(recs[0].time.0, b.0.now);
        status = Some(d.status);
    }
    // A different value starts a new entry; the stabilization still sees the earlier run.
    let mut b = proposing(1, 10, 5, 3);
    b.0.now = now() + jiff::SignedDuration::from_secs(60);
    b.0.autoscaler.status = status;
    let d = b.decide();
    assert_eq!(d.status.history.as_ref().unwrap().recommendations.len(), 2);
    assert_eq!(d.desired_replicas, 5);
}
