use ballast_horizontal::{explain, Snapshot};

#[test]
fn the_documented_example_reads_and_decides() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/snapshot.yaml")).unwrap();
    let snapshot = Snapshot::from_yaml(&text).unwrap();
    let d = explain(&snapshot).unwrap();
    println!("{d}");
    println!("{}", serde_json::to_string_pretty(&d).unwrap());
}
