//! NodePool limits: what each limit lets a pool launch.

mod common;

use ballast_nodes::{PendingCategory, PendingPod, ProvisionOptions, provision};
use ballast_scheduling::{Pod, Resources};
use common::*;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

fn pending(name: &str, cpu_m: i64) -> PendingPod {
    PendingPod {
        pod: Pod::new("a", name, Resources::cpu_mem(cpu_m, 256 << 20)),
        first_seen: None,
    }
}

/// Each row: the pool's limits, how many NodeClaims a 500m pod gets, and (when it gets none)
/// the pool's reason. A zero limit on a resource every node has closes the pool to new nodes,
/// as Karpenter reads it; a zero limit on an extended resource only keeps out the types that
/// have some of it.
#[test]
fn zero_limits_launch_nothing() {
    type Row = (&'static [(&'static str, &'static str)], usize, &'static str);
    let rows: [Row; 9] = [
        (&[], 1, ""),
        (&[("cpu", "4")], 1, ""),
        (&[("cpu", "1")], 0, "NodePool limits reached (cpu)"),
        (&[("cpu", "0")], 0, "NodePool limits reached (cpu)"),
        (&[("memory", "0")], 0, "NodePool limits reached (memory)"),
        (&[("pods", "0")], 0, "NodePool limits reached (pods)"),
        (
            &[("cpu", "0"), ("memory", "1Ti")],
            0,
            "NodePool limits reached (cpu)",
        ),
        (&[("nodes", "0")], 0, "NodePool limits reached (nodes)"),
        (&[("nvidia.com/gpu", "0")], 1, ""),
    ];
    for (limits, claims, why) in rows {
        let mut p = pool("p");
        if !limits.is_empty() {
            p.spec.limits = Some(
                limits
                    .iter()
                    .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                    .collect(),
            );
        }
        let mut s = cluster(vec![p], vec![]);
        s.pending_pods = vec![pending("web", 500)];
        let d = provision(&s, now(), &ProvisionOptions::default()).unwrap();
        assert_eq!(d.node_claims.len(), claims, "{limits:?}");
        if claims == 0 {
            let u = &d.unschedulable[0];
            assert_eq!(u.category, PendingCategory::LimitsReached, "{limits:?}");
            assert_eq!(u.node_pools, vec![("p".into(), why.into())], "{limits:?}");
        }
    }
}
