use super::*;
use serde_json::json;

fn hza(spec: Value) -> Value {
    json!({
        "apiVersion": "autoscaling.ballast.dev/v1", "kind": "HorizontalAutoscaler",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": spec,
    })
}

fn base_spec() -> Value {
    json!({
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 1, "maxReplicas": 10,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}]
    })
}

/// Sets the field at `pointer`, creating it in its parent object when missing.
fn with(mut v: Value, pointer: &str, new: Value) -> Value {
    if let Some(slot) = v.pointer_mut(pointer) {
        *slot = new;
        return v;
    }
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = v
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent}"));
    parent[key] = new;
    v
}

fn pool(requirements: Value) -> Value {
    json!({
        "apiVersion": "nodes.ballast.dev/v1", "kind": "NodePool", "metadata": {"name": "p"},
        "spec": {"template": {"spec": {
            "nodeClassRef": {"group": "nodes.ballast.dev", "kind": "KwokNodeClass", "name": "k"},
            "requirements": requirements
        }}}
    })
}

/// (case, object, expected field of the first error or None when valid, words in its message)
fn cases() -> Vec<(&'static str, Value, Option<&'static str>, &'static str)> {
    let cpu_only = base_spec();
    vec![
        ("valid", hza(base_spec()), None, ""),
        ("min above max", hza(with(base_spec(), "/minReplicas", json!(15))), Some("spec.minReplicas"), "minReplicas must be less than or equal to maxReplicas"),
        ("max zero", hza(with(base_spec(), "/maxReplicas", json!(0))), Some("spec.maxReplicas"), "greater than or equal to 1"),
        ("unknown metric type", hza(with(base_spec(), "/metrics/0/type", json!("Magic"))), Some("spec.metrics[0].type"), "Unsupported value"),
        ("bad quantity", hza(with(base_spec(), "/metrics/0", json!({"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "5 per pod"}}}))), Some("spec.metrics[0].pods.target.averageValue"), "should match"),
        ("type without its field", hza(with(base_spec(), "/metrics/0", json!({"type": "Pods", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}))), Some("spec.metrics[0]"), "the field named by type must be set"),
        ("two sources", hza(with(base_spec(), "/metrics/0", json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}, "pods": {"metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "5"}}}))), Some("spec.metrics[0]"), "exactly one metric source"),
        ("utilization without percent", hza(with(base_spec(), "/metrics/0/resource/target", json!({"type": "Utilization"}))), Some("spec.metrics[0].resource.target"), "averageUtilization"),
        ("zero min with only cpu", hza(with(cpu_only, "/minReplicas", json!(0))), Some("spec.minReplicas"), "minReplicas may be 0"),
        ("zero min with an event metric", hza(with(base_spec(), "/minReplicas", json!(0)).as_object().cloned().map(|mut m| { m.insert("metrics".into(), json!([{"type": "Event", "event": {"type": "redis-list", "redisList": {"address": "127.0.0.1:6379", "listName": "q"}, "target": {"type": "AverageValue", "averageValue": "5"}}}])); Value::Object(m) }).unwrap()), None, ""),
        ("event without target", hza(with(base_spec(), "/metrics/0", json!({"type": "Event", "event": {"type": "redis-list", "redisList": {"address": "a:1", "listName": "q"}}}))), Some("spec.metrics[0].event"), "needs a target"),
        ("bad cron in event", hza(with(base_spec(), "/metrics/0", json!({"type": "Event", "event": {"type": "cron", "cron": {"start": "every morning", "end": "0 18 * * *", "desiredReplicas": 3}}}))), Some("spec.metrics[0].event.cron.start"), "not a cron expression"),
        ("policy period too long", hza(with(base_spec(), "/behavior", json!({"scaleUp": {"policies": [{"type": "Pods", "value": 4, "periodSeconds": 4000}]}}))), Some("spec.behavior.scaleUp.policies[0].periodSeconds"), "less than or equal to 1800"),
        ("bad select policy", hza(with(base_spec(), "/behavior", json!({"scaleDown": {"selectPolicy": "Sometimes"}}))), Some("spec.behavior.scaleDown.selectPolicy"), "Unsupported value"),
        ("unknown field", hza(with(base_spec(), "/maxReplicas", json!(3)).as_object().cloned().map(|mut m| { m.insert("replicaz".into(), json!(3)); Value::Object(m) }).unwrap()), Some("spec.replicaz"), "unknown field"),
        ("missing target ref", hza(json!({"maxReplicas": 3})), Some("spec.scaleTargetRef"), "Required value"),
        ("valid pool", pool(json!([{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}])), None, ""),
        ("bad operator", pool(json!([{"key": "kubernetes.io/arch", "operator": "Within", "values": ["amd64"]}])), Some("spec.template.spec.requirements[0].operator"), "Unsupported value"),
        ("In without values", pool(json!([{"key": "kubernetes.io/arch", "operator": "In"}])), Some("spec.template.spec.requirements[0]"), "at least one value"),
        ("Gt with a word", pool(json!([{"key": "cpu", "operator": "Gt", "values": ["many"]}])), Some("spec.template.spec.requirements[0]"), "one integer value"),
        ("restricted label", pool(json!([{"key": "nodes.ballast.dev/nodepool", "operator": "Exists"}])), Some("spec.template.spec.requirements[0]"), "set by Ballast"),
        ("minValues above values", pool(json!([{"key": "k", "operator": "In", "values": ["a"], "minValues": 2}])), Some("spec.template.spec.requirements[0]"), "minValues"),
        ("rabbitmq without url", hza(with(base_spec(), "/metrics/0", json!({"type": "Event", "event": {"type": "rabbitmq", "rabbitmq": {"queueName": "q"}, "target": {"type": "AverageValue", "averageValue": "5"}}}))), Some("spec.metrics[0].event.rabbitmq.url"), "needs rabbitmq.url or a credentialsRef"),
        ("a range error does not hide a rule", hza(with(with(base_spec(), "/minReplicas", json!(15)), "/metrics/0/resource/target/averageUtilization", json!(0))), Some("spec.minReplicas"), "minReplicas must be less than or equal to maxReplicas"),
        ("predictive scale", hza(with(base_spec(), "/predictive", json!({"mode": "Scale", "seasonality": "Daily", "seasonLengthSeconds": 600, "stepSeconds": 10, "quantile": "0.9", "errorThreshold": "200m"}))), None, ""),
        ("predictive bad mode", hza(with(base_spec(), "/predictive", json!({"mode": "Sometimes"}))), Some("spec.predictive.mode"), "Unsupported value"),
        ("predictive without mode", hza(with(base_spec(), "/predictive", json!({"seasonality": "Daily"}))), Some("spec.predictive.mode"), "Required value"),
        ("predictive season under two steps", hza(with(base_spec(), "/predictive", json!({"mode": "ForecastOnly", "seasonLengthSeconds": 30, "stepSeconds": 20}))), Some("spec.predictive.seasonLengthSeconds"), "at least 2 steps"),
        ("predictive window under ten steps", hza(with(base_spec(), "/predictive", json!({"mode": "Scale", "historyWindowSeconds": 600, "stepSeconds": 120}))), Some("spec.predictive.historyWindowSeconds"), "at least 10 steps"),
        ("predictive bad seasonality", hza(with(base_spec(), "/predictive", json!({"mode": "Scale", "seasonality": "Hourly"}))), Some("spec.predictive.seasonality"), "Unsupported value"),
        ("static pool", with(pool(json!([])), "/spec/replicas", json!(3)).as_object().cloned().map(|mut m| { m["spec"]["limits"] = json!({"nodes": "4"}); Value::Object(m) }).unwrap(), None, ""),
        ("negative replicas", with(pool(json!([])), "/spec/replicas", json!(-1)), Some("spec.replicas"), "greater than or equal to 0"),
        ("static pool with a cpu limit", with(with(pool(json!([])), "/spec/replicas", json!(2)), "/spec/limits", json!({"nodes": "4", "cpu": "8"})), Some("spec.limits"), "takes only limits.nodes"),
        ("static pool with a weight", with(with(pool(json!([])), "/spec/replicas", json!(2)), "/spec/weight", json!(10)), Some("spec.weight"), "takes no spec.weight"),
        ("cpu limit without replicas", with(pool(json!([])), "/spec/limits", json!({"cpu": "8"})), None, ""),
        ("not a ballast kind", json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}), Some("apiVersion/kind"), "not a Ballast kind"),
    ]
}

#[test]
fn validation_table() {
    for (name, object, field, words) in cases() {
        let report = validate_object(&object);
        match field {
            None => assert!(
                report.is_valid(),
                "{name}: unexpected errors {:?}",
                report.errors
            ),
            Some(field) => {
                let hit = report.errors.iter().find(|e| e.field == field);
                let Some(hit) = hit else {
                    panic!("{name}: no error at {field}: {:?}", report.errors)
                };
                assert!(
                    hit.message.contains(words),
                    "{name}: {:?} lacks {words:?}",
                    hit.message
                );
            }
        }
    }
}

#[test]
fn nodepool_budget_rules() {
    let mut p = pool(json!([]));
    p["spec"]["disruption"] = json!({"budgets": [{"nodes": "10%"}, {"nodes": "0", "schedule": "0 9 * * 1-5", "duration": "8h"}]});
    assert!(
        validate_object(&p).is_valid(),
        "{:?}",
        validate_object(&p).errors
    );

    p["spec"]["disruption"]["budgets"][1] = json!({"nodes": "0", "schedule": "0 9 * * 1-5"});
    let r = validate_object(&p);
    assert!(
        r.errors
            .iter()
            .any(|e| e.message.contains("schedule and duration go together")),
        "{:?}",
        r.errors
    );

    p["spec"]["disruption"]["budgets"][1] = json!({"nodes": "150%"});
    let r = validate_object(&p);
    assert!(
        r.errors
            .iter()
            .any(|e| e.field == "spec.disruption.budgets[1].nodes"),
        "{:?}",
        r.errors
    );

    p["spec"]["disruption"]["budgets"][1] =
        json!({"nodes": "1", "schedule": "61 * * * *", "duration": "1h"});
    let r = validate_object(&p);
    assert!(
        r.errors
            .iter()
            .any(|e| e.field == "spec.disruption.budgets[1].schedule"),
        "{:?}",
        r.errors
    );

    p["spec"]["disruption"] = json!({"consolidateAfter": "five minutes"});
    let r = validate_object(&p);
    assert!(
        r.errors
            .iter()
            .any(|e| e.field == "spec.disruption.consolidateAfter"),
        "{:?}",
        r.errors
    );
}

#[test]
fn vertical_min_above_max_is_rejected() {
    let v = json!({
        "apiVersion": "autoscaling.ballast.dev/v1", "kind": "VerticalAutoscaler",
        "metadata": {"name": "v", "namespace": "d"},
        "spec": {"targetRef": {"kind": "Deployment", "name": "d"},
                 "resourcePolicy": {"containerPolicies": [{"containerName": "*", "minAllowed": {"cpu": "2"}, "maxAllowed": {"cpu": "500m"}}]}}
    });
    let r = validate_object(&v);
    assert!(
        r.errors
            .iter()
            .any(|e| e.message.contains("minAllowed must not exceed maxAllowed")),
        "{:?}",
        r.errors
    );
}

#[test]
fn yaml_stream_reports_each_document() {
    let text = "apiVersion: nodes.ballast.dev/v1\nkind: NodePool\nmetadata: {name: a}\nspec: {}\n---\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b}\n";
    let reports = validate_yaml_stream(text);
    assert_eq!(reports.len(), 2);
    assert!(
        reports[0].errors.iter().any(|e| e.field == "spec.template"),
        "{:?}",
        reports[0].errors
    );
    assert!(!reports[1].is_valid());
}
