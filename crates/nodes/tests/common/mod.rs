//! Builders for small clusters.
#![allow(dead_code)]

use std::collections::BTreeMap;

use ballast_api::nodes::{
    self as api, NodeClaim, NodeClaimSpec, NodeClassReference, NodePool, NodePoolSpec,
};
use ballast_nodes::{BoundPod, ClusterNode, ClusterSnapshot};
use ballast_scheduling::{
    InstanceType, LabelSelector, Offering, Pod, PodAffinityTerm, Resources,
    TopologySpreadConstraint, WhenUnsatisfiable,
};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

pub const GI: i64 = 1 << 30;

pub fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

pub fn now() -> Timestamp {
    t("2025-06-01T12:00:00Z")
}

/// An instance type with no overhead: cpu cores, memory GiB, on-demand price, spot price
/// (0 = none), offered in zones a and b.
pub fn itype(name: &str, cpu: i64, mem_gi: i64, od: f64, spot: f64) -> InstanceType {
    let mut offerings = vec![];
    for z in ["a", "b"] {
        offerings.push(Offering {
            zone: z.into(),
            capacity_type: "on-demand".into(),
            price: od,
            available: true,
        });
        if spot > 0.0 {
            offerings.push(Offering {
                zone: z.into(),
                capacity_type: "spot".into(),
                price: spot,
                available: true,
            });
        }
    }
    InstanceType {
        name: name.into(),
        capacity: Resources::cpu_mem(cpu * 1000, mem_gi * GI).with("pods", 110),
        overhead: Resources::default(),
        labels: BTreeMap::from([("kubernetes.io/arch".to_string(), "amd64".to_string())]),
        offerings,
    }
}

/// small 2c/4Gi $0.10, medium 4c/8Gi $0.20, large 8c/16Gi $0.40, xlarge 16c/32Gi $0.80.
pub fn catalog() -> Vec<InstanceType> {
    vec![
        itype("small", 2, 4, 0.10, 0.0),
        itype("medium", 4, 8, 0.20, 0.0),
        itype("large", 8, 16, 0.40, 0.0),
        itype("xlarge", 16, 32, 0.80, 0.0),
    ]
}

pub fn pool(name: &str) -> NodePool {
    let mut p = NodePool::new(
        name,
        NodePoolSpec {
            template: api::NodeClaimTemplate {
                metadata: None,
                spec: api::NodeClaimTemplateSpec {
                    node_class_ref: NodeClassReference {
                        group: "nodes.ballast.dev".into(),
                        kind: "KwokNodeClass".into(),
                        name: "default".into(),
                    },
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
    p.metadata.name = Some(name.into());
    p
}

pub fn pod(ns: &str, name: &str, cpu_m: i64, mem_mi: i64) -> BoundPod {
    BoundPod {
        pod: Pod::new(ns, name, Resources::cpu_mem(cpu_m, mem_mi << 20)),
        owner_kind: Some("ReplicaSet".into()),
        started: Some(t("2025-06-01T00:00:00Z")),
        ..Default::default()
    }
}

pub fn daemon(name: &str) -> BoundPod {
    BoundPod {
        owner_kind: Some("DaemonSet".into()),
        ..pod("kube-system", name, 100, 100)
    }
}

pub fn node(
    name: &str,
    ty: &InstanceType,
    pool: &str,
    ct: &str,
    pods: Vec<BoundPod>,
) -> ClusterNode {
    ClusterNode {
        name: name.into(),
        node_claim: None,
        labels: BTreeMap::from([
            (api::labels::NODEPOOL.to_string(), pool.to_string()),
            (api::labels::INSTANCE_TYPE.to_string(), ty.name.clone()),
            (api::labels::ZONE.to_string(), "a".to_string()),
            (api::labels::CAPACITY_TYPE.to_string(), ct.to_string()),
            ("kubernetes.io/arch".to_string(), "amd64".to_string()),
        ]),
        allocatable: ty.allocatable(),
        created: Some(t("2025-06-01T00:00:00Z")),
        ready: true,
        initialized: true,
        pods,
        ..Default::default()
    }
}

/// A NodeClaim for a node, made from the pool (so its hash matches).
pub fn claim_for(n: &mut ClusterNode, pool: &NodePool) -> NodeClaim {
    let name = format!("{}-claim", n.name);
    n.node_claim = Some(name.clone());
    let mut annotations = BTreeMap::new();
    annotations.insert(
        api::labels::NODEPOOL_HASH.to_string(),
        ballast_nodes::template_hash(pool),
    );
    NodeClaim {
        metadata: ObjectMeta {
            name: Some(name),
            labels: Some(n.labels.clone()),
            annotations: Some(annotations),
            creation_timestamp: n.created.map(Time),
            ..Default::default()
        },
        spec: NodeClaimSpec {
            node_class_ref: pool.spec.template.spec.node_class_ref.clone(),
            ..Default::default()
        },
        status: None,
    }
}

pub fn cluster(pools: Vec<NodePool>, nodes: Vec<ClusterNode>) -> ClusterSnapshot {
    ClusterSnapshot {
        nodes,
        node_pools: pools,
        instance_types: catalog(),
        ..Default::default()
    }
}

pub fn ty(name: &str) -> InstanceType {
    catalog().into_iter().find(|t| t.name == name).unwrap()
}

/// An action as JSON with its pod moves sorted (the fast path commits plain pods in another
/// order than the solver; for plain pods the order does not matter).
pub fn canonical(a: &Option<ballast_nodes::Action>) -> serde_json::Value {
    let mut a = a.clone();
    if let Some(a) = a.as_mut() {
        a.moves
            .sort_by(|x, y| (&x.pod, &x.to).cmp(&(&y.pod, &y.to)));
    }
    serde_json::to_value(&a).unwrap()
}

/// A topology spread constraint over `key` with the given skew and rule.
pub fn spread(
    key: &str,
    max_skew: i32,
    when: WhenUnsatisfiable,
    selector: Option<LabelSelector>,
) -> TopologySpreadConstraint {
    TopologySpreadConstraint {
        max_skew,
        topology_key: key.into(),
        when_unsatisfiable: when,
        label_selector: selector,
        min_domains: None,
        match_label_keys: vec![],
        node_affinity_policy: Default::default(),
    }
}

/// A pod (anti-)affinity term over `key`, in the pod's own namespace.
pub fn pod_term(key: &str, selector: Option<LabelSelector>) -> PodAffinityTerm {
    PodAffinityTerm {
        label_selector: selector,
        namespaces: vec![],
        namespace_selector: None,
        topology_key: key.into(),
    }
}
