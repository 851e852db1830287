//! `VerticalAutoscaler` objects in a simulation: the vertical core reads each workload's usage in
//! virtual time, and the report compares requests with its recommendation.

use ballast_sim::report::{VariantResult, VerticalSummary};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Runs a scenario written inline (relative paths resolve against `simulations/`).
fn run_inline(yaml: &str) -> Vec<VariantResult> {
    let path = repo().join("simulations/inline-test.yaml");
    let scenarios = ballast_sim::scenario::load_str(yaml, &path).unwrap_or_else(|e| panic!("{e}"));
    scenarios
        .into_iter()
        .map(|s| ballast_sim::run(s, &mut |_| {}).unwrap())
        .collect()
}

const MIB: f64 = 1024.0 * 1024.0;

/// A VerticalAutoscaler on `app` (constant load: every pod serves 100 units per second) plus
/// `EXTRA`; static nodes so nothing but the load moves. The object recommends only (`Off`):
/// applying is `vertical_apply.rs`'s.
const BASE: &str = r#"
name: vertical
duration: DURATION
catalog: catalogs/aws-like.yaml
startNodes:
- { instanceType: m6i.2xlarge, zone: us-east-1a, count: 2 }
inlineObjects:
- apiVersion: autoscaling.ballast.dev/v1
  kind: VerticalAutoscaler
  metadata: { name: app }
  spec:
    targetRef: { apiVersion: apps/v1, kind: Deployment, name: app }
    updatePolicy: { updateMode: "Off" }
EXTRA
workloads:
- name: app
  replicas: 2
  pod: { requests: { cpu: "1", memory: 2Gi }, startupSeconds: 5 }
  perPod: { capacity: 150, cpuPerUnit: 2, baseCpu: 100, memory: 400Mi, memoryPerUnit: 1Mi }
  load: { kind: Constant, value: 200 }
- name: other
  replicas: 1
  pod: { requests: { cpu: 250m, memory: 256Mi } }
  perPod: { capacity: 100, cpuPerUnit: 1, baseCpu: 10, memory: 100Mi }
  load: { kind: Constant, value: 50 }
"#;

fn scenario(duration: &str, extra: &str) -> String {
    BASE.replace("DURATION", duration).replace("EXTRA", extra)
}

/// A second VerticalAutoscaler, with `spec` (a YAML flow mapping).
fn second(name: &str, spec: &str) -> String {
    format!(
        "- apiVersion: autoscaling.ballast.dev/v1\n  kind: VerticalAutoscaler\n  metadata: {{ name: {name} }}\n  spec: {spec}\n"
    )
}

fn only(results: Vec<VariantResult>) -> VariantResult {
    let [r] = results.try_into().ok().unwrap();
    r
}

fn find<'a>(r: &'a VariantResult, name: &str) -> &'a VerticalSummary {
    r.summary
        .vertical
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", r.summary.vertical))
}

#[test]
fn known_usage_gets_a_recommendation_near_it() {
    // Each pod uses 100m + 100 × 2m = 300m and 400Mi + 100 × 1Mi = 500Mi, all the time.
    let r = only(run_inline(&scenario("48h", "")));
    assert!(r.summary.errors.is_empty(), "{:?}", r.summary.errors);
    let v = find(&r, "default/app");
    assert_eq!(v.workload, "default/app");
    assert_eq!((v.requested_cpu, v.requested_memory), (1.0, 2048.0 * MIB));
    assert_eq!(v.recommended_at_seconds, Some(48.0 * 3600.0));
    assert!(!v.low_confidence);
    let [c] = v.containers.as_slice() else {
        panic!("{v:?}")
    };
    assert_eq!(c.container, "app");
    let cpu = c.cpu.unwrap();
    let memory = c.memory.unwrap();
    // Target: usage × 1.15 (the safety margin), read at a bucket end (at most 5% above).
    let table = [
        ("cpu", cpu.target, 0.3 * 1.15),
        ("memory", memory.target, 500.0 * MIB * 1.15),
    ];
    for (what, got, want) in table {
        assert!(
            got >= want * 0.999 && got <= want * 1.06,
            "{what}: target {got}, usage × 1.15 = {want}"
        );
    }
    for r in [cpu, memory] {
        assert!(
            r.lower_bound <= r.target && r.target <= r.upper_bound,
            "{r:?}"
        );
        assert_eq!(r.target, r.uncapped_target);
    }
    // The requests are three times what is used: the recommendation costs less.
    assert!(
        v.cost_per_hour_recommended < v.cost_per_hour_requested * 0.5,
        "{v:?}"
    );
    assert!(v.cost_per_hour_recommended > 0.0);
}

#[test]
fn usage_grows_with_load_through_memory_per_unit() {
    let half = scenario("24h", "").replace("value: 200", "value: 100");
    let full = scenario("24h", "");
    let memory = |yaml: &str| {
        let r = only(run_inline(yaml));
        find(&r, "default/app").containers[0].memory.unwrap().target
    };
    // 450Mi vs 500Mi per pod.
    let (low, high) = (memory(&half), memory(&full));
    assert!(low < high, "{low} vs {high}");
    assert!((high / low - 500.0 / 450.0).abs() < 0.06, "{low} vs {high}");
}

#[test]
fn bad_objects_are_reported_and_the_others_go_on() {
    let table = [
        (
            second(
                "ghost",
                "{ targetRef: { apiVersion: apps/v1, kind: Deployment, name: nowhere } }",
            ),
            "VerticalAutoscaler default/ghost: spec.targetRef: no workload default/nowhere",
        ),
        (
            second(
                "quick",
                "{ targetRef: { kind: Deployment, name: other }, estimation: { cpu: { halfLife: 30s } } }",
            ),
            "spec.estimation.cpu.halfLife",
        ),
    ];
    for (extra, message) in table {
        let r = only(run_inline(&scenario("2h", &extra)));
        let errors = &r.summary.errors;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains(message), "{errors:?}");
        // The good object still gets its recommendation; the bad one is left out.
        assert_eq!(r.summary.vertical.len(), 1, "{:?}", r.summary.vertical);
        assert!(find(&r, "default/app").containers[0].cpu.is_some());
    }
}

#[test]
fn variant_patches_reach_the_policy() {
    let yaml = scenario("6h", "")
        + r#"variants:
- name: as-written
- name: capped
  patches:
  - target: VerticalAutoscaler/app
    merge: { spec: { resourcePolicy: { containerPolicies: [{ containerName: "*", maxAllowed: { cpu: 200m }, controlledResources: [cpu] }] } } }
"#;
    let [plain, capped] = run_inline(&yaml).try_into().ok().unwrap();
    assert!(
        capped.summary.errors.is_empty(),
        "{:?}",
        capped.summary.errors
    );
    let c = &find(&capped, "default/app").containers[0];
    let cpu = c.cpu.unwrap();
    assert_eq!(cpu.target, 0.2);
    assert!(cpu.uncapped_target > 0.3, "{cpu:?}");
    assert!(c.memory.is_none(), "memory is not controlled: {c:?}");
    let c = &find(&plain, "default/app").containers[0];
    assert_eq!(c.cpu.unwrap().target, cpu.uncapped_target);
    assert!(c.memory.is_some());
}

#[test]
fn same_seed_gives_the_same_report() {
    let yaml = scenario(
        "12h",
        &second(
            "other",
            "{ targetRef: { kind: Deployment, name: other }, estimation: { mode: Adaptive } }",
        ),
    );
    let run = || {
        let results = run_inline(&yaml);
        (
            ballast_sim::report::json(&results),
            ballast_sim::report::vertical_table(&results),
            ballast_sim::html::page(&results),
        )
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b);
    assert!(a.0.contains("\"vertical\""), "{}", a.0);
    assert!(a.1.contains("default/other"), "{}", a.1);
    assert!(a.2.contains("Vertical recommendations"));
}

#[test]
fn scenarios_without_vertical_objects_report_as_before() {
    let object = "- apiVersion: autoscaling.ballast.dev/v1\n  kind: VerticalAutoscaler\n  metadata: { name: app }\n  spec:\n    targetRef: { apiVersion: apps/v1, kind: Deployment, name: app }\n    updatePolicy: { updateMode: \"Off\" }\n";
    let yaml =
        scenario("1h", "").replace(&format!("inlineObjects:\n{object}"), "inlineObjects: []\n");
    let results = run_inline(&yaml);
    assert!(results[0].summary.vertical.is_empty());
    assert!(!ballast_sim::report::json(&results).contains("\"vertical\":"));
    assert_eq!(ballast_sim::report::vertical_table(&results), "");
    assert!(!ballast_sim::html::page(&results).contains("Vertical"));
}

#[test]
fn a_bad_memory_per_unit_names_the_field() {
    let path = repo().join("simulations/inline-test.yaml");
    for bad in ["memoryPerUnit: lots", "memoryPerUnit: -1Mi"] {
        let yaml = scenario("1h", "").replace("memoryPerUnit: 1Mi", bad);
        let err = ballast_sim::scenario::load_str(&yaml, &path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("workloads[0].perPod.memoryPerUnit"), "{err}");
    }
}

#[test]
fn the_bundled_vertical_scenario_recommends_for_every_workload() {
    let path = repo().join("simulations/vertical-week.yaml");
    let mut sc = ballast_sim::scenario::load(&path).unwrap().remove(0);
    sc.duration_seconds = 6.0 * 3600.0;
    let r = ballast_sim::run(sc, &mut |_| {}).unwrap();
    assert!(r.summary.errors.is_empty(), "{:?}", r.summary.errors);
    let names: Vec<&str> = r.summary.vertical.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["shop/catalog", "shop/checkout", "shop/search"]);
    for v in &r.summary.vertical {
        assert!(
            v.containers[0].cpu.is_some() && v.containers[0].memory.is_some(),
            "{v:?}"
        );
    }
}

#[test]
fn an_upstream_vertical_pod_autoscaler_is_converted() {
    let yaml = scenario("2h", "").replace(
        "apiVersion: autoscaling.ballast.dev/v1\n  kind: VerticalAutoscaler",
        "apiVersion: autoscaling.k8s.io/v1\n  kind: VerticalPodAutoscaler",
    );
    assert!(yaml.contains("VerticalPodAutoscaler"));
    let r = only(run_inline(&yaml));
    assert!(r.summary.errors.is_empty(), "{:?}", r.summary.errors);
    assert!(find(&r, "default/app").containers[0].cpu.is_some());
}
