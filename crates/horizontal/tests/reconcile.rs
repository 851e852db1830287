//! The reconcile-level rules: several metrics and their errors, the guards before any metric is
//! read (scale errors, zero replicas, out-of-range counts, selectors, spec errors), conditions
//! and events, and bad snapshots.

mod common;
use ballast_horizontal::*;
use common::*;

#[test]
fn several_metrics() {
    // cpu proposes 4 (60% vs 30% on 2 pods), rps proposes 6 (30 vs 10 on 2 pods).
    let both = || {
        hpa(Some(1), 20, vec![cpu_util(30), pods_metric("rps", "10")])
            .current(2)
            .pods(pods(2))
            .no_stabilization()
    };
    let d = both()
        .reading(seq(&["600m", "600m"]))
        .reading(seq(&["30", "30"]))
        .decide();
    assert_eq!(
        d.metrics.iter().map(|m| m.replicas).collect::<Vec<_>>(),
        vec![Some(4), Some(6)]
    );
    // No behavior: max(2 × 2, 4) = 4, reason names the largest proposal.
    assert_eq!(d.desired_replicas, 4);
    assert_eq!(d.reason, "pods metric rps above target");
    assert_eq!(
        cond(&d, "ScalingActive"),
        Some(("True", "ValidMetricFound"))
    );

    // All invalid: no scaling, the first error's reason, FailedComputeMetricsReplicas.
    let d = both()
        .reading(error("no metrics"))
        .reading(error("adapter down"))
        .decide();
    assert_eq!(
        (d.path, d.desired_replicas, d.rescale),
        (Path::MetricsFailed, 2, false)
    );
    assert_eq!(
        cond(&d, "ScalingActive"),
        Some(("False", "FailedGetResourceMetric"))
    );
    assert_eq!(
        event_reasons(&d),
        vec![
            "FailedGetResourceMetric",
            "FailedGetPodsMetric",
            "FailedComputeMetricsReplicas"
        ]
    );
    assert_eq!(
        d.events[2].message,
        "invalid metrics (2 invalid out of 2), first error is: failed to get cpu resource metric value: failed to get cpu utilization: unable to get metrics for resource cpu: no metrics"
    );

    // One invalid and the valid one would scale down: no scaling.
    let d = both()
        .current(5)
        .pods(pods(5))
        .reading(error("no metrics"))
        .reading(seq(&["1", "1", "1", "1", "1"]))
        .decide();
    assert_eq!((d.path, d.desired_replicas), (Path::MetricsFailed, 5));
    assert_eq!(
        cond(&d, "ScalingActive"),
        Some(("False", "FailedGetResourceMetric"))
    );

    // One invalid and the valid one scales up: scale up, report the failure.
    let d = both()
        .reading(error("no metrics"))
        .reading(seq(&["15", "15"]))
        .decide();
    assert_eq!((d.path, d.desired_replicas), (Path::Normal, 3));
    assert_eq!(
        cond(&d, "ScalingActive"),
        Some(("True", "ValidMetricFound"))
    );
    assert_eq!(
        event_reasons(&d),
        vec!["FailedGetResourceMetric", "SuccessfulRescale"]
    );

    // One invalid and the valid one keeps the count: not a scale-down, goes on.
    let d = both()
        .reading(error("no metrics"))
        .reading(seq(&["10", "10"]))
        .decide();
    assert_eq!(
        (d.path, d.desired_replicas, d.rescale),
        (Path::Normal, 2, false)
    );

    // Status keeps only the metrics that were read.
    let d = both()
        .reading(error("no metrics"))
        .reading(seq(&["15", "15"]))
        .decide();
    assert_eq!(d.status.current_metrics.len(), 1);
    assert_eq!(
        d.status.targets.as_deref(),
        Some("<unknown>/30%, 15/10 (avg)")
    );
}

#[test]
fn guards_before_metrics() {
    // Scale not readable.
    let mut b = hpa(Some(1), 10, vec![cpu_util(50)]).current(3);
    b.0.scale.error = Some("deployments.apps \"web\" not found".into());
    let d = b.decide();
    assert_eq!((d.path, d.rescale), (Path::FailedGetScale, false));
    assert_eq!(cond(&d, "AbleToScale"), Some(("False", "FailedGetScale")));
    assert_eq!(event_reasons(&d), vec!["FailedGetScale"]);

    // Zero replicas with minReplicas 1: scaling disabled.
    let d = hpa(Some(1), 10, vec![cpu_util(50)]).current(0).decide();
    assert_eq!(
        (d.path, d.desired_replicas, d.rescale),
        (Path::ScalingDisabled, 0, false)
    );
    assert_eq!(
        cond(&d, "ScalingActive"),
        Some(("False", "ScalingDisabled"))
    );
    assert_eq!(cond(&d, "AbleToScale"), Some(("True", "SucceededGetScale")));

    // Above max: to max without metrics; ScalingActive untouched.
    let d = hpa(Some(1), 10, vec![cpu_util(50)]).current(12).decide();
    assert_eq!((d.path, d.desired_replicas), (Path::AboveMax, 10));
    assert!(d.metrics.is_empty());
    assert_eq!(
        d.events[0].message,
        "New size: 10; reason: Current number of replicas above Spec.MaxReplicas"
    );
    assert_eq!(cond(&d, "ScalingActive"), None);

    // Below min.
    let d = hpa(Some(3), 10, vec![cpu_util(50)]).current(1).decide();
    assert_eq!((d.path, d.desired_replicas), (Path::BelowMin, 3));
    assert_eq!(
        d.events[0].message,
        "New size: 3; reason: Current number of replicas below Spec.MinReplicas"
    );

    // minReplicas defaults to 1.
    let d = hpa(None, 10, vec![cpu_util(50)]).current(0).decide();
    assert_eq!(d.path, Path::ScalingDisabled);

    // No metrics in the spec: 80% CPU.
    let d = hpa(Some(1), 10, vec![])
        .current(2)
        .pods(pods(2))
        .reading(seq(&["1600m", "1600m"]))
        .no_stabilization()
        .decide();
    assert_eq!(
        d.metrics[0].name,
        "cpu resource utilization (percentage of request)"
    );
    assert_eq!(d.metrics[0].replicas, Some(4));
}

#[test]
fn selectors() {
    let base = || {
        hpa(Some(1), 10, vec![cpu_util(50)])
            .current(2)
            .pods(pods(2))
            .reading(seq(&["1", "1"]))
    };
    let d = base().selector("").decide();
    assert_eq!((d.path, d.rescale), (Path::InvalidSelector, false));
    assert_eq!(
        cond(&d, "ScalingActive"),
        Some(("False", "InvalidSelector"))
    );
    assert_eq!(
        event_reasons(&d),
        vec!["SelectorRequired", "FailedComputeMetricsReplicas"]
    );

    let d = base().selector("app in (web").decide();
    assert_eq!(
        cond(&d, "ScalingActive"),
        Some(("False", "InvalidSelector"))
    );
    assert!(
        d.events[0]
            .message
            .starts_with("couldn't convert selector into a corresponding internal selector object")
    );

    let mut b = base();
    b.0.other_autoscalers = vec!["shop/web-old".into()];
    let d = b.decide();
    assert_eq!(
        cond(&d, "ScalingActive"),
        Some(("False", "AmbiguousSelector"))
    );

    // Above max is handled before the selector, as upstream.
    let d = base().selector("").current(20).decide();
    assert_eq!(d.path, Path::AboveMax);
}

#[test]
fn invalid_specs_name_the_field() {
    let d = hpa(Some(5), 3, vec![cpu_util(50)]).current(3).decide();
    assert_eq!(d.path, Path::InvalidSpec);
    assert_eq!(cond(&d, "ScalingActive"), Some(("False", "InvalidSpec")));
    assert!(
        d.events[0].message.starts_with("spec.minReplicas"),
        "{}",
        d.events[0].message
    );

    let d = hpa(Some(1), 10, vec![cpu_util(50)])
        .current(3)
        .behavior(Some(rules(None, None, &[(PodsPolicy, 0, 60)])), None)
        .decide();
    assert!(
        d.events[0]
            .message
            .starts_with("spec.behavior.scaleUp.policies[0].value"),
        "{}",
        d.events[0].message
    );

    let d = hpa(Some(1), 10, vec![cpu_util(50)])
        .current(3)
        .behavior(
            Some(ballast_api::horizontal::ScalingRules {
                tolerance: Some(q("lots")),
                ..Default::default()
            }),
            None,
        )
        .decide();
    assert!(
        d.events[0]
            .message
            .starts_with("spec.behavior.scaleUp.tolerance"),
        "{}",
        d.events[0].message
    );

    // A bad target is the metric's error, naming the field; the other metrics go on.
    let d = hpa(
        Some(1),
        10,
        vec![pods_metric("rps", "0"), pods_metric("qps", "10")],
    )
    .current(2)
    .pods(pods(2))
    .reading(seq(&["5", "5"]))
    .reading(seq(&["30", "30"]))
    .no_stabilization()
    .decide();
    assert_eq!(
        d.metrics[0].error.as_deref(),
        Some("spec.metrics[0].pods.target.averageValue: must be greater than 0")
    );
    assert_eq!(d.desired_replicas, 4);
}

#[test]
fn conditions_keep_their_transition_time() {
    let earlier = ballast_api::common::Time(ago(600));
    let prior = |type_: &str, status: &str, reason: &str| ballast_api::common::Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: String::new(),
        last_transition_time: earlier.clone(),
        observed_generation: None,
    };
    let d = hpa(Some(1), 10, vec![cpu_util(50)])
        .current(2)
        .pods(pods(2))
        .reading(seq(&["500m", "500m"]))
        .conditions(vec![
            prior("ScalingLimited", "True", "ScaleUpLimit"),
            prior("ScalingActive", "True", "ValidMetricFound"),
            prior("AbleToScale", "True", "ReadyForNewScale"),
        ])
        .decide();
    let get = |t: &str| d.conditions.iter().find(|c| c.type_ == t).unwrap();
    // Same status: the old transition time stays (order of the stored list stays too).
    assert_eq!(get("ScalingActive").last_transition_time, earlier);
    assert_eq!(get("AbleToScale").last_transition_time, earlier);
    // Flipped from True to False: now.
    assert_eq!(get("ScalingLimited").status, "False");
    assert_eq!(get("ScalingLimited").last_transition_time.0, now());
    assert_eq!(d.conditions[0].type_, "ScalingLimited");
}

#[test]
fn status_and_rescale_failure() {
    let mut d = hpa(Some(1), 10, vec![cpu_util(50)])
        .current(2)
        .pods(pods(2))
        .reading(seq(&["1", "1"]))
        .behavior(None, None)
        .no_stabilization()
        .decide();
    assert_eq!((d.desired_replicas, d.status.desired_replicas), (4, 4));
    assert_eq!(d.status.last_scale_time.as_ref().map(|t| t.0), Some(now()));
    assert_eq!(d.status.current_replicas, 2);
    assert_eq!(d.status.reference.as_deref(), Some("Deployment/web"));
    assert_eq!(d.status.history.as_ref().unwrap().scale_up_events.len(), 1);
    assert_eq!(d.requeue_after_seconds, 15);

    d.rescale_failed("the server is currently unable to handle the request");
    assert_eq!(
        cond(&d, "AbleToScale"),
        Some(("False", "FailedUpdateScale"))
    );
    assert_eq!(event_reasons(&d), vec!["FailedRescale"]);
    assert_eq!(
        d.events[0].message,
        "New size: 4; reason: cpu resource utilization (percentage of request) above target; error: the server is currently unable to handle the request"
    );
    assert_eq!(d.status.desired_replicas, 0);
    assert!(
        d.status
            .history
            .as_ref()
            .unwrap()
            .scale_up_events
            .is_empty()
    );
    assert!(d.status.last_scale_time.is_none());
}

#[test]
fn bad_snapshots_are_errors_naming_the_field() {
    let mut b = hpa(Some(1), 10, vec![cpu_util(50)])
        .current(2)
        .pods(vec![pod("a", "1"), pod("a", "1")]);
    let e = explain(&b.0).unwrap_err().to_string();
    assert!(
        e.contains("pods[1].name") && e.contains("listed twice"),
        "{e}"
    );

    b = hpa(Some(1), 10, vec![cpu_util(50)])
        .current(2)
        .reading(seq(&[]))
        .reading(seq(&[]));
    let e = explain(&b.0).unwrap_err().to_string();
    assert!(e.contains("metrics[1]"), "{e}");

    let mut r = value("1");
    r.error = Some("x".into());
    b = hpa(Some(1), 10, vec![cpu_util(50)]).current(2).reading(r);
    let e = explain(&b.0).unwrap_err().to_string();
    assert!(e.contains("metrics[0]") && e.contains("exactly one"), "{e}");

    let mut r = seq(&["1"]);
    r.pods.as_mut().unwrap()[0].window = Some("thirty".into());
    b = hpa(Some(1), 10, vec![cpu_util(50)])
        .current(2)
        .pods(pods(1))
        .reading(r);
    let e = explain(&b.0).unwrap_err().to_string();
    assert!(e.contains("metrics[0].pods[0].window"), "{e}");

    b = hpa(Some(1), 10, vec![cpu_util(50)])
        .current(2)
        .pods(pods(1))
        .reading(samples(&[("p0", "1"), ("p0", "2")]));
    let e = explain(&b.0).unwrap_err().to_string();
    assert!(e.contains("metrics[0].pods[1].pod"), "{e}");

    let e = Snapshot::from_yaml("now: 2025-01-01T00:00:00Z\nscale: {specReplicas: three}\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("scale.specReplicas"), "{e}");
    let e = Snapshot::from_yaml("now: 2025-01-01T00:00:00Z\nscale: {}\nautoscaler: {spec: {maxReplicas: 1}}\npods: [{name: a, phase: Sleeping}]\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("pods[0].phase") || e.contains("autoscaler"),
        "{e}"
    );

    // A wrong reading shape is the metric's failure, not the snapshot's.
    let d = hpa(Some(1), 10, vec![cpu_util(50)])
        .current(2)
        .pods(pods(2))
        .reading(value("3"))
        .decide();
    assert!(
        d.metrics[0]
            .error
            .as_deref()
            .unwrap()
            .contains("per-pod samples")
    );
    // A missing reading too.
    let d = hpa(Some(1), 10, vec![cpu_util(50)])
        .current(2)
        .pods(pods(2))
        .decide();
    assert!(
        d.metrics[0]
            .error
            .as_deref()
            .unwrap()
            .contains("no reading for spec.metrics[0]")
    );
}

#[test]
fn json_output_is_stable() {
    let d = hpa(Some(1), 10, vec![cpu_util(50)])
        .current(2)
        .pods(pods(2))
        .reading(seq(&["1", "1"]))
        .no_stabilization()
        .decide();
    let v = serde_json::to_value(&d).unwrap();
    assert_eq!(v["desiredReplicas"], 4);
    assert_eq!(v["path"], "Normal");
    assert_eq!(
        v["metrics"][0]["current"]["resource"]["current"]["averageUtilization"],
        100
    );
    assert_eq!(v["events"][0]["type"], "Normal");
    assert!(v["explanation"].as_array().unwrap().len() >= 4);
    let text = d.to_string();
    assert!(text.contains("Decision:  scale 2 → 4"), "{text}");
}
