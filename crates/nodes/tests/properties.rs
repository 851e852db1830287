//! Property tests: on random clusters, the fast simulation (incremental first-fit for plain pods,
//! the prepared cluster for pods with topology spread or pod (anti-)affinity) decides exactly what
//! the full solver decides, and a chosen consolidation never leaves a pod without a valid place
//! (checked by the scheduling crate's independent checker).

mod common;

use ballast_nodes::{DisruptionOptions, Method, SimulationMode, disrupt};
use ballast_scheduling::{LabelSelector, WeightedPodAffinityTerm, WhenUnsatisfiable, check};
use common::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct PodSpec {
    cpu: i64,
    mem: i64,
    zone_selector: bool,
    /// 0: none; 1: zone spread; 2: hostname spread (ScheduleAnyway); 3: required hostname
    /// anti-affinity; 4: required zone pod affinity; 5: preferred hostname anti-affinity.
    constraint: u8,
    priority: i32,
}

fn pod_spec() -> impl Strategy<Value = PodSpec> {
    (
        1i64..=16,
        1i64..=16,
        prop::bool::weighted(0.1),
        prop_oneof![8 => Just(0u8), 1 => 1u8..=5],
        -1i32..=1,
    )
        .prop_map(|(c, m, z, k, p)| PodSpec {
            cpu: c * 250,
            mem: m * 256,
            zone_selector: z,
            constraint: k,
            priority: p << 20,
        })
}

fn cluster_spec() -> impl Strategy<Value = Vec<(usize, bool, bool, Vec<PodSpec>)>> {
    prop::collection::vec(
        (
            0usize..4,
            prop::bool::ANY,
            prop::bool::weighted(0.3),
            prop::collection::vec(pod_spec(), 0..6),
        ),
        1..8,
    )
}

fn build(spec: &[(usize, bool, bool, Vec<PodSpec>)]) -> ballast_nodes::ClusterSnapshot {
    let cat = catalog();
    let mut nodes = vec![];
    for (i, (ti, zone_b, spot, pods)) in spec.iter().enumerate() {
        let t = &cat[*ti];
        let mut n = node(
            &format!("n{i}"),
            t,
            "p",
            if *spot { "spot" } else { "on-demand" },
            vec![],
        );
        if *zone_b {
            n.labels
                .insert(ballast_api::nodes::labels::ZONE.into(), "b".into());
        }
        let (mut cpu, mut mem) = (0, 0);
        for (k, ps) in pods.iter().enumerate() {
            if cpu + ps.cpu > t.capacity.cpu_millis
                || mem + (ps.mem << 20) > t.capacity.memory_bytes
            {
                continue;
            }
            cpu += ps.cpu;
            mem += ps.mem << 20;
            let mut p = pod("a", &format!("p{i}-{k}"), ps.cpu, ps.mem);
            p.pod.priority = ps.priority;
            p.pod.labels.insert("app".into(), format!("app{}", k % 2));
            if ps.zone_selector {
                p.pod.node_selector.insert(
                    "topology.kubernetes.io/zone".into(),
                    n.labels["topology.kubernetes.io/zone"].clone(),
                );
            }
            let app = format!("app{}", k % 2);
            let sel = Some(LabelSelector::labels(&[("app", &app)]));
            let term = |key: &str| pod_term(key, sel.clone());
            const ZONE: &str = "topology.kubernetes.io/zone";
            const HOST: &str = "kubernetes.io/hostname";
            let a = &mut p.pod.affinity;
            match ps.constraint {
                1 => p.pod.topology_spread_constraints.push(spread(
                    ZONE,
                    2,
                    WhenUnsatisfiable::DoNotSchedule,
                    sel.clone(),
                )),
                2 => p.pod.topology_spread_constraints.push(spread(
                    HOST,
                    1,
                    WhenUnsatisfiable::ScheduleAnyway,
                    sel.clone(),
                )),
                3 => a.pod_anti_affinity.required.push(term(HOST)),
                4 => a.pod_affinity.required.push(term(ZONE)),
                5 => a.pod_anti_affinity.preferred.push(WeightedPodAffinityTerm {
                    weight: 10,
                    pod_affinity_term: term(HOST),
                }),
                _ => {}
            }
            n.pods.push(p);
        }
        nodes.push(n);
    }
    let mut s = cluster(vec![pool("p")], nodes);
    // Spot offerings so spot nodes have a price.
    for t in &mut s.instance_types {
        for z in ["a", "b"] {
            let od = t.offerings[0].price;
            t.offerings.push(ballast_scheduling::Offering {
                zone: z.into(),
                capacity_type: "spot".into(),
                price: od * 0.4,
                available: true,
            });
        }
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128),
        ..ProptestConfig::default()
    })]

    #[test]
    fn fast_equals_full_and_checker_agrees(spec in cluster_spec()) {
        let s = build(&spec);
        let o = DisruptionOptions { explain_all: true, ..Default::default() };
        let fast = disrupt(&s, now(), &o).unwrap();
        let full = disrupt(&s, now(), &DisruptionOptions { simulation: SimulationMode::FullSolve, ..o }).unwrap();
        prop_assert_eq!(common::canonical(&fast.action), common::canonical(&full.action));
        prop_assert_eq!(serde_json::to_value(&fast.nodes).unwrap(), serde_json::to_value(&full.nodes).unwrap());
        if let Some(a) = &fast.action
            && matches!(a.method, Method::MultiNodeConsolidation | Method::SingleNodeConsolidation) {
                prop_assert!(a.savings > 0.0);
                prop_assert!(a.replacements.len() <= 1);
                let (model, plan) = ballast_nodes::action_as_plan(&s, a).unwrap();
                let bad = check::check(&model, &plan);
                prop_assert!(bad.is_empty(), "checker: {:?}", bad);
            }
    }
}
