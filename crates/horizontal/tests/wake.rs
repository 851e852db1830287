//! Table tests of the activation poll's questions: which objects rest, which sources a poll
//! reads, and whether a reading would activate (the decision's own answer).

mod common;
use ballast_horizontal::wake::{polled_sources, resting, would_activate};
use ballast_horizontal::*;
use common::*;

/// An object resting at zero on a Redis list (AverageValue 5, activation threshold
/// `activation`), read `v`.
fn at_zero(v: MetricReading, activation: Option<&str>) -> B {
    hpa(Some(0), 10, vec![redis(target_avg("5"), activation)])
        .current(0)
        .reading(v)
}

#[test]
fn a_reading_wakes_only_above_its_activation_threshold() {
    // (name, case, wakes)
    let rows: Vec<(&str, B, bool)> = vec![
        ("one item, threshold 0", at_zero(value("1"), None), true),
        ("empty list", at_zero(value("0"), None), false),
        ("at the threshold", at_zero(value("3"), Some("3")), false),
        ("above the threshold", at_zero(value("4"), Some("3")), true),
        (
            "failed read",
            at_zero(error("connection refused"), None),
            false,
        ),
        (
            "paused",
            at_zero(value("9"), None).spec(|s| s.paused = Some(true)),
            false,
        ),
        (
            "not at zero: the sync decides",
            at_zero(value("9"), None).current(2).pods(pods(2)),
            false,
        ),
        (
            "minReplicas 1 at zero: scaling disabled",
            at_zero(value("9"), None).spec(|s| s.min_replicas = Some(1)),
            false,
        ),
        (
            "idle replicas: below min and active",
            hpa(Some(2), 10, vec![redis(target_avg("5"), None)])
                .spec(|s| s.idle_replicas = Some(1))
                .current(1)
                .pods(pods(1))
                .reading(value("1")),
            true,
        ),
    ];
    for (name, case, want) in rows {
        let snapshot = case.snapshot();
        assert_eq!(would_activate(&snapshot).ok(), Some(want), "{name}");
        // The poll's answer is the sync's own path.
        let decision = explain(&snapshot).expect("decision");
        assert_eq!(
            decision.path == Path::Activated,
            want,
            "{name}: {decision:?}"
        );
    }
}

#[test]
fn an_open_cron_window_wakes_without_a_read() {
    let open = hpa(Some(0), 10, vec![cron("0 0 * * *", "59 23 * * *", None, 3)])
        .current(0)
        .reading(MetricReading::default());
    assert_eq!(would_activate(&open.snapshot()).ok(), Some(true));
}

#[test]
fn only_event_sources_with_a_backlog_are_polled() {
    let b = hpa(
        Some(0),
        10,
        vec![
            prometheus(target_value("10"), None),
            redis(target_avg("5"), None),
            cron("0 8 * * *", "0 18 * * *", None, 2),
            redis(target_avg("5"), Some("2")),
        ],
    );
    let polled: Vec<usize> = polled_sources(&b.snapshot().autoscaler)
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    assert_eq!(polled, [1, 3]);
}

#[test]
fn an_object_rests_after_an_idle_or_deactivating_decision() {
    let idle = at_zero(value("0"), None).decide();
    assert_eq!(idle.path, Path::Idle);
    assert!(resting(&idle));
    let active = at_zero(value("7"), None).decide();
    assert_eq!(active.path, Path::Activated);
    assert!(!resting(&active));
    let paused = at_zero(value("0"), None)
        .spec(|s| s.paused = Some(true))
        .decide();
    assert!(!resting(&paused));
    let mut failed = at_zero(value("0"), None)
        .current(1)
        .pods(pods(1))
        .last_active(3600)
        .decide();
    assert_eq!(failed.path, Path::Deactivated);
    assert!(resting(&failed));
    failed.events.push(Event {
        type_: EventType::Warning,
        reason: "FailedRescale".into(),
        message: "refused".into(),
    });
    assert!(!resting(&failed));
}
