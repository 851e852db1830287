#![allow(dead_code)]
//! Builders shared by the integration tests.

use ballast_scheduling::*;

pub const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];
pub const GI: i64 = 1 << 30;
pub const MI: i64 = 1 << 20;

/// An instance type with `cpu` vCPU and `mem_gi` GiB, on-demand in every zone at `price` and
/// spot at 0.7×, no overhead.
pub fn itype(name: &str, cpu: i64, mem_gi: i64, price: f64) -> InstanceType {
    let mut offerings = vec![];
    for z in ZONES {
        offerings.push(Offering {
            zone: z.into(),
            capacity_type: "on-demand".into(),
            price,
            available: true,
        });
        offerings.push(Offering {
            zone: z.into(),
            capacity_type: "spot".into(),
            price: price * 0.7,
            available: true,
        });
    }
    InstanceType {
        name: name.into(),
        capacity: Resources::cpu_mem(cpu * 1000, mem_gi * GI).with("pods", 110),
        overhead: Resources::default(),
        labels: [
            ("kubernetes.io/arch".to_string(), "amd64".to_string()),
            ("example.com/cpu".to_string(), cpu.to_string()),
            (
                "example.com/family".to_string(),
                name.split('-').next().unwrap_or(name).to_string(),
            ),
        ]
        .into_iter()
        .collect(),
        offerings,
    }
}

/// Types c-2, c-4, c-8, c-16 (2 GiB per vCPU) at 0.05 $/vCPU/h.
pub fn catalog() -> Vec<InstanceType> {
    [2, 4, 8, 16]
        .iter()
        .map(|&c| itype(&format!("c-{c}"), c, 2 * c, 0.05 * c as f64))
        .collect()
}

pub fn pool(name: &str) -> NodePool {
    NodePool {
        name: name.into(),
        requirements: vec![Requirement::new(
            labels::CAPACITY_TYPE,
            Operator::In,
            &["on-demand"],
        )],
        ..Default::default()
    }
}

pub fn pod(name: &str, cpu_m: i64, mem_mi: i64) -> Pod {
    let mut p = Pod::new("default", name, Resources::cpu_mem(cpu_m, mem_mi * MI));
    p.labels.insert(
        "app".into(),
        name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-')
            .into(),
    );
    p
}

pub fn pods(prefix: &str, n: usize, cpu_m: i64, mem_mi: i64) -> Vec<Pod> {
    (0..n)
        .map(|i| pod(&format!("{prefix}-{i}"), cpu_m, mem_mi))
        .collect()
}

pub fn node(name: &str, zone: &str, cpu: i64, mem_gi: i64) -> Node {
    Node {
        name: name.into(),
        labels: [
            (labels::ZONE.to_string(), zone.to_string()),
            (labels::HOSTNAME.to_string(), name.to_string()),
        ]
        .into_iter()
        .collect(),
        allocatable: Resources::cpu_mem(cpu * 1000, mem_gi * GI).with("pods", 110),
        ..Default::default()
    }
}

pub fn snapshot(pods: Vec<Pod>) -> Snapshot {
    Snapshot {
        pods,
        node_pools: vec![pool("default")],
        instance_types: catalog(),
        ..Default::default()
    }
}

/// Solves and asserts the independent checker finds nothing wrong.
pub fn solve_ok(s: &Snapshot) -> Solution {
    let sol = solve(s, &SolveOptions::default()).expect("valid input");
    let bad = check::check(s, &sol);
    assert!(bad.is_empty(), "checker found violations: {bad:#?}");
    sol
}

pub fn target_of<'a>(sol: &'a Solution, pod: &str) -> Option<&'a Target> {
    sol.placements
        .iter()
        .find(|p| p.pod.name == pod)
        .map(|p| &p.target)
}

pub fn claim_of<'a>(sol: &'a Solution, pod: &str) -> Option<&'a NewClaim> {
    match target_of(sol, pod)? {
        Target::NewClaim(i) => sol.new_claims.get(*i),
        Target::Node(_) => None,
    }
}

pub fn why(sol: &Solution, pod: &str) -> String {
    sol.unschedulable
        .iter()
        .find(|u| u.pod.name == pod)
        .map(|u| u.to_string())
        .unwrap_or_default()
}

pub fn sel(app: &str) -> Option<LabelSelector> {
    Some(LabelSelector::labels(&[("app", app)]))
}

pub fn spread(
    key: &str,
    skew: i32,
    app: &str,
    when: WhenUnsatisfiable,
) -> TopologySpreadConstraint {
    TopologySpreadConstraint {
        max_skew: skew,
        topology_key: key.into(),
        when_unsatisfiable: when,
        label_selector: sel(app),
        min_domains: None,
        match_label_keys: vec![],
        node_affinity_policy: NodeInclusionPolicy::Honor,
    }
}

pub fn term(key: &str, app: &str) -> PodAffinityTerm {
    PodAffinityTerm {
        label_selector: sel(app),
        namespaces: vec![],
        namespace_selector: None,
        topology_key: key.into(),
    }
}

pub fn tolerate(key: &str) -> Toleration {
    Toleration {
        key: key.into(),
        operator: TolerationOperator::Exists,
        value: String::new(),
        effect: None,
    }
}
