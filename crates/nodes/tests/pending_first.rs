//! "Pending pods first": which pending pods hold the graceful disruption methods back. A pod
//! that only a NodePool unable to launch could take (the pool is `Ready=False`, or its NodeClaims
//! fail to launch) must not stop disruption in every other pool.

mod common;

use ballast_api::nodes::{self as api, NodeClaim};
use ballast_nodes::{ClusterSnapshot, DisruptionOptions, Method, PendingPod, disrupt};
use ballast_scheduling::{Pod, Resources};
use common::*;
use serde_json::json;

fn condition(type_: &str, status: &str) -> serde_json::Value {
    json!({ "type": type_, "status": status, "reason": "R", "message": "m",
            "lastTransitionTime": "2025-06-01T11:00:00Z" })
}

/// An in-flight NodeClaim of `pool` (no instance yet) whose `Launched` condition is `launched`.
fn in_flight(pool: &api::NodePool, launched: &str) -> NodeClaim {
    let mut n = node("flight", &ty("large"), "broken", "on-demand", vec![]);
    let mut c = claim_for(&mut n, pool);
    c.metadata.name = Some("broken-claim".into());
    c.status = Some(
        serde_json::from_value(json!({ "conditions": [condition("Launched", launched)] })).unwrap(),
    );
    c
}

/// A pool "good" with an empty node that emptiness removes, a pool "broken", and one pending
/// pod that selects `wants` (a pool name).
fn cluster_with_pending(wants: &str) -> ClusterSnapshot {
    let mut s = cluster(
        vec![pool("good"), pool("broken")],
        vec![
            node(
                "empty",
                &ty("large"),
                "good",
                "on-demand",
                vec![daemon("ds")],
            ),
            node(
                "busy",
                &ty("large"),
                "good",
                "on-demand",
                vec![pod("a", "x", 7000, 100)],
            ),
        ],
    );
    let mut p = Pod::new("a", "waiting", Resources::cpu_mem(7000, 1 << 20));
    p.node_selector
        .insert(api::labels::NODEPOOL.into(), wants.into());
    s.pending_pods = vec![PendingPod {
        pod: p,
        first_seen: None,
    }];
    s
}

#[test]
fn pods_only_a_pool_that_cannot_launch_could_take_do_not_wait() {
    // (case, pod's pool, broken pool's Ready, broken pool's in-flight claim Launched, acts)
    type Row = (
        &'static str,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        bool,
    );
    let rows: [Row; 7] = [
        ("a pod the good pool takes waits", "good", None, None, false),
        (
            "a pod for a ready pool waits",
            "broken",
            Some("True"),
            None,
            false,
        ),
        (
            "a pod for a pool not ready does not",
            "broken",
            Some("False"),
            None,
            true,
        ),
        ("a pod no pool serves does not", "nowhere", None, None, true),
        (
            "a claim failing to launch does not",
            "broken",
            None,
            Some("False"),
            true,
        ),
        (
            "a claim launching waits",
            "broken",
            None,
            Some("Unknown"),
            false,
        ),
        (
            "a launch failure in another pool changes nothing",
            "good",
            None,
            Some("False"),
            false,
        ),
    ];
    for (case, wants, ready, launched, acts) in rows {
        let mut s = cluster_with_pending(wants);
        if let Some(r) = ready {
            s.node_pools[1].status = Some(
                serde_json::from_value(json!({ "conditions": [condition("Ready", r)] })).unwrap(),
            );
        }
        if let Some(l) = launched {
            let c = in_flight(&s.node_pools[1], l);
            s.node_claims.push(c);
        }
        let d = disrupt(&s, now(), &DisruptionOptions::default()).unwrap();
        match &d.action {
            Some(a) if acts => {
                assert_eq!(a.method, Method::Emptiness, "{case}");
                assert_eq!(a.nodes, vec!["empty"], "{case}");
            }
            None if !acts => assert!(d.summary.contains("pending"), "{case}: {}", d.summary),
            other => panic!("{case}: {other:?}; {}", d.summary),
        }
    }
}
