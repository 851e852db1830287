//! The bundled example snapshot explains without error and shows its policy at work.

use ballast_vertical::explain::{Snapshot, checkpointed, explain};

#[test]
fn example_snapshot_explains() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/web.yaml");
    let text = std::fs::read_to_string(path).expect("the example exists");
    let snapshot: Snapshot = serde_yaml::from_str(&text).expect("the example parses");
    let e = explain(&snapshot).expect("the example explains");
    let c = &e.recommendation.containers;
    assert_eq!(c.len(), 2);
    let app = c[0].cpu.expect("app has a cpu recommendation");
    assert_eq!(app.target, 0.3, "capped by maxAllowed");
    assert!(app.uncapped_target > 0.3);
    assert!(c[1].cpu.is_none(), "log-shipper controls memory only");
    let text = e.text();
    assert!(
        text.contains("target capped by the resource policy"),
        "{text}"
    );
}

fn example() -> Snapshot {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/web.yaml");
    let text = std::fs::read_to_string(path).expect("the example exists");
    serde_yaml::from_str(&text).expect("the example parses")
}

#[test]
fn checkpoints_explain_as_the_series_they_were_saved_from() {
    let series = example();
    let saved = checkpointed(&series).expect("the example checkpoints");
    assert!(saved.containers.is_empty());
    assert_eq!(saved.checkpoints.len(), 2);
    // Through YAML, as `--save-snapshot` writes it and `-f` reads it.
    let text = serde_yaml::to_string(&saved).unwrap();
    let read: Snapshot = serde_yaml::from_str(&text).unwrap();
    assert_eq!(
        explain(&read).unwrap().recommendation,
        explain(&series).unwrap().recommendation
    );
}

#[test]
fn a_container_given_twice_is_refused() {
    let mut both = checkpointed(&example()).unwrap();
    both.containers = example().containers;
    let e = explain(&both).unwrap_err().to_string();
    assert!(e.contains("containers[0].name"), "{e}");
    assert!(e.contains("given twice"), "{e}");
}

#[test]
fn a_bad_checkpoint_is_named() {
    let mut bad = checkpointed(&example()).unwrap();
    let histogram = bad.checkpoints[1].status.cpu_histogram.as_mut().unwrap();
    histogram.bucket_weights.insert("999".into(), 1.0);
    let e = explain(&bad).unwrap_err().to_string();
    assert!(e.contains("checkpoints[1] (container log-shipper)"), "{e}");
    assert!(e.contains("status.cpuHistogram.bucketWeights"), "{e}");
}
