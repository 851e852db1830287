//! Spot interruptions end to end: an interruption at a known time counted by hand, random ones
//! drawn from the seed, and runs without them left as they were.

use ballast_sim::report::{InterruptionSummary, VariantResult};
use std::path::Path;

fn run(yaml: &str) -> Vec<VariantResult> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../simulations/inline-test.yaml");
    ballast_sim::scenario::load_str(yaml, &path)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|s| ballast_sim::run(s, &mut |_| {}).unwrap())
        .collect()
}

/// One spot m.large node (pool `spot`, which may also launch on-demand, never consolidates)
/// holding both pods of `app`; `SETTINGS` is replaced by each case's settings.
const ONE_SPOT_NODE: &str = r#"
name: one-spot-node
duration: 2h
catalog:
  zones: [a]
  types:
  - { name: m.large, vcpu: 2, memory: 8Gi, pods: 29, onDemand: 0.1, spot: { a: 0.04 }, spotInterruptions: RATE }
inlineObjects:
- apiVersion: nodes.ballast.dev/v1
  kind: NodePool
  metadata: { name: spot }
  spec:
    disruption: { consolidateAfter: Never }
    template:
      spec:
        nodeClassRef: { group: nodes.ballast.dev, kind: KwokNodeClass, name: default }
        requirements:
        - { key: nodes.ballast.dev/capacity-type, operator: In, values: [spot, on-demand] }
startNodes:
- { instanceType: m.large, zone: a, capacityType: spot, nodePool: spot }
workloads:
- name: app
  replicas: 2
  PDB
  pod: { requests: { cpu: 500m, memory: 1Gi }, startupSeconds: 20 }
  load: { kind: Constant, value: 0 }
settings:
  nodeStartupSeconds: 60
  SETTINGS
"#;

fn scenario(rate: &str, pdb: &str, settings: &str) -> String {
    ONE_SPOT_NODE
        .replace("RATE", rate)
        .replace("PDB", pdb)
        .replace("SETTINGS", settings)
}

fn interruptions(r: &VariantResult) -> &InterruptionSummary {
    r.summary
        .spot_interruptions
        .as_ref()
        .expect("the run has interruptions on")
}

/// The warning at 3,600 s: the node is cordoned and drained at once, the spot offering masked,
/// so the provisioner's window (1 s) launches an on-demand m.large at 3,601 s, Ready at 3,661 s;
/// the new pods bind then and are Ready 20 s later, at 3,681 s.
///
/// - No PDB: both pods leave at 3,600 s: 2 × 81 s = 162 pod-seconds; the node, empty, is
///   terminated at once.
/// - `maxUnavailable: 1`: one pod leaves at 3,600 s (81 s); the other waits for the first
///   replacement to be Ready (3,681 s), leaves at the next drain retry (every 5 s: 3,685 s) and
///   runs again on the new node 20 s later: 81 + 20 = 101 pod-seconds; the node goes at 3,685 s,
///   before the provider reclaims it (3,720 s).
#[test]
fn an_interruption_at_a_known_time_costs_what_a_hand_count_says() {
    let schedule = "spotInterruptions: { schedule: [{ at: 1h, nodePool: spot }] }";
    for (pdb, pod_seconds, spot_end) in [("", 162.0, 3600.0), ("maxUnavailable: 1", 101.0, 3685.0)]
    {
        let [r] = run(&scenario("\"<5%\"", pdb, schedule))
            .try_into()
            .ok()
            .unwrap();
        let s = &r.summary;
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        let i = interruptions(&r);
        assert_eq!(i.interruptions, 1, "{pdb}: {i:?}");
        assert_eq!(i.pods_displaced, 2, "{pdb}: {i:?}");
        assert_eq!(i.displaced_pod_seconds, pod_seconds, "{pdb}: {i:?}");
        assert_eq!(i.scheduled_missed, 0);
        assert_eq!(i.log[0].t_seconds, 3600.0);
        assert_eq!((i.log[0].node.as_str(), i.log[0].pods), ("node-00000", 2));
        // The interrupted node is paid until it is drained ($0.04/h), the on-demand one from
        // 3,601 s to the end ($0.1/h × 3,599 s).
        let cost = 0.04 * spot_end / 3600.0 + 0.1 * 3599.0 / 3600.0;
        assert!((s.cost - cost).abs() < 1e-4, "{pdb}: {} vs {cost}", s.cost);
        assert_eq!(s.node_hours_by_type.len(), 1);
        assert_eq!((s.nodes_launched, s.nodes_terminated), (2, 1));
    }
}

/// A scheduled interruption that finds no spot node is counted as missed, not made up.
#[test]
fn a_scheduled_interruption_without_a_spot_node_is_missed() {
    let schedule = "spotInterruptions: { schedule: [{ at: 1h, zone: b, count: 2 }] }";
    let [r] = run(&scenario("\"<5%\"", "", schedule))
        .try_into()
        .ok()
        .unwrap();
    let i = interruptions(&r);
    assert_eq!((i.interruptions, i.scheduled_missed), (0, 2), "{i:?}");
}

/// 48 interruptions a day (one per node every half hour on average) over two hours: the draws
/// come from the seed, so two runs agree and another seed differs.
#[test]
fn random_interruptions_follow_the_seed() {
    let random = |seed: u64| {
        let yaml = scenario("48", "", "spotInterruptions: { random: true }")
            .replace("duration: 2h", &format!("duration: 2h\nseed: {seed}"));
        let [r] = run(&yaml).try_into().ok().unwrap();
        interruptions(&r).clone()
    };
    let first = random(42);
    assert!(first.interruptions >= 1, "{first:?}");
    assert!(first.pods_displaced >= 2 && first.displaced_pod_seconds > 0.0);
    assert_eq!(random(42), first);
    assert_ne!(random(7).log, first.log);
}

/// Interruptions drawn but none due (a rate of one in a million days): the run is the run
/// without them, since the draws come from a stream of their own and the start-up jitter of the
/// nodes the batch burst needs draws the same numbers; a run without the setting has no
/// `spotInterruptions` in its report.
#[test]
fn interruptions_drawn_but_not_due_change_nothing_else() {
    let burst = "batch:\n- { format: Burst, name: job, at: 10m, count: 6, requests: { cpu: \"1\", memory: 1Gi }, runSeconds: 600 }\n";
    let jitter = "startupJitter: 0.3";
    let drawn = format!("{jitter}\n  spotInterruptions: {{ random: true }}");
    let without = run(&(scenario("0.000001", "", jitter) + burst));
    let idle = run(&(scenario("0.000001", "", &drawn) + burst));
    let json = |r: &[VariantResult]| ballast_sim::report::json(r);
    assert!(!json(&without).contains("spotInterruptions"));
    assert!(json(&idle).contains("\"spotInterruptions\""));
    assert!(
        without[0].summary.nodes_launched > 1,
        "the burst launches nodes"
    );
    let mut idle_summary = idle[0].summary.clone();
    assert_eq!(
        idle_summary
            .spot_interruptions
            .take()
            .unwrap()
            .interruptions,
        0
    );
    assert_eq!(
        serde_json::to_string(&idle_summary).unwrap(),
        serde_json::to_string(&without[0].summary).unwrap()
    );
}

/// Bad rates and settings are named by file and field.
#[test]
fn bad_rates_and_settings_name_their_field() {
    let path = Path::new("/x/inline-test.yaml");
    let load = |yaml: String| {
        ballast_sim::scenario::load_str(&yaml, path)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let e = load(scenario("\"often\"", "", ""));
    assert!(
        e.contains("catalog.types[0].spotInterruptions") && e.contains("\"often\""),
        "{e}"
    );
    let e = load(scenario(
        "1",
        "",
        "spotInterruptions: { schedule: [{ at: soon }] }",
    ));
    assert!(
        e.contains("settings.spotInterruptions.schedule[0].at"),
        "{e}"
    );
    let e = load(scenario(
        "1",
        "",
        "spotInterruptions: { defaultRate: \"9%\" }",
    ));
    assert!(e.contains("settings.spotInterruptions.defaultRate"), "{e}");
}
