//! Property test: a disruption memo kept across passes never changes a decision. A random
//! cluster is edited step by step (pods bound and removed, annotations, PDBs, PreferNoSchedule
//! taints, anti-affinity, extended resources), with each edited node's pods revision bumped as
//! a caller must; after every step the pass with the memo must decide, and explain, exactly
//! what a pass without one does.

mod common;

use ballast_nodes::disrupt::{DisruptionMemo, disrupt_with_memo};
use ballast_nodes::snapshot::PodDisruptionBudget;
use ballast_nodes::{ClusterSnapshot, DisruptionDecision, DisruptionOptions, disrupt};
use ballast_scheduling::{LabelSelector, Taint, TaintEffect};
use common::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Edit {
    /// Bind a pod (cpu, memory in units of 250m / 256Mi) to node `n % nodes`.
    Bind { n: usize, cpu: i64, mem: i64 },
    /// Remove pod `k % pods` of node `n % nodes`.
    Remove { n: usize, k: usize },
    /// Put do-not-disrupt on pod `k % pods` of node `n % nodes`.
    DoNotDisrupt { n: usize, k: usize },
    /// Give pod `k % pods` of node `n % nodes` required hostname anti-affinity to its app.
    AntiAffinity { n: usize, k: usize },
    /// Make pod `k % pods` of node `n % nodes` ask for an extended resource.
    Extended { n: usize, k: usize },
    /// A PDB on app0 allowing `allowed` disruptions (replacing any), or none.
    Pdb { allowed: Option<i32> },
    /// A PreferNoSchedule taint on node `n % nodes` (a node-level change: no new revision).
    Taint { n: usize },
    /// Cordon node `n % nodes` (node-level).
    Cordon { n: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        6 => (0usize..16, 1i64..=12, 1i64..=12).prop_map(|(n, cpu, mem)| Edit::Bind { n, cpu, mem }),
        6 => (0usize..16, 0usize..16).prop_map(|(n, k)| Edit::Remove { n, k }),
        1 => (0usize..16, 0usize..16).prop_map(|(n, k)| Edit::DoNotDisrupt { n, k }),
        1 => (0usize..16, 0usize..16).prop_map(|(n, k)| Edit::AntiAffinity { n, k }),
        1 => (0usize..16, 0usize..16).prop_map(|(n, k)| Edit::Extended { n, k }),
        2 => prop::option::of(0i32..2).prop_map(|allowed| Edit::Pdb { allowed }),
        1 => (0usize..16).prop_map(|n| Edit::Taint { n }),
        1 => (0usize..16).prop_map(|n| Edit::Cordon { n }),
    ]
}

/// Nodes: (catalog type, whether it carries a revision, pods as (cpu, mem) units).
type Start = Vec<(usize, bool, Vec<(i64, i64)>)>;

fn start() -> impl Strategy<Value = Start> {
    prop::collection::vec(
        (
            0usize..4,
            prop::bool::weighted(0.8),
            prop::collection::vec((1i64..=8, 1i64..=8), 0..6),
        ),
        1..7,
    )
}

fn build(start: &Start, serial: &mut usize) -> ClusterSnapshot {
    let cat = catalog();
    let mut nodes = vec![];
    for (i, (ti, revised, pods)) in start.iter().enumerate() {
        let mut n = node(&format!("n{i}"), &cat[*ti], "p", "on-demand", vec![]);
        n.pods_revision = revised.then_some(0);
        for &(cpu, mem) in pods {
            n.pods.push(new_pod(serial, cpu, mem));
        }
        nodes.push(n);
    }
    cluster(vec![pool("p")], nodes)
}

fn new_pod(serial: &mut usize, cpu: i64, mem: i64) -> ballast_nodes::snapshot::BoundPod {
    *serial += 1;
    let mut p = pod("a", &format!("pod-{serial:03}"), cpu * 250, mem * 256);
    p.pod
        .labels
        .insert("app".into(), format!("app{}", *serial % 2));
    p
}

/// Applies `e`; bumps the revision of a node whose pods changed.
fn apply(s: &mut ClusterSnapshot, e: &Edit, serial: &mut usize, revision: &mut u64) {
    let count = s.nodes.len();
    let touched = match *e {
        Edit::Bind { n, cpu, mem } => {
            let p = new_pod(serial, cpu, mem);
            s.nodes[n % count].pods.push(p);
            Some(n % count)
        }
        Edit::Remove { n, k }
        | Edit::DoNotDisrupt { n, k }
        | Edit::AntiAffinity { n, k }
        | Edit::Extended { n, k } => {
            let node = &mut s.nodes[n % count];
            if node.pods.is_empty() {
                return;
            }
            let k = k % node.pods.len();
            let p = &mut node.pods[k];
            match e {
                Edit::Remove { .. } => {
                    node.pods.remove(k);
                }
                Edit::DoNotDisrupt { .. } => {
                    p.annotations
                        .insert("karpenter.sh/do-not-disrupt".into(), "true".into());
                }
                Edit::AntiAffinity { .. } => {
                    let app = p.pod.labels["app"].clone();
                    let sel = Some(LabelSelector::labels(&[("app", &app)]));
                    p.pod
                        .affinity
                        .pod_anti_affinity
                        .required
                        .push(pod_term("kubernetes.io/hostname", sel));
                }
                _ => {
                    p.pod.requests.extended.insert("example.com/gpu".into(), 1);
                }
            }
            Some(n % count)
        }
        Edit::Pdb { allowed } => {
            s.pdbs = allowed
                .map(|a| PodDisruptionBudget {
                    namespace: "a".into(),
                    name: "app0".into(),
                    selector: LabelSelector::labels(&[("app", "app0")]),
                    disruptions_allowed: a,
                })
                .into_iter()
                .collect();
            None
        }
        Edit::Taint { n } => {
            s.nodes[n % count].taints.push(Taint {
                key: "soft".into(),
                value: String::new(),
                effect: TaintEffect::PreferNoSchedule,
            });
            None
        }
        Edit::Cordon { n } => {
            s.nodes[n % count].unschedulable = true;
            None
        }
    };
    if let Some(i) = touched
        && s.nodes[i].pods_revision.is_some()
    {
        *revision += 1;
        s.nodes[i].pods_revision = Some(*revision);
    }
}

fn same(a: &DisruptionDecision, b: &DisruptionDecision) -> Result<(), TestCaseError> {
    prop_assert_eq!(canonical(&a.action), canonical(&b.action));
    prop_assert_eq!(
        serde_json::to_value(&a.nodes).unwrap(),
        serde_json::to_value(&b.nodes).unwrap()
    );
    prop_assert_eq!(&a.methods, &b.methods);
    prop_assert_eq!(&a.summary, &b.summary);
    prop_assert_eq!(a.simulations, b.simulations);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(96),
        ..ProptestConfig::default()
    })]

    #[test]
    fn memo_never_changes_a_decision(
        start in start(),
        edits in prop::collection::vec(edit(), 1..12),
    ) {
        let mut serial = 0;
        let mut revision = 0;
        let mut s = build(&start, &mut serial);
        let o = DisruptionOptions { explain_all: true, ..Default::default() };
        let mut memo = DisruptionMemo::default();
        same(&disrupt_with_memo(&s, now(), &o, &mut memo).unwrap(), &disrupt(&s, now(), &o).unwrap())?;
        for e in &edits {
            apply(&mut s, e, &mut serial, &mut revision);
            let kept = disrupt_with_memo(&s, now(), &o, &mut memo).unwrap();
            let fresh = disrupt(&s, now(), &o).unwrap();
            same(&kept, &fresh)?;
        }
        // Unchanged since the last pass: nodes with a revision are not read again.
        disrupt_with_memo(&s, now(), &o, &mut memo).unwrap();
        let unrevised = s.nodes.iter().filter(|n| n.pods_revision.is_none()).count();
        prop_assert_eq!(memo.last_read(), unrevised);
    }
}
