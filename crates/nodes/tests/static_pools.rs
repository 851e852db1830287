//! Static NodePools (`spec.replicas`) in the provisioning and disruption decisions: their nodes
//! take pods, no claim is ever opened in them, and their nodes are never consolidated.

mod common;

use ballast_nodes::{
    Destination, DisruptionOptions, Method, PendingPod, ProvisionOptions, Why, disrupt, provision,
};
use ballast_scheduling::{Pod, Resources};
use common::*;

fn pending(name: &str, cpu_m: i64) -> PendingPod {
    PendingPod {
        pod: Pod::new("a", name, Resources::cpu_mem(cpu_m, 256 << 20)),
        first_seen: None,
    }
}

fn static_pool(name: &str, replicas: i64) -> ballast_api::nodes::NodePool {
    let mut p = pool(name);
    p.spec.replicas = Some(replicas);
    p
}

/// (case, pools, pending pod's cpu in millicores, expected destination or None, new claims' pools)
type Case = (
    &'static str,
    Vec<ballast_api::nodes::NodePool>,
    i64,
    Option<&'static str>,
    Vec<&'static str>,
);

#[test]
fn pods_use_static_nodes_but_never_open_a_claim_there() {
    let cases: Vec<Case> = vec![
        (
            "fits the static node",
            vec![static_pool("fixed", 1)],
            500,
            Some("n1"),
            vec![],
        ),
        (
            "too big for the static node and no other pool",
            vec![static_pool("fixed", 1)],
            6000,
            None,
            vec![],
        ),
        (
            "too big: a dynamic pool takes it",
            vec![static_pool("fixed", 1), pool("dynamic")],
            6000,
            Some("new"),
            vec!["dynamic"],
        ),
        (
            "the same pool without replicas opens a claim",
            vec![pool("fixed")],
            6000,
            Some("new"),
            vec!["fixed"],
        ),
    ];
    for (name, pools, cpu, want, claim_pools) in cases {
        let mut s = cluster(
            pools,
            vec![node("n1", &ty("medium"), "fixed", "on-demand", vec![])],
        );
        s.pending_pods = vec![pending("web", cpu)];
        let d = provision(&s, now(), &ProvisionOptions::default()).unwrap();
        let made: Vec<&str> = d.node_claims.iter().map(|c| c.node_pool.as_str()).collect();
        assert_eq!(made, claim_pools, "{name}");
        let to = d.placements.first().map(|p| match &p.to {
            Destination::Node(n) => n.as_str(),
            _ => "new",
        });
        assert_eq!(to, want, "{name}");
        if want.is_none() {
            let u = &d.unschedulable[0];
            let (pool, why) = &u.node_pools[0];
            assert_eq!(pool, "fixed", "{name}");
            assert!(why.contains("static NodePool"), "{name}: {why}");
        }
    }
}

#[test]
fn static_nodes_are_not_consolidated_but_still_expire() {
    let mut s = cluster(
        vec![static_pool("fixed", 2)],
        vec![
            node("n1", &ty("large"), "fixed", "on-demand", vec![]),
            node("n2", &ty("large"), "fixed", "on-demand", vec![]),
        ],
    );
    let d = disrupt(&s, now(), &DisruptionOptions::default()).unwrap();
    assert!(d.action.is_none(), "{:?}", d.action);
    for n in ["n1", "n2"] {
        let report = d.nodes.iter().find(|r| r.node == n).unwrap();
        assert!(
            report
                .notes
                .iter()
                .any(|note| note.method == Some(Method::Emptiness)
                    && matches!(note.why, Why::StaticNodePool)),
            "{n}: {:?}",
            report.notes
        );
    }
    // Expiration still replaces them.
    for p in &mut s.node_pools {
        p.spec.template.spec.expire_after = Some("1h".into());
    }
    let d = disrupt(&s, now(), &DisruptionOptions::default()).unwrap();
    let a = d.action.expect("expiration");
    assert_eq!(a.method, Method::Expiration);
}
