//! Property tests: random snapshots with every kind of constraint; the independent checker must
//! find no broken hard constraint and no overcommitted node in any plan, and solving must be
//! deterministic.

mod common;

use ballast_scheduling::*;
use common::{GI, MI};
use proptest::prelude::*;

/// A small deterministic generator so one u64 seed describes a whole snapshot.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
}

const ZONES: [&str; 3] = ["z1", "z2", "z3"];
const APPS: [&str; 3] = ["a", "b", "c"];
const KEYS: [&str; 2] = [labels::ZONE, labels::HOSTNAME];

fn taint(g: &mut Gen) -> Taint {
    let effect = g.pick(&[
        TaintEffect::NoSchedule,
        TaintEffect::PreferNoSchedule,
        TaintEffect::NoExecute,
    ]);
    Taint::new(g.pick(&["t1", "t2"]), "x", effect)
}

fn selector(g: &mut Gen) -> Option<LabelSelector> {
    Some(LabelSelector::labels(&[("app", g.pick(&APPS))]))
}

fn affinity_term(g: &mut Gen) -> PodAffinityTerm {
    PodAffinityTerm {
        label_selector: selector(g),
        namespaces: vec![],
        namespace_selector: if g.chance(15) {
            Some(LabelSelector::default())
        } else {
            None
        },
        topology_key: g.pick(&KEYS).to_string(),
    }
}

fn random_pod(g: &mut Gen, ns: &str, name: String, gpu_ok: bool) -> Pod {
    let mut p = Pod::new(
        ns,
        &name,
        Resources::cpu_mem(
            g.pick(&[100, 250, 500, 1000, 1500, 3000]),
            g.pick(&[64, 256, 1024, 4096]) * MI,
        ),
    );
    p.labels.insert("app".into(), g.pick(&APPS).to_string());
    if gpu_ok && g.chance(10) {
        p.requests.set("example.com/gpu", 1);
    }
    if g.chance(10) {
        p.init_containers
            .push(Resources::cpu_mem(g.below(4000) as i64, 0));
    }
    if g.chance(15) {
        p.node_selector
            .insert(labels::ZONE.into(), g.pick(&ZONES).to_string());
    }
    if g.chance(15) {
        let t = |g: &mut Gen| NodeSelectorTerm {
            match_expressions: vec![Requirement::new(
                "example.com/cpu",
                g.pick(&[Operator::Gt, Operator::Lt]),
                &[g.pick(&["2", "4", "8"])],
            )],
        };
        p.affinity.node_affinity.required = vec![t(g), t(g)];
    }
    if g.chance(15) {
        p.affinity.node_affinity.preferred = vec![PreferredNodeTerm {
            weight: 10,
            preference: NodeSelectorTerm {
                match_expressions: vec![Requirement::new(
                    labels::ZONE,
                    Operator::In,
                    &[g.pick(&ZONES)],
                )],
            },
        }];
    }
    if g.chance(30) {
        p.tolerations.push(Toleration {
            key: g.pick(&["t1", "t2"]).to_string(),
            operator: TolerationOperator::Exists,
            ..Default::default()
        });
    }
    if g.chance(25) {
        p.topology_spread_constraints
            .push(TopologySpreadConstraint {
                max_skew: 1 + g.below(2) as i32,
                topology_key: g.pick(&KEYS).to_string(),
                when_unsatisfiable: g.pick(&[
                    WhenUnsatisfiable::DoNotSchedule,
                    WhenUnsatisfiable::ScheduleAnyway,
                ]),
                label_selector: selector(g),
                min_domains: None,
                match_label_keys: vec![],
                node_affinity_policy: g
                    .pick(&[NodeInclusionPolicy::Honor, NodeInclusionPolicy::Ignore]),
            });
    }
    if g.chance(15) {
        p.affinity.pod_affinity.required.push(affinity_term(g));
    }
    if g.chance(10) {
        p.affinity
            .pod_affinity
            .preferred
            .push(WeightedPodAffinityTerm {
                weight: 5,
                pod_affinity_term: affinity_term(g),
            });
    }
    if g.chance(20) {
        p.affinity.pod_anti_affinity.required.push(affinity_term(g));
    }
    if g.chance(10) {
        p.affinity
            .pod_anti_affinity
            .preferred
            .push(WeightedPodAffinityTerm {
                weight: 5,
                pod_affinity_term: affinity_term(g),
            });
    }
    if g.chance(10) {
        p.host_ports.push(HostPort {
            port: g.pick(&[80, 443]),
            protocol: Protocol::TCP,
            host_ip: String::new(),
        });
    }
    if g.chance(10) {
        p.volumes.push(VolumeTopology {
            name: "v".into(),
            zones: vec![g.pick(&ZONES).to_string()],
        });
    }
    p.priority = g.pick(&[0, 0, 0, 100]);
    p
}

fn random_snapshot(seed: u64) -> Snapshot {
    let mut g = Gen(seed);
    let mut s = Snapshot::default();
    for i in 0..(2 + g.below(5)) {
        let cpu = g.pick(&[1, 2, 4, 8, 16]);
        let mem = cpu * g.pick(&[1, 2, 4]);
        let mut t = common::itype(
            &format!("t{i}-{cpu}"),
            cpu,
            mem,
            0.04 * cpu as f64 + 0.005 * mem as f64 + 0.001 * i as f64,
        );
        t.overhead = Resources::cpu_mem(g.below(200) as i64, (g.below(256) as i64) * MI);
        if g.chance(30) {
            t.capacity.set("example.com/gpu", 1 + g.below(2) as i64);
        }
        for o in &mut t.offerings {
            o.zone = o
                .zone
                .replace("zone-a", "z1")
                .replace("zone-b", "z2")
                .replace("zone-c", "z3");
            o.available = !g.chance(15);
        }
        s.instance_types.push(t);
    }
    for i in 0..(1 + g.below(3)) {
        let mut np = NodePool {
            name: format!("pool{i}"),
            weight: g.below(3) as i32 * 10,
            ..Default::default()
        };
        if g.chance(40) {
            np.requirements.push(Requirement::new(
                labels::ZONE,
                Operator::In,
                &[g.pick(&ZONES), g.pick(&ZONES)],
            ));
        }
        if g.chance(40) {
            np.requirements.push(Requirement::new(
                labels::CAPACITY_TYPE,
                Operator::In,
                &[g.pick(&["spot", "on-demand"])],
            ));
        }
        if g.chance(20) {
            let mut r = Requirement::new(labels::INSTANCE_TYPE, Operator::Exists, &[]);
            r.min_values = Some(1 + g.below(2) as u32);
            np.requirements.push(r);
        }
        if g.chance(30) {
            np.taints.push(taint(&mut g));
        }
        if g.chance(20) {
            np.startup_taints.push(taint(&mut g));
        }
        if g.chance(30) {
            np.limits = Some(
                Resources::cpu_mem((4 + g.below(24) as i64) * 1000, 1 << 40)
                    .with("nodes", 1 + g.below(6) as i64),
            );
        }
        if g.chance(30) {
            np.daemonset_overhead =
                Resources::cpu_mem(100 + g.below(400) as i64, 128 * MI).with("pods", 1);
        }
        if g.chance(20) {
            np.labels.insert("team".into(), "x".into());
        }
        s.node_pools.push(np);
    }
    for i in 0..g.below(4) {
        let zone = g.pick(&ZONES).to_string();
        let mut n = Node {
            name: format!("node{i}"),
            labels: [
                (labels::ZONE.to_string(), zone),
                ("example.com/cpu".to_string(), "4".to_string()),
            ]
            .into_iter()
            .collect(),
            allocatable: Resources::cpu_mem(4000, 8 * GI).with("pods", 20),
            ..Default::default()
        };
        if g.chance(25) {
            n.taints.push(taint(&mut g));
        }
        n.unschedulable = g.chance(10);
        for j in 0..g.below(3) {
            let mut p = random_pod(&mut g, "default", format!("bound{i}-{j}"), false);
            p.requests = Resources::cpu_mem(200, 128 * MI);
            p.init_containers.clear();
            p.node_name = Some(n.name.clone());
            s.pods.push(p);
        }
        s.nodes.push(n);
    }
    if !s.node_pools.is_empty() && g.chance(30) {
        let t = s.instance_types[0].name.clone();
        s.in_flight.push(InFlightClaim {
            name: "inflight0".into(),
            node_pool: s.node_pools[0].name.clone(),
            instance_type: t,
            zone: "z2".into(),
            capacity_type: "on-demand".into(),
        });
    }
    for i in 0..(1 + g.below(30)) {
        let ns = if g.chance(20) { "other" } else { "default" };
        let p = random_pod(&mut g, ns, format!("p{i}"), true);
        s.pods.push(p);
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400),
        ..ProptestConfig::default()
    })]

    #[test]
    fn plans_never_break_hard_constraints(seed in any::<u64>()) {
        let s = random_snapshot(seed);
        for (opts, order) in [
            (SolveOptions::default(), ClaimOrder::FewestPodsFirst),
            (SolveOptions { improve: false, ..Default::default() }, ClaimOrder::FewestPodsFirst),
            (SolveOptions::default(), ClaimOrder::MostPodsFirst),
        ] {
            let sol = solve_with_claim_order(&s, &opts, order).expect("generated snapshots are valid");
            let bad = check::check(&s, &sol);
            prop_assert!(bad.is_empty(), "seed {seed}: {bad:#?}");
        }
    }

    #[test]
    fn solving_is_deterministic(seed in any::<u64>()) {
        let s = random_snapshot(seed);
        let a = solve(&s, &SolveOptions::default()).unwrap();
        let b = solve(&s, &SolveOptions::default()).unwrap();
        prop_assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
    }

    #[test]
    fn serde_round_trip_keeps_the_plan(seed in any::<u64>()) {
        let s = random_snapshot(seed);
        let back: Snapshot = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        let a = solve(&s, &SolveOptions::default()).unwrap();
        let b = solve(&back, &SolveOptions::default()).unwrap();
        // Prices may differ in the last bit after a JSON round trip; the plan may not.
        type Shape = (Vec<Placement>, Vec<(String, String, String, String)>, Vec<PodRef>);
        let shape = |s: &Solution| -> Shape {
            (
                s.placements.clone(),
                s.new_claims.iter().map(|c| (c.name.clone(), c.instance_type.clone(), c.zone.clone(), c.capacity_type.clone())).collect(),
                s.unschedulable.iter().map(|u| u.pod.clone()).collect(),
            )
        };
        prop_assert!(shape(&a) == shape(&b), "seed {}", seed);
    }
}

/// A random snapshot grown into a cluster: more nodes (some in a zone no offering names, some
/// with GPUs), most pods bound.
fn random_cluster(seed: u64) -> Snapshot {
    let mut s = random_snapshot(seed);
    let mut g = Gen(seed ^ 0x5eed_5eed);
    for i in 0..(2 + g.below(9)) {
        let zone = if g.chance(5) { "z9" } else { g.pick(&ZONES) };
        let cpu = g.pick(&[2, 4, 8, 16]);
        let mut n = Node {
            name: format!("extra{i}"),
            labels: [
                (labels::ZONE.to_string(), zone.to_string()),
                ("example.com/cpu".to_string(), cpu.to_string()),
            ]
            .into_iter()
            .collect(),
            allocatable: Resources::cpu_mem(cpu * 1000, cpu * 2 * GI).with("pods", 30),
            ..Default::default()
        };
        if g.chance(30) {
            n.allocatable.set("example.com/gpu", 2);
        }
        if g.chance(10) {
            n.labels
                .insert(labels::CAPACITY_TYPE.into(), "reserved".into());
        }
        if !s.node_pools.is_empty() && g.chance(50) {
            let p = s.node_pools[g.below(s.node_pools.len() as u64) as usize]
                .name
                .clone();
            n.labels.insert(labels::NODEPOOL.into(), p);
        }
        if g.chance(20) {
            n.taints.push(taint(&mut g));
        }
        n.unschedulable = g.chance(10);
        s.nodes.push(n);
    }
    // Bound anywhere (nodes may be overcommitted), but GPU pods only where there are GPUs.
    let names: Vec<(String, bool)> = s
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.allocatable.get("example.com/gpu") > 0))
        .collect();
    for p in s.pods.iter_mut().filter(|p| p.node_name.is_none()) {
        let gpu = p.requests.get("example.com/gpu") > 0;
        let fit: Vec<&String> = names.iter().filter(|n| n.1 || !gpu).map(|n| &n.0).collect();
        if !fit.is_empty() && g.chance(70) {
            p.node_name = Some(fit[g.below(fit.len() as u64) as usize].clone());
        }
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400),
        ..ProptestConfig::default()
    })]

    /// A prepared cluster solves "without these nodes, with their pods pending" exactly as a
    /// full solve of the reduced snapshot does, several times over the same preparation.
    #[test]
    fn prepared_solves_equal_full_solves(seed in any::<u64>()) {
        let s = random_cluster(seed);
        let opts = SolveOptions::default();
        let prepared = PreparedCluster::new(s.clone(), &opts);
        prop_assert!(prepared.is_prepared(), "seed {seed}: the cluster is valid");
        let mut g = Gen(seed.rotate_left(17));
        for round in 0..4 {
            let removed: Vec<usize> = (0..s.nodes.len()).filter(|_| g.chance(30)).collect();
            let gone: Vec<&str> = removed.iter().map(|&i| s.nodes[i].name.as_str()).collect();
            // Their pods go pending, but some (DaemonSet-like) vanish with them.
            let pending: Vec<Pod> = s
                .pods
                .iter()
                .filter(|p| p.node_name.as_deref().is_some_and(|n| gone.contains(&n)))
                .filter(|_| !g.chance(20))
                .map(|p| Pod { node_name: None, ..p.clone() })
                .collect();
            let pending: Vec<&Pod> = pending.iter().collect();
            let full = solve(&prepared.reduced(&removed, &pending), &opts)
                .expect("generated clusters are valid");
            let want = serde_json::to_string(&full).unwrap();
            let got = serde_json::to_string(&prepared.solve_without(&removed, &pending).unwrap()).unwrap();
            prop_assert_eq!(&got, &want, "seed {} round {}", seed, round);
            if let Some(fast) = prepared.solve_prepared_only(&removed, &pending) {
                prop_assert_eq!(serde_json::to_string(&fast).unwrap(), want, "seed {} round {}", seed, round);
            }
        }
    }
}

/// The prepared path is the one taken on ordinary clusters (not the full-solve fallback).
#[test]
fn prepared_path_is_taken() {
    let (mut taken, mut tried) = (0, 0);
    for seed in 0..200u64 {
        let s = random_cluster(seed);
        let prepared = PreparedCluster::new(s.clone(), &SolveOptions::default());
        let removed = vec![seed as usize % s.nodes.len()];
        let gone = &s.nodes[removed[0]].name;
        let pending: Vec<Pod> = s
            .pods
            .iter()
            .filter(|p| p.node_name.as_ref() == Some(gone))
            .map(|p| Pod {
                node_name: None,
                ..p.clone()
            })
            .collect();
        tried += 1;
        let pending: Vec<&Pod> = pending.iter().collect();
        if prepared.solve_prepared_only(&removed, &pending).is_some() {
            taken += 1;
        }
    }
    assert!(
        taken * 10 >= tried * 8,
        "prepared path taken {taken} of {tried} times"
    );
}

/// The checker itself catches what it should: a hand-broken plan is flagged.
#[test]
fn checker_flags_overcommit_and_anti_affinity() {
    let mut s = common::snapshot(common::pods("db", 2, 3000, 128));
    for p in &mut s.pods {
        p.affinity.pod_anti_affinity.required = vec![common::term(labels::HOSTNAME, "db")];
    }
    let mut sol = solve(&s, &SolveOptions::default()).unwrap();
    assert!(check::check(&s, &sol).is_empty());
    // Put both pods on the first claim.
    let first = sol.new_claims[0].clone();
    sol.placements[1].target = Target::NewClaim(0);
    sol.new_claims[0].pods.push(sol.placements[1].pod.clone());
    sol.new_claims.truncate(1);
    sol.new_claims[0] = NewClaim { ..first };
    sol.new_claims[0].pods = sol.placements.iter().map(|p| p.pod.clone()).collect();
    let bad = check::check(&s, &sol);
    assert!(bad.iter().any(|b| b.contains("anti-affinity")), "{bad:#?}");
    assert!(bad.iter().any(|b| b.contains("overcommitted")), "{bad:#?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Extreme or contradictory values come back as a plan or an error, never a panic.
    #[test]
    fn extreme_values_never_panic(seed in any::<u64>(), big in prop::sample::select(vec![0i64, 1, i64::MAX / 2, i64::MAX]), skew in -2i32..3) {
        let mut s = random_snapshot(seed);
        if let Some(p) = s.pods.iter_mut().find(|p| p.node_name.is_none()) {
            p.requests.cpu_millis = big;
            p.requests.set("example.com/gpu", big);
            p.topology_spread_constraints.push(common::spread(labels::ZONE, skew, "a", WhenUnsatisfiable::DoNotSchedule));
            p.affinity.node_affinity.required.push(NodeSelectorTerm {
                match_expressions: vec![Requirement::new("example.com/cpu", Operator::Gt, &["9223372036854775807"])],
            });
        }
        if let Some(t) = s.instance_types.first_mut() {
            t.capacity.memory_bytes = big;
            t.overhead.cpu_millis = big;
        }
        if let Some(np) = s.node_pools.first_mut() {
            np.limits = Some(Resources::cpu_mem(big, big).with("nodes", big));
            np.requirements.push(Requirement::new("example.com/cpu", Operator::Lt, &["-9223372036854775808"]));
        }
        if let Ok(sol) = solve(&s, &SolveOptions::default()) {
            let _ = sol.to_owned();
        }
    }
}
