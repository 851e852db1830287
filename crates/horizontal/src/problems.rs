//! The problems the decision would find in an autoscaler's spec, before any observation: what
//! `ballast validate` and `ballast convert` add to the CRD schema's checks, so that an object
//! they pass is one the controller accepts (a zero `averageValue`, a non-positive utilization,
//! an event source without a target, a bad behavior policy...).

use crate::prepare::prepare;
use crate::snapshot::{ControllerConfig, Snapshot, SnapshotError, TargetScale};
use ballast_api::horizontal::HorizontalAutoscaler;
use jiff::Timestamp;

/// One problem: the field (`spec.metrics[0].pods.target.averageValue`) and what is wrong.
pub type Problem = (String, String);

/// Every problem of `object`'s spec the decision reports as a condition: the spec's first
/// problem, then each metric's. Empty when the controller would accept the object. Reads no
/// clock: the checks do not depend on time.
pub fn spec_problems(object: &HorizontalAutoscaler) -> Vec<Problem> {
    let snapshot = Snapshot {
        autoscaler: object.clone(),
        scale: TargetScale::default(),
        pods: Vec::new(),
        metrics: Vec::new(),
        other_autoscalers: Vec::new(),
        demand_history: Vec::new(),
        config: ControllerConfig::default(),
        now: Timestamp::UNIX_EPOCH,
    };
    let prepared = match prepare(&snapshot) {
        Ok(p) => p,
        Err(SnapshotError::Invalid { field, message }) => return vec![(field, message)],
        Err(SnapshotError::Parse(message)) => return vec![("spec".into(), message)],
    };
    let mut problems: Vec<Problem> = prepared.spec.error.iter().cloned().collect();
    for (i, metric) in prepared.metrics.iter().enumerate() {
        if let Err(message) = &metric.target {
            problems.push(split_field(message, &format!("spec.metrics[{i}]")));
        }
    }
    problems
}

/// A metric's message names its field first (`spec.metrics[0].x: must ...`) or not at all.
fn split_field(message: &str, metric: &str) -> Problem {
    match message.split_once(": ") {
        Some((field, rest)) if field.starts_with("spec.") && !field.contains(' ') => {
            (field.to_string(), rest.to_string())
        }
        _ => (metric.to_string(), message.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(spec: serde_json::Value) -> HorizontalAutoscaler {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "autoscaling.ballast.dev/v1",
            "kind": "HorizontalAutoscaler",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn problems_name_their_field() {
        let target =
            serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"});
        let cases = [
            (
                serde_json::json!({"scaleTargetRef": target, "maxReplicas": 3}),
                vec![],
            ),
            (
                serde_json::json!({"scaleTargetRef": target, "maxReplicas": 3, "minReplicas": -3}),
                vec!["spec.minReplicas"],
            ),
            (
                serde_json::json!({"scaleTargetRef": target, "maxReplicas": 3, "metrics": [
                    {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "0"}}},
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": -50}}},
                ]}),
                vec![
                    "spec.metrics[0].pods.target.averageValue",
                    "spec.metrics[1].resource.target.averageUtilization",
                ],
            ),
        ];
        for (spec, want) in cases {
            let got: Vec<String> = spec_problems(&object(spec.clone()))
                .into_iter()
                .map(|(f, _)| f)
                .collect();
            assert_eq!(got, want, "{spec}");
        }
    }
}
