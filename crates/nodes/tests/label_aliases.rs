//! Table tests: the nodes core reads Karpenter's spellings of Ballast's keys as ours — NodePool
//! requirements and template labels, a node's pool and capacity type, the do-not-disrupt
//! annotation — and refuses a requirement on a label Ballast sets, in either spelling.

use std::collections::BTreeMap;

use ballast_api::nodes::NodePool;
use ballast_nodes::{adapt, node_pool_to_model};
use ballast_scheduling::{self as sched, Operator, Resources};

fn pool(requirements: &str) -> NodePool {
    serde_yaml::from_str(&format!(
        "apiVersion: nodes.ballast.dev/v1\nkind: NodePool\nmetadata: {{name: general}}\n\
         spec:\n  template:\n    spec:\n      nodeClassRef: {{group: nodes.ballast.dev, kind: KwokNodeClass, name: k}}\n      \
         requirements: {requirements}\n"
    ))
    .expect("pool yaml")
}

#[test]
fn pool_requirements_in_karpenter_spelling_are_ours() {
    // (requirements, the capacity-type requirement the model should carry)
    let cases = [
        (
            "[{key: karpenter.sh/capacity-type, operator: In, values: [spot]}]",
            vec!["spot"],
        ),
        (
            "[{key: nodes.ballast.dev/capacity-type, operator: In, values: [spot]}]",
            vec!["spot"],
        ),
        // Nothing said: on-demand, as before.
        ("[]", vec!["on-demand"]),
    ];
    for (reqs, want) in cases {
        let m = node_pool_to_model(&pool(reqs), Resources::default()).expect(reqs);
        let ct: Vec<_> = m
            .model
            .requirements
            .iter()
            .filter(|r| r.key == sched::labels::CAPACITY_TYPE)
            .collect();
        assert_eq!(ct.len(), 1, "{reqs}: {ct:?}");
        assert_eq!(ct[0].operator, Operator::In);
        assert_eq!(ct[0].values, want, "{reqs}");
    }
    let fam = "[{key: karpenter.k8s.aws/instance-family, operator: In, values: [m6i]}]";
    let m = node_pool_to_model(&pool(fam), Resources::default()).expect("family");
    assert!(
        m.model
            .requirements
            .iter()
            .any(|r| r.key == "nodes.ballast.dev/instance-family")
    );
}

#[test]
fn requirements_on_labels_ballast_sets_are_refused_in_either_spelling() {
    for key in [
        "karpenter.sh/nodepool",
        "nodes.ballast.dev/nodepool",
        "karpenter.sh/registered",
        "karpenter.sh/initialized",
    ] {
        let reqs = format!("[{{key: {key}, operator: Exists}}]");
        let err = node_pool_to_model(&pool(&reqs), Resources::default())
            .expect_err(key)
            .to_string();
        assert!(
            err.contains("general") && err.contains("requirements[0].key") && err.contains(key),
            "{key}: {err}"
        );
    }
}

#[test]
fn node_labels_read_in_either_spelling_ours_first() {
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    // (labels, pool, capacity type)
    let cases = [
        (
            map(&[
                ("karpenter.sh/nodepool", "a"),
                ("karpenter.sh/capacity-type", "spot"),
            ]),
            Some("a"),
            Some("spot"),
        ),
        (
            map(&[
                ("karpenter.sh/nodepool", "theirs"),
                ("nodes.ballast.dev/nodepool", "ours"),
                ("nodes.ballast.dev/capacity-type", "on-demand"),
            ]),
            Some("ours"),
            Some("on-demand"),
        ),
        (map(&[("other", "x")]), None, None),
    ];
    for (labels, pool, capacity) in cases {
        let w = adapt::WellKnown::of(&labels);
        assert_eq!(w.pool, pool, "{labels:?}");
        assert_eq!(w.capacity_type, capacity, "{labels:?}");
        assert_eq!(ballast_nodes::pool_label(&labels), pool, "{labels:?}");
        assert_eq!(
            adapt::model_label(&labels, "karpenter.sh/capacity-type").map(String::as_str),
            capacity,
            "{labels:?}"
        );
        let model = adapt::model_labels(&labels);
        assert_eq!(
            model.get(sched::labels::NODEPOOL).map(String::as_str),
            pool,
            "{labels:?}"
        );
    }
}
