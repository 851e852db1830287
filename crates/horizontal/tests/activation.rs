//! Table tests of the KEDA-style rules: activation from zero or idle replicas, cooldown,
//! idle replicas, fallback, pause, cron windows.

mod common;
use ballast_api::horizontal::{Fallback, FallbackBehavior};
use ballast_horizontal::*;
use common::*;

struct Row {
    name: &'static str,
    case: B,
    desired: i32,
    path: Path,
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
        if d.path != row.path {
            problems.push(format!("path {:?}, want {:?}", d.path, row.path));
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

/// Scale-to-zero on a Prometheus Value target of 10 (activation threshold `activation`).
fn queue(min: i32, current: i32, v: &str, activation: Option<&str>) -> B {
    hpa(
        Some(min),
        50,
        vec![prometheus(target_value("10"), activation)],
    )
    .current(current)
    .pods(pods(current as usize))
    .reading(value(v))
}

#[test]
fn activation_and_cooldown() {
    run(vec![
        Row {
            name: "active at zero: from zero ceil(25 / 10) = 3",
            case: queue(0, 0, "25", None),
            desired: 3,
            path: Path::Activated,
            conditions: &[
                ("Active", "True", "ScalerActive"),
                ("ScalingActive", "True", "ValidMetricFound"),
            ],
        },
        Row {
            name: "inactive at zero (value 0, threshold 0): stays idle",
            case: queue(0, 0, "0", None),
            desired: 0,
            path: Path::Idle,
            conditions: &[
                ("Active", "False", "ScalerNotActive"),
                ("ScalingActive", "False", "ScalingIdle"),
            ],
        },
        Row {
            name: "value equal to the activation threshold is not active",
            case: queue(0, 0, "5", Some("5")),
            desired: 0,
            path: Path::Idle,
            conditions: &[],
        },
        Row {
            name: "value above the activation threshold is active (at least 1)",
            case: queue(0, 0, "6", Some("5")),
            desired: 1,
            path: Path::Activated,
            conditions: &[],
        },
        Row {
            name: "activation goes to at least minReplicas (idle 0, min 3)",
            case: queue(3, 0, "1", None).spec(|s| s.idle_replicas = Some(0)),
            desired: 3,
            path: Path::Activated,
            conditions: &[],
        },
        Row {
            name: "activation is rate-limited like any scale-up (no behavior: 4 from 0)",
            case: queue(0, 0, "400", None),
            desired: 4,
            path: Path::Activated,
            conditions: &[("ScalingLimited", "True", "ScaleUpLimit")],
        },
        Row {
            name: "activation from idle replicas (idle 1 < min 2)",
            case: queue(2, 1, "15", None)
                .spec(|s| s.idle_replicas = Some(1))
                .no_stabilization(),
            desired: 2,
            path: Path::Activated,
            conditions: &[],
        },
        Row {
            name: "inactive and cooling down (last active 100 s ago): the HPA part runs with min 1",
            case: queue(0, 3, "0", None).last_active(100).no_stabilization(),
            desired: 1,
            path: Path::Normal,
            conditions: &[
                ("Active", "False", "ScalerCooldown"),
                ("ScalingLimited", "True", "TooFewReplicas"),
            ],
        },
        Row {
            name: "inactive for exactly the cooldown (300 s): still cooling down",
            case: queue(0, 3, "0", None).last_active(300).no_stabilization(),
            desired: 1,
            path: Path::Normal,
            conditions: &[("Active", "False", "ScalerCooldown")],
        },
        Row {
            name: "inactive for longer than the cooldown: to zero",
            case: queue(0, 3, "0", None).last_active(301).no_stabilization(),
            desired: 0,
            path: Path::Deactivated,
            conditions: &[
                ("Active", "False", "ScalerNotActive"),
                ("AbleToScale", "True", "SucceededRescale"),
            ],
        },
        Row {
            name: "custom cooldown of 60 s",
            case: queue(0, 3, "0", None)
                .last_active(61)
                .spec(|s| s.cooldown_period_seconds = Some(60)),
            desired: 0,
            path: Path::Deactivated,
            conditions: &[],
        },
        Row {
            name: "to idle replicas, not zero",
            case: queue(3, 5, "0", None)
                .spec(|s| s.idle_replicas = Some(1))
                .last_active(400),
            desired: 1,
            path: Path::Deactivated,
            conditions: &[],
        },
        Row {
            name: "never active and created long ago: to zero at once",
            case: queue(0, 2, "0", None),
            desired: 0,
            path: Path::Deactivated,
            conditions: &[],
        },
        Row {
            name: "never active, inside the initial cooldown: wait",
            case: queue(0, 2, "0", None)
                .created(60)
                .spec(|s| s.initial_cooldown_period_seconds = Some(120))
                .no_stabilization(),
            desired: 1,
            path: Path::Normal,
            conditions: &[("Active", "False", "ScalerCooldown")],
        },
        Row {
            name: "a failing metric blocks the scale to zero",
            case: hpa(
                Some(0),
                50,
                vec![
                    prometheus(target_value("10"), None),
                    redis(target_value("10"), None),
                ],
            )
            .current(2)
            .pods(pods(2))
            .reading(value("0"))
            .reading(error("connection refused"))
            .last_active(900)
            .no_stabilization(),
            desired: 2,
            path: Path::MetricsFailed,
            conditions: &[
                ("Active", "False", "ScalerNotActive"),
                ("ScalingActive", "False", "FailedGetEventMetric"),
            ],
        },
        Row {
            name: "a CPU metric is always active: never to zero",
            case: hpa(
                Some(0),
                50,
                vec![prometheus(target_value("10"), None), cpu_util(50)],
            )
            .current(2)
            .pods(pods(2))
            .reading(value("0"))
            .reading(seq(&["500m", "500m"]))
            .last_active(900)
            .no_stabilization(),
            desired: 2,
            path: Path::Normal,
            conditions: &[("Active", "True", "ScalerActive")],
        },
        Row {
            name: "active while running: the HPA algorithm (ceil(30 / 10 × 2 ready) = 6)",
            case: queue(0, 2, "30", None).no_stabilization(),
            desired: 4,
            path: Path::Normal,
            conditions: &[
                ("Active", "True", "ScalerActive"),
                ("ScalingLimited", "True", "ScaleUpLimit"),
            ],
        },
        Row {
            name: "without Prometheus/Event metrics and without idle replicas: plain HPA (no activation)",
            case: hpa(
                Some(0),
                50,
                vec![external_metric("queue", target_value("10"))],
            )
            .current(3)
            .pods(pods(3))
            .reading(value("0"))
            .no_stabilization(),
            desired: 0,
            path: Path::Normal,
            conditions: &[],
        },
        Row {
            name: "minReplicas 1 without idle: a manual 0 disables scaling (upstream), even with Prometheus",
            case: queue(1, 0, "50", None),
            desired: 0,
            path: Path::ScalingDisabled,
            conditions: &[("ScalingActive", "False", "ScalingDisabled")],
        },
    ]);
}

#[test]
fn activation_records_the_last_active_time() {
    let d = queue(0, 2, "30", None).decide();
    let h = d.status.history.unwrap();
    assert_eq!(h.last_active_time.map(|t| t.0), Some(now()));
    let d = queue(0, 2, "0", None).last_active(100).decide();
    let h = d.status.history.unwrap();
    assert_eq!(h.last_active_time.map(|t| t.0), Some(ago(100)));
}

fn with_fallback(
    behavior: FallbackBehavior,
) -> impl Fn(&mut ballast_api::horizontal::HorizontalAutoscalerSpec) {
    move |s| {
        s.fallback = Some(Fallback {
            failure_threshold: 3,
            replicas: 6,
            behavior: Some(behavior),
        })
    }
}

/// One Prometheus metric that fails now, after `before` failures in a row.
fn failing(current: i32, before: i32, behavior: FallbackBehavior) -> B {
    hpa(Some(1), 20, vec![prometheus(target_avg("10"), None)])
        .current(current)
        .spec(with_fallback(behavior))
        .reading(error("server returned HTTP 503"))
        .failures("s0-prometheus", before)
        .no_stabilization()
}

#[test]
fn fallback() {
    run(vec![
        Row {
            name: "fourth failure in a row with threshold 3: fallback to 6",
            case: failing(4, 3, FallbackBehavior::Static),
            desired: 6,
            path: Path::Normal,
            conditions: &[
                ("Fallback", "True", "FallbackExists"),
                ("ScalingActive", "True", "ValidMetricFound"),
            ],
        },
        Row {
            name: "third failure: not yet (strictly more than the threshold), metrics failed",
            case: failing(4, 2, FallbackBehavior::Static),
            desired: 4,
            path: Path::MetricsFailed,
            conditions: &[
                ("Fallback", "False", "NoFallbackFound"),
                ("ScalingActive", "False", "FailedGetPrometheusMetric"),
            ],
        },
        Row {
            name: "currentReplicas: keep",
            case: failing(4, 3, FallbackBehavior::CurrentReplicas),
            desired: 4,
            path: Path::Normal,
            conditions: &[("Fallback", "True", "FallbackExists")],
        },
        Row {
            name: "currentReplicasIfHigher below the fallback: 6",
            case: failing(4, 3, FallbackBehavior::CurrentReplicasIfHigher),
            desired: 6,
            path: Path::Normal,
            conditions: &[],
        },
        Row {
            name: "currentReplicasIfHigher above the fallback: keep 8",
            case: failing(8, 3, FallbackBehavior::CurrentReplicasIfHigher),
            desired: 8,
            path: Path::Normal,
            conditions: &[],
        },
        Row {
            name: "currentReplicasIfLower above the fallback: 6",
            case: failing(8, 3, FallbackBehavior::CurrentReplicasIfLower),
            desired: 6,
            path: Path::Normal,
            conditions: &[],
        },
        Row {
            name: "currentReplicasIfLower below the fallback: keep 4",
            case: failing(4, 3, FallbackBehavior::CurrentReplicasIfLower),
            desired: 4,
            path: Path::Normal,
            conditions: &[],
        },
        Row {
            name: "fallback is the max with the other, valid metrics",
            case: hpa(
                Some(1),
                20,
                vec![
                    prometheus(target_avg("10"), None),
                    external_metric("q", target_avg("1")),
                ],
            )
            .current(4)
            .spec(with_fallback(FallbackBehavior::Static))
            .reading(error("timeout"))
            .reading(value("9"))
            .failures("s0-prometheus", 5)
            .no_stabilization(),
            desired: 8,
            path: Path::Normal,
            conditions: &[("Fallback", "True", "FallbackExists")],
        },
        Row {
            name: "no fallback from zero replicas",
            case: hpa(Some(0), 20, vec![prometheus(target_avg("10"), None)])
                .current(0)
                .spec(with_fallback(FallbackBehavior::Static))
                .reading(error("timeout"))
                .failures("s0-prometheus", 9),
            desired: 0,
            path: Path::Idle,
            conditions: &[("Fallback", "False", "NoFallbackFound")],
        },
    ]);
}

#[test]
fn failure_counts_are_kept_and_reset() {
    let d = failing(4, 2, FallbackBehavior::Static).decide();
    let f = &d.status.history.as_ref().unwrap().metric_failures;
    assert_eq!((f[0].metric.as_str(), f[0].count), ("s0-prometheus", 3));
    let d = hpa(Some(1), 20, vec![prometheus(target_avg("10"), None)])
        .current(4)
        .spec(with_fallback(FallbackBehavior::Static))
        .reading(value("40"))
        .failures("s0-prometheus", 7)
        .decide();
    assert!(
        d.status
            .history
            .as_ref()
            .unwrap()
            .metric_failures
            .is_empty()
    );
    assert_eq!(d.desired_replicas, 4);
}

#[test]
fn pause() {
    run(vec![
        Row {
            name: "paused: keep, whatever the metrics say",
            case: queue(1, 5, "500", None).spec(|s| s.paused = Some(true)),
            desired: 5,
            path: Path::Paused,
            conditions: &[
                ("Paused", "True", "ScalingPaused"),
                ("ScalingActive", "False", "ScalingPaused"),
            ],
        },
        Row {
            name: "paused with pausedReplicas: set once",
            case: queue(1, 5, "500", None).spec(|s| {
                s.paused = Some(true);
                s.paused_replicas = Some(2);
            }),
            desired: 2,
            path: Path::Paused,
            conditions: &[
                ("Paused", "True", "ScalingPaused"),
                ("AbleToScale", "True", "SucceededRescale"),
            ],
        },
        Row {
            name: "pausedReplicas without paused does nothing",
            case: queue(1, 5, "50", None)
                .spec(|s| s.paused_replicas = Some(2))
                .no_stabilization(),
            desired: 10,
            path: Path::Normal,
            conditions: &[],
        },
        Row {
            name: "resumed: the Paused condition turns False",
            case: queue(1, 5, "50", None).no_stabilization().conditions(vec![
                ballast_api::common::Condition {
                    type_: "Paused".into(),
                    status: "True".into(),
                    reason: "ScalingPaused".into(),
                    message: String::new(),
                    last_transition_time: ballast_api::common::Time(ago(600)),
                    observed_generation: None,
                },
            ]),
            desired: 10,
            path: Path::Normal,
            conditions: &[("Paused", "False", "ScalingResumed")],
        },
    ]);
    // While paused the history is left alone.
    let b = queue(1, 5, "500", None)
        .spec(|s| s.paused = Some(true))
        .recs(&[(10, 5)]);
    let before = b.0.autoscaler.status.as_ref().unwrap().history.clone();
    assert_eq!(b.decide().status.history, before);
}

#[test]
fn cron_windows() {
    // NOW is 2025-03-01T12:00:00Z, a Saturday.
    let case = |start: &str, end: &str, tz: Option<&str>| {
        hpa(Some(1), 20, vec![cron(start, end, tz, 7)])
            .current(2)
            .pods(pods(2))
            .no_stabilization()
    };
    run(vec![
        Row {
            name: "inside 11:00-13:00 UTC: 7",
            case: case("0 11 * * *", "0 13 * * *", None),
            desired: 4, // no behavior: max(2 × 2, 4)
            path: Path::Normal,
            conditions: &[],
        },
        Row {
            name: "window opening exactly now is open",
            case: case("0 12 * * *", "0 13 * * *", None).behavior(None, None),
            desired: 6, // default policies: max(2 + 4, 2 × 2)
            path: Path::Normal,
            conditions: &[],
        },
        Row {
            name: "window closing exactly now is closed",
            case: case("0 10 * * *", "0 12 * * *", None),
            desired: 1,
            path: Path::Normal,
            conditions: &[],
        },
        Row {
            name: "weekdays only: closed on Saturday",
            case: case("0 8 * * 1-5", "0 18 * * 1-5", None),
            desired: 1,
            path: Path::Normal,
            conditions: &[],
        },
        Row {
            name: "time zone: 12:00Z is 21:00 in Tokyo, inside 20:00-22:00 local",
            case: case("0 20 * * *", "0 22 * * *", Some("Asia/Tokyo")),
            desired: 4,
            path: Path::Normal,
            conditions: &[],
        },
        Row {
            name: "time zone: 12:00Z is 07:00 in New York, outside 08:00-18:00 local",
            case: case("0 8 * * *", "0 18 * * *", Some("America/New_York")),
            desired: 1,
            path: Path::Normal,
            conditions: &[],
        },
        Row {
            name: "unknown time zone: metric error naming the field",
            case: case("0 8 * * *", "0 18 * * *", Some("Mars/Olympus")),
            desired: 2,
            path: Path::MetricsFailed,
            conditions: &[("ScalingActive", "False", "FailedGetEventMetric")],
        },
    ]);
    let d = case("0 8 * * *", "0 18 * * *", Some("Mars/Olympus")).decide();
    assert!(
        d.metrics[0]
            .error
            .as_deref()
            .unwrap()
            .contains("spec.metrics[0].event.cron.timezone")
    );
    // A cron source activates from zero with minReplicas 0.
    let d = hpa(Some(0), 20, vec![cron("0 11 * * *", "0 13 * * *", None, 3)])
        .current(0)
        .decide();
    assert_eq!((d.path, d.desired_replicas), (Path::Activated, 3));
}

#[test]
fn per_pod_metrics_at_zero_are_not_failures() {
    // Idle at zero with a CPU metric (no pods to read) and a Prometheus metric.
    let b = hpa(
        Some(0),
        20,
        vec![cpu_util(50), prometheus(target_value("10"), None)],
    )
    .current(0)
    .spec(with_fallback(FallbackBehavior::Static))
    .reading(seq(&[]))
    .failures("s0-cpu", 7);
    let d = b.clone().reading(value("0")).decide();
    assert_eq!(d.path, Path::Idle);
    assert!(event_reasons(&d).is_empty(), "{:?}", d.events);
    assert!(
        d.status
            .history
            .as_ref()
            .unwrap()
            .metric_failures
            .is_empty()
    );
    // Activated by Prometheus: still no warning for the CPU metric.
    let d = b.reading(value("25")).decide();
    assert_eq!((d.path, d.desired_replicas), (Path::Activated, 3));
    assert_eq!(event_reasons(&d), vec!["SuccessfulRescale"]);
}

#[test]
fn between_idle_and_min_goes_back_to_idle_after_the_cooldown() {
    // idle 0, min 3, someone set 2 replicas: nothing active.
    let b = |secs: i64| {
        hpa(Some(3), 20, vec![prometheus(target_value("10"), None)])
            .current(2)
            .pods(pods(2))
            .spec(|s| s.idle_replicas = Some(0))
            .reading(value("0"))
            .last_active(secs)
    };
    let d = b(100).decide();
    assert_eq!((d.path, d.desired_replicas), (Path::Idle, 2));
    assert_eq!(cond(&d, "Active"), Some(("False", "ScalerCooldown")));
    let d = b(400).decide();
    assert_eq!((d.path, d.desired_replicas), (Path::Deactivated, 0));
}
