//! What `validate` and `convert` check beyond the CRD schema and its CEL rules: the problems each
//! controller would report in the object's status. The schema cannot say that an `averageValue`
//! must be above zero or that a pool limit may not be negative; the cores can, and an object
//! these commands pass is one the controllers accept.

use ballast_api::validate::{FieldError, ObjectReport};
use serde_json::Value;

/// Adds the controllers' problems to a report the schema and CEL rules passed (a report
/// already invalid is left as it is: its object cannot be read into the cores' types).
pub fn add_core_problems(object: &Value, report: &mut ObjectReport) {
    if !report.is_valid() {
        return;
    }
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let problems = match kind {
        "HorizontalAutoscaler" => horizontal(object),
        "NodePool" => node_pool(object),
        _ => Ok(Vec::new()),
    };
    match problems {
        Ok(problems) => report.errors.extend(problems),
        Err(message) => report.errors.push(FieldError {
            field: "(object)".into(),
            message,
        }),
    }
}

fn horizontal(object: &Value) -> Result<Vec<FieldError>, String> {
    let typed: ballast_api::horizontal::HorizontalAutoscaler =
        serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
    Ok(ballast_horizontal::problems::spec_problems(&typed)
        .into_iter()
        .map(|(field, message)| FieldError { field, message })
        .collect())
}

fn node_pool(object: &Value) -> Result<Vec<FieldError>, String> {
    let typed: ballast_api::nodes::NodePool =
        serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
    let name = typed.metadata.name.clone().unwrap_or_default();
    let mut errors = Vec::new();
    if let Some(limits) = &typed.spec.limits
        && let Err(e) = ballast_nodes::limits::pool_limits(limits, &name)
    {
        errors.push(FieldError {
            field: e.field,
            message: e.why,
        });
    }
    Ok(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(yaml: &str) -> ObjectReport {
        let object: Value = serde_yaml::from_str(yaml).unwrap();
        let mut report = ballast_api::validate::validate_object(&object);
        add_core_problems(&object, &mut report);
        report
    }

    #[test]
    fn core_problems_are_reported_by_field() {
        let cases = [
            (
                "apiVersion: autoscaling.ballast.dev/v1\nkind: HorizontalAutoscaler\nmetadata: {name: h, namespace: d}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  maxReplicas: 4\n  metrics:\n  - type: Pods\n    pods: {metric: {name: qps}, target: {type: AverageValue, averageValue: \"0\"}}\n",
                vec!["spec.metrics[0].pods.target.averageValue"],
            ),
            (
                "apiVersion: nodes.ballast.dev/v1\nkind: NodePool\nmetadata: {name: p}\nspec:\n  limits: {cpu: \"-4\"}\n  template: {spec: {nodeClassRef: {group: nodes.ballast.dev, kind: KwokNodeClass, name: k}, requirements: []}}\n",
                vec!["spec.limits.cpu"],
            ),
        ];
        for (yaml, want) in cases {
            let got: Vec<String> = report(yaml).errors.into_iter().map(|e| e.field).collect();
            assert_eq!(got, want, "{yaml}");
        }
    }
}
