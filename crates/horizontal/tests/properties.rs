//! Property tests: bounds, determinism, buffer reuse, monotonicity, and a closed loop that feeds
//! each decision's status back into the next snapshot.

mod common;
use ballast_api::horizontal::{ScalingPolicyType, SelectPolicy};
use ballast_horizontal::*;
use common::*;
use jiff::SignedDuration;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct PodGen {
    phase: u8,
    ready: u8,
    young: bool,
    deleting: bool,
    sample: Option<u32>,
}

fn pod_gen() -> impl Strategy<Value = PodGen> {
    (
        0u8..10,
        0u8..10,
        any::<bool>(),
        prop::bool::weighted(0.05),
        prop::option::weighted(0.9, 0u32..4000),
    )
        .prop_map(|(phase, ready, young, deleting, sample)| PodGen {
            phase,
            ready,
            young,
            deleting,
            sample,
        })
}

#[derive(Debug, Clone)]
struct Case {
    min: i32,
    max: i32,
    current: i32,
    kind: u8,
    target: u32,
    value: u32,
    pods: Vec<PodGen>,
    behavior: Option<(u8, u8, i32, i32, i32)>,
    recs: Vec<(i64, i32)>,
    idle: bool,
    error: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        (0i32..5, 0i32..60, 0i32..80),
        (0u8..6, 1u32..300, 0u32..20_000),
        prop::collection::vec(pod_gen(), 0..30),
        prop::option::of((0u8..3, 0u8..3, 1i32..200, 1i32..300, 0i32..400)),
        prop::collection::vec((0i64..900, 0i32..80), 0..12),
        (any::<bool>(), prop::bool::weighted(0.1)),
    )
        .prop_map(
            |(
                (min, extra, current),
                (kind, target, value),
                pods,
                behavior,
                recs,
                (idle, error),
            )| Case {
                min,
                max: (min + extra).max(1),
                // Mostly within or near [min, max]; values often near zero (activation thresholds).
                current: current % ((min + extra).max(1) + 3),
                kind,
                target,
                value: if value % 4 == 0 { value % 8 } else { value },
                pods,
                behavior,
                recs,
                idle,
                error,
            },
        )
}

fn build(c: &Case) -> B {
    let metric = match c.kind {
        0 => cpu_util(c.target as i32),
        1 => pods_metric("rps", &c.target.to_string()),
        2 => external_metric("queue", target_value(&c.target.to_string())),
        3 => object_metric("rps", target_avg(&c.target.to_string())),
        4 => prometheus(target_avg(&c.target.to_string()), Some("5")),
        _ => resource("memory", target_avg(&format!("{}Mi", c.target))),
    };
    let per_pod = matches!(c.kind, 0 | 1 | 5);
    let pods: Vec<PodSnapshot> = c
        .pods
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let mut p = pod(&format!("p{i}"), "500m");
            p.phase = match g.phase {
                0 => PodPhase::Pending,
                1 => PodPhase::Failed,
                2 => PodPhase::Succeeded,
                _ => PodPhase::Running,
            };
            p.ready = match g.ready {
                0 => None,
                1 => Some(ReadyCondition {
                    status: ConditionStatus::False,
                    last_transition_time: ago(3590),
                }),
                2 => Some(ReadyCondition {
                    status: ConditionStatus::Unknown,
                    last_transition_time: ago(20),
                }),
                _ => Some(ReadyCondition {
                    status: ConditionStatus::True,
                    last_transition_time: ago(20),
                }),
            };
            if g.young {
                p.start_time = Some(ago(40));
            }
            p.deleting = g.deleting;
            p
        })
        .collect();
    let reading = if c.error {
        error("boom")
    } else if per_pod {
        let names: Vec<String> = (0..c.pods.len()).map(|i| format!("p{i}")).collect();
        let vals: Vec<String> = c
            .pods
            .iter()
            .map(|g| {
                if c.kind == 5 {
                    format!("{}Mi", g.sample.unwrap_or(0))
                } else {
                    format!("{}m", g.sample.unwrap_or(0))
                }
            })
            .collect();
        let pairs: Vec<(&str, &str)> = names
            .iter()
            .zip(vals.iter())
            .zip(c.pods.iter())
            .filter(|(_, g)| g.sample.is_some())
            .map(|((n, v), _)| (n.as_str(), v.as_str()))
            .collect();
        samples(&pairs)
    } else {
        value(&c.value.to_string())
    };
    let mut b = hpa(Some(c.min), c.max, vec![metric])
        .current(c.current)
        .pods(pods)
        .reading(reading);
    if c.idle && c.min > 0 {
        b = b.spec(|s| s.idle_replicas = Some(0));
    }
    if let Some((up_sel, down_sel, up_val, down_val, window)) = c.behavior {
        let sel = |s: u8| match s {
            0 => SelectPolicy::Max,
            1 => SelectPolicy::Min,
            _ => SelectPolicy::Disabled,
        };
        b = b.behavior(
            Some(rules(
                Some(window.min(3600)),
                Some(sel(up_sel)),
                &[
                    (ScalingPolicyType::Pods, up_val, 60),
                    (ScalingPolicyType::Percent, up_val, 30),
                ],
            )),
            Some(rules(
                None,
                Some(sel(down_sel)),
                &[(ScalingPolicyType::Percent, down_val.min(100), 60)],
            )),
        );
    }
    if !c.recs.is_empty() {
        b = b.recs(&c.recs);
    }
    b
}

fn check_bounds(c: &Case, d: &Decision) -> Result<(), TestCaseError> {
    let floor = c.min;
    let idle = if c.idle && c.min > 0 { Some(0) } else { None };
    match d.path {
        Path::Normal => {
            let lo = if idle.is_some() || (c.min == 0 && c.kind == 4) {
                floor.max(1)
            } else {
                floor
            };
            prop_assert!(
                d.desired_replicas >= lo && d.desired_replicas <= c.max,
                "desired {} not in [{lo}, {}]",
                d.desired_replicas,
                c.max
            );
        }
        Path::Activated => {
            prop_assert!(d.desired_replicas >= c.min.max(1) && d.desired_replicas <= c.max);
        }
        Path::Deactivated => prop_assert_eq!(d.desired_replicas, idle.unwrap_or(0)),
        Path::AboveMax => prop_assert_eq!(d.desired_replicas, c.max),
        Path::BelowMin => prop_assert!(d.desired_replicas >= c.min && d.desired_replicas <= c.max),
        _ => prop_assert_eq!(d.desired_replicas, c.current),
    }
    prop_assert_eq!(d.rescale, d.desired_replicas != d.current_replicas);
    prop_assert!(d.desired_replicas >= 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn desired_stays_within_bounds(c in case()) {
        let d = build(&c).decide();
        check_bounds(&c, &d)?;
    }

    #[test]
    fn decisions_are_deterministic_and_buffers_do_not_leak(a in case(), b in case()) {
        let sa = build(&a).snapshot();
        let sb = build(&b).snapshot();
        let pa = prepare(&sa).unwrap();
        let pb = prepare(&sb).unwrap();
        let mut fresh = Outcome::default();
        decide(&pa, &mut fresh);
        // The same outcome buffer used for another object first must not change the result.
        let mut reused = Outcome::default();
        decide(&pb, &mut reused);
        decide(&pa, &mut reused);
        prop_assert_eq!(render(&pa, &fresh), render(&pa, &reused));
        prop_assert_eq!(explain(&sa).unwrap(), explain(&sa).unwrap());
    }

    #[test]
    fn more_load_never_means_fewer_replicas(n in 1usize..40, target in 10i32..150, base in 0u32..3000, more in 0u32..3000) {
        let mk = |milli: u32| {
            let v = format!("{milli}m");
            let names: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
            let pairs: Vec<(&str, &str)> = names.iter().map(|s| (s.as_str(), v.as_str())).collect();
            hpa(Some(1), 1000, vec![cpu_util(target)])
                .current(n as i32)
                .pods(pods(n))
                .reading(samples(&pairs))
                .no_stabilization()
                .decide()
        };
        let low = mk(base);
        let high = mk(base + more);
        prop_assert!(high.metrics[0].replicas >= low.metrics[0].replicas);
        prop_assert!(high.desired_replicas >= low.desired_replicas);
    }

    /// Each decision's status (history, conditions) is the next snapshot's; the target follows
    /// the decisions. Bounds hold all along and the history stays small.
    #[test]
    fn closed_loop(loads in prop::collection::vec(0u32..6000, 5..40), behavior in any::<bool>(), min in 1i32..4) {
        let max = 30;
        let mut current = min;
        let mut status = None;
        for (step, load) in loads.iter().enumerate() {
            let names: Vec<String> = (0..current).map(|i| format!("p{i}")).collect();
            // The total load is spread over the pods that exist.
            let per_pod = format!("{}m", load / current.max(1) as u32);
            let pairs: Vec<(&str, &str)> = names.iter().map(|s| (s.as_str(), per_pod.as_str())).collect();
            let mut b = hpa(Some(min), max, vec![cpu_util(60)]).current(current).pods(pods(current as usize)).reading(samples(&pairs));
            if behavior {
                b = b.behavior(None, Some(rules(Some(60), None, &[])));
            }
            b.0.now = now() + SignedDuration::from_secs(15 * step as i64);
            b.0.autoscaler.status = status.clone();
            let d = b.decide();
            prop_assert!(d.desired_replicas >= min && d.desired_replicas <= max, "step {step}: {}", d.explanation);
            let h = d.status.history.as_ref().unwrap();
            // One recommendation per 15 s sync within the 300 s window (+ the seed).
            prop_assert!(h.recommendations.len() <= 22, "{} recommendations", h.recommendations.len());
            current = d.desired_replicas;
            status = Some(d.status.clone());
        }
    }
}

/// The generator above reaches the interesting paths (so the bounds property means something).
#[test]
fn the_generator_reaches_the_paths() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha),
    );
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..2000 {
        let c = case().new_tree(&mut runner).unwrap().current();
        let d = build(&c).decide();
        *seen.entry(format!("{:?}", d.path)).or_insert(0) += 1;
    }
    for path in [
        "Normal",
        "MetricsFailed",
        "AboveMax",
        "BelowMin",
        "ScalingDisabled",
        "Activated",
        "Deactivated",
        "Idle",
    ] {
        assert!(seen.contains_key(path), "{path} never reached: {seen:?}");
    }
}

fn extreme_quantity() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("9E".to_string()),
        Just("1e18".to_string()),
        Just("1n".to_string()),
        Just("999999999999".to_string()),
        (0u64..u64::MAX).prop_map(|v| format!("{v}m")),
        (0u32..10_000).prop_map(|v| v.to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Extreme counts and quantities never panic (debug builds check every overflow).
    #[test]
    fn extremes_never_panic(
        current in prop_oneof![Just(0), Just(1), Just(i32::MAX), 0i32..1000],
        max in prop_oneof![Just(1), Just(i32::MAX), 1i32..1000],
        kind in 0u8..6,
        target in extreme_quantity(),
        v in extreme_quantity(),
        request in extreme_quantity(),
        n in 0usize..5,
        fallback in any::<bool>(),
        behavior in any::<bool>(),
    ) {
        let metric = match kind {
            0 => cpu_util(80),
            1 => pods_metric("rps", &target),
            2 => external_metric("q", target_value(&target)),
            3 => object_metric("q", target_avg(&target)),
            4 => prometheus(target_value(&target), Some(&v)),
            _ => resource("cpu", target_avg(&target)),
        };
        let ps: Vec<PodSnapshot> = (0..n).map(|i| pod(&format!("p{i}"), &request)).collect();
        let reading = if matches!(kind, 0 | 1 | 5) {
            let names: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
            let pairs: Vec<(&str, &str)> = names.iter().map(|s| (s.as_str(), v.as_str())).collect();
            samples(&pairs)
        } else {
            value(&v)
        };
        let mut b = hpa(Some(0), max, vec![metric]).current(current).pods(ps).reading(reading)
            .ups(&[(10, i32::MAX)]).downs(&[(10, i32::MAX)]).recs(&[(10, i32::MAX), (20, 0)]);
        if fallback {
            b = b.spec(|s| s.fallback = Some(ballast_api::horizontal::Fallback { failure_threshold: 1, replicas: max, behavior: None }))
                .failures("s0-cpu", i32::MAX);
        }
        if behavior {
            b = b.behavior(Some(rules(None, None, &[(ScalingPolicyType::Percent, i32::MAX, 1800)])), None);
        }
        if let Ok(d) = explain(&b.0) {
            prop_assert!(d.desired_replicas >= 0);
            let _ = d.to_string();
            let _ = serde_json::to_string(&d).unwrap();
        }
    }
}
