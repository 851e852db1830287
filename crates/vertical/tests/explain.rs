//! The bundled example snapshot explains without error and shows its policy at work.

use ballast_vertical::explain::{Snapshot, explain};

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
