//! First fit against the solver on tables of clusters, and the pods it must refuse.

use std::collections::BTreeMap;

use super::*;
use crate::model::{
    Affinity, HostPort, LabelSelector, Node, NodeAffinity, NodeSelectorTerm, PodAffinity,
    PodAffinityTerm, PreferredNodeTerm, Requirement, Snapshot, TaintEffect, Toleration,
    TolerationOperator, TopologySpreadConstraint, VolumeTopology, labels as wk,
};
use crate::solution::{SolveOptions, Target};

const GI: i64 = 1 << 30;

fn node(name: &str, cpu: i64) -> Node {
    Node {
        name: name.into(),
        allocatable: Resources::cpu_mem(cpu, 64 * GI).with("pods", 110),
        ..Node::default()
    }
}

fn pod(name: &str, cpu: i64) -> Pod {
    Pod::new("default", name, Resources::cpu_mem(cpu, GI))
}

fn bound(name: &str, cpu: i64, on: &str) -> Pod {
    Pod {
        node_name: Some(on.into()),
        ..pod(name, cpu)
    }
}

fn tolerating(mut p: Pod, key: &str) -> Pod {
    p.tolerations.push(Toleration {
        key: key.into(),
        operator: TolerationOperator::Exists,
        ..Toleration::default()
    });
    p
}

fn tainted(mut n: Node, key: &str, effect: TaintEffect) -> Node {
    n.taints.push(Taint::new(key, "", effect));
    n
}

fn zoned(mut n: Node, zone: &str) -> Node {
    n.labels.insert(wk::ZONE.into(), zone.into());
    n
}

/// The nodes of a snapshot as first fit reads them, in name order.
struct Listed {
    nodes: Vec<Node>,
    labels: Vec<BTreeMap<String, String>>,
    hard_taints: Vec<Vec<Taint>>,
}

impl Nodes for Listed {
    fn hard_taints(&self, at: usize) -> &[Taint] {
        &self.hard_taints[at]
    }
    fn labels(&self, at: usize) -> &BTreeMap<String, String> {
        &self.labels[at]
    }
}

/// Where first fit puts each pending pod of the snapshot (pod name → node name).
fn first_fit_of(snap: &Snapshot) -> BTreeMap<String, Option<String>> {
    let mut nodes = snap.nodes.clone();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let extended: std::collections::BTreeSet<String> = snap
        .pods
        .iter()
        .flat_map(|p| p.requests.extended.keys().cloned())
        .collect();
    let dims = Dimensions::new(extended);
    let spare = nodes
        .iter()
        .map(|n| {
            let mut room = dims.room(&n.allocatable);
            for p in snap.pods.iter() {
                if p.node_name.as_deref() == Some(n.name.as_str()) {
                    let need = dims.pod_room(p);
                    (0..DIMENSIONS).for_each(|d| room[d] -= need[d]);
                }
            }
            room
        })
        .collect();
    let listed = Listed {
        labels: nodes
            .iter()
            .map(|n| {
                let mut l = n.labels.clone();
                l.insert(wk::HOSTNAME.into(), n.name.clone());
                l
            })
            .collect(),
        hard_taints: nodes
            .iter()
            .map(|n| {
                n.taints
                    .iter()
                    .filter(|t| t.effect != TaintEffect::PreferNoSchedule)
                    .cloned()
                    .collect()
            })
            .collect(),
        nodes,
    };
    let mut packer = FirstFit::new(&dims, spare).expect("dimensions read all");
    let mut pending: Vec<&Pod> = snap.pods.iter().filter(|p| p.node_name.is_none()).collect();
    pending.sort_by_key(|p| {
        let r = dims.pod_room(p);
        (
            -p.priority,
            -r[0],
            -r[1],
            p.namespace.clone(),
            p.name.clone(),
        )
    });
    let mut undo = Undo::default();
    let mut out = BTreeMap::new();
    for p in pending {
        let plain = judge(p, &PlainRules::default()).expect("a plain pod");
        let need = dims.pod_room(p);
        let at = packer.find(p, plain, &need, &listed);
        if let Some(at) = at {
            packer.take(at, &need, &mut undo);
        }
        out.insert(p.name.clone(), at.map(|a| listed.nodes[a].name.clone()));
    }
    out
}

/// Where the solver puts each pending pod, with existing nodes only.
fn solver_of(snap: &Snapshot) -> BTreeMap<String, Option<String>> {
    let options = SolveOptions {
        allow_new_nodes: false,
        ..SolveOptions::default()
    };
    let sol = crate::solve(snap, &options).expect("a valid snapshot");
    let mut out: BTreeMap<String, Option<String>> = snap
        .pods
        .iter()
        .filter(|p| p.node_name.is_none())
        .map(|p| (p.name.clone(), None))
        .collect();
    for pl in sol.placements {
        let Target::Node(n) = pl.target else {
            panic!("no new claims were allowed")
        };
        out.insert(pl.pod.name, Some(n));
    }
    out
}

/// Each pending pod's node (none: pending).
type Want<'a> = Vec<(&'a str, Option<&'a str>)>;

fn cluster(nodes: Vec<Node>, pods: Vec<Pod>) -> Snapshot {
    Snapshot {
        nodes,
        pods,
        ..Snapshot::default()
    }
}

#[test]
fn first_fit_places_plain_pods_where_the_solver_does() {
    let mut with_init = pod("init-heavy", 500);
    with_init.init_containers.push(Resources::cpu_mem(1500, GI));
    let mut with_overhead = pod("overhead", 900);
    with_overhead.overhead = Resources::cpu_mem(200, 0);
    let mut wants_b = pod("selector", 100);
    wants_b
        .node_selector
        .insert(wk::ZONE.into(), "zone-b".into());
    let mut volume_in_a = pod("volume", 100);
    volume_in_a.volumes.push(VolumeTopology {
        name: "data".into(),
        zones: vec!["zone-a".into()],
    });
    let mut high = pod("high-priority", 100);
    high.priority = 1000;
    let many: Vec<Node> = (0..40).map(|i| node(&format!("n{i:02}"), 1000)).collect();
    let fillers: Vec<Pod> = (0..35)
        .map(|i| bound(&format!("filler-{i}"), 1000, &format!("n{i:02}")))
        .collect();
    let cases: Vec<(&str, Snapshot, Want)> = vec![
        (
            "nodes by name, pods largest first",
            cluster(
                vec![node("b", 2000), node("a", 1000)],
                vec![pod("p1", 1000), pod("p2", 1000), pod("p3", 1000)],
            ),
            vec![("p1", Some("a")), ("p2", Some("b")), ("p3", Some("b"))],
        ),
        (
            "bound pods take room",
            cluster(
                vec![node("a", 2000), node("b", 2000)],
                vec![bound("running", 1500, "a"), pod("new", 1000)],
            ),
            vec![("new", Some("b"))],
        ),
        (
            "an untolerated taint keeps a pod off, a toleration lets it on",
            cluster(
                vec![
                    tainted(node("a", 4000), "gpu", TaintEffect::NoSchedule),
                    node("b", 4000),
                ],
                vec![pod("plain", 100), tolerating(pod("tolerant", 200), "gpu")],
            ),
            vec![("plain", Some("b")), ("tolerant", Some("a"))],
        ),
        (
            "a PreferNoSchedule taint the pod tolerates is no obstacle",
            cluster(
                vec![tainted(
                    node("a", 4000),
                    "spot",
                    TaintEffect::PreferNoSchedule,
                )],
                vec![tolerating(pod("tolerant", 200), "spot")],
            ),
            vec![("tolerant", Some("a"))],
        ),
        (
            "node selector and volume zones",
            cluster(
                vec![
                    zoned(node("a", 4000), "zone-a"),
                    zoned(node("b", 4000), "zone-b"),
                ],
                vec![wants_b, volume_in_a],
            ),
            vec![("selector", Some("b")), ("volume", Some("a"))],
        ),
        (
            "effective requests count init containers and overhead",
            cluster(
                vec![node("a", 1000), node("b", 2000)],
                vec![with_init, with_overhead],
            ),
            // 900m would fit a; with its overhead it fits nowhere.
            vec![("init-heavy", Some("b")), ("overhead", None)],
        ),
        (
            "priority before size",
            cluster(vec![node("a", 1000)], vec![pod("big", 950), high]),
            vec![("high-priority", Some("a")), ("big", None)],
        ),
        (
            "full blocks passed over, a pod too large left pending",
            cluster(
                many,
                fillers
                    .into_iter()
                    .chain([
                        pod("x", 1000),
                        pod("y", 1000),
                        pod("z", 1000),
                        pod("huge", 5000),
                    ])
                    .collect(),
            ),
            vec![
                ("x", Some("n35")),
                ("y", Some("n36")),
                ("z", Some("n37")),
                ("huge", None),
            ],
        ),
    ];
    for (name, snap, want) in cases {
        let got = first_fit_of(&snap);
        let want: BTreeMap<String, Option<String>> = want
            .into_iter()
            .map(|(p, n)| (p.to_string(), n.map(str::to_string)))
            .collect();
        assert_eq!(got, want, "{name}: first fit");
        assert_eq!(solver_of(&snap), want, "{name}: solver");
    }
}

#[test]
fn judge_refuses_pods_it_cannot_place_as_the_solver_would() {
    let term = PodAffinityTerm {
        label_selector: Some(LabelSelector::labels(&[("app", "db")])),
        namespaces: vec![],
        namespace_selector: None,
        topology_key: wk::HOSTNAME.into(),
    };
    let with = |f: &dyn Fn(&mut Pod)| {
        let mut p = pod("p", 100);
        p.labels.insert("app".into(), "web".into());
        f(&mut p);
        p
    };
    let spot = Taint::new("spot", "", TaintEffect::PreferNoSchedule);
    let web = LabelSelector::labels(&[("app", "web")]);
    let cases: Vec<(&str, Pod, PlainRules<'_>, Result<bool, NotPlain>)> = vec![
        (
            "a plain pod",
            with(&|_| {}),
            PlainRules::default(),
            Ok(true),
        ),
        (
            "a node selector is still plain, not unconstrained",
            with(&|p| {
                p.node_selector.insert(wk::ZONE.into(), "a".into());
            }),
            PlainRules::default(),
            Ok(false),
        ),
        (
            "topology spread",
            with(&|p| {
                p.topology_spread_constraints
                    .push(TopologySpreadConstraint {
                        max_skew: 1,
                        topology_key: wk::ZONE.into(),
                        when_unsatisfiable: Default::default(),
                        label_selector: None,
                        min_domains: None,
                        match_label_keys: vec![],
                        node_affinity_policy: Default::default(),
                    })
            }),
            PlainRules::default(),
            Err(NotPlain::TopologySpread),
        ),
        (
            "pod affinity",
            with(&|p| p.affinity.pod_affinity.required.push(term.clone())),
            PlainRules::default(),
            Err(NotPlain::PodAffinity),
        ),
        (
            "pod anti-affinity",
            with(&|p| p.affinity.pod_anti_affinity.required.push(term.clone())),
            PlainRules::default(),
            Err(NotPlain::PodAntiAffinity),
        ),
        (
            "preferred node affinity",
            with(&|p| {
                p.affinity = Affinity {
                    node_affinity: NodeAffinity {
                        required: vec![],
                        preferred: vec![PreferredNodeTerm {
                            weight: 1,
                            preference: NodeSelectorTerm::default(),
                        }],
                    },
                    pod_affinity: PodAffinity::default(),
                    pod_anti_affinity: PodAffinity::default(),
                }
            }),
            PlainRules::default(),
            Err(NotPlain::PreferredNodeAffinity),
        ),
        (
            "host ports",
            with(&|p| {
                p.host_ports.push(HostPort {
                    port: 8080,
                    protocol: Default::default(),
                    host_ip: String::new(),
                })
            }),
            PlainRules::default(),
            Err(NotPlain::HostPorts),
        ),
        (
            "a numeric requirement",
            with(&|p| {
                p.affinity.node_affinity.required.push(NodeSelectorTerm {
                    match_expressions: vec![Requirement::new("cores", Operator::Gt, &["4"])],
                })
            }),
            PlainRules::default(),
            Err(NotPlain::NumericRequirement),
        ),
        (
            "an untolerated PreferNoSchedule taint in the cluster",
            with(&|_| {}),
            PlainRules {
                prefer_no_schedule: std::slice::from_ref(&spot),
                anti_affinity: &[],
            },
            Err(NotPlain::PreferNoSchedule),
        ),
        (
            "a tolerated PreferNoSchedule taint",
            tolerating(with(&|_| {}), "spot"),
            PlainRules {
                prefer_no_schedule: std::slice::from_ref(&spot),
                anti_affinity: &[],
            },
            Ok(true),
        ),
        (
            "selected by a bound pod's anti-affinity",
            with(&|_| {}),
            PlainRules {
                prefer_no_schedule: &[],
                anti_affinity: std::slice::from_ref(&web),
            },
            Err(NotPlain::AntiAffinityTarget),
        ),
    ];
    for (name, p, rules, want) in cases {
        let got = judge(&p, &rules).map(|plain| plain.unconstrained);
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn first_fit_refuses_dimensions_that_leave_a_resource_unread() {
    let names = |n: usize| (0..n).map(|i| format!("example.com/r{i}"));
    let read_all = Dimensions::new(names(EXTENDED));
    assert!(FirstFit::new(&read_all, vec![]).is_ok());
    let one_more = Dimensions::new(names(EXTENDED + 1));
    assert_eq!(
        FirstFit::new(&one_more, vec![]).err(),
        Some(TooManyResources {
            count: EXTENDED + 1
        })
    );
    // The rooms of such dimensions read the first resources only.
    let r = Resources::default()
        .with("example.com/r0", 3)
        .with(&format!("example.com/r{EXTENDED}"), 5);
    assert_eq!(one_more.room(&r)[4], 3);
    assert_eq!(one_more.room(&r).iter().sum::<i64>(), 3);
}

#[test]
fn restore_puts_back_every_room_and_block_summary() {
    let dims = Dimensions::new([]);
    let spare: Vec<Room> = (0..40)
        .map(|i| dims.room(&Resources::cpu_mem(1000 + i, GI).with("pods", 10)))
        .collect();
    let mut packer = FirstFit::new(&dims, spare.clone()).expect("no extended resources");
    let before: Vec<Room> = (0..40).map(|p| *packer.spare(p)).collect();
    let listed = Listed {
        nodes: vec![],
        labels: vec![BTreeMap::new(); 40],
        hard_taints: vec![vec![]; 40],
    };
    let p = pod("p", 1030);
    let plain = judge(&p, &PlainRules::default()).expect("plain");
    let need = dims.pod_room(&p);
    let mut undo = Undo::default();
    packer.close(&[30, 31, 39], &mut undo);
    // 1030 millicores fit nodes 30 and up; 30 and 31 are closed.
    assert_eq!(packer.find(&p, plain, &need, &listed), Some(32));
    packer.take(32, &need, &mut undo);
    packer.take(33, &need, &mut undo);
    assert_eq!(packer.find(&p, plain, &need, &listed), Some(34));
    packer.restore(undo);
    let after: Vec<Room> = (0..40).map(|p| *packer.spare(p)).collect();
    assert_eq!(after, before);
    assert_eq!(packer.find(&p, plain, &need, &listed), Some(30));
}
