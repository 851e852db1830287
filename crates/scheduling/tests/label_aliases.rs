//! Table tests: Karpenter's spellings of Ballast's label keys (`karpenter.sh/capacity-type`,
//! `karpenter.sh/nodepool`, `karpenter.k8s.aws/instance-*`) mean the same as ours wherever the
//! solver reads a key: pod node selectors and node affinity, NodePool requirements, existing
//! nodes' labels. Every solve also goes through the independent checker (`solve_ok`).

mod common;

use ballast_scheduling::*;
use common::*;

const FAMILY: &str = "nodes.ballast.dev/instance-family";

/// Where the one pod of a case should land.
#[derive(Debug, PartialEq)]
enum Want {
    /// A new claim of this capacity type and instance family.
    Claim(&'static str, &'static str),
    /// The existing node `n1`.
    ExistingNode,
    Pending,
}

struct Case {
    name: &'static str,
    /// The pool's requirements, replacing the default `capacity-type In [on-demand]`.
    pool: Vec<Requirement>,
    selector: &'static [(&'static str, &'static str)],
    affinity: Vec<Requirement>,
    /// Labels of an existing node `n1` (none when empty).
    node: &'static [(&'static str, &'static str)],
    want: Want,
}

fn req(key: &str, values: &[&str]) -> Requirement {
    Requirement::new(key, Operator::In, values)
}

fn both_capacity_types() -> Vec<Requirement> {
    vec![req(labels::CAPACITY_TYPE, &["spot", "on-demand"])]
}

/// Types c-2..c-16 and m-2..m-16 with their family under Ballast's key.
fn families() -> Vec<InstanceType> {
    let mut types = catalog();
    types.extend(
        [2, 4, 8, 16]
            .iter()
            .map(|&c| itype(&format!("m-{c}"), c, 4 * c, 0.06 * c as f64)),
    );
    for t in &mut types {
        let family = t.name.split('-').next().unwrap_or_default().to_string();
        t.labels.insert(FAMILY.into(), family);
    }
    types
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "pod selects karpenter.sh/capacity-type=on-demand in a pool offering both",
            pool: both_capacity_types(),
            selector: &[("karpenter.sh/capacity-type", "on-demand")],
            affinity: vec![],
            node: &[],
            want: Want::Claim("on-demand", "c"),
        },
        Case {
            name: "pod selects karpenter.sh/capacity-type=spot, the pool is on-demand only",
            pool: vec![req(labels::CAPACITY_TYPE, &["on-demand"])],
            selector: &[("karpenter.sh/capacity-type", "spot")],
            affinity: vec![],
            node: &[],
            want: Want::Pending,
        },
        Case {
            name: "pool written with karpenter.sh/capacity-type, pod with ours",
            pool: vec![req("karpenter.sh/capacity-type", &["spot"])],
            selector: &[(labels::CAPACITY_TYPE, "on-demand")],
            affinity: vec![],
            node: &[],
            want: Want::Pending,
        },
        Case {
            name: "pod requires karpenter.k8s.aws/instance-family In [m]",
            pool: both_capacity_types(),
            selector: &[("karpenter.sh/capacity-type", "on-demand")],
            affinity: vec![req("karpenter.k8s.aws/instance-family", &["m"])],
            node: &[],
            want: Want::Claim("on-demand", "m"),
        },
        Case {
            name: "pool restricts the family in Karpenter's spelling",
            pool: vec![
                req(labels::CAPACITY_TYPE, &["on-demand"]),
                req("karpenter.k8s.aws/instance-family", &["m"]),
            ],
            selector: &[(FAMILY, "c")],
            affinity: vec![],
            node: &[],
            want: Want::Pending,
        },
        Case {
            name: "pod selects karpenter.sh/nodepool=default",
            pool: both_capacity_types(),
            selector: &[("karpenter.sh/nodepool", "default")],
            affinity: vec![],
            node: &[],
            want: Want::Claim("spot", "c"),
        },
        Case {
            name: "existing node labelled by Karpenter, pod selects ours",
            pool: vec![req(labels::CAPACITY_TYPE, &["on-demand"])],
            selector: &[(labels::CAPACITY_TYPE, "spot")],
            affinity: vec![],
            node: &[
                ("karpenter.sh/capacity-type", "spot"),
                ("karpenter.sh/nodepool", "default"),
            ],
            want: Want::ExistingNode,
        },
        Case {
            name: "existing node labelled by us, pod selects Karpenter's family key",
            pool: vec![req(labels::CAPACITY_TYPE, &["on-demand"])],
            selector: &[("karpenter.k8s.aws/instance-family", "x")],
            affinity: vec![],
            node: &[(FAMILY, "x"), (labels::CAPACITY_TYPE, "on-demand")],
            want: Want::ExistingNode,
        },
    ]
}

fn snapshot_of(c: &Case) -> Snapshot {
    let mut s = snapshot(pods("p", 1, 500, 128));
    s.instance_types = families();
    s.node_pools[0].requirements = c.pool.clone();
    for (k, v) in c.selector {
        s.pods[0].node_selector.insert(k.to_string(), v.to_string());
    }
    if !c.affinity.is_empty() {
        s.pods[0].affinity.node_affinity.required = vec![NodeSelectorTerm {
            match_expressions: c.affinity.clone(),
        }];
    }
    if !c.node.is_empty() {
        let mut n = node("n1", "zone-a", 4, 8);
        for (k, v) in c.node {
            n.labels.insert(k.to_string(), v.to_string());
        }
        s.nodes.push(n);
    }
    s
}

#[test]
fn karpenter_spellings_mean_the_same_keys() {
    for c in cases() {
        let sol = solve_ok(&snapshot_of(&c));
        let got = match target_of(&sol, "p-0") {
            Some(Target::Node(n)) if n == "n1" => Want::ExistingNode,
            Some(Target::NewClaim(_)) => {
                let claim = claim_of(&sol, "p-0").expect("claim");
                let family = claim.labels.get(FAMILY).map(String::as_str);
                match (claim.capacity_type.as_str(), family) {
                    ("on-demand", Some("c")) => Want::Claim("on-demand", "c"),
                    ("on-demand", Some("m")) => Want::Claim("on-demand", "m"),
                    ("spot", Some("c")) => Want::Claim("spot", "c"),
                    other => panic!("{}: unexpected claim {other:?}", c.name),
                }
            }
            None => Want::Pending,
            other => panic!("{}: unexpected target {other:?}", c.name),
        };
        assert_eq!(got, c.want, "{}", c.name);
    }
}
