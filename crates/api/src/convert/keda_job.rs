//! KEDA ScaledJob → `JobAutoscaler`. The Job template, limits, rollout and scaling strategy keep
//! their names; triggers convert as a ScaledObject's do (`keda::trigger_metric`), and only event
//! sources are kept (a JobAutoscaler needs a backlog).

use serde_json::{Map, Value, json};

use super::keda::{Trigger, trigger_metric};
use super::{Authentications, ConvertError, Converted, NoteKind, carry_metadata, note, object};

/// Fields copied as they are.
const KEPT: [&str; 8] = [
    "jobTargetRef",
    "pollingInterval",
    "successfulJobsHistoryLimit",
    "failedJobsHistoryLimit",
    "minReplicaCount",
    "maxReplicaCount",
    "rollout",
    "scalingStrategy",
];

pub(super) fn convert(
    source: &Value,
    label: &str,
    auths: &Authentications,
) -> Result<Converted, ConvertError> {
    let namespace = source
        .pointer("/metadata/namespace")
        .and_then(Value::as_str);
    let mut notes = Vec::new();
    let metadata = carry_metadata(source, true, &mut notes);
    let spec = source.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut out = Map::new();
    for key in KEPT {
        if let Some(v) = spec.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(strategy) = spec.get("rolloutStrategy").and_then(Value::as_str) {
        out.entry("rollout")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|r| r.entry("strategy").or_insert(json!(strategy)));
        note(
            &mut notes,
            NoteKind::Changed,
            "spec.rolloutStrategy",
            "became rollout.strategy (KEDA's deprecated spelling)",
        );
    }
    for (key, why) in [
        (
            "envSourceContainerName",
            "Ballast reads settings from the trigger and its secret, not from container env",
        ),
        ("triggerAuth", "not a ScaledJob setting Ballast knows"),
    ] {
        if spec.get(key).is_some() {
            note(&mut notes, NoteKind::Dropped, format!("spec.{key}"), why);
        }
    }
    let mut triggers = Vec::new();
    let empty = Vec::new();
    let listed = spec
        .get("triggers")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    for (i, value) in listed.iter().enumerate() {
        let path = format!("spec.triggers[{i}]");
        let t = Trigger {
            value,
            path: &path,
            label,
            namespace,
            auths,
        };
        match trigger_metric(&t, &mut notes)? {
            Some(metric) if metric.get("type") == Some(&json!("Event")) => {
                triggers.push(metric["event"].clone());
            }
            Some(_) => note(
                &mut notes,
                NoteKind::Dropped,
                path,
                "not an event source: a JobAutoscaler reads queues only",
            ),
            None => {}
        }
    }
    if triggers.is_empty() {
        return Err(ConvertError::Invalid {
            source_object: label.to_string(),
            field: "spec.triggers".into(),
            message: "no trigger converts to an event source (redis-list, rabbitmq, postgresql, kafka, aws-sqs)".into(),
        });
    }
    out.insert("triggers".into(), Value::Array(triggers));
    Ok(Converted {
        source: label.to_string(),
        object: object(
            "autoscaling.ballast.dev/v1",
            "JobAutoscaler",
            metadata,
            Value::Object(out),
        ),
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::super::convert;
    use serde_json::json;

    #[test]
    fn scaled_job_becomes_a_job_autoscaler() {
        let source = json!({
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledJob",
            "metadata": {"name": "work", "namespace": "ns"},
            "spec": {
                "jobTargetRef": {"template": {"spec": {"containers": [{"name": "w", "image": "x"}]}}},
                "maxReplicaCount": 3,
                "rolloutStrategy": "gradual",
                "scalingStrategy": {"strategy": "eager"},
                "triggers": [{"type": "redis", "metadata": {"address": "redis:6379", "listName": "q", "listLength": "1"}}],
            },
        });
        let c = convert(&source).unwrap();
        assert_eq!(c.object["kind"], "JobAutoscaler");
        assert_eq!(c.object["spec"]["maxReplicaCount"], 3);
        assert_eq!(c.object["spec"]["rollout"]["strategy"], "gradual");
        assert_eq!(c.object["spec"]["scalingStrategy"]["strategy"], "eager");
        assert_eq!(c.object["spec"]["triggers"][0]["type"], "redis-list");
        let report = crate::validate::validate_object(&c.object);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
    }
}
