//! Consolidation on a synthetic 1,000-node, 30,000-pod cluster: every candidate evaluated for
//! single-node consolidation and the multi-node binary search run (`explain_all`), one core.
//!
//! `cargo bench -p ballast-nodes --bench consolidation [-- FILTER]` prints the figures (only the
//! cases whose title contains FILTER). Goal: < 1 s for the whole pass.
//!
//! The `provision` cases time one provisioning decision on a 10,020-pod cluster, with bound pods
//! folded into their nodes (`provision`) and without (`provision_unfolded`).

use std::collections::BTreeMap;
use std::time::Instant;

use ballast_api::nodes::{self as api, NodeClassReference, NodePool, NodePoolSpec};
use ballast_nodes::{
    BoundPod, ClusterNode, ClusterSnapshot, DisruptionOptions, PendingPod, ProvisionOptions,
    SimulationMode, disrupt,
};
use ballast_scheduling::{
    InstanceType, LabelSelector, Offering, Pod, PodAffinityTerm, Resources,
    TopologySpreadConstraint, WhenUnsatisfiable,
};

/// SplitMix64: a tiny seeded generator, so the cluster is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const GI: i64 = 1 << 30;
const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];

/// Karpenter's kwok-like catalog: families c (1:2), m (1:4), r (1:8), 2–64 vCPU,
/// price 0.025 × vCPU + 0.001 × GiB per hour, spot at 0.7 ×.
fn catalog() -> Vec<InstanceType> {
    let mut out = vec![];
    for (fam, ratio) in [("c", 2), ("m", 4), ("r", 8)] {
        for cpu in [2i64, 4, 8, 16, 32, 64] {
            let mem = cpu * ratio;
            let od = 0.025 * cpu as f64 + 0.001 * mem as f64;
            let mut offerings = vec![];
            for z in ZONES {
                offerings.push(Offering {
                    zone: z.into(),
                    capacity_type: "on-demand".into(),
                    price: od,
                    available: true,
                });
                offerings.push(Offering {
                    zone: z.into(),
                    capacity_type: "spot".into(),
                    price: od * 0.7,
                    available: true,
                });
            }
            out.push(InstanceType {
                name: format!("{fam}.{cpu}x"),
                capacity: Resources::cpu_mem(cpu * 1000, mem * GI).with("pods", 110),
                overhead: Resources::cpu_mem(100, GI / 2),
                labels: BTreeMap::from([
                    ("kubernetes.io/arch".to_string(), "amd64".to_string()),
                    (
                        "nodes.ballast.dev/instance-family".to_string(),
                        fam.to_string(),
                    ),
                ]),
                offerings,
            });
        }
    }
    out
}

fn pool() -> NodePool {
    let mut p = NodePool::new(
        "default",
        NodePoolSpec {
            template: api::NodeClaimTemplate {
                metadata: None,
                spec: api::NodeClaimTemplateSpec {
                    node_class_ref: NodeClassReference {
                        group: "nodes.ballast.dev".into(),
                        kind: "KwokNodeClass".into(),
                        name: "default".into(),
                    },
                    requirements: vec![api::NodeSelectorRequirementWithMinValues {
                        key: api::labels::CAPACITY_TYPE.into(),
                        operator: api::RequirementOperator::In,
                        values: vec!["on-demand".into()],
                        min_values: None,
                    }],
                    ..Default::default()
                },
            },
            disruption: Some(api::Disruption {
                budgets: vec![api::Budget {
                    nodes: "100%".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            limits: None,
            weight: None,
            replicas: None,
        },
    );
    p.metadata.name = Some("default".into());
    p
}

/// What the constrained pods (one in `every`) carry.
#[derive(Clone, Copy, PartialEq)]
enum Constrained {
    None,
    /// A zone topology spread constraint.
    ZoneSpread,
    /// In turn: zone spread, hostname spread, required hostname anti-affinity.
    Mixed,
}

/// 1,000 nodes × 30 pods. Each node gets the smallest type that holds its pods, sometimes one
/// or two sizes larger (so some nodes are underutilized); one pod in `every` carries the
/// `constrained` terms (those candidates take the solver, on the prepared cluster).
fn cluster(
    seed: u64,
    nodes: usize,
    pods_per_node: usize,
    every: u64,
    constrained: Constrained,
) -> ClusterSnapshot {
    let mut rng = Rng(seed);
    let types = catalog();
    let mut out = vec![];
    let mut n_pod = 0u64;
    for i in 0..nodes {
        let mut pods = vec![];
        let (mut cpu, mut mem) = (0i64, 0i64);
        for k in 0..pods_per_node {
            let c = [100, 250, 250, 500, 500, 1000][rng.below(6) as usize];
            let m = [256i64, 512, 512, 1024, 2048][rng.below(5) as usize] << 20;
            cpu += c;
            mem += m;
            let mut pod = Pod::new(
                &format!("ns{}", i % 20),
                &format!("p{i}-{k}"),
                Resources::cpu_mem(c, m),
            );
            pod.labels
                .insert("app".into(), format!("app{}", rng.below(50)));
            pod.priority = if rng.below(10) == 0 { 1000 } else { 0 };
            n_pod += 1;
            if constrained != Constrained::None && n_pod.is_multiple_of(every) {
                let sel = Some(LabelSelector::labels(&[(
                    "app",
                    pod.labels["app"].as_str(),
                )]));
                let spread = |key: &str, when| TopologySpreadConstraint {
                    max_skew: 1,
                    topology_key: key.into(),
                    when_unsatisfiable: when,
                    label_selector: sel.clone(),
                    min_domains: None,
                    match_label_keys: vec![],
                    node_affinity_policy: Default::default(),
                };
                let kind = match constrained {
                    Constrained::Mixed => (n_pod / every) % 3,
                    _ => 0,
                };
                match kind {
                    0 => pod.topology_spread_constraints.push(spread(
                        "topology.kubernetes.io/zone",
                        WhenUnsatisfiable::DoNotSchedule,
                    )),
                    1 => pod.topology_spread_constraints.push(spread(
                        "kubernetes.io/hostname",
                        WhenUnsatisfiable::ScheduleAnyway,
                    )),
                    _ => pod
                        .affinity
                        .pod_anti_affinity
                        .required
                        .push(PodAffinityTerm {
                            label_selector: sel.clone(),
                            namespaces: vec![],
                            namespace_selector: None,
                            topology_key: "kubernetes.io/hostname".into(),
                        }),
                }
            }
            pods.push(BoundPod {
                pod,
                owner_kind: Some("ReplicaSet".into()),
                ..Default::default()
            });
        }
        pods.push(BoundPod {
            pod: Pod::new(
                "kube-system",
                &format!("ds-{i}"),
                Resources::cpu_mem(100, 128 << 20),
            ),
            owner_kind: Some("DaemonSet".into()),
            ..Default::default()
        });
        cpu += 100;
        mem += 128 << 20;
        let fits: Vec<&InstanceType> = types
            .iter()
            .filter(|t| {
                t.name.starts_with('m')
                    && t.allocatable().cpu_millis >= cpu
                    && t.allocatable().memory_bytes >= mem
            })
            .collect();
        let up = [0, 0, 0, 1, 2][rng.below(5) as usize].min(fits.len() - 1);
        let t = fits[up];
        let zone = ZONES[i % 3];
        out.push(ClusterNode {
            name: format!("node-{i:04}"),
            labels: BTreeMap::from([
                (api::labels::NODEPOOL.to_string(), "default".to_string()),
                (api::labels::INSTANCE_TYPE.to_string(), t.name.clone()),
                (api::labels::ZONE.to_string(), zone.to_string()),
                (
                    api::labels::CAPACITY_TYPE.to_string(),
                    "on-demand".to_string(),
                ),
                ("kubernetes.io/arch".to_string(), "amd64".to_string()),
            ]),
            allocatable: t.allocatable(),
            created: Some("2025-06-01T00:00:00Z".parse().unwrap()),
            ready: true,
            initialized: true,
            pods,
            ..Default::default()
        });
    }
    ClusterSnapshot {
        nodes: out,
        node_pools: vec![pool()],
        instance_types: types,
        ..Default::default()
    }
}

fn run(label: &str, s: &ClusterSnapshot, opts: &DisruptionOptions, reps: usize) {
    let now = "2025-06-01T12:00:00Z".parse().unwrap();
    let pods: usize = s.nodes.iter().map(|n| n.pods.len()).sum();
    let mut times = vec![];
    let mut last = None;
    for _ in 0..reps {
        let t0 = Instant::now();
        let d = disrupt(s, now, opts).expect("valid snapshot");
        times.push(t0.elapsed().as_secs_f64());
        last = Some(d);
    }
    times.sort_by(f64::total_cmp);
    let d = last.unwrap();
    let single = d
        .nodes
        .iter()
        .filter(|n| {
            n.notes.iter().any(|x| {
                x.method == Some(ballast_nodes::Method::SingleNodeConsolidation)
                    && x.verdict != ballast_nodes::Verdict::Rejected
            })
        })
        .count();
    println!("{label}");
    println!("  cluster: {} nodes, {} pods", s.nodes.len(), pods);
    println!(
        "  pass: min {:.3} s, median {:.3} s over {reps} runs; simulations: {} fast, {} solves",
        times[0],
        times[times.len() / 2],
        d.simulations.0,
        d.simulations.1
    );
    println!("  nodes single-node consolidation could act on: {single}");
    match &d.action {
        Some(a) => println!(
            "  chosen: {} of {} node(s), {} replacement(s), saves ${:.3}/h of ${:.3}/h, disruption cost {:.1}, {} pods evicted",
            a.method,
            a.nodes.len(),
            a.replacements.len(),
            a.savings,
            a.removed_price,
            a.disruption_cost,
            a.pods_evicted.len()
        ),
        None => println!("  no action: {}", d.summary),
    }
}

struct Case {
    title: &'static str,
    seed: u64,
    nodes: usize,
    every: u64,
    constrained: Constrained,
    full_solver: bool,
    reps: usize,
}

const CASES: [Case; 6] = [
    Case {
        title: "1,000 nodes, 30,000 pods, every candidate (single + multi), fast simulation",
        seed: 42,
        nodes: 1000,
        every: 0,
        constrained: Constrained::None,
        full_solver: false,
        reps: 5,
    },
    Case {
        title: "same with 1 pod in 1,000 under a zone topology spread (those nodes take the solver)",
        seed: 42,
        nodes: 1000,
        every: 1000,
        constrained: Constrained::ZoneSpread,
        full_solver: false,
        reps: 3,
    },
    Case {
        title: "same with 1 pod in 1,000 under a zone spread, a hostname spread or hostname anti-affinity",
        seed: 42,
        nodes: 1000,
        every: 1000,
        constrained: Constrained::Mixed,
        full_solver: false,
        reps: 3,
    },
    Case {
        title: "same with 1 pod in 100 under a zone spread, a hostname spread or hostname anti-affinity",
        seed: 42,
        nodes: 1000,
        every: 100,
        constrained: Constrained::Mixed,
        full_solver: false,
        reps: 3,
    },
    Case {
        title: "100 nodes, 3,000 pods, full solver for every simulation (reference)",
        seed: 7,
        nodes: 100,
        every: 0,
        constrained: Constrained::None,
        full_solver: true,
        reps: 1,
    },
    Case {
        title: "100 nodes, 3,000 pods, fast simulation",
        seed: 7,
        nodes: 100,
        every: 0,
        constrained: Constrained::None,
        full_solver: false,
        reps: 3,
    },
];

fn main() {
    let opts = DisruptionOptions {
        explain_all: true,
        ..Default::default()
    };
    let filter = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    for c in &CASES {
        if filter
            .as_ref()
            .is_some_and(|f| !c.title.contains(f.as_str()))
        {
            continue;
        }
        let o = DisruptionOptions {
            simulation: if c.full_solver {
                SimulationMode::FullSolve
            } else {
                SimulationMode::Fast
            },
            ..opts.clone()
        };
        let s = cluster(c.seed, c.nodes, 30, c.every, c.constrained);
        run(c.title, &s, &o, c.reps);
    }
    let provision_cases: [(&str, bool); 2] = [
        (
            "provision: 334 nodes, 10,020 bound pods, 20 pending, bound pods folded",
            true,
        ),
        (
            "provision: 334 nodes, 10,020 bound pods, 20 pending, unfolded (reference)",
            false,
        ),
    ];
    for (title, fold) in provision_cases {
        if filter.as_ref().is_some_and(|f| !title.contains(f.as_str())) {
            continue;
        }
        let mut s = cluster(11, 334, 29, 0, Constrained::None);
        s.pending_pods = (0..20)
            .map(|i| PendingPod {
                pod: Pod::new(
                    "ns0",
                    &format!("pending-{i}"),
                    Resources::cpu_mem(1000, 2 * GI),
                ),
                first_seen: None,
            })
            .collect();
        let now = "2025-06-01T12:00:00Z".parse().unwrap();
        let po = ProvisionOptions::default();
        let mut times = vec![];
        let mut claims = 0;
        for _ in 0..20 {
            let t0 = Instant::now();
            let d = if fold {
                ballast_nodes::provision::provision(&s, now, &po)
            } else {
                ballast_nodes::provision::provision_unfolded(&s, now, &po)
            }
            .expect("valid snapshot");
            times.push(t0.elapsed().as_secs_f64());
            claims = d.node_claims.len();
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{title}\n  median {:.2} ms, min {:.2} ms over {} runs; {claims} NodeClaims",
            times[times.len() / 2] * 1e3,
            times[0] * 1e3,
            times.len()
        );
    }
}
