//! The PodDisruptionBudgets (policy/v1) over a workload's pods: how many of them may be evicted
//! now, the smallest `status.disruptionsAllowed` of the budgets that select any of them.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;

/// Evictions the PDBs of `namespace` allow among `pods` now; None when no PDB selects any of
/// them. A PDB whose status is not yet written allows none.
pub fn allowed(
    budgets: &[Arc<PodDisruptionBudget>],
    namespace: &str,
    pods: &[&Pod],
) -> Option<u32> {
    let empty = BTreeMap::new();
    budgets
        .iter()
        .filter(|b| b.namespace().as_deref() == Some(namespace))
        .filter(|b| {
            let selector = b.spec.as_ref().and_then(|s| s.selector.as_ref());
            pods.iter().any(|p| {
                selector.is_some_and(|s| matches(s, p.metadata.labels.as_ref().unwrap_or(&empty)))
            })
        })
        .map(|b| {
            b.status
                .as_ref()
                .map_or(0, |s| s.disruptions_allowed.max(0) as u32)
        })
        .min()
}

/// Whether `labels` satisfy the selector (an empty selector selects every pod; an operator the
/// selector grammar does not have selects none).
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_label = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    by_label
        && selector.match_expressions.iter().flatten().all(|e| {
            let value = labels.get(&e.key);
            let values = e.values.as_deref().unwrap_or_default();
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdb(
        name: &str,
        selector: serde_json::Value,
        allowed: Option<i32>,
    ) -> Arc<PodDisruptionBudget> {
        let mut v = serde_json::json!({
            "metadata": { "name": name, "namespace": "ns" },
            "spec": { "selector": selector },
        });
        if let Some(a) = allowed {
            v["status"] = serde_json::json!({ "disruptionsAllowed": a, "currentHealthy": 0,
                "desiredHealthy": 0, "expectedPods": 0 });
        }
        Arc::new(serde_json::from_value(v).unwrap_or_default())
    }

    fn pod(labels: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({ "metadata": { "labels": labels } }))
            .unwrap_or_default()
    }

    #[test]
    fn the_smallest_budget_over_the_pods() {
        let web = pod(serde_json::json!({ "app": "web", "tier": "front" }));
        let budgets = [
            pdb(
                "a",
                serde_json::json!({ "matchLabels": { "app": "web" } }),
                Some(2),
            ),
            pdb(
                "b",
                serde_json::json!({ "matchExpressions": [{ "key": "tier", "operator": "In", "values": ["front"] }] }),
                Some(1),
            ),
            pdb(
                "other",
                serde_json::json!({ "matchLabels": { "app": "db" } }),
                Some(0),
            ),
            pdb("none", serde_json::Value::Null, Some(0)),
        ];
        assert_eq!(allowed(&budgets, "ns", &[&web]), Some(1));
        assert_eq!(allowed(&budgets[..1], "ns", &[&web]), Some(2));
        assert_eq!(allowed(&budgets, "elsewhere", &[&web]), None);
        assert_eq!(
            allowed(&budgets[2..], "ns", &[&web]),
            None,
            "no PDB selects web"
        );
        // every pod of the namespace, and no status yet: none allowed
        let all = [pdb("all", serde_json::json!({}), None)];
        assert_eq!(allowed(&all, "ns", &[&web]), Some(0));
    }

    #[test]
    fn selector_operators() {
        let labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
        let expr = |op: &str, values: &[&str]| -> LabelSelector {
            serde_json::from_value(serde_json::json!({
                "matchExpressions": [{ "key": "app", "operator": op, "values": values }]
            }))
            .unwrap_or_default()
        };
        assert!(matches(&expr("In", &["web", "db"]), &labels));
        assert!(!matches(&expr("NotIn", &["web"]), &labels));
        assert!(matches(&expr("Exists", &[]), &labels));
        assert!(!matches(&expr("DoesNotExist", &[]), &labels));
        assert!(!matches(&expr("Gt", &["1"]), &labels));
        assert!(matches(&LabelSelector::default(), &labels));
    }
}
