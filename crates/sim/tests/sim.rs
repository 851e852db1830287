//! The simulator end to end: determinism, conservation, and outcomes known by hand.

use ballast_sim::report::VariantResult;
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

fn approx(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-9)
}

/// Nine 1-CPU pods on a pool that may only use c6i.xlarge (4 vCPU, 3 pods fit): three nodes,
/// launched within the batch window, for two hours.
const THREE_NODES: &str = r#"
name: three-nodes
duration: 2h
catalog: catalogs/aws-like.yaml
inlineObjects:
- apiVersion: nodes.ballast.dev/v1
  kind: NodePool
  metadata: { name: only-xlarge }
  spec:
    template:
      spec:
        nodeClassRef: { group: nodes.ballast.dev, kind: KwokNodeClass, name: default }
        requirements:
        - { key: node.kubernetes.io/instance-type, operator: In, values: [c6i.xlarge] }
        - { key: nodes.ballast.dev/capacity-type, operator: In, values: [on-demand] }
        - { key: topology.kubernetes.io/zone, operator: In, values: [us-east-1a] }
workloads:
- name: app
  replicas: 9
  pod: { requests: { cpu: "1", memory: 1Gi }, startupSeconds: 5 }
  load: { kind: Constant, value: 0 }
"#;

#[test]
fn constant_load_of_three_nodes_costs_three_nodes() {
    let [r] = run_inline(THREE_NODES).try_into().ok().unwrap();
    let s = &r.summary;
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(s.nodes_launched, 3, "{s:#?}");
    assert_eq!(s.peak_nodes, 3);
    assert_eq!(s.pods_never_scheduled, 0);
    // Nodes start after the 1 s batch window; c6i.xlarge costs $0.17/h.
    let expected = 3.0 * 0.17 * (2.0 - 1.0 / 3600.0);
    assert!(
        approx(s.cost, expected, 0.001),
        "cost {} expected {expected}",
        s.cost
    );
    // Every pod waited for a node: the batch window plus the 60 s node start-up.
    assert!(
        approx(s.pod_wait_max_seconds, 61.0, 0.01),
        "{}",
        s.pod_wait_max_seconds
    );
    // Cost is the sum of node-hours times price (both reported to four decimals).
    let by_type: f64 = s
        .node_hours_by_type
        .iter()
        .map(|(t, h)| h * if t == "c6i.xlarge" { 0.17 } else { f64::NAN })
        .sum();
    assert!((s.cost - by_type).abs() < 5e-4, "{} vs {by_type}", s.cost);
    let summed: f64 = s.cost_by_type.values().sum();
    assert!((s.cost - summed).abs() < 5e-4, "{} vs {summed}", s.cost);
}

/// An HPA at 50% CPU on a load that needs exactly nine pods at 50%: starting from three it
/// must settle at nine, on three nodes.
const HPA_SETTLES: &str = r#"
name: hpa-settles
duration: 1h
catalog: catalogs/aws-like.yaml
inlineObjects:
- apiVersion: nodes.ballast.dev/v1
  kind: NodePool
  metadata: { name: only-xlarge }
  spec:
    template:
      spec:
        nodeClassRef: { group: nodes.ballast.dev, kind: KwokNodeClass, name: default }
        requirements:
        - { key: node.kubernetes.io/instance-type, operator: In, values: [c6i.xlarge] }
        - { key: nodes.ballast.dev/capacity-type, operator: In, values: [on-demand] }
- apiVersion: autoscaling.ballast.dev/v1
  kind: HorizontalAutoscaler
  metadata: { name: app, namespace: default }
  spec:
    scaleTargetRef: { apiVersion: apps/v1, kind: Deployment, name: app }
    minReplicas: 3
    maxReplicas: 30
    metrics:
    - type: Resource
      resource: { name: cpu, target: { type: Utilization, averageUtilization: 50 } }
workloads:
- name: app
  replicas: 3
  pod: { requests: { cpu: "1", memory: 1Gi }, startupSeconds: 5 }
  perPod: { capacity: 100, cpuPerUnit: 10, baseCpu: 0 }
  load: { kind: Constant, value: 450 }
"#;

#[test]
fn hpa_settles_where_the_arithmetic_says() {
    let [r] = run_inline(HPA_SETTLES).try_into().ok().unwrap();
    let s = &r.summary;
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let last = r.series.last().unwrap();
    assert_eq!(last.workloads[0].desired, 9, "{:?}", last);
    assert_eq!(last.workloads[0].ready, 9);
    assert_eq!(last.nodes, 3);
    assert_eq!(s.workloads[0].max_desired, 9, "no overshoot");
}

#[test]
fn same_seed_gives_byte_identical_reports() {
    let path = repo().join("simulations/api-daily.yaml");
    let run = || {
        let mut scenarios = ballast_sim::scenario::load(&path).unwrap();
        // Six hours of the first variant keep the test short.
        let mut sc = scenarios.remove(0);
        sc.duration_seconds = 6.0 * 3600.0;
        let r = ballast_sim::run(sc, &mut |_| {}).unwrap();
        (
            ballast_sim::report::json(std::slice::from_ref(&r)),
            ballast_sim::report::series_csv(&r),
        )
    };
    let (a, a_csv) = run();
    let (b, b_csv) = run();
    assert_eq!(a, b);
    assert_eq!(a_csv, b_csv);
}

#[test]
fn bundled_scenarios_load_and_every_pod_is_accounted_for() {
    for name in ["api-daily.yaml", "batch-burst.yaml", "week-mix.yaml"] {
        let path = repo().join("simulations").join(name);
        let scenarios =
            ballast_sim::scenario::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!scenarios.is_empty());
        let mut sc = scenarios.into_iter().next().unwrap();
        sc.duration_seconds = sc.duration_seconds.min(4.0 * 3600.0);
        let r = ballast_sim::run(sc, &mut |_| {}).unwrap();
        let s = &r.summary;
        // Invariants checked at every sample inside the engine are reported as errors.
        assert!(s.errors.is_empty(), "{name}: {:?}", s.errors);
        assert!(s.cost > 0.0, "{name}");
        assert!(
            s.lower_bound_cost <= s.cost + 1e-9,
            "{name}: bound {} above cost {}",
            s.lower_bound_cost,
            s.cost
        );
    }
}

#[test]
fn bad_scenarios_name_the_field() {
    let path = repo().join("simulations/inline-test.yaml");
    let bad = THREE_NODES.replace("replicas: 9", "replicas: nine");
    let err = ballast_sim::scenario::load_str(&bad, &path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("workloads[0].replicas"), "{err}");

    let bad = THREE_NODES.replace("duration: 2h", "duration: two hours");
    let err = ballast_sim::scenario::load_str(&bad, &path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("duration"), "{err}");

    let bad = THREE_NODES.replace("values: [c6i.xlarge]", "values: []");
    let err = ballast_sim::scenario::load_str(&bad, &path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("NodePool only-xlarge") && err.contains("requirements[0]"),
        "{err}"
    );
}

/// The openb trace through the provisioner and disruption cores, when the shared data is there.
#[test]
fn openb_trace_runs_with_cost_against_the_bound() {
    let data = repo().join("../shared/data/alibaba-openb/openb_pod_list_default.csv");
    if !data.exists() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must have ../shared/data: {}",
            data.display()
        );
        eprintln!("skipped: no {}", data.display());
        return;
    }
    let path = repo().join("simulations/openb.yaml");
    let mut scenarios = ballast_sim::scenario::load(&path).unwrap();
    let mut sc = scenarios.remove(0);
    sc.duration_seconds = 12.0 * 3600.0;
    let r = ballast_sim::run(sc, &mut |_| {}).unwrap();
    let s = &r.summary;
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert!(s.batch_pods_finished > 0);
    assert!(
        s.cost >= s.lower_bound_cost && s.lower_bound_cost > 0.0,
        "{} vs {}",
        s.cost,
        s.lower_bound_cost
    );
    eprintln!(
        "openb 12h: cost ${:.2}, bound ${:.2}, ratio {:.3}",
        s.cost, s.lower_bound_cost, s.cost_over_lower_bound
    );
}

#[test]
fn variant_patches_reach_the_objects() {
    let path = repo().join("simulations/api-daily.yaml");
    let scenarios = ballast_sim::scenario::load(&path).unwrap();
    let spot = scenarios
        .iter()
        .find(|s| s.variant == "spot-batch")
        .expect("the spot-batch variant");
    let pool = spot
        .node_pools
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("spot-general"))
        .unwrap();
    let reqs = &pool.spec.template.spec.requirements;
    assert!(
        reqs.iter()
            .any(|r| r.key == "nodes.ballast.dev/capacity-type" && r.values == ["spot"]),
        "{reqs:?}"
    );
    let cpu80 = scenarios.iter().find(|s| s.variant == "hpa-cpu80").unwrap();
    let target = cpu80.autoscalers[0].spec.metrics[0]
        .resource
        .as_ref()
        .unwrap()
        .target
        .average_utilization;
    assert_eq!(target, Some(80));
}

/// A static NodePool (`spec.replicas`) on c6i.xlarge with one small pod: the pool keeps its
/// replicas for the whole hour (the empty node is never consolidated), within `limits.nodes`.
fn static_pool(replicas: u32, limit: &str) -> String {
    format!(
        r#"
name: static-pool
duration: 1h
catalog: catalogs/aws-like.yaml
inlineObjects:
- apiVersion: nodes.ballast.dev/v1
  kind: NodePool
  metadata: {{ name: fixed }}
  spec:
    replicas: {replicas}
    {limit}
    disruption: {{ consolidateAfter: 0s }}
    template:
      spec:
        nodeClassRef: {{ group: nodes.ballast.dev, kind: KwokNodeClass, name: default }}
        requirements:
        - {{ key: node.kubernetes.io/instance-type, operator: In, values: [c6i.xlarge] }}
        - {{ key: nodes.ballast.dev/capacity-type, operator: In, values: [on-demand] }}
workloads:
- name: app
  replicas: 1
  pod: {{ requests: {{ cpu: 500m, memory: 1Gi }}, startupSeconds: 5 }}
  load: {{ kind: Constant, value: 0 }}
"#
    )
}

#[test]
fn static_pools_keep_their_replicas() {
    // (replicas, limits line, nodes expected)
    let cases = [(2, "", 2), (3, "limits: { nodes: \"2\" }", 2), (1, "", 1)];
    for (replicas, limit, nodes) in cases {
        let [r] = run_inline(&static_pool(replicas, limit))
            .try_into()
            .ok()
            .unwrap();
        let s = &r.summary;
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        assert_eq!(s.nodes_launched, nodes, "replicas {replicas} {limit}");
        assert_eq!(s.peak_nodes as u64, nodes, "replicas {replicas} {limit}");
        assert_eq!(s.pods_never_scheduled, 0);
        // Launched at the start, kept to the end: c6i.xlarge at $0.17/h.
        let expected = nodes as f64 * 0.17;
        assert!(
            approx(s.cost, expected, 0.02),
            "replicas {replicas}: cost {} expected {expected}",
            s.cost
        );
    }
}

#[test]
fn a_static_pool_too_large_names_its_field() {
    let path = repo().join("simulations/inline-test.yaml");
    let Err(e) = ballast_sim::scenario::load_str(&static_pool(50_000, ""), &path) else {
        panic!("a static pool of 50000 nodes was accepted");
    };
    let text = e.to_string();
    assert!(text.contains("NodePool fixed spec.replicas"), "{text}");
    assert!(text.contains("20000"), "{text}");
}
