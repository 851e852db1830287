//! Provisioning, batching, lifecycle and adapter tests.

mod common;

use ballast_api::nodes::{self as api, NodeClaim, NodeClaimSpec};
use ballast_nodes::lifecycle::{Status, Timeout};
use ballast_nodes::{
    BatchWindow, ClaimObservation, ClusterSnapshot, Destination, LifecycleOptions, ObjectKind,
    ObservedNode, PendingCategory, PendingPod, ProvisionOptions, adapt, batch_state,
    claim_lifecycle, provision,
};
use ballast_scheduling::{Pod, Resources, Taint, TaintEffect, Toleration, VolumeTopology};
use common::*;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

fn pending(name: &str, cpu_m: i64) -> PendingPod {
    PendingPod {
        pod: Pod::new("a", name, Resources::cpu_mem(cpu_m, 256 << 20)),
        first_seen: None,
    }
}

#[test]
fn creates_cheapest_claims_and_uses_existing_room_first() {
    let mut s = cluster(
        vec![pool("p")],
        vec![node(
            "n1",
            &ty("medium"),
            "p",
            "on-demand",
            vec![pod("a", "x", 3000, 100)],
        )],
    );
    s.pending_pods = vec![pending("fits", 500), pending("big", 3000)];
    let d = provision(&s, now(), &ProvisionOptions::default()).unwrap();
    assert_eq!(d.node_claims.len(), 1);
    let c = &d.node_claims[0];
    assert_eq!(c.instance_type, "medium");
    let names: Vec<&str> = c.instance_types.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, vec!["medium", "large", "xlarge"], "ordered by price");
    assert!(
        c.instance_types
            .windows(2)
            .all(|w| w[0].price <= w[1].price)
    );
    assert!((d.cost_per_hour - 0.20).abs() < 1e-9);
    let fits = d.placements.iter().find(|p| p.pod.name == "fits").unwrap();
    assert_eq!(fits.to, Destination::Node("n1".into()));
    let big = d.placements.iter().find(|p| p.pod.name == "big").unwrap();
    assert_eq!(big.to, Destination::NewNodeClaim(c.name.clone()));
    // The NodeClaim object.
    let nc = &c.node_claim;
    let labels = nc.metadata.labels.clone().unwrap();
    assert_eq!(labels[api::labels::NODEPOOL], "p");
    assert_eq!(labels[api::labels::INSTANCE_TYPE], "medium");
    assert_eq!(labels[api::labels::CAPACITY_TYPE], "on-demand");
    assert!(labels.contains_key(api::labels::ZONE));
    assert!(
        !labels.contains_key("karpenter.sh/nodepool"),
        "API spelling only"
    );
    assert_eq!(
        nc.metadata.annotations.clone().unwrap()[api::labels::NODEPOOL_HASH],
        ballast_nodes::template_hash(&s.node_pools[0])
    );
    let it = nc
        .spec
        .requirements
        .iter()
        .find(|r| r.key == api::labels::INSTANCE_TYPE)
        .unwrap();
    assert_eq!(it.values, vec!["medium", "large", "xlarge"]);
    let zones = nc
        .spec
        .requirements
        .iter()
        .find(|r| r.key == api::labels::ZONE)
        .unwrap();
    assert_eq!(zones.values, vec!["a", "b"]);
    let req = nc.spec.resources.clone().unwrap().requests.unwrap();
    assert_eq!(req["cpu"], Quantity("3".into()));
    assert_eq!(nc.spec.node_class_ref.name, "default");
    assert!(d.unschedulable.is_empty());
    // Deterministic.
    let again = provision(&s, now(), &ProvisionOptions::default()).unwrap();
    assert_eq!(
        serde_json::to_value(&again).unwrap(),
        serde_json::to_value(&d).unwrap()
    );
}

#[test]
fn explains_pods_that_get_no_node() {
    let mut p = pool("p");
    p.spec.template.spec.taints = vec![api::Taint {
        key: "dedicated".into(),
        value: Some("x".into()),
        effect: api::TaintEffect::NoSchedule,
    }];
    let mut limited = pool("q");
    limited.spec.limits = Some([("cpu".to_string(), Quantity("2".into()))].into());
    let mut s = cluster(vec![p, limited], vec![]);
    let tol = Toleration {
        key: "dedicated".into(),
        value: "x".into(),
        ..Default::default()
    };
    let mut selector = pending("selector", 100);
    selector
        .pod
        .node_selector
        .insert("disk".into(), "ssd".into());
    selector.pod.tolerations.push(tol.clone());
    let mut volume = pending("volume", 100);
    volume.pod.volumes.push(VolumeTopology {
        name: "data".into(),
        zones: vec!["z9".into()],
    });
    volume.pod.tolerations.push(tol.clone());
    let mut tainted = pending("limits", 3000);
    tainted
        .pod
        .node_selector
        .insert(api::labels::NODEPOOL.into(), "q".into());
    let mut huge = pending("huge", 64000);
    huge.pod.tolerations.push(tol);
    s.pending_pods = vec![selector, volume, tainted, huge];
    let d = provision(&s, now(), &ProvisionOptions::default()).unwrap();
    let cat = |n: &str| {
        d.unschedulable
            .iter()
            .find(|u| u.pod.name == n)
            .unwrap_or_else(|| panic!("{n} placed"))
            .category
    };
    assert_eq!(cat("selector"), PendingCategory::UnsatisfiableRequirements);
    let v = d
        .unschedulable
        .iter()
        .find(|u| u.pod.name == "volume")
        .unwrap();
    assert_eq!(cat("volume"), PendingCategory::VolumeZone, "{}", v.message);
    assert_eq!(cat("limits"), PendingCategory::LimitsReached);
    assert_eq!(cat("huge"), PendingCategory::TooLarge);
    assert!(
        d.node_claims.is_empty(),
        "pods that cannot be placed make no nodes"
    );
    for u in &d.unschedulable {
        assert!(!u.message.is_empty() && !u.node_pools.is_empty());
    }
    // No pool tolerated.
    let mut s2 = cluster(vec![pool("p")], vec![]);
    s2.node_pools[0].spec.template.spec.taints = vec![api::Taint {
        key: "gpu".into(),
        value: None,
        effect: api::TaintEffect::NoSchedule,
    }];
    s2.pending_pods = vec![pending("plain", 100)];
    let d = provision(&s2, now(), &ProvisionOptions::default()).unwrap();
    assert_eq!(
        d.unschedulable[0].category,
        PendingCategory::TaintsNotTolerated
    );
}

#[test]
fn in_flight_claims_take_pods_first() {
    let mut s = cluster(vec![pool("p")], vec![]);
    let claim = NodeClaim {
        metadata: ObjectMeta {
            name: Some("p-inflight".into()),
            labels: Some([(api::labels::NODEPOOL.to_string(), "p".to_string())].into()),
            ..Default::default()
        },
        spec: NodeClaimSpec {
            requirements: vec![
                api::NodeSelectorRequirementWithMinValues {
                    key: api::labels::INSTANCE_TYPE.into(),
                    operator: api::RequirementOperator::In,
                    values: vec!["large".into()],
                    min_values: None,
                },
                api::NodeSelectorRequirementWithMinValues {
                    key: api::labels::ZONE.into(),
                    operator: api::RequirementOperator::In,
                    values: vec!["a".into()],
                    min_values: None,
                },
                api::NodeSelectorRequirementWithMinValues {
                    key: api::labels::CAPACITY_TYPE.into(),
                    operator: api::RequirementOperator::In,
                    values: vec!["on-demand".into()],
                    min_values: None,
                },
            ],
            ..Default::default()
        },
        status: None,
    };
    assert_eq!(
        adapt::node_claim_to_in_flight(&claim)
            .unwrap()
            .instance_type,
        "large"
    );
    s.node_claims = vec![claim];
    s.pending_pods = vec![pending("x", 2000)];
    let d = provision(&s, now(), &ProvisionOptions::default()).unwrap();
    assert!(d.node_claims.is_empty());
    assert_eq!(
        d.placements[0].to,
        Destination::InFlight("p-inflight".into())
    );
}

#[test]
fn pods_of_deleting_nodes_are_provisioned_again() {
    let mut n = node(
        "old",
        &ty("medium"),
        "p",
        "on-demand",
        vec![pod("a", "x", 3000, 100), daemon("ds")],
    );
    n.deleting = true;
    let s = cluster(vec![pool("p")], vec![n]);
    let d = provision(&s, now(), &ProvisionOptions::default()).unwrap();
    assert_eq!(d.node_claims.len(), 1);
    assert_eq!(
        d.node_claims[0].pods.len(),
        1,
        "the DaemonSet pod is not moved"
    );
}

#[test]
fn daemonset_overhead_per_pool() {
    let mut tainted = pool("t");
    tainted.spec.template.spec.taints = vec![api::Taint {
        key: "gpu".into(),
        value: None,
        effect: api::TaintEffect::NoSchedule,
    }];
    let plain = pool("p");
    let ds = ballast_nodes::DaemonSet {
        pod: Pod::new("kube-system", "agent", Resources::cpu_mem(500, 0)),
    };
    let t = adapt::node_pool_to_model(&tainted, Resources::default()).unwrap();
    let p = adapt::node_pool_to_model(&plain, Resources::default()).unwrap();
    assert_eq!(
        adapt::daemonset_overhead(std::slice::from_ref(&ds), &t.model).cpu_millis,
        0
    );
    assert_eq!(
        adapt::daemonset_overhead(std::slice::from_ref(&ds), &p.model).cpu_millis,
        500
    );
    // The overhead counts in the claim: 3.6 cores of pods + 0.5 no longer fit a medium.
    let mut s = cluster(vec![plain], vec![]);
    s.daemon_sets = vec![ds];
    s.pending_pods = vec![pending("x", 3600)];
    let d = provision(&s, now(), &ProvisionOptions::default()).unwrap();
    assert_eq!(d.node_claims[0].instance_type, "large");
}

#[test]
fn batching_window() {
    let w = BatchWindow::default();
    let st = |seen: &[&str], at: &str| {
        batch_state(&seen.iter().map(|s| t(s)).collect::<Vec<_>>(), t(at), &w)
    };
    assert_eq!(st(&[], "2025-06-01T12:00:00Z").wake_at, None);
    assert!(!st(&[], "2025-06-01T12:00:00Z").solve_now);
    let s = st(&["2025-06-01T12:00:00Z"], "2025-06-01T12:00:00.500Z");
    assert!(!s.solve_now);
    assert_eq!(s.wake_at, Some(t("2025-06-01T12:00:01Z")));
    assert!(
        st(&["2025-06-01T12:00:00Z"], "2025-06-01T12:00:01Z").solve_now,
        "idle 1s"
    );
    // Pods keep arriving every 0.5s: the window stretches, but closes 10s after it opened.
    let stream: Vec<String> = (0..30)
        .map(|i| {
            format!(
                "2025-06-01T12:00:{:02}.{}Z",
                i / 2,
                if i % 2 == 0 { 0 } else { 5 }
            )
        })
        .collect();
    let seen: Vec<&str> = stream
        .iter()
        .map(String::as_str)
        .filter(|s| *s <= "2025-06-01T12:00:09.5Z")
        .collect();
    let s = st(&seen, "2025-06-01T12:00:09.6Z");
    assert!(!s.solve_now);
    assert_eq!(s.wake_at, Some(t("2025-06-01T12:00:10Z")));
    assert!(st(&seen, "2025-06-01T12:00:10Z").solve_now, "max 10s");
}

fn claim(created: &str, startup: bool) -> NodeClaim {
    NodeClaim {
        metadata: ObjectMeta {
            name: Some("c".into()),
            creation_timestamp: Some(Time(t(created))),
            ..Default::default()
        },
        spec: NodeClaimSpec {
            startup_taints: if startup {
                vec![api::Taint {
                    key: "agent".into(),
                    value: None,
                    effect: api::TaintEffect::NoSchedule,
                }]
            } else {
                vec![]
            },
            resources: Some(api::ResourceRequirements {
                requests: Some([("nvidia.com/gpu".to_string(), Quantity("1".into()))].into()),
            }),
            ..Default::default()
        },
        status: None,
    }
}

#[test]
fn lifecycle_conditions_and_timeouts() {
    let o = LifecycleOptions::default();
    let c = claim("2025-06-01T11:58:00Z", true);
    // Not launched after 2 minutes: wait until 5.
    let l = claim_lifecycle(&c, &ClaimObservation::default(), now(), &o);
    assert_eq!(l.conditions[0].status, Status::Unknown);
    assert_eq!(l.delete, None);
    assert_eq!(l.requeue_at, Some(t("2025-06-01T12:03:00Z")));
    let l = claim_lifecycle(
        &c,
        &ClaimObservation::default(),
        t("2025-06-01T12:03:00Z"),
        &o,
    );
    assert_eq!(l.delete, Some(Timeout::Launch));
    // Launched, no node: registration timeout at 15 minutes.
    let launched = ClaimObservation {
        provider_id: Some("kwok://c".into()),
        ..Default::default()
    };
    let l = claim_lifecycle(&c, &launched, t("2025-06-01T12:10:00Z"), &o);
    assert_eq!(
        (l.conditions[0].status, l.conditions[1].status, l.delete),
        (Status::True, Status::Unknown, None)
    );
    assert_eq!(
        claim_lifecycle(&c, &launched, t("2025-06-01T12:13:00Z"), &o).delete,
        Some(Timeout::Registration)
    );
    // Registered, but the startup taint is still there, then the GPU not registered, then done.
    let mut node = ObservedNode {
        name: "n".into(),
        ready: true,
        taints: vec![Taint::new("agent", "", TaintEffect::NoSchedule)],
        allocatable: Resources::default(),
    };
    let obs = |n: &ObservedNode| ClaimObservation {
        provider_id: Some("kwok://c".into()),
        launch_error: None,
        node: Some(n.clone()),
    };
    let l = claim_lifecycle(&c, &obs(&node), now(), &o);
    assert_eq!(l.conditions[1].status, Status::True);
    assert_eq!(
        (l.conditions[2].status, l.conditions[2].reason.as_str()),
        (Status::Unknown, "StartupTaintsExist")
    );
    node.taints.clear();
    assert_eq!(
        claim_lifecycle(&c, &obs(&node), now(), &o).conditions[2].reason,
        "ResourceNotRegistered"
    );
    node.allocatable = Resources::default().with("nvidia.com/gpu", 1);
    let l = claim_lifecycle(&c, &obs(&node), now(), &o);
    assert_eq!(l.conditions[2].status, Status::True);
    assert_eq!(l.delete, None);
    // Conditions merge keeps transition times of unchanged statuses.
    let first = ballast_nodes::lifecycle::merge_conditions(&[], &l.conditions, now(), None);
    let later = ballast_nodes::lifecycle::merge_conditions(
        &first,
        &l.conditions,
        t("2025-06-01T13:00:00Z"),
        None,
    );
    assert_eq!(first, later);
}

#[test]
fn adapter_errors_name_object_and_field() {
    let mut p = pool("gpu");
    p.spec.limits = Some([("cpu".to_string(), Quantity("lots".into()))].into());
    let e = adapt::node_pool_to_model(&p, Resources::default()).unwrap_err();
    assert_eq!(
        (e.kind, e.name.as_str(), e.field.as_str()),
        (ObjectKind::NodePool, "gpu", "spec.limits.cpu")
    );
    let mut p = pool("gt");
    p.spec.template.spec.requirements = vec![api::NodeSelectorRequirementWithMinValues {
        key: "cpu".into(),
        operator: api::RequirementOperator::Gte,
        values: vec!["x".into()],
        min_values: None,
    }];
    let e = adapt::node_pool_to_model(&p, Resources::default()).unwrap_err();
    assert_eq!(e.field, "spec.template.spec.requirements[0]");
    p.spec.template.spec.requirements[0].values = vec!["4".into()];
    let m = adapt::node_pool_to_model(&p, Resources::default()).unwrap();
    assert_eq!(
        (
            m.model.requirements[0].operator,
            m.model.requirements[0].values[0].as_str()
        ),
        (ballast_scheduling::Operator::Gt, "3")
    );
    // A bad pool is skipped with its error; the others still provision.
    let mut bad = pool("bad");
    bad.spec.template.spec.expire_after = Some("soon".into());
    let mut s = cluster(vec![bad, pool("good")], vec![]);
    s.pending_pods = vec![pending("x", 100)];
    let d = provision(&s, now(), &ProvisionOptions::default()).unwrap();
    assert_eq!(d.node_claims[0].node_pool, "good");
    assert_eq!(d.skipped[0].field, "spec.template.spec.expireAfter");
    let e = adapt::node_claim_to_in_flight(&NodeClaim {
        metadata: ObjectMeta {
            name: Some("c".into()),
            ..Default::default()
        },
        spec: Default::default(),
        status: None,
    })
    .unwrap_err();
    assert_eq!(e.kind, ObjectKind::NodeClaim);
}

#[test]
fn snapshot_reads_from_yaml() {
    let text = r#"
nodePools:
  - apiVersion: nodes.ballast.dev/v1
    kind: NodePool
    metadata: {name: default}
    spec:
      template:
        spec:
          nodeClassRef: {group: nodes.ballast.dev, kind: KwokNodeClass, name: default}
          requirements:
            - {key: nodes.ballast.dev/capacity-type, operator: In, values: [on-demand]}
      disruption: {consolidateAfter: 30s, minSavingsPercent: 10}
nodes:
  - name: n1
    labels: {nodes.ballast.dev/nodepool: default, node.kubernetes.io/instance-type: medium,
             topology.kubernetes.io/zone: a, nodes.ballast.dev/capacity-type: on-demand}
    allocatable: {cpu: "4", memory: 8Gi, pods: 110}
    created: 2025-06-01T00:00:00Z
    pods:
      - {namespace: a, name: web-1, requests: {cpu: 3500m, memory: 1Gi}, ownerKind: ReplicaSet}
pendingPods:
  - {namespace: a, name: web-2, requests: {cpu: "1", memory: 1Gi}, firstSeen: 2025-06-01T11:59:59Z}
"#;
    let mut s: ClusterSnapshot = serde_yaml::from_str(text).unwrap();
    s.instance_types = catalog();
    let d = provision(&s, now(), &ProvisionOptions::default()).unwrap();
    assert_eq!(d.node_claims.len(), 1);
    assert_eq!(d.node_claims[0].capacity_types, vec!["on-demand"]);
    assert!(ballast_nodes::batch_state_for(&s, now(), &BatchWindow::default()).solve_now);
    // Round trip.
    let back: ClusterSnapshot = serde_yaml::from_str(&serde_yaml::to_string(&s).unwrap()).unwrap();
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        serde_json::to_value(&s).unwrap()
    );
}
