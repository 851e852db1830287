//! Table tests of the per-metric replica calculation (upstream's replica_calculator.go): the
//! scenarios of its tests plus the edges of each rule, as our own rows with expected numbers.

mod common;
use ballast_horizontal::*;
use common::*;

struct Row {
    name: &'static str,
    case: B,
    /// Proposal of metric 0.
    proposal: Option<i32>,
    /// Extra checks on the decision.
    check: fn(&Decision) -> Result<(), String>,
}

fn ok(_: &Decision) -> Result<(), String> {
    Ok(())
}

fn run(rows: Vec<Row>) {
    let mut failed = Vec::new();
    for row in rows {
        let d = row.case.decide();
        let got = d.metrics.first().and_then(|m| m.replicas);
        if got != row.proposal {
            failed.push(format!(
                "{}: proposal {:?}, want {:?}\n{}",
                row.name, got, row.proposal, d.explanation
            ));
            continue;
        }
        if let Err(e) = (row.check)(&d) {
            failed.push(format!("{}: {e}\n{}", row.name, d.explanation));
        }
    }
    assert!(
        failed.is_empty(),
        "{} row(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

fn util(d: &Decision) -> Option<i32> {
    d.metrics[0]
        .current
        .as_ref()
        .and_then(|s| s.resource.as_ref().or(None))
        .and_then(|r| r.current.average_utilization)
}

/// Starts 3 pods, CPU at 30% target, without stabilization history.
fn cpu3(target: i32) -> B {
    hpa(Some(1), 100, vec![cpu_util(target)])
        .current(3)
        .no_stabilization()
}

#[test]
fn resource_utilization() {
    run(vec![
        Row {
            name: "scale up: 50% of requests vs 30% → ceil(1.667 × 3) = 5",
            case: cpu3(30)
                .pods(pods(3))
                .reading(seq(&["300m", "500m", "700m"])),
            proposal: Some(5),
            check: |d| {
                (util(d) == Some(50))
                    .then_some(())
                    .ok_or(format!("utilization {:?}", util(d)))?;
                let avg = d.metrics[0]
                    .current
                    .as_ref()
                    .unwrap()
                    .resource
                    .as_ref()
                    .unwrap()
                    .current
                    .average_value
                    .clone();
                (avg == Some(milli_quantity(500)))
                    .then_some(())
                    .ok_or(format!("raw average {avg:?}"))
            },
        },
        Row {
            name: "scale up with a never-ready pod counted at 0: 60% → 40% → 4",
            case: cpu3(30)
                .pods(vec![
                    never_ready(pod("p0", "1")),
                    pod("p1", "1"),
                    pod("p2", "1"),
                ])
                .reading(seq(&["300m", "500m", "700m"])),
            proposal: Some(4),
            check: |d| {
                (util(d) == Some(60))
                    .then_some(())
                    .ok_or("utilization of the ready pods only".into())
            },
        },
        Row {
            name: "hot CPU during the initialization period: sample within a window of readiness is distrusted",
            case: cpu3(30)
                .pods(vec![
                    {
                        let mut p = pod("p0", "1");
                        p.start_time = Some(ago(60));
                        p.ready = Some(ReadyCondition {
                            status: ConditionStatus::True,
                            last_transition_time: ago(10),
                        });
                        p
                    },
                    pod("p1", "1"),
                    pod("p2", "1"),
                ])
                .reading(seq(&["1000m", "500m", "700m"])),
            proposal: Some(4),
            check: ok,
        },
        Row {
            name: "initialization period over a full window after readiness: the sample counts",
            case: cpu3(30)
                .pods(vec![
                    {
                        let mut p = pod("p0", "1");
                        p.start_time = Some(ago(60));
                        p.ready = Some(ReadyCondition {
                            status: ConditionStatus::True,
                            last_transition_time: ago(30),
                        });
                        p
                    },
                    pod("p1", "1"),
                    pod("p2", "1"),
                ])
                .reading(seq(&["1000m", "500m", "700m"])),
            // (1000+500+700)/3000 = 73% → 2.433 → ceil(7.3) = 8
            proposal: Some(8),
            check: ok,
        },
        Row {
            name: "unready pods would flip the direction: keep 3",
            case: cpu3(30)
                .pods(vec![
                    pod("p0", "1"),
                    never_ready(pod("p1", "1")),
                    never_ready(pod("p2", "1")),
                ])
                .reading(seq(&["400m", "500m", "700m"])),
            proposal: Some(3),
            check: |d| {
                (d.metrics[0].explanation.contains("reverses the direction"))
                    .then_some(())
                    .ok_or("rule".into())
            },
        },
        Row {
            name: "no Ready condition: CPU sample distrusted (unready)",
            case: cpu3(30)
                .pods(vec![
                    {
                        let mut p = pod("p0", "1");
                        p.ready = None;
                        p
                    },
                    pod("p1", "1"),
                    pod("p2", "1"),
                ])
                .reading(seq(&["300m", "500m", "700m"])),
            proposal: Some(4),
            check: ok,
        },
        Row {
            name: "past the initialization period, unready but was ready before: still counts",
            case: cpu3(30)
                .pods(vec![
                    {
                        let mut p = pod("p0", "1");
                        p.ready = Some(ReadyCondition {
                            status: ConditionStatus::False,
                            last_transition_time: ago(60),
                        });
                        p
                    },
                    pod("p1", "1"),
                    pod("p2", "1"),
                ])
                .reading(seq(&["300m", "500m", "700m"])),
            proposal: Some(5),
            check: ok,
        },
        Row {
            name: "readiness rules are CPU only: memory counts an unready pod's sample",
            case: hpa(Some(1), 100, vec![resource("memory", target_util(50))])
                .current(2)
                .no_stabilization()
                .pods(vec![never_ready(pod("p0", "1")), pod("p1", "1")])
                .reading(seq(&["1Gi", "1Gi"])),
            // 100% of 1Gi vs 50% → ratio 2 → ceil(2 × 2) = 4
            proposal: Some(4),
            check: ok,
        },
        Row {
            name: "failed pods are ignored",
            case: hpa(Some(1), 100, vec![cpu_util(30)])
                .current(2)
                .no_stabilization()
                .pods(vec![
                    pod("p0", "1"),
                    pod("p1", "1"),
                    {
                        let mut p = pod("p2", "1");
                        p.phase = PodPhase::Failed;
                        p
                    },
                    {
                        let mut p = pod("p3", "1");
                        p.phase = PodPhase::Failed;
                        p
                    },
                ])
                .reading(seq(&["500m", "700m", "4000m", "3000m"])),
            proposal: Some(4),
            check: ok,
        },
        Row {
            name: "pods being deleted are ignored",
            case: hpa(Some(1), 100, vec![cpu_util(30)])
                .current(2)
                .no_stabilization()
                .pods(vec![pod("p0", "1"), pod("p1", "1"), {
                    let mut p = pod("p2", "1");
                    p.deleting = true;
                    p
                }])
                .reading(seq(&["500m", "700m", "4000m"])),
            proposal: Some(4),
            check: ok,
        },
        Row {
            name: "scale down: 28% vs 50% → ceil(0.56 × 5) = 3",
            case: hpa(Some(1), 100, vec![cpu_util(50)])
                .current(5)
                .no_stabilization()
                .pods(pods(5))
                .reading(seq(&["100m", "300m", "500m", "250m", "250m"])),
            proposal: Some(3),
            check: |d| {
                (d.desired_replicas == 3)
                    .then_some(())
                    .ok_or(format!("desired {}", d.desired_replicas))
            },
        },
        Row {
            name: "scale down ignores unready pods: 33% of the ready ones → 2",
            case: hpa(Some(1), 100, vec![cpu_util(50)])
                .current(5)
                .no_stabilization()
                .pods(vec![
                    never_ready(pod("p0", "1")),
                    never_ready(pod("p1", "1")),
                    pod("p2", "1"),
                    pod("p3", "1"),
                    pod("p4", "1"),
                ])
                .reading(seq(&["100m", "300m", "500m", "250m", "250m"])),
            proposal: Some(2),
            check: ok,
        },
        Row {
            name: "scale down with a missing pod counted at 100% of its request: 10% → 32% → 3",
            case: hpa(Some(1), 100, vec![cpu_util(50)])
                .current(4)
                .no_stabilization()
                .pods(pods(4))
                .reading(seq(&["100m", "100m", "100m"])),
            proposal: Some(3),
            check: ok,
        },
        Row {
            name: "missing pod on scale-down above 100% target counts at the target: → 2 (not 1)",
            case: hpa(Some(1), 100, vec![cpu_util(200)])
                .current(3)
                .no_stabilization()
                .pods(pods(3))
                .reading(seq(&["300m", "300m"])),
            proposal: Some(2),
            check: ok,
        },
        Row {
            name: "scale up with a missing pod counted at 0: 150% → 112% → ceil(2.24 × 4) = 9",
            case: hpa(Some(1), 100, vec![cpu_util(50)])
                .current(4)
                .no_stabilization()
                .pods(pods(4))
                .reading(seq(&["1500m", "1500m", "1500m"])),
            proposal: Some(9),
            check: ok,
        },
        Row {
            name: "ratio exactly 1 with a missing pod: nothing to fill, within tolerance",
            case: hpa(Some(1), 100, vec![cpu_util(100)])
                .current(2)
                .no_stabilization()
                .pods(pods(2))
                .reading(seq(&["1000m"])),
            proposal: Some(2),
            check: ok,
        },
        Row {
            name: "102% vs 100%: within tolerance, keep 3",
            case: cpu3(100)
                .pods(pods(3))
                .reading(seq(&["1010m", "1030m", "1020m"])),
            proposal: Some(3),
            check: ok,
        },
        Row {
            name: "utilization is integer percent: 1019m/1000m... = 101% (not 101.9%)",
            case: cpu3(92)
                .pods(pods(3))
                .reading(seq(&["1019m", "1019m", "1019m"])),
            // 101 / 92 = 1.0978 within tolerance; with 101.9% it would be 1.1076 → 4
            proposal: Some(3),
            check: ok,
        },
        Row {
            name: "ContainerResource: only the named container's request counts",
            case: hpa(
                Some(1),
                100,
                vec![container_resource("cpu", "app", target_util(50))],
            )
            .current(2)
            .no_stabilization()
            .pods(
                (0..2)
                    .map(|i| {
                        let mut p = pod(&format!("p{i}"), "500m");
                        p.containers.push(ContainerSnapshot {
                            name: "sidecar".into(),
                            requests: [("cpu".to_string(), q("500m"))].into(),
                            restart_policy: None,
                        });
                        p
                    })
                    .collect(),
            )
            .reading(seq(&["400m", "400m"])),
            // 80% of 500m vs 50% → 1.6 → ceil(3.2) = 4
            proposal: Some(4),
            check: |d| {
                let reason = cond(d, "ScalingActive");
                (reason == Some(("True", "ValidMetricFound")))
                    .then_some(())
                    .ok_or(format!("{reason:?}"))
            },
        },
        Row {
            name: "restartable init containers count, others do not",
            case: hpa(Some(1), 100, vec![cpu_util(50)])
                .current(2)
                .no_stabilization()
                .pods(
                    (0..2)
                        .map(|i| {
                            let mut p = pod(&format!("p{i}"), "500m");
                            p.init_containers = vec![
                                ContainerSnapshot {
                                    name: "proxy".into(),
                                    requests: [("cpu".to_string(), q("500m"))].into(),
                                    restart_policy: Some("Always".into()),
                                },
                                ContainerSnapshot {
                                    name: "migrate".into(),
                                    requests: [("cpu".to_string(), q("4"))].into(),
                                    restart_policy: None,
                                },
                            ];
                            p
                        })
                        .collect(),
                )
                .reading(seq(&["1", "1"])),
            // 2000m / 2000m = 100% vs 50% → 4
            proposal: Some(4),
            check: |d| {
                (util(d) == Some(100))
                    .then_some(())
                    .ok_or(format!("{:?}", util(d)))
            },
        },
        Row {
            name: "pod-level requests win over the containers' sum",
            case: hpa(Some(1), 100, vec![cpu_util(50)])
                .current(2)
                .no_stabilization()
                .pods(
                    (0..2)
                        .map(|i| {
                            let mut p = pod(&format!("p{i}"), "500m");
                            p.requests = [("cpu".to_string(), q("2"))].into();
                            p
                        })
                        .collect(),
                )
                .reading(seq(&["1", "1"])),
            // 50% of 2 cpu: within tolerance
            proposal: Some(2),
            check: ok,
        },
        Row {
            name: "a missing request is an error naming the container and pod",
            case: hpa(Some(1), 100, vec![cpu_util(50)])
                .current(2)
                .pods(vec![pod("p0", "1"), {
                    let mut p = pod("p1", "1");
                    p.containers[0].requests.remove("cpu");
                    p
                }])
                .reading(seq(&["1", "1"])),
            proposal: None,
            check: |d| {
                let e = d.metrics[0].error.clone().unwrap_or_default();
                (e.contains("missing request for cpu in container app of Pod p1")
                    && d.path == Path::MetricsFailed)
                    .then_some(())
                    .ok_or(e)
            },
        },
        Row {
            name: "no pods: error",
            case: hpa(Some(1), 100, vec![cpu_util(50)])
                .current(2)
                .reading(seq(&[])),
            proposal: None,
            check: |d| {
                let e = d.metrics[0].error.clone().unwrap_or_default();
                e.contains("no pods returned by selector")
                    .then_some(())
                    .ok_or(e)
            },
        },
        Row {
            name: "all pods unready: no metrics for targeted pods",
            case: hpa(Some(1), 100, vec![cpu_util(50)])
                .current(2)
                .pods(vec![
                    never_ready(pod("p0", "1")),
                    never_ready(pod("p1", "1")),
                ])
                .reading(seq(&["1", "1"])),
            proposal: None,
            check: |d| {
                let e = d.metrics[0].error.clone().unwrap_or_default();
                e.contains("did not receive metrics for targeted pods")
                    .then_some(())
                    .ok_or(e)
            },
        },
        Row {
            name: "a read error is reported with upstream's wording",
            case: hpa(Some(1), 100, vec![cpu_util(50)])
                .current(2)
                .pods(pods(2))
                .reading(error("metrics API unavailable")),
            proposal: None,
            check: |d| {
                let e = d.metrics[0].error.clone().unwrap_or_default();
                (e == "failed to get cpu utilization: unable to get metrics for resource cpu: metrics API unavailable")
                    .then_some(())
                    .ok_or(e)
            },
        },
    ]);
}

#[test]
fn pods_and_average_value_metrics() {
    run(vec![
        Row {
            name: "pods metric scale up: average 20 vs 15 → ceil(1.333 × 3) = 4",
            case: hpa(Some(1), 100, vec![pods_metric("rps", "15")])
                .current(3)
                .no_stabilization()
                .pods(pods(3))
                .reading(seq(&["20", "10", "30"])),
            proposal: Some(4),
            check: ok,
        },
        Row {
            name: "pods metric scale down: 12 vs 20 → ceil(0.6 × 5) = 3",
            case: hpa(Some(1), 100, vec![pods_metric("rps", "20")])
                .current(5)
                .no_stabilization()
                .pods(pods(5))
                .reading(seq(&["12", "12", "12", "12", "12"])),
            proposal: Some(3),
            check: ok,
        },
        Row {
            name: "pods metric: missing pod at the target on scale-down: 10 → 13 (integer) → ceil(0.65 × 3) = 2",
            case: hpa(Some(1), 100, vec![pods_metric("rps", "20")])
                .current(3)
                .no_stabilization()
                .pods(pods(3))
                .reading(seq(&["10", "10"])),
            proposal: Some(2),
            check: ok,
        },
        Row {
            name: "pods metric: pending pods count as 0 on scale-up: 30 → 15 (×4) → ceil(1.5 × 4) = 6",
            case: hpa(Some(1), 100, vec![pods_metric("rps", "10")])
                .current(4)
                .no_stabilization()
                .pods(vec![
                    pod("p0", "1"),
                    pod("p1", "1"),
                    {
                        let mut p = pod("p2", "1");
                        p.phase = PodPhase::Pending;
                        p
                    },
                    {
                        let mut p = pod("p3", "1");
                        p.phase = PodPhase::Pending;
                        p
                    },
                ])
                .reading(seq(&["30", "30"])),
            proposal: Some(6),
            check: ok,
        },
        Row {
            name: "average is integer milli: (1m + 2m) / 2 = 1m, exactly the target",
            case: hpa(Some(1), 100, vec![pods_metric("rps", "1m")])
                .current(2)
                .no_stabilization()
                .pods(pods(2))
                .reading(seq(&["1m", "2m"])),
            proposal: Some(2),
            check: ok,
        },
        Row {
            name: "samples of pods not in the list still count (as upstream's metric map)",
            case: hpa(Some(1), 100, vec![pods_metric("rps", "10")])
                .current(3)
                .no_stabilization()
                .pods(pods(3))
                .reading(samples(&[
                    ("p0", "5"),
                    ("p1", "5"),
                    ("x1", "5"),
                    ("x2", "5"),
                    ("x3", "5"),
                    ("x4", "5"),
                ])),
            // missing p2 on scale-down: (30 + 10) / 7 = 5 → 0.5 → ceil(3.5) = 4 > 3: keep 3
            proposal: Some(3),
            check: |d| {
                d.metrics[0]
                    .explanation
                    .contains("would go the other way")
                    .then_some(())
                    .ok_or("count flip".into())
            },
        },
        Row {
            name: "memory AverageValue: 600Mi vs 500Mi → ceil(1.2 × 2) = 3",
            case: hpa(Some(1), 100, vec![resource("memory", target_avg("500Mi"))])
                .current(2)
                .no_stabilization()
                .pods(pods(2))
                .reading(seq(&["600Mi", "600Mi"])),
            proposal: Some(3),
            check: |d| {
                (d.metrics[0].name == "memory resource")
                    .then_some(())
                    .ok_or(d.metrics[0].name.clone())
            },
        },
        Row {
            name: "CPU AverageValue still applies the CPU readiness rules",
            case: hpa(Some(1), 100, vec![resource("cpu", target_avg("500m"))])
                .current(2)
                .no_stabilization()
                .pods(vec![never_ready(pod("p0", "1")), pod("p1", "1")])
                .reading(seq(&["2", "1"])),
            // ready p1: 1000m vs 500m → 2 → unready at 0 → 500m → within tolerance: keep 2
            proposal: Some(2),
            check: ok,
        },
    ]);
}

/// 100 pods at `avg` (a Pods metric with target 100), tolerance from `tweak`.
fn hundred(avg: &str, tweak: fn(B) -> B) -> B {
    let names: Vec<String> = (0..100).map(|i| format!("p{i}")).collect();
    let pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), avg)).collect();
    tweak(
        hpa(Some(1), 1000, vec![pods_metric("rps", "100")])
            .current(100)
            .no_stabilization()
            .pods(pods(100))
            .reading(samples(&pairs)),
    )
}

fn tolerance(up: Option<&str>, down: Option<&str>) -> impl Fn(B) -> B {
    let up = up.map(String::from);
    let down = down.map(String::from);
    move |b: B| {
        let (u, d) = (up.clone(), down.clone());
        b.behavior(
            Some(ballast_api::horizontal::ScalingRules {
                tolerance: u.map(|t| q(&t)),
                ..Default::default()
            }),
            Some(ballast_api::horizontal::ScalingRules {
                tolerance: d.map(|t| q(&t)),
                stabilization_window_seconds: Some(0),
                ..Default::default()
            }),
        )
    }
}

#[test]
fn tolerance_edges() {
    fn plain(b: B) -> B {
        b
    }
    fn up20(b: B) -> B {
        tolerance(Some("0.2"), None)(b)
    }
    fn down1(b: B) -> B {
        tolerance(None, Some("0.01"))(b)
    }
    fn zero(b: B) -> B {
        tolerance(Some("0"), Some("0"))(b)
    }
    run(vec![
        Row {
            name: "ratio exactly 1.1: within",
            case: hundred("110", plain),
            proposal: Some(100),
            check: ok,
        },
        // 1.11 × 100 is 111.00000000000001 in binary floating point: ceil gives 112, as upstream's Go does.
        Row {
            name: "ratio 1.11: out → 112 (float)",
            case: hundred("111", plain),
            proposal: Some(112),
            check: ok,
        },
        Row {
            name: "ratio exactly 0.9: within",
            case: hundred("90", plain),
            proposal: Some(100),
            check: ok,
        },
        Row {
            name: "ratio 0.89: out → 89",
            case: hundred("89", plain),
            proposal: Some(89),
            check: ok,
        },
        Row {
            name: "scaleUp tolerance 0.2: 1.2 within",
            case: hundred("120", up20),
            proposal: Some(100),
            check: ok,
        },
        Row {
            name: "scaleUp tolerance 0.2: 1.21 out",
            case: hundred("121", up20),
            proposal: Some(121),
            check: ok,
        },
        Row {
            name: "scaleUp tolerance 0.2 leaves scale-down at 0.1",
            case: hundred("89", up20),
            proposal: Some(89),
            check: ok,
        },
        Row {
            name: "scaleDown tolerance 0.01: 0.98 out → 98",
            case: hundred("98", down1),
            proposal: Some(98),
            check: ok,
        },
        Row {
            name: "scaleDown tolerance 0.01: 0.99 within",
            case: hundred("99", down1),
            proposal: Some(100),
            check: ok,
        },
        Row {
            name: "scaleDown tolerance 0.01 leaves scale-up at 0.1",
            case: hundred("105", down1),
            proposal: Some(100),
            check: ok,
        },
        Row {
            name: "tolerance 0: 1.01 → 101",
            case: hundred("101", zero),
            proposal: Some(101),
            check: ok,
        },
        Row {
            name: "tolerance 0: exactly 1 keeps",
            case: hundred("100", zero),
            proposal: Some(100),
            check: ok,
        },
    ]);
}

#[test]
fn single_value_metrics() {
    run(vec![
        Row {
            name: "Object Value: ratio 5 × 3 ready pods = 15",
            case: hpa(
                Some(1),
                100,
                vec![object_metric("rps", target_value("100"))],
            )
            .current(3)
            .no_stabilization()
            .pods(pods(3))
            .reading(value("500")),
            proposal: Some(15),
            check: |d| {
                // No behavior: at most max(2 × 3, 4) = 6.
                (d.desired_replicas == 6
                    && cond(d, "ScalingLimited") == Some(("True", "ScaleUpLimit")))
                .then_some(())
                .ok_or(format!(
                    "desired {} {:?}",
                    d.desired_replicas,
                    cond(d, "ScalingLimited")
                ))
            },
        },
        Row {
            name: "Object Value counts only running and ready pods",
            case: hpa(
                Some(1),
                100,
                vec![object_metric("rps", target_value("100"))],
            )
            .current(3)
            .no_stabilization()
            .pods(vec![
                pod("p0", "1"),
                pod("p1", "1"),
                never_ready(pod("p2", "1")),
            ])
            .reading(value("250")),
            proposal: Some(5),
            check: ok,
        },
        Row {
            name: "Object Value within tolerance needs no pods",
            case: hpa(
                Some(1),
                100,
                vec![object_metric("rps", target_value("100"))],
            )
            .current(3)
            .no_stabilization()
            .reading(value("105")),
            proposal: Some(3),
            check: ok,
        },
        Row {
            name: "Object Value outside tolerance with no pods: error",
            case: hpa(
                Some(1),
                100,
                vec![object_metric("rps", target_value("100"))],
            )
            .current(3)
            .reading(value("300")),
            proposal: None,
            check: |d| {
                let e = d.metrics[0].error.clone().unwrap_or_default();
                (e.contains("unable to calculate ready pods")
                    && cond(d, "ScalingActive") == Some(("False", "FailedGetObjectMetric")))
                .then_some(())
                .ok_or(e)
            },
        },
        Row {
            name: "Object AverageValue: ceil(1200 / 100) = 12",
            case: hpa(Some(1), 100, vec![object_metric("rps", target_avg("100"))])
                .current(10)
                .no_stabilization()
                .reading(value("1200")),
            proposal: Some(12),
            check: |d| {
                let avg = d.metrics[0]
                    .current
                    .as_ref()
                    .and_then(|s| s.object.as_ref())
                    .and_then(|o| o.current.average_value.clone());
                (avg == Some(q("120")))
                    .then_some(())
                    .ok_or(format!("{avg:?}"))
            },
        },
        Row {
            name: "AverageValue within tolerance keeps the *status* replica count",
            case: hpa(Some(1), 100, vec![object_metric("rps", target_avg("100"))])
                .current(10)
                .status_replicas(8)
                .no_stabilization()
                .reading(value("820")),
            proposal: Some(8),
            check: ok,
        },
        Row {
            name: "External values are summed: (300 + 500) / 100 per replica = 8",
            case: hpa(
                Some(1),
                100,
                vec![external_metric("queue", target_avg("100"))],
            )
            .current(2)
            .no_stabilization()
            .reading(values(&["300", "500"])),
            proposal: Some(8),
            check: ok,
        },
        Row {
            name: "External Value from zero replicas: ceil(250 / 100) = 3, no tolerance",
            case: hpa(
                Some(0),
                100,
                vec![external_metric("queue", target_value("100"))],
            )
            .current(0)
            .no_stabilization()
            .reading(value("250")),
            proposal: Some(3),
            check: |d| {
                (d.desired_replicas == 3 && d.rescale)
                    .then_some(())
                    .ok_or(format!("{}", d.desired_replicas))
            },
        },
        Row {
            name: "External Value 0 at zero replicas stays at zero",
            case: hpa(
                Some(0),
                100,
                vec![external_metric("queue", target_value("100"))],
            )
            .current(0)
            .no_stabilization()
            .reading(value("0")),
            proposal: Some(0),
            check: |d| {
                (d.desired_replicas == 0 && !d.rescale)
                    .then_some(())
                    .ok_or(format!("{}", d.desired_replicas))
            },
        },
        Row {
            name: "External Value 105 from zero: ceil(1.05) = 2 (no tolerance from zero)",
            case: hpa(
                Some(0),
                100,
                vec![external_metric("queue", target_value("100"))],
            )
            .current(0)
            .no_stabilization()
            .reading(value("105")),
            proposal: Some(2),
            check: ok,
        },
        Row {
            name: "Prometheus AverageValue behaves as External",
            case: hpa(Some(1), 100, vec![prometheus(target_avg("10"), None)])
                .current(2)
                .no_stabilization()
                .reading(value("45")),
            proposal: Some(5),
            check: ok,
        },
        Row {
            name: "Event (redis list) Value: ratio 2 × 2 ready pods = 4",
            case: hpa(Some(1), 100, vec![redis(target_value("10"), None)])
                .current(2)
                .no_stabilization()
                .pods(pods(2))
                .reading(value("20")),
            proposal: Some(4),
            check: |d| {
                (d.metrics[0].name == "redis-list event source jobs")
                    .then_some(())
                    .ok_or(d.metrics[0].name.clone())
            },
        },
    ]);
}
