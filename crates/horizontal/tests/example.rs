//! The documented example snapshot reads, decides as the docs say, and round-trips through JSON.
use ballast_horizontal::{Path, Snapshot, explain};

fn example() -> Snapshot {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/snapshot.yaml"
    ))
    .unwrap();
    Snapshot::from_yaml(&text).unwrap()
}

#[test]
fn the_documented_example_decides_as_documented() {
    let d = explain(&example()).unwrap();
    // 3 ready pods at 90% of their 600m requests, one starting pod counted at 0 on the way up:
    // 67% vs 60% → ceil(1.117 × 4) = 5; Prometheus 230 / 50 per replica → 5.
    assert_eq!(
        (d.path, d.current_replicas, d.desired_replicas),
        (Path::Normal, 4, 5)
    );
    assert_eq!(d.metrics[0].replicas, Some(5));
    assert_eq!(d.metrics[1].replicas, Some(5));
    assert_eq!(
        d.events[0].message,
        "New size: 5; reason: cpu resource utilization (percentage of request) above target"
    );
    let text = d.to_string();
    assert!(text.contains("Why:"), "{text}");
}

#[test]
fn snapshots_round_trip_through_json() {
    let s = example();
    let json = serde_json::to_string(&s).unwrap();
    let back = Snapshot::from_json(&json).unwrap();
    assert_eq!(explain(&back).unwrap(), explain(&s).unwrap());
}

#[test]
fn snapshots_round_trip_through_yaml() {
    let s = example();
    let back = Snapshot::from_yaml(&s.to_yaml().unwrap()).unwrap();
    assert_eq!(explain(&back).unwrap(), explain(&s).unwrap());
    assert_eq!(back.to_yaml().unwrap(), s.to_yaml().unwrap());
}

#[test]
fn a_minimal_snapshot_needs_few_keys() {
    let text = r#"
now: 2025-06-02T10:00:00Z
autoscaler:
  metadata: {name: web, namespace: shop}
  spec:
    scaleTargetRef: {kind: Deployment, name: web}
    maxReplicas: 10
    metrics:
      - type: External
        external: {metric: {name: queue}, target: {type: AverageValue, averageValue: "5"}}
scale: {specReplicas: 2, selector: app=web}
metrics:
  - value: 40
"#;
    let d = explain(&Snapshot::from_yaml(text).unwrap()).unwrap();
    // ceil(40 / 5) = 8, at most max(2 × 2, 4) = 4 without behavior.
    assert_eq!((d.metrics[0].replicas, d.desired_replicas), (Some(8), 4));
}
