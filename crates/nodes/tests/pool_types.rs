//! A NodePool whose requirements no instance type meets: its pods are told which pool and which
//! requirement, not that they are too large for a type that does not exist.

mod common;

use ballast_api::nodes::{self as api, NodeSelectorRequirementWithMinValues, RequirementOperator};
use ballast_nodes::{PendingCategory, PendingPod, ProvisionOptions, provision};
use ballast_scheduling::{Pod, Resources};
use common::*;

fn req(
    key: &str,
    op: RequirementOperator,
    values: &[&str],
) -> NodeSelectorRequirementWithMinValues {
    NodeSelectorRequirementWithMinValues {
        key: key.into(),
        operator: op,
        values: values.iter().map(|v| v.to_string()).collect(),
        min_values: None,
    }
}

#[test]
fn pods_of_a_pool_without_types_name_the_pool_and_requirement() {
    use RequirementOperator::*;
    // (requirements, a NodeClaim is made, words the pool's reason holds)
    type Row = (
        Vec<NodeSelectorRequirementWithMinValues>,
        bool,
        &'static [&'static str],
    );
    let rows: Vec<Row> = vec![
        (vec![], true, &[]),
        (vec![req("kubernetes.io/arch", In, &["amd64"])], true, &[]),
        (
            vec![req("kubernetes.io/arch", In, &["arm64"])],
            false,
            &["kubernetes.io/arch In [arm64]", "no instance type"],
        ),
        (
            vec![
                req(api::labels::INSTANCE_TYPE, In, &["small", "large"]),
                req(api::labels::ZONE, In, &["z9"]),
            ],
            false,
            &["topology.kubernetes.io/zone In [z9]"],
        ),
        (
            // Each alone leaves a type; together none.
            vec![
                req(api::labels::INSTANCE_TYPE, In, &["small"]),
                req(api::labels::INSTANCE_TYPE, NotIn, &["small"]),
            ],
            false,
            &["together", "In [small]", "NotIn [small]"],
        ),
    ];
    for (reqs, launches, words) in rows {
        let mut p = pool("p");
        p.spec.template.spec.requirements = reqs.clone();
        let mut s = cluster(vec![p], vec![]);
        s.pending_pods = vec![PendingPod {
            pod: Pod::new("a", "web", Resources::cpu_mem(500, 1 << 20)),
            first_seen: None,
        }];
        let d = provision(&s, now(), &ProvisionOptions::default()).unwrap();
        assert_eq!(d.node_claims.len(), usize::from(launches), "{reqs:?}");
        if launches {
            continue;
        }
        let u = &d.unschedulable[0];
        assert_eq!(
            u.category,
            PendingCategory::UnsatisfiableRequirements,
            "{reqs:?}: {}",
            u.message
        );
        assert!(u.message.contains("NodePool p"), "{}", u.message);
        for w in words {
            assert!(u.message.contains(w), "{w:?} not in {}", u.message);
        }
    }
}
