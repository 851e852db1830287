//! Decisions per second of the pure core on one core: 100-pod targets with a CPU utilization
//! metric and a `behavior` (policies, windows, a history of recommendations and scale events).
//!
//! `cargo bench -p ballast-horizontal` prints three figures:
//! - `decide`: the hot path the controller and the simulator run every sync on a prepared
//!   snapshot (goal: at least 1,000,000 decisions/s);
//! - `prepare + decide`: the same, parsing the snapshot each time (quantities, times, samples);
//! - `explain`: prepare + decide + render (conditions, events, status, explanation strings).

use ballast_api::common::{CrossVersionObjectReference, Time};
use ballast_api::horizontal::*;
use ballast_horizontal::*;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::hint::black_box;
use std::time::{Duration, Instant};

const PODS: usize = 100;

fn snapshot(variant: usize) -> Snapshot {
    let now: Timestamp = "2025-03-01T12:00:00Z".parse().unwrap();
    let ago = |s: i64| now - SignedDuration::from_secs(s);
    let spec = HorizontalAutoscalerSpec {
        scale_target_ref: CrossVersionObjectReference {
            api_version: Some("apps/v1".into()),
            kind: "Deployment".into(),
            name: "web".into(),
        },
        min_replicas: Some(10),
        max_replicas: 400,
        metrics: vec![MetricSpec {
            type_: MetricSourceType::Resource,
            resource: Some(ResourceMetricSource {
                name: "cpu".into(),
                target: MetricTarget {
                    type_: MetricTargetType::Utilization,
                    average_utilization: Some(60),
                    ..Default::default()
                },
            }),
            ..Default::default()
        }],
        behavior: Some(HorizontalAutoscalerBehavior {
            scale_up: Some(ScalingRules {
                stabilization_window_seconds: Some(60),
                select_policy: Some(SelectPolicy::Max),
                policies: vec![
                    ScalingPolicy {
                        type_: ScalingPolicyType::Pods,
                        value: 10,
                        period_seconds: 60,
                    },
                    ScalingPolicy {
                        type_: ScalingPolicyType::Percent,
                        value: 50,
                        period_seconds: 60,
                    },
                ],
                tolerance: None,
            }),
            scale_down: Some(ScalingRules {
                stabilization_window_seconds: Some(300),
                select_policy: Some(SelectPolicy::Max),
                policies: vec![ScalingPolicy {
                    type_: ScalingPolicyType::Percent,
                    value: 10,
                    period_seconds: 60,
                }],
                tolerance: None,
            }),
        }),
        ..Default::default()
    };
    let mut object = HorizontalAutoscaler::new("web", spec);
    object.metadata = ObjectMeta {
        name: Some("web".into()),
        namespace: Some("shop".into()),
        creation_timestamp: Some(Time(ago(86_400))),
        ..Default::default()
    };
    // Load level differs per variant: scale up, hold, scale down.
    let level: i64 = [250, 300, 330, 380, 420, 200, 150, 310][variant % 8];
    // 20 recommendations over the last 5 minutes (one per 15 s sync) around where this load
    // has been heading, and a few scale events.
    let past = (100 + (level - 300) / 3) as i32;
    let history = ScalingHistory {
        recommendations: (0..20)
            .map(|i| TimestampedReplicas {
                time: Time(ago(15 * (i + 1))),
                replicas: past + (i as i32 % 3) - 1,
            })
            .collect(),
        scale_up_events: vec![ScaleEvent {
            time: Time(ago(40)),
            change: 5,
        }],
        scale_down_events: vec![ScaleEvent {
            time: Time(ago(200)),
            change: 3,
        }],
        ..Default::default()
    };
    object.status = Some(HorizontalAutoscalerStatus {
        history: Some(history),
        ..Default::default()
    });

    let pods: Vec<PodSnapshot> = (0..PODS)
        .map(|i| PodSnapshot {
            name: format!("web-{i}"),
            phase: if i % 50 == 7 {
                PodPhase::Pending
            } else {
                PodPhase::Running
            },
            ready: Some(ReadyCondition {
                status: if i % 25 == 3 {
                    ConditionStatus::False
                } else {
                    ConditionStatus::True
                },
                last_transition_time: ago(3000),
            }),
            start_time: Some(if i % 20 == 1 { ago(60) } else { ago(3600) }),
            deleting: i == 99,
            containers: vec![ContainerSnapshot {
                name: "app".into(),
                requests: [("cpu".to_string(), Quantity("500m".into()))].into(),
                restart_policy: None,
            }],
            init_containers: vec![],
            requests: Default::default(),
        })
        .collect();
    let samples: Vec<PodSample> = (0..PODS)
        .filter(|i| i % 33 != 5) // a few pods without samples
        .map(|i| PodSample {
            pod: format!("web-{i}"),
            value: Quantity(format!("{}m", level + (i as i64 * 37 % 61))),
            timestamp: Some(ago(10)),
            window: Some("30s".into()),
        })
        .collect();
    Snapshot {
        autoscaler: object,
        scale: TargetScale {
            spec_replicas: 100,
            status_replicas: Some(100),
            selector: "app=web".into(),
            error: None,
        },
        pods,
        metrics: vec![MetricReading {
            pods: Some(samples),
            ..Default::default()
        }],
        other_autoscalers: vec![],
        demand_history: Vec::new(),
        config: ControllerConfig::default(),
        now,
    }
}

/// Runs `f` in rounds of `batch` calls for about `budget`; returns the best calls per second.
fn measure(budget: Duration, batch: u64, mut f: impl FnMut(u64)) -> f64 {
    let mut best: f64 = 0.0;
    let start = Instant::now();
    let mut i = 0u64;
    while start.elapsed() < budget {
        let t = Instant::now();
        for _ in 0..batch {
            f(i);
            i += 1;
        }
        let rate = batch as f64 / t.elapsed().as_secs_f64();
        best = best.max(rate);
    }
    best
}

fn main() {
    let snapshots: Vec<Snapshot> = (0..8).map(snapshot).collect();
    let prepared: Vec<Prepared> = snapshots
        .iter()
        .map(|s| prepare(s).expect("valid snapshot"))
        .collect();
    let mut outcome = Outcome::default();

    // Sanity: the variants decide differently and the way they should.
    let desired: Vec<i32> = prepared
        .iter()
        .map(|p| {
            decide(p, &mut outcome);
            outcome.desired
        })
        .collect();
    println!("100-pod CPU-utilization targets with behavior, desired per variant: {desired:?}");

    let decide_rate = measure(Duration::from_secs(3), 200_000, |i| {
        decide(black_box(&prepared[(i & 7) as usize]), &mut outcome);
        black_box(outcome.desired);
    });
    let prepare_rate = measure(Duration::from_secs(2), 2_000, |i| {
        let p = prepare(black_box(&snapshots[(i & 7) as usize])).unwrap();
        decide(&p, &mut outcome);
        black_box(outcome.desired);
    });
    let explain_rate = measure(Duration::from_secs(2), 2_000, |i| {
        let d = explain(black_box(&snapshots[(i & 7) as usize])).unwrap();
        black_box(d.desired_replicas);
    });

    println!();
    println!("horizontal decisions, one core, 100 pods, CPU utilization + behavior:");
    println!(
        "  decide (prepared snapshot):  {:>12.0} decisions/s  ({:.0} ns/decision)  goal >= 1,000,000: {}",
        decide_rate,
        1e9 / decide_rate,
        if decide_rate >= 1_000_000.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "  prepare + decide:            {:>12.0} decisions/s  ({:.1} µs/decision)",
        prepare_rate,
        1e6 / prepare_rate
    );
    println!(
        "  explain (prepare+decide+render): {:>8.0} decisions/s  ({:.1} µs/decision)",
        explain_rate,
        1e6 / explain_rate
    );
}
