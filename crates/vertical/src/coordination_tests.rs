use super::*;
use serde_json::{Value, json};

fn vertical(spec: Value, containers: &[&str]) -> VerticalAutoscaler {
    let recs: Vec<Value> = containers
        .iter()
        .map(|c| json!({ "containerName": c, "target": { "cpu": "100m" } }))
        .collect();
    let mut object = json!({
        "apiVersion": "autoscaling.ballast.dev/v1",
        "kind": "VerticalAutoscaler",
        "metadata": { "name": "web-v", "namespace": "ns" },
        "spec": spec,
    });
    if !recs.is_empty() {
        object["status"] = json!({ "recommendation": { "containerRecommendations": recs } });
    }
    serde_json::from_value(object).expect("a vertical autoscaler")
}

fn horizontal(namespace: &str, target: Value, metrics: Value) -> HorizontalAutoscaler {
    serde_json::from_value(json!({
        "apiVersion": "autoscaling.ballast.dev/v1",
        "kind": "HorizontalAutoscaler",
        "metadata": { "name": "web-h", "namespace": namespace },
        "spec": { "scaleTargetRef": target, "maxReplicas": 5, "metrics": metrics },
    }))
    .expect("a horizontal autoscaler")
}

fn deployment() -> Value {
    json!({ "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" })
}

fn resource(name: &str, target: Value) -> Value {
    json!({ "type": "Resource", "resource": { "name": name, "target": target } })
}

fn utilization() -> Value {
    json!({ "type": "Utilization", "averageUtilization": 60 })
}

/// (resource, container, coordinated) of a clash.
type Summary = (Resource, Option<String>, bool);

/// (case, vertical spec, known containers, namespace, target, metrics, expected clashes)
type Case<'a> = (
    &'a str,
    Value,
    Vec<&'a str>,
    &'a str,
    Value,
    Value,
    Vec<Summary>,
);

/// The summary of each clash, in order.
fn summary(c: &[Clash]) -> Vec<Summary> {
    c.iter()
        .map(|c| (c.resource, c.container.clone(), c.coordinated))
        .collect()
}

#[test]
fn clash_table() {
    let cpu = Resource::Cpu;
    let memory = Resource::Memory;
    let initial = json!({ "updateMode": "Initial" });
    let base = |extra: Value| {
        let mut spec = json!({ "targetRef": deployment(), "updatePolicy": initial });
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        spec
    };
    let cpu_util = json!([resource("cpu", utilization())]);
    let cases: Vec<Case<'_>> = vec![
        (
            "cpu utilization against default policies",
            base(json!({})),
            vec![],
            "ns",
            deployment(),
            cpu_util.clone(),
            vec![(cpu, None, true)],
        ),
        (
            "memory utilization too, second metric",
            base(json!({})),
            vec!["app"],
            "ns",
            deployment(),
            json!([
                resource(
                    "cpu",
                    json!({"type": "AverageValue", "averageValue": "100m"})
                ),
                resource("memory", utilization())
            ]),
            vec![(memory, None, true)],
        ),
        (
            "Value and AverageValue never clash",
            base(json!({})),
            vec![],
            "ns",
            deployment(),
            json!([
                resource("cpu", json!({"type": "Value", "value": "1"})),
                resource(
                    "memory",
                    json!({"type": "AverageValue", "averageValue": "1Gi"})
                )
            ]),
            vec![],
        ),
        (
            "updateMode Off applies nothing",
            json!({ "targetRef": deployment(), "updatePolicy": { "updateMode": "Off" } }),
            vec![],
            "ns",
            deployment(),
            cpu_util.clone(),
            vec![],
        ),
        (
            "another namespace",
            base(json!({})),
            vec![],
            "other",
            deployment(),
            cpu_util.clone(),
            vec![],
        ),
        (
            "another target name",
            base(json!({})),
            vec![],
            "ns",
            json!({ "apiVersion": "apps/v1", "kind": "Deployment", "name": "api" }),
            cpu_util.clone(),
            vec![],
        ),
        (
            "another API group",
            base(json!({})),
            vec![],
            "ns",
            json!({ "apiVersion": "example.com/v1", "kind": "Deployment", "name": "web" }),
            cpu_util.clone(),
            vec![],
        ),
        (
            "another version of the group, or none, is the same target",
            base(json!({})),
            vec![],
            "ns",
            json!({ "apiVersion": "apps/v1beta2", "kind": "Deployment", "name": "web" }),
            cpu_util.clone(),
            vec![(cpu, None, true)],
        ),
        (
            "memory only: cpu utilization does not clash",
            base(json!({ "resourcePolicy": { "containerPolicies": [
                { "containerName": "*", "controlledResources": ["memory"] }] } })),
            vec!["app"],
            "ns",
            deployment(),
            cpu_util.clone(),
            vec![],
        ),
        (
            "the only known container is Off for cpu, before a recommendation the default counts",
            base(json!({ "resourcePolicy": { "containerPolicies": [
                { "containerName": "app", "controlledResources": ["memory"] }] } })),
            vec![],
            "ns",
            deployment(),
            cpu_util.clone(),
            vec![(cpu, None, true)],
        ),
        (
            "same, once the recommendation names the containers",
            base(json!({ "resourcePolicy": { "containerPolicies": [
                { "containerName": "app", "controlledResources": ["memory"] }] } })),
            vec!["app"],
            "ns",
            deployment(),
            cpu_util.clone(),
            vec![],
        ),
        (
            "a sidecar controlled is enough for a pod-wide metric",
            base(json!({ "resourcePolicy": { "containerPolicies": [
                { "containerName": "app", "mode": "Off" }] } })),
            vec!["sidecar"],
            "ns",
            deployment(),
            cpu_util.clone(),
            vec![(cpu, None, true)],
        ),
        (
            "container metric on a container left alone",
            base(json!({ "resourcePolicy": { "containerPolicies": [
                { "containerName": "app", "mode": "Off" }] } })),
            vec!["sidecar"],
            "ns",
            deployment(),
            json!([{ "type": "ContainerResource", "containerResource":
                { "name": "cpu", "container": "app", "target": utilization() } }]),
            vec![],
        ),
        (
            "container metric on a controlled container, Ignore",
            base(json!({ "horizontalCoordination": "Ignore" })),
            vec!["app"],
            "ns",
            deployment(),
            json!([{ "type": "ContainerResource", "containerResource":
                { "name": "cpu", "container": "app", "target": utilization() } }]),
            vec![(cpu, Some("app".to_string()), false)],
        ),
    ];
    for (case, spec, known, ns, target, metrics, want) in cases {
        let v = vertical(spec, &known);
        let h = horizontal(ns, target, metrics);
        assert_eq!(summary(&clashes(&v, &h)), want, "{case}");
    }
}

#[test]
fn messages_name_both_objects_and_the_metric() {
    let v = vertical(
        json!({ "targetRef": deployment(), "updatePolicy": { "updateMode": "Initial" } }),
        &[],
    );
    let h = horizontal(
        "ns",
        deployment(),
        json!([
            resource(
                "memory",
                json!({"type": "AverageValue", "averageValue": "1Gi"})
            ),
            resource("cpu", utilization())
        ]),
    );
    let c = clashes(&v, &h);
    let f = vertical_finding(&c);
    assert_eq!((f.conflict, f.reason), (true, "Coordinated"));
    assert!(
        f.message
            .contains("HorizontalAutoscaler web-h scales on spec.metrics[1] (cpu utilization)"),
        "{}",
        f.message
    );
    let f = horizontal_finding(&c);
    assert!(
        f.message
            .contains("VerticalAutoscaler web-v controls the cpu requests"),
        "{}",
        f.message
    );
    assert_eq!(vertical_finding(&[]).reason, "NoConflict");
}

#[test]
fn held_requests() {
    let clash = |resource, container: Option<&str>, coordinated| Clash {
        vertical: "v".into(),
        horizontal: "h".into(),
        metric: 0,
        resource,
        container: container.map(str::to_owned),
        coordinated,
    };
    let held = Held::from_clashes(&[
        clash(Resource::Cpu, None, true),
        clash(Resource::Memory, Some("app"), true),
        clash(Resource::Memory, None, false),
    ]);
    assert!(held.holds(Resource::Cpu, "app") && held.holds(Resource::Cpu, "sidecar"));
    assert!(held.holds(Resource::Memory, "app"));
    assert!(
        !held.holds(Resource::Memory, "sidecar"),
        "Ignore holds nothing"
    );
    assert!(Held::none().is_empty());
}

#[test]
fn events_only_on_a_change() {
    let now = Timestamp::UNIX_EPOCH;
    let conflict = Finding {
        conflict: true,
        reason: "Coordinated",
        message: "m".into(),
    };
    let none = vertical_finding(&[]);
    let mut conditions = Vec::new();
    assert_eq!(
        record(&mut conditions, VERTICAL_CONDITION, &none, now),
        None
    );
    assert_eq!(conditions[0].status, "False");
    let note = record(&mut conditions, VERTICAL_CONDITION, &conflict, now);
    assert!(note.is_some_and(|n| n.warning));
    assert_eq!(
        record(&mut conditions, VERTICAL_CONDITION, &conflict, now),
        None
    );
    let note = record(&mut conditions, VERTICAL_CONDITION, &none, now);
    assert!(note.is_some_and(|n| !n.warning));
    assert_eq!(conditions.len(), 1);
}
