//! Property test: provisioning with bound pods folded into their nodes decides exactly what it
//! decides with every bound pod handed to the solver (`provision_unfolded`), on random clusters
//! with topology spread, pod affinity and anti-affinity (pending and bound), host ports, NodePool
//! limits, nodes being deleted, terminal and DaemonSet pods, overcommitted nodes, nodes without a
//! capacity or with one, and pods asking for an extended resource.

mod common;

use ballast_nodes::provision::{ProvisionOptions, provision, provision_unfolded};
use ballast_nodes::{BoundPod, ClusterSnapshot, PendingPod};
use ballast_scheduling::{
    HostPort, LabelSelector, SelectorOperator, SelectorRequirement, WeightedPodAffinityTerm,
    WhenUnsatisfiable,
};
use common::*;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use proptest::prelude::*;

const ZONE: &str = "topology.kubernetes.io/zone";
const HOST: &str = "kubernetes.io/hostname";

#[derive(Debug, Clone)]
struct PodSpec {
    cpu: i64,
    mem: i64,
    /// Which of three apps (label `app`), or none.
    app: Option<u8>,
    /// 0: none; 1: zone spread; 2: hostname spread (ScheduleAnyway); 3: required hostname
    /// anti-affinity; 4: required zone pod affinity; 5: preferred hostname anti-affinity;
    /// 6: hostname spread with a `NotIn` selector; 7: preferred zone pod affinity; 8: host port.
    constraint: u8,
    priority: i32,
    /// Asks for one `example.com/dev`.
    device: bool,
    namespace_b: bool,
}

fn pod_spec() -> impl Strategy<Value = PodSpec> {
    (
        1i64..=16,
        1i64..=16,
        prop::option::weighted(0.8, 0u8..3),
        prop_oneof![10 => Just(0u8), 1 => 1u8..=8],
        -1i32..=1,
        prop::bool::weighted(0.05),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(c, m, app, k, p, device, namespace_b)| PodSpec {
            cpu: c * 250,
            mem: m * 256,
            app,
            constraint: k,
            priority: p << 20,
            device,
            namespace_b,
        })
}

#[derive(Debug, Clone)]
struct NodeSpec {
    ty: usize,
    zone_b: bool,
    deleting: bool,
    cordoned: bool,
    /// 0: no capacity; 1: capacity = allocatable + 1 cpu; 2: allocatable 1 cpu below the type's.
    capacity: u8,
    /// Pods are bound even when they do not fit (an overcommitted node).
    overcommit: bool,
    pods: Vec<(PodSpec, u8)>,
}

fn node_spec() -> impl Strategy<Value = NodeSpec> {
    (
        0usize..4,
        prop::bool::ANY,
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.1),
        0u8..3,
        prop::bool::weighted(0.1),
        // (pod, 0: running, 1: terminal, 2: DaemonSet)
        prop::collection::vec(
            (
                pod_spec(),
                prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
            ),
            0..8,
        ),
    )
        .prop_map(
            |(ty, zone_b, deleting, cordoned, capacity, overcommit, pods)| NodeSpec {
                ty,
                zone_b,
                deleting,
                cordoned,
                capacity,
                overcommit,
                pods,
            },
        )
}

#[derive(Debug, Clone)]
struct Spec {
    nodes: Vec<NodeSpec>,
    pending: Vec<PodSpec>,
    /// NodePool cpu limit in cores (None: no limit).
    limit: Option<i64>,
    /// A duplicate of the first bound pod among the pending pods.
    duplicate: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::collection::vec(node_spec(), 0..7),
        prop::collection::vec(pod_spec(), 0..10),
        prop::option::weighted(0.3, 0i64..120),
        prop::bool::weighted(0.03),
    )
        .prop_map(|(nodes, pending, limit, duplicate)| Spec {
            nodes,
            pending,
            limit,
            duplicate,
        })
}

fn model_pod(ps: &PodSpec, name: &str) -> ballast_scheduling::Pod {
    let ns = if ps.namespace_b { "b" } else { "a" };
    let mut p = pod(ns, name, ps.cpu, ps.mem).pod;
    p.priority = ps.priority;
    if let Some(a) = ps.app {
        p.labels.insert("app".into(), format!("app{a}"));
    }
    if ps.device {
        p.requests.set("example.com/dev", 1);
    }
    let app = format!("app{}", ps.app.unwrap_or(0));
    let sel = Some(LabelSelector::labels(&[("app", &app)]));
    let term = |key: &str| pod_term(key, sel.clone());
    let a = &mut p.affinity;
    match ps.constraint {
        1 => p.topology_spread_constraints.push(spread(
            ZONE,
            1,
            WhenUnsatisfiable::DoNotSchedule,
            sel.clone(),
        )),
        2 => p.topology_spread_constraints.push(spread(
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
        6 => p.topology_spread_constraints.push(spread(
            HOST,
            1,
            WhenUnsatisfiable::DoNotSchedule,
            Some(LabelSelector {
                match_labels: Default::default(),
                match_expressions: vec![SelectorRequirement {
                    key: "app".into(),
                    operator: SelectorOperator::NotIn,
                    values: vec![app.clone()],
                }],
            }),
        )),
        7 => a.pod_affinity.preferred.push(WeightedPodAffinityTerm {
            weight: 5,
            pod_affinity_term: term(ZONE),
        }),
        8 => p.host_ports.push(HostPort {
            port: 8080,
            protocol: Default::default(),
            host_ip: String::new(),
        }),
        _ => {}
    }
    p
}

fn build(s: &Spec) -> ClusterSnapshot {
    let cat = catalog();
    let mut nodes = vec![];
    for (i, ns) in s.nodes.iter().enumerate() {
        let t = &cat[ns.ty];
        let mut n = node(&format!("n{i}"), t, "p", "on-demand", vec![]);
        if ns.zone_b {
            n.labels.insert(ZONE.into(), "b".into());
        }
        n.deleting = ns.deleting;
        n.unschedulable = ns.cordoned;
        match ns.capacity {
            1 => {
                let mut c = n.allocatable.clone();
                c.cpu_millis += 1000;
                n.capacity = Some(c);
            }
            2 => {
                n.capacity = Some(n.allocatable.clone());
                n.allocatable.cpu_millis -= 1000;
            }
            _ => {}
        }
        if i % 3 == 0 {
            n.allocatable.set("example.com/dev", 2);
        }
        let (mut cpu, mut mem) = (0, 0);
        for (k, (ps, kind)) in ns.pods.iter().enumerate() {
            if !ns.overcommit
                && (cpu + ps.cpu > n.allocatable.cpu_millis
                    || mem + (ps.mem << 20) > n.allocatable.memory_bytes)
            {
                continue;
            }
            cpu += ps.cpu;
            mem += ps.mem << 20;
            let mut bp = BoundPod {
                pod: model_pod(ps, &format!("p{i}-{k}")),
                ..pod("a", "x", 0, 0)
            };
            match kind {
                1 => bp.terminal = true,
                2 => bp.owner_kind = Some("DaemonSet".into()),
                _ => {}
            }
            n.pods.push(bp);
        }
        nodes.push(n);
    }
    let mut p = pool("p");
    if let Some(l) = s.limit {
        p.spec.limits = Some([("cpu".to_string(), Quantity(l.to_string()))].into());
    }
    let mut snap = cluster(vec![p], nodes);
    snap.pending_pods = s
        .pending
        .iter()
        .enumerate()
        .map(|(i, ps)| PendingPod {
            pod: model_pod(ps, &format!("q{i}")),
            first_seen: None,
        })
        .collect();
    if s.duplicate
        && let Some(bp) = snap
            .nodes
            .iter()
            .flat_map(|n| &n.pods)
            .find(|p| !p.terminal)
    {
        let dup = PendingPod {
            pod: bp.pod.clone(),
            first_seen: None,
        };
        snap.pending_pods.push(dup);
    }
    snap
}

fn decide(
    f: fn(
        &ClusterSnapshot,
        jiff::Timestamp,
        &ProvisionOptions,
    ) -> Result<ballast_nodes::ProvisioningDecision, ballast_nodes::Error>,
    s: &ClusterSnapshot,
) -> Result<serde_json::Value, String> {
    f(s, now(), &ProvisionOptions::default())
        .map(|d| serde_json::to_value(&d).unwrap())
        .map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn folding_decides_as_unfolded(s in spec()) {
        let snap = build(&s);
        prop_assert_eq!(decide(provision, &snap), decide(provision_unfolded, &snap));
    }
}

/// The folding is exercised: a cluster of plain pods folds them all, and the decision names the
/// same free room in its explanations.
#[test]
fn plain_cluster_same_explanations() {
    let busy = |i: usize| {
        node(
            &format!("n{i}"),
            &ty("medium"),
            "p",
            "on-demand",
            (0..3)
                .map(|k| pod("a", &format!("p{i}-{k}"), 1000, 512))
                .collect(),
        )
    };
    let mut p = pool("p");
    p.spec.limits = Some([("cpu".to_string(), Quantity("8".into()))].into());
    let mut s = cluster(vec![p], (0..2).map(busy).collect());
    s.pending_pods = vec![PendingPod {
        pod: ballast_scheduling::Pod::new(
            "a",
            "big",
            ballast_scheduling::Resources::cpu_mem(3000, 1 << 30),
        ),
        first_seen: None,
    }];
    let folded = decide(provision, &s).unwrap();
    assert_eq!(folded, decide(provision_unfolded, &s).unwrap());
    let text = folded.to_string();
    assert!(text.contains("LimitsReached"), "{text}");
}

/// One edit between two provisioning calls: (kind, node, pod), indices taken modulo the sizes.
/// Kinds: 0 remove a bound pod; 1 bind the first pending pod to the node; 2 mark the node
/// deleting or not (no new revision: the memo must see it by itself); 3 drop the first pending
/// pod; 4 move the node to the other zone (a label change, no new revision either); 5 nothing.
type Edit = (u8, usize, usize);

fn apply(s: &mut ClusterSnapshot, (kind, n, k): Edit, revision: &mut u64) {
    if s.nodes.is_empty() {
        return;
    }
    let n = n % s.nodes.len();
    let changed = match kind {
        0 if !s.nodes[n].pods.is_empty() => {
            let k = k % s.nodes[n].pods.len();
            s.nodes[n].pods.remove(k);
            true
        }
        1 if !s.pending_pods.is_empty() => {
            let p = s.pending_pods.remove(0);
            let mut pod = p.pod;
            pod.node_name = Some(s.nodes[n].name.clone());
            s.nodes[n].pods.push(BoundPod {
                pod,
                owner_kind: Some("ReplicaSet".into()),
                ..Default::default()
            });
            true
        }
        2 => {
            s.nodes[n].deleting = !s.nodes[n].deleting;
            false
        }
        3 if !s.pending_pods.is_empty() => {
            s.pending_pods.remove(0);
            false
        }
        4 => {
            let zone = s.nodes[n].labels.get(ZONE).map(String::as_str);
            let other = if zone == Some("b") { "a" } else { "b" };
            s.nodes[n].labels.insert(ZONE.into(), other.into());
            false
        }
        _ => false,
    };
    if changed {
        *revision += 1;
        s.nodes[n].pods_revision = Some(*revision);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128),
        ..ProptestConfig::default()
    })]

    /// A memo kept across calls (nodes with a `podsRevision` bumped when their pods change,
    /// some nodes without one) never changes a decision.
    #[test]
    fn memo_across_calls_decides_as_unfolded(
        s in spec(),
        revised in prop::collection::vec(prop::bool::weighted(0.8), 8),
        edits in prop::collection::vec((0u8..6, 0usize..16, 0usize..16), 1..8),
    ) {
        let mut snap = build(&s);
        let mut revision = 0;
        for (i, n) in snap.nodes.iter_mut().enumerate() {
            if revised[i % revised.len()] {
                revision += 1;
                n.pods_revision = Some(revision);
            }
        }
        let mut memo = ballast_nodes::ProvisionMemo::default();
        let with_memo = |snap: &ClusterSnapshot, memo: &mut ballast_nodes::ProvisionMemo| {
            ballast_nodes::provision_with_memo(snap, now(), &ProvisionOptions::default(), memo)
                .map(|d| serde_json::to_value(&d).unwrap())
                .map_err(|e| e.to_string())
        };
        prop_assert_eq!(with_memo(&snap, &mut memo), decide(provision_unfolded, &snap));
        for e in edits {
            apply(&mut snap, e, &mut revision);
            prop_assert_eq!(with_memo(&snap, &mut memo), decide(provision_unfolded, &snap));
        }
        // Unchanged since the last call: nodes with a revision are not read again.
        let _ = with_memo(&snap, &mut memo);
        let unrevised = snap.nodes.iter().filter(|n| n.pods_revision.is_none()).count();
        prop_assert_eq!(memo.last_read(), unrevised);
    }
}
