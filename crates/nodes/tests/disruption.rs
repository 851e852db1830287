//! Table tests of the disruption methods and their guards.

mod common;

use ballast_api::nodes::{self as api, ConsolidationPolicy};
use ballast_nodes::{
    ClusterSnapshot, DisruptionDecision, DisruptionOptions, Method, PdbMode, PodDisruptionBudget,
    SimulationMode, Verdict, Why, disrupt,
};
use ballast_scheduling::{LabelSelector, check};
use common::*;

fn run(s: &ClusterSnapshot) -> DisruptionDecision {
    run_with(s, &DisruptionOptions::default())
}

fn run_with(s: &ClusterSnapshot, o: &DisruptionOptions) -> DisruptionDecision {
    let d = disrupt(s, now(), o).unwrap();
    // The fast simulation must agree with the full solver on every test cluster.
    let full = disrupt(
        s,
        now(),
        &DisruptionOptions {
            simulation: SimulationMode::FullSolve,
            ..o.clone()
        },
    )
    .unwrap();
    assert_eq!(
        common::canonical(&d.action),
        common::canonical(&full.action),
        "fast and full disagree"
    );
    assert_eq!(
        serde_json::to_value(&d.nodes).unwrap(),
        serde_json::to_value(&full.nodes).unwrap(),
        "fast and full disagree"
    );
    if let Some(a) = &d.action
        && matches!(
            a.method,
            Method::MultiNodeConsolidation | Method::SingleNodeConsolidation | Method::Drift
        )
    {
        let (model, plan) = ballast_nodes::action_as_plan(s, a).unwrap();
        let bad = check::check(&model, &plan);
        assert!(bad.is_empty(), "checker: {bad:?}");
    }
    d
}

/// The notes a method left on a node.
fn notes(d: &DisruptionDecision, node: &str, m: Method) -> Vec<(Verdict, Why)> {
    d.nodes
        .iter()
        .find(|n| n.node == node)
        .unwrap()
        .notes
        .iter()
        .filter(|n| n.method == Some(m))
        .map(|n| (n.verdict, n.why.clone()))
        .collect()
}

fn rejected_because(
    d: &DisruptionDecision,
    node: &str,
    m: Method,
    f: impl Fn(&Why) -> bool,
) -> bool {
    notes(d, node, m)
        .iter()
        .any(|(v, w)| *v == Verdict::Rejected && f(w))
}

fn set_pool(s: &mut ClusterSnapshot, f: impl FnOnce(&mut api::Disruption)) {
    let d = s.node_pools[0]
        .spec
        .disruption
        .get_or_insert_with(Default::default);
    f(d);
}

#[test]
fn empty_node_is_deleted() {
    let s = cluster(
        vec![pool("p")],
        vec![
            node("n1", &ty("large"), "p", "on-demand", vec![daemon("ds")]),
            node(
                "n2",
                &ty("large"),
                "p",
                "on-demand",
                vec![pod("a", "x", 1000, 100)],
            ),
        ],
    );
    let d = run(&s);
    let a = d.action.clone().expect("an action");
    assert_eq!(a.method, Method::Emptiness);
    assert_eq!(a.nodes, vec!["n1"]);
    assert!((a.savings - 0.40).abs() < 1e-9);
    assert!(rejected_because(&d, "n2", Method::Emptiness, |w| matches!(
        w,
        Why::NotEmpty { pods: 1 }
    )));
}

#[test]
fn emptiness_waits_for_consolidate_after() {
    let mut s = cluster(
        vec![pool("p")],
        vec![node("n1", &ty("large"), "p", "on-demand", vec![])],
    );
    set_pool(&mut s, |d| d.consolidate_after = Some("10m".into()));
    s.nodes[0].last_pod_event = Some(t("2025-06-01T11:55:00Z"));
    let d = run(&s);
    assert!(d.action.is_none());
    assert!(rejected_because(
        &d,
        "n1",
        Method::Emptiness,
        |w| matches!(w, Why::ConsolidateAfter { remaining_seconds } if (*remaining_seconds - 300.0).abs() < 1e-6)
    ));
    s.nodes[0].last_pod_event = Some(t("2025-06-01T11:45:00Z"));
    assert_eq!(run(&s).action.unwrap().method, Method::Emptiness);
    set_pool(&mut s, |d| d.consolidate_after = Some("Never".into()));
    let d = run(&s);
    assert!(d.action.is_none());
    assert!(rejected_because(&d, "n1", Method::Emptiness, |w| matches!(
        w,
        Why::ConsolidationDisabled
    )));
}

#[test]
fn default_budget_is_ten_percent_rounded_up() {
    // 12 nodes, 3 empty: 10% of 12 rounds up to 2.
    let mut nodes = vec![];
    for i in 0..12 {
        let pods = if i < 3 {
            vec![]
        } else {
            vec![pod("a", &format!("p{i}"), 7000, 100)]
        };
        nodes.push(node(
            &format!("n{i:02}"),
            &ty("large"),
            "p",
            "on-demand",
            pods,
        ));
    }
    let mut s = cluster(vec![pool("p")], nodes);
    set_pool(&mut s, |d| d.budgets.clear());
    let d = run(&s);
    let a = d.action.clone().unwrap();
    assert_eq!(a.nodes.len(), 2);
    let left: Vec<&str> = ["n00", "n01", "n02"]
        .into_iter()
        .filter(|n| !a.nodes.iter().any(|x| x == n))
        .collect();
    assert_eq!(left.len(), 1);
    assert!(rejected_because(
        &d,
        left[0],
        Method::Emptiness,
        |w| matches!(w, Why::Budget { .. })
    ));
    let b = d
        .budgets
        .iter()
        .find(|b| b.reason == api::DisruptionReason::Empty)
        .unwrap();
    assert_eq!((b.nodes, b.allowed, b.available), (12, Some(2), 2));
}

#[test]
fn budget_counts_disrupting_nodes() {
    let mut s = cluster(
        vec![pool("p")],
        vec![
            node("n1", &ty("large"), "p", "on-demand", vec![]),
            node("n2", &ty("large"), "p", "on-demand", vec![]),
        ],
    );
    set_pool(&mut s, |d| {
        d.budgets = vec![api::Budget {
            nodes: "1".into(),
            ..Default::default()
        }]
    });
    s.nodes[1].ready = false;
    let d = run(&s);
    assert!(d.action.is_none());
    assert!(rejected_because(&d, "n1", Method::Emptiness, |w| matches!(
        w,
        Why::Budget { .. }
    )));
}

#[test]
fn budget_schedule_windows() {
    let mut s = cluster(
        vec![pool("p")],
        vec![node("n1", &ty("large"), "p", "on-demand", vec![])],
    );
    // No disruption 09:00–17:00 UTC on weekdays... and every day here.
    set_pool(&mut s, |d| {
        d.budgets = vec![
            api::Budget {
                nodes: "100%".into(),
                ..Default::default()
            },
            api::Budget {
                nodes: "0".into(),
                schedule: Some("0 9 * * *".into()),
                duration: Some("8h".into()),
                reasons: vec![],
            },
        ]
    });
    let at = |s: &ClusterSnapshot, when: &str| {
        disrupt(s, t(when), &DisruptionOptions::default()).unwrap()
    };
    assert!(
        at(&s, "2025-06-01T12:00:00Z").action.is_none(),
        "window open: budget 0"
    );
    assert!(
        at(&s, "2025-06-01T18:00:00Z").action.is_some(),
        "window closed"
    );
    assert!(
        at(&s, "2025-06-01T08:59:00Z").action.is_some(),
        "before the window"
    );
    // A budget limited to Drifted does not hold back emptiness.
    set_pool(&mut s, |d| {
        d.budgets[1].reasons = vec![api::DisruptionReason::Drifted]
    });
    assert!(at(&s, "2025-06-01T12:00:00Z").action.is_some());
}

#[test]
fn single_node_delete_when_pods_fit_elsewhere() {
    let s = cluster(
        vec![pool("p")],
        vec![
            node(
                "n1",
                &ty("large"),
                "p",
                "on-demand",
                vec![pod("a", "x1", 1000, 100), pod("a", "x2", 1000, 100)],
            ),
            node(
                "n2",
                &ty("xlarge"),
                "p",
                "on-demand",
                vec![pod("a", "y1", 10000, 100)],
            ),
        ],
    );
    let d = run(&s);
    let a = d.action.unwrap();
    assert_eq!(a.method, Method::SingleNodeConsolidation);
    assert_eq!(a.nodes, vec!["n1"]);
    assert!(a.replacements.is_empty());
    assert_eq!(a.pods_evicted.len(), 2);
    assert!(a.moves.iter().all(|m| m.to == "n2"));
    assert!((a.savings - 0.40).abs() < 1e-9);
    assert!(a.disruption_cost > 1.9);
}

#[test]
fn single_node_replace_with_cheaper() {
    let s = cluster(
        vec![pool("p")],
        vec![node(
            "n1",
            &ty("xlarge"),
            "p",
            "on-demand",
            vec![pod("a", "x", 3000, 1000)],
        )],
    );
    let d = run(&s);
    let a = d.action.unwrap();
    assert_eq!(a.method, Method::SingleNodeConsolidation);
    let r = &a.replacements[0].plan;
    assert_eq!(r.instance_type, "medium");
    assert_eq!(
        r.instance_types
            .iter()
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>(),
        vec!["medium", "large"]
    );
    assert!((a.savings - 0.60).abs() < 1e-9);
    let labels = r.node_claim.metadata.labels.clone().unwrap();
    assert_eq!(labels[api::labels::NODEPOOL], "p");
    assert!(
        r.node_claim
            .metadata
            .annotations
            .clone()
            .unwrap()
            .contains_key(api::labels::NODEPOOL_HASH)
    );
}

#[test]
fn no_churn_at_equal_price() {
    let s = cluster(
        vec![pool("p")],
        vec![node(
            "n1",
            &ty("medium"),
            "p",
            "on-demand",
            vec![pod("a", "x", 3000, 1000)],
        )],
    );
    let d = run(&s);
    assert!(d.action.is_none());
    // The only type cheaper than a medium holds fewer cores than the pod needs.
    assert!(rejected_because(
        &d,
        "n1",
        Method::SingleNodeConsolidation,
        |w| matches!(w, Why::NoCheaperNodeHolds { .. })
    ));
}

#[test]
fn min_savings_percent() {
    // xlarge ($0.80) holding 7 cores → large ($0.40): saves 50%.
    let mut s = cluster(
        vec![pool("p")],
        vec![node(
            "n1",
            &ty("xlarge"),
            "p",
            "on-demand",
            vec![pod("a", "x", 7000, 1000)],
        )],
    );
    set_pool(&mut s, |d| d.min_savings_percent = Some(60));
    let d = run(&s);
    assert!(d.action.is_none());
    assert!(rejected_because(
        &d,
        "n1",
        Method::SingleNodeConsolidation,
        |w| matches!(w, Why::BelowMinSavings { percent, min } if (*percent - 50.0).abs() < 1e-9 && *min == 60.0)
    ));
    set_pool(&mut s, |d| d.min_savings_percent = Some(40));
    assert_eq!(
        run(&s).action.unwrap().replacements[0].plan.instance_type,
        "large"
    );
}

fn spot_catalog(cheaper: usize) -> Vec<ballast_scheduling::InstanceType> {
    // `cheaper` spot types of 4 cores cheaper than the 16-core one the node runs.
    let mut v = vec![itype("big", 16, 32, 0.80, 0.50)];
    for i in 0..cheaper {
        v.push(itype(
            &format!("s{i:02}"),
            4,
            8,
            0.20,
            0.10 + i as f64 * 0.01,
        ));
    }
    v
}

#[test]
fn spot_to_spot_needs_fifteen_cheaper_types() {
    let mut s = cluster(
        vec![pool("p")],
        vec![node(
            "n1",
            &ty("xlarge"),
            "p",
            "spot",
            vec![pod("a", "x", 3000, 1000)],
        )],
    );
    s.nodes[0]
        .labels
        .insert(api::labels::INSTANCE_TYPE.into(), "big".into());
    s.instance_types = spot_catalog(5);
    // The pool allows spot (a pool that names no capacity type is on-demand only).
    s.node_pools[0].spec.template.spec.requirements.push(
        api::NodeSelectorRequirementWithMinValues {
            key: api::labels::CAPACITY_TYPE.into(),
            operator: api::RequirementOperator::In,
            values: vec!["spot".into(), "on-demand".into()],
            min_values: None,
        },
    );
    let d = run(&s);
    assert!(d.action.is_none());
    assert!(rejected_because(
        &d,
        "n1",
        Method::SingleNodeConsolidation,
        |w| matches!(w, Why::SpotToSpotTooFewTypes { have: 5, need: 15 })
    ));
    s.instance_types = spot_catalog(20);
    let a = run(&s).action.unwrap();
    let r = &a.replacements[0].plan;
    assert_eq!(r.capacity_types, vec!["spot"]);
    assert_eq!(r.instance_types.len(), 15, "launch only the 15 cheapest");
    let off = run_with(
        &s,
        &DisruptionOptions {
            spot_to_spot: false,
            ..Default::default()
        },
    );
    assert!(rejected_because(
        &off,
        "n1",
        Method::SingleNodeConsolidation,
        |w| matches!(w, Why::SpotToSpotDisabled)
    ));
}

#[test]
fn multi_node_two_into_one() {
    let mut cat = catalog();
    cat.push(itype("six", 6, 12, 0.28, 0.0));
    let mut s = cluster(
        vec![pool("p")],
        vec![
            node(
                "n1",
                &ty("medium"),
                "p",
                "on-demand",
                vec![pod("a", "x", 2500, 1000)],
            ),
            node(
                "n2",
                &ty("medium"),
                "p",
                "on-demand",
                vec![pod("a", "y", 2500, 1000)],
            ),
        ],
    );
    s.instance_types = cat;
    let d = run(&s);
    let a = d.action.unwrap();
    assert_eq!(a.method, Method::MultiNodeConsolidation);
    assert_eq!(a.nodes.len(), 2);
    assert_eq!(a.replacements.len(), 1);
    assert_eq!(a.replacements[0].plan.instance_type, "six");
    assert!((a.savings - 0.12).abs() < 1e-9);
    // Alone, neither node can go: no room elsewhere, nothing cheaper holds 2.5 cores.
    let d = run_with(
        &s,
        &DisruptionOptions {
            explain_all: true,
            ..Default::default()
        },
    );
    assert!(rejected_because(
        &d,
        "n1",
        Method::SingleNodeConsolidation,
        |w| matches!(w, Why::NoCheaperNodeHolds { .. })
    ));
}

#[test]
fn never_one_into_two() {
    // 6 cores on a large; the only cheaper types hold 4 cores: two would be needed.
    let mut s = cluster(
        vec![pool("p")],
        vec![node(
            "n1",
            &ty("large"),
            "p",
            "on-demand",
            vec![pod("a", "x", 3000, 100), pod("a", "y", 3000, 100)],
        )],
    );
    s.instance_types = vec![
        itype("large", 8, 16, 0.40, 0.0),
        itype("medium", 4, 8, 0.15, 0.0),
    ];
    let d = run(&s);
    assert!(d.action.is_none());
    // Nothing cheaper holds 6 cores, so no solve is needed to say no.
    assert!(rejected_because(
        &d,
        "n1",
        Method::SingleNodeConsolidation,
        |w| matches!(w, Why::NoCheaperNodeHolds { .. })
    ));
    // A cheaper type holds 6 cores, but the pods keep apart (hostname anti-affinity): two nodes.
    s.instance_types.push(itype("wide", 8, 16, 0.30, 0.0));
    let apart = pod_term(
        "kubernetes.io/hostname",
        Some(LabelSelector::labels(&[("app", "x")])),
    );
    for p in &mut s.nodes[0].pods {
        p.pod.labels.insert("app".into(), "x".into());
        p.pod.affinity.pod_anti_affinity.required = vec![apart.clone()];
    }
    for mode in [SimulationMode::Fast, SimulationMode::FullSolve] {
        let d = run_with(
            &s,
            &DisruptionOptions {
                simulation: mode,
                ..Default::default()
            },
        );
        assert!(d.action.is_none());
        assert!(rejected_because(
            &d,
            "n1",
            Method::SingleNodeConsolidation,
            |w| matches!(w, Why::WouldNeedNodes { count: 2 })
        ));
    }
}

fn two_nodes_one_movable() -> ClusterSnapshot {
    cluster(
        vec![pool("p")],
        vec![
            node(
                "n1",
                &ty("large"),
                "p",
                "on-demand",
                vec![pod("a", "x1", 1000, 100), pod("a", "x2", 1000, 100)],
            ),
            node(
                "n2",
                &ty("xlarge"),
                "p",
                "on-demand",
                vec![pod("b", "y1", 10000, 100)],
            ),
        ],
    )
}

#[test]
fn pdb_blocks() {
    let mut s = two_nodes_one_movable();
    s.nodes[0].pods[0]
        .pod
        .labels
        .insert("app".into(), "x".into());
    s.nodes[0].pods[1]
        .pod
        .labels
        .insert("app".into(), "x".into());
    s.pdbs = vec![PodDisruptionBudget {
        namespace: "a".into(),
        name: "x".into(),
        selector: LabelSelector::labels(&[("app", "x")]),
        disruptions_allowed: 0,
    }];
    let d = run(&s);
    assert!(d.action.is_none());
    assert!(rejected_because(
        &d,
        "n1",
        Method::SingleNodeConsolidation,
        |w| matches!(w, Why::PdbBlocks { .. })
    ));
    s.pdbs[0].disruptions_allowed = 1;
    assert_eq!(run(&s).action.unwrap().nodes, vec!["n1"]);
    // Strict: evicting two pods of a PDB that allows one is refused.
    let d = run_with(
        &s,
        &DisruptionOptions {
            pdb_mode: PdbMode::Strict,
            ..Default::default()
        },
    );
    assert!(d.action.is_none());
    assert!(rejected_because(
        &d,
        "n1",
        Method::SingleNodeConsolidation,
        |w| matches!(
            w,
            Why::PdbExhausted {
                evictions: 2,
                allowed: 1,
                ..
            }
        )
    ));
    // Two PDBs on one pod: the Eviction API refuses it.
    s.pdbs.push(PodDisruptionBudget {
        namespace: "a".into(),
        name: "all".into(),
        selector: LabelSelector::default(),
        disruptions_allowed: 5,
    });
    let d = run(&s);
    assert!(rejected_because(
        &d,
        "n1",
        Method::SingleNodeConsolidation,
        |w| matches!(w, Why::MultiplePdbs { .. })
    ));
}

#[test]
fn do_not_disrupt_true_and_duration() {
    let mut s = two_nodes_one_movable();
    s.nodes[0].pods[0]
        .annotations
        .insert("karpenter.sh/do-not-disrupt".into(), "true".into());
    let d = run(&s);
    assert!(d.action.is_none());
    assert!(rejected_because(
        &d,
        "n1",
        Method::SingleNodeConsolidation,
        |w| matches!(w, Why::PodDoNotDisrupt { until: None, .. })
    ));
    // A duration counts from the pod's start: started 11:30, 1h → protected until 12:30.
    s.nodes[0].pods[0]
        .annotations
        .insert("karpenter.sh/do-not-disrupt".into(), "1h".into());
    s.nodes[0].pods[0].started = Some(t("2025-06-01T11:30:00Z"));
    let d = run(&s);
    assert!(rejected_because(
        &d,
        "n1",
        Method::SingleNodeConsolidation,
        |w| matches!(w, Why::PodDoNotDisrupt { until: Some(u), .. } if *u == t("2025-06-01T12:30:00Z"))
    ));
    s.nodes[0].pods[0].started = Some(t("2025-06-01T10:00:00Z"));
    assert_eq!(run(&s).action.unwrap().nodes, vec!["n1"]);
    // On the node itself, Ballast's spelling.
    s.nodes[0]
        .annotations
        .insert(api::labels::DO_NOT_DISRUPT.into(), "true".into());
    let d = run(&s);
    assert!(rejected_because(
        &d,
        "n1",
        Method::SingleNodeConsolidation,
        |w| matches!(w, Why::NodeDoNotDisrupt { .. })
    ));
}

#[test]
fn pods_that_cannot_move() {
    type Change = Box<dyn Fn(&mut ballast_nodes::BoundPod)>;
    let cases: Vec<(&str, Change)> = vec![
        ("no controller", Box::new(|p| p.owner_kind = None)),
        ("local storage", Box::new(|p| p.local_storage = true)),
        (
            "kube-system",
            Box::new(|p| p.pod.namespace = "kube-system".into()),
        ),
        (
            "safe-to-evict=false",
            Box::new(|p| {
                p.annotations.insert(
                    ballast_nodes::snapshot::SAFE_TO_EVICT.into(),
                    "false".into(),
                );
            }),
        ),
    ];
    for (what, f) in cases {
        let mut s = two_nodes_one_movable();
        f(&mut s.nodes[0].pods[0]);
        let d = run(&s);
        assert!(d.action.is_none(), "{what}");
        assert!(
            rejected_because(&d, "n1", Method::SingleNodeConsolidation, |w| matches!(
                w,
                Why::PodCannotMove { .. }
            )),
            "{what}"
        );
    }
    // safe-to-evict=true lets a pod with local storage go; the option can be turned off too.
    let mut s = two_nodes_one_movable();
    s.nodes[0].pods[0].local_storage = true;
    s.nodes[0].pods[0]
        .annotations
        .insert(ballast_nodes::snapshot::SAFE_TO_EVICT.into(), "true".into());
    assert!(run(&s).action.is_some());
    s.nodes[0].pods[0].annotations.clear();
    assert!(
        run_with(
            &s,
            &DisruptionOptions {
                block_local_storage: false,
                ..Default::default()
            }
        )
        .action
        .is_some()
    );
}

#[test]
fn when_empty_policy_leaves_underutilized_nodes() {
    let mut s = two_nodes_one_movable();
    set_pool(&mut s, |d| {
        d.consolidation_policy = Some(ConsolidationPolicy::WhenEmpty)
    });
    let d = run(&s);
    assert!(d.action.is_none());
    assert!(rejected_because(
        &d,
        "n1",
        Method::SingleNodeConsolidation,
        |w| matches!(w, Why::WhenEmptyPolicy)
    ));
}

#[test]
fn drift_by_template_hash_and_requirements() {
    let p = pool("p");
    let mut n1 = node(
        "n1",
        &ty("medium"),
        "p",
        "on-demand",
        vec![pod("a", "x", 3000, 1000)],
    );
    let mut c1 = claim_for(&mut n1, &p);
    c1.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(api::labels::NODEPOOL_HASH.into(), "stale".into());
    let mut s = cluster(vec![p.clone()], vec![n1]);
    s.node_claims = vec![c1];
    let d = run(&s);
    let a = d.action.unwrap();
    assert_eq!(a.method, Method::Drift);
    assert_eq!(a.replacements.len(), 1, "the pod needs a new node");
    assert_eq!(a.replacements[0].plan.instance_type, "medium");
    assert_eq!(a.node_claims, vec!["n1-claim"]);

    // Requirement drift: the pool now wants zone b.
    let mut p2 = pool("p");
    p2.spec.template.spec.requirements = vec![api::NodeSelectorRequirementWithMinValues {
        key: api::labels::ZONE.into(),
        operator: api::RequirementOperator::In,
        values: vec!["b".into()],
        min_values: None,
    }];
    let mut n1 = node(
        "n1",
        &ty("medium"),
        "p",
        "on-demand",
        vec![pod("a", "x", 3000, 1000)],
    );
    let c1 = claim_for(&mut n1, &p2);
    let mut s = cluster(vec![p2], vec![n1]);
    s.node_claims = vec![c1];
    let d = run(&s);
    let a = d.action.unwrap();
    assert_eq!(a.method, Method::Drift);
    assert!(a.why.contains("topology.kubernetes.io/zone"), "{}", a.why);
    assert_eq!(a.replacements[0].plan.zones, vec!["b"]);

    // Up to date: not drifted.
    let mut n1 = node(
        "n1",
        &ty("medium"),
        "p",
        "on-demand",
        vec![pod("a", "x", 3000, 1000)],
    );
    let c1 = claim_for(&mut n1, &p);
    let mut s = cluster(vec![p], vec![n1]);
    s.node_claims = vec![c1];
    let d = run(&s);
    assert!(d.action.is_none());
    assert!(rejected_because(&d, "n1", Method::Drift, |w| matches!(
        w,
        Why::NotDrifted
    )));
}

#[test]
fn drift_respects_budget_and_blockers() {
    let p = pool("p");
    let mut n1 = node(
        "n1",
        &ty("medium"),
        "p",
        "on-demand",
        vec![pod("a", "x", 3000, 1000)],
    );
    let mut c1 = claim_for(&mut n1, &p);
    c1.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(api::labels::NODEPOOL_HASH.into(), "stale".into());
    let mut s = cluster(vec![p], vec![n1]);
    s.node_claims = vec![c1];
    s.nodes[0].pods[0]
        .annotations
        .insert(api::labels::DO_NOT_DISRUPT.into(), "true".into());
    let d = run(&s);
    assert!(d.action.is_none());
    assert!(rejected_because(&d, "n1", Method::Drift, |w| matches!(
        w,
        Why::PodDoNotDisrupt { .. }
    )));
    // With a terminationGracePeriod drift goes ahead; the drain has a deadline.
    s.node_claims[0].spec.termination_grace_period = Some("30m".into());
    let a = run(&s).action.unwrap();
    assert_eq!(a.method, Method::Drift);
    assert_eq!(a.drain_deadline, Some(t("2025-06-01T12:30:00Z")));
    set_pool(&mut s, |d| {
        d.budgets = vec![api::Budget {
            nodes: "0".into(),
            reasons: vec![api::DisruptionReason::Drifted],
            ..Default::default()
        }]
    });
    let d = run(&s);
    assert!(rejected_because(&d, "n1", Method::Drift, |w| matches!(
        w,
        Why::Budget { .. }
    )));
}

/// Drift the cloud provider reported (a `Drifted=True` condition on an otherwise up-to-date
/// NodeClaim, as the NodeClaim controller writes it) is drift like a changed template: same
/// replacement, same Drifted budget; a `False` condition is not drift.
#[test]
fn drift_reported_by_the_cloud_provider() {
    use ballast_api::common::{Condition, Time as CondTime};
    let drifted = |status: &str| Condition {
        type_: "Drifted".into(),
        status: status.into(),
        reason: "NodeClassDrifted".into(),
        message: "node class drift: subnet subnet-1 is no longer selected by Ec2NodeClass c".into(),
        last_transition_time: CondTime(now()),
        observed_generation: None,
    };
    let p = pool("p");
    // (condition, Drifted budget, expected: Some(why contains) for an action, None for none)
    let rows: Vec<(Option<&str>, Option<&str>, Option<&str>)> = vec![
        (
            Some("True"),
            None,
            Some("node class drift: subnet subnet-1"),
        ),
        (Some("False"), None, None),
        (None, None, None),
        (Some("True"), Some("0"), None),
    ];
    for (i, (status, budget, want)) in rows.into_iter().enumerate() {
        let mut n1 = node(
            "n1",
            &ty("medium"),
            "p",
            "on-demand",
            vec![pod("a", "x", 3000, 1000)],
        );
        let mut c1 = claim_for(&mut n1, &p);
        c1.status = status.map(|st| api::NodeClaimStatus {
            conditions: vec![drifted(st)],
            ..Default::default()
        });
        let mut s = cluster(vec![p.clone()], vec![n1]);
        s.node_claims = vec![c1];
        if let Some(b) = budget {
            set_pool(&mut s, |d| {
                d.budgets = vec![api::Budget {
                    nodes: b.into(),
                    reasons: vec![api::DisruptionReason::Drifted],
                    ..Default::default()
                }]
            });
        }
        let d = run(&s);
        match want {
            Some(why) => {
                let a = d.action.unwrap_or_else(|| panic!("row {i}: no action"));
                assert_eq!(a.method, Method::Drift, "row {i}");
                assert!(a.why.contains(why), "row {i}: {}", a.why);
                assert_eq!(a.node_claims, vec!["n1-claim"], "row {i}");
                assert_eq!(a.replacements.len(), 1, "row {i}: the pod needs a new node");
            }
            None => {
                assert!(d.action.is_none(), "row {i}: {:?}", d.action);
                let expect_budget = budget.is_some();
                assert!(
                    rejected_because(&d, "n1", Method::Drift, |w| if expect_budget {
                        matches!(w, Why::Budget { .. })
                    } else {
                        matches!(w, Why::NotDrifted)
                    }),
                    "row {i}"
                );
            }
        }
    }
}

#[test]
fn expiration_is_forceful() {
    let mut s = two_nodes_one_movable();
    s.node_pools[0].spec.template.spec.expire_after = Some("6h".into());
    // Created at 00:00, now 12:00: expired; a do-not-disrupt pod and a zero budget do not stop it.
    s.nodes[1].pods[0]
        .annotations
        .insert(api::labels::DO_NOT_DISRUPT.into(), "true".into());
    set_pool(&mut s, |d| {
        d.budgets = vec![api::Budget {
            nodes: "0".into(),
            ..Default::default()
        }]
    });
    let d = run(&s);
    let a = d.action.unwrap();
    assert_eq!(a.method, Method::Expiration);
    assert_eq!(a.nodes, vec!["n1", "n2"]);
    s.node_pools[0].spec.template.spec.expire_after = Some("24h".into());
    let d = run(&s);
    assert!(d.action.is_none());
    assert!(rejected_because(
        &d,
        "n1",
        Method::Expiration,
        |w| matches!(w, Why::NotExpired { remaining_seconds: Some(s) } if (*s - 43200.0).abs() < 1.0)
    ));
}

#[test]
fn disruption_cost_scales_with_priority_deletion_cost_and_lifetime() {
    let mut s = two_nodes_one_movable();
    s.node_pools[0].spec.template.spec.expire_after = Some("24h".into());
    s.nodes[0].pods[0].pod.priority = 1 << 25; // +1
    s.nodes[0].pods[1].annotations.insert(
        ballast_nodes::snapshot::POD_DELETION_COST.into(),
        (-(1i64 << 28)).to_string(),
    ); // -2
    let d = run(&s);
    let n1 = d.nodes.iter().find(|n| n.node == "n1").unwrap();
    // (2 + (-1)) × half the lifetime left.
    assert!(
        (n1.disruption_cost - 0.5).abs() < 1e-9,
        "{}",
        n1.disruption_cost
    );
}

#[test]
fn pending_pods_are_provisioned_first() {
    let mut s = two_nodes_one_movable();
    s.pending_pods = vec![ballast_nodes::PendingPod {
        pod: ballast_scheduling::Pod::new(
            "a",
            "new",
            ballast_scheduling::Resources::cpu_mem(500, 1 << 20),
        ),
        first_seen: None,
    }];
    let d = run(&s);
    assert!(d.action.is_none());
    assert!(d.summary.contains("pending"), "{}", d.summary);
}

#[test]
fn uninitialized_and_unmanaged_nodes_are_left_alone() {
    let mut s = two_nodes_one_movable();
    s.nodes[1].initialized = false;
    s.nodes[0].labels.remove(api::labels::NODEPOOL);
    let d = run(&s);
    assert!(d.action.is_none());
    let n1 = d.nodes.iter().find(|n| n.node == "n1").unwrap();
    assert!(n1.notes.iter().any(|n| n.why == Why::NotManaged));
    let n2 = d.nodes.iter().find(|n| n.node == "n2").unwrap();
    assert!(n2.notes.iter().any(|n| n.why == Why::NotInitialized));
}
