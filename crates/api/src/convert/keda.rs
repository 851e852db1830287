//! KEDA `keda.sh/v1alpha1` ScaledObject → `HorizontalAutoscaler`.
//!
//! KEDA splits the work between its operator (activation 0↔1, fallback) and an HPA fed
//! through the external metrics API (1↔N). Ballast does both in one reconciler, reading the
//! sources directly, so each trigger becomes one metric of the autoscaler:
//! `prometheus` → a Prometheus metric; `redis`, `rabbitmq`, `postgresql`, `kafka`,
//! `aws-sqs-queue`, `cron` → Event metrics; `cpu`, `memory` → Resource (or ContainerResource)
//! metrics. KEDA metadata keys with no Ballast equivalent are reported one by one.

use super::keda_auth::{Authentications, secret_of};
use super::{
    ConvertError, Converted, Note, NoteKind, carry_metadata, note, object, read_as, to_value,
};
use crate::horizontal::HorizontalAutoscalerSpec;
use serde_json::{Map, Value, json};

/// Takes metadata keys out of a trigger's metadata one by one, so the leftovers can be
/// reported.
struct Metadata {
    left: Map<String, Value>,
    path: String,
}

impl Metadata {
    fn take(&mut self, key: &str) -> Option<String> {
        self.left.remove(key).map(|v| match v {
            Value::String(s) => s,
            other => other.to_string(),
        })
    }
    fn need(&mut self, key: &str, label: &str) -> Result<String, ConvertError> {
        self.take(key).ok_or_else(|| ConvertError::Invalid {
            source_object: label.to_string(),
            field: format!("{}.{key}", self.path),
            message: "required by this trigger type but missing".into(),
        })
    }
    fn finish(self, notes: &mut Vec<Note>) {
        for key in self.left.keys() {
            note(
                notes,
                NoteKind::Dropped,
                format!("{}.{key}", self.path),
                "no Ballast equivalent for this trigger setting",
            );
        }
    }
}

/// A KEDA boolean setting (Go's `strconv.ParseBool` spellings), if set.
fn flag(md: &mut Metadata, key: &str, label: &str) -> Result<Option<bool>, ConvertError> {
    let Some(text) = md.take(key) else {
        return Ok(None);
    };
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "1" => Ok(Some(true)),
        "false" | "f" | "0" => Ok(Some(false)),
        _ => Err(ConvertError::Invalid {
            source_object: label.to_string(),
            field: format!("{}.{key}", md.path),
            message: format!("{text:?} is not true or false"),
        }),
    }
}

/// KEDA's `partitionLimitation` (`1,2,10-12`) as the list of partitions.
fn partition_list(text: &str) -> Result<Vec<i32>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let number = |t: &str| {
            t.trim()
                .parse::<i32>()
                .map_err(|_| format!("{part:?} is not a partition number or range"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (number(a)?, number(b)?);
                if a > b || b - a > 10_000 {
                    return Err(format!("{part:?} is not an increasing range"));
                }
                out.extend(a..=b);
            }
            None => out.push(number(part)?),
        }
    }
    Ok(out)
}

/// A KEDA `kafka` trigger as a Ballast kafka event source.
fn kafka(
    md: &mut Metadata,
    avg: &str,
    name: Option<&str>,
    label: &str,
) -> Result<Value, ConvertError> {
    let invalid = |md: &Metadata, key: &str, message: String| ConvertError::Invalid {
        source_object: label.to_string(),
        field: format!("{}.{key}", md.path),
        message,
    };
    let servers: Vec<String> = md
        .need("bootstrapServers", label)?
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let mut src = Map::new();
    src.insert("bootstrapServers".into(), json!(servers));
    src.insert(
        "consumerGroup".into(),
        json!(md.need("consumerGroup", label)?),
    );
    if let Some(topic) = md.take("topic").filter(|t| !t.is_empty()) {
        src.insert("topic".into(), json!(topic));
    }
    if let Some(text) = md.take("partitionLimitation") {
        let list = partition_list(&text).map_err(|m| invalid(md, "partitionLimitation", m))?;
        if !list.is_empty() {
            src.insert("partitionLimitation".into(), json!(list));
        }
    }
    if let Some(policy) = md.take("offsetResetPolicy") {
        if policy != "latest" && policy != "earliest" {
            let m = format!("{policy:?}: use latest or earliest");
            return Err(invalid(md, "offsetResetPolicy", m));
        }
        src.insert("offsetResetPolicy".into(), json!(policy));
    }
    for key in [
        "allowIdleConsumers",
        "limitToPartitionsWithLag",
        "excludePersistentLag",
        "scaleToZeroOnInvalidOffset",
        "unsafeSsl",
    ] {
        if let Some(b) = flag(md, key, label)? {
            src.insert(key.into(), json!(b));
        }
    }
    if src.get("allowIdleConsumers") == Some(&json!(true))
        && src.get("limitToPartitionsWithLag") == Some(&json!(true))
    {
        let m = "cannot be true together with allowIdleConsumers".to_string();
        return Err(invalid(md, "limitToPartitionsWithLag", m));
    }
    if src.contains_key("partitionLimitation") && !src.contains_key("topic") {
        let m = "needs a topic (KEDA ignores it without one; remove it)".to_string();
        return Err(invalid(md, "partitionLimitation", m));
    }
    if let Some(sasl) = md.take("sasl") {
        if !matches!(
            sasl.as_str(),
            "none" | "plaintext" | "scram_sha256" | "scram_sha512"
        ) {
            let m = format!(
                "SASL mechanism {sasl:?} is not supported: use none, plaintext, scram_sha256 or scram_sha512"
            );
            return Err(invalid(md, "sasl", m));
        }
        src.insert("sasl".into(), json!(sasl));
    }
    if let Some(tls) = md.take("tls") {
        match tls.as_str() {
            "enable" => src.insert("enableTls".into(), json!(true)),
            "disable" => src.insert("enableTls".into(), json!(false)),
            _ => {
                return Err(invalid(
                    md,
                    "tls",
                    format!("{tls:?}: use enable or disable"),
                ));
            }
        };
    }
    let threshold = md.take("lagThreshold").unwrap_or_else(|| "10".into());
    Ok(event(
        "kafka",
        "kafka",
        Value::Object(src),
        target(avg, &threshold),
        md.take("activationLagThreshold"),
        name,
    ))
}

/// A KEDA threshold as a quantity value (KEDA writes them as strings).
fn quantity(text: &str) -> Value {
    Value::String(text.trim().to_string())
}

fn target(metric_type: &str, threshold: &str) -> Value {
    match metric_type {
        "Value" => json!({ "type": "Value", "value": quantity(threshold) }),
        _ => json!({ "type": "AverageValue", "averageValue": quantity(threshold) }),
    }
}

pub(super) fn convert(
    source: &Value,
    label: &str,
    auths: &Authentications,
) -> Result<Converted, ConvertError> {
    let namespace = source
        .pointer("/metadata/namespace")
        .and_then(Value::as_str);
    let mut notes = Vec::new();
    let mut metadata = carry_metadata(source, true, &mut notes);
    let spec = source.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut out = Map::new();

    // Target reference.
    let target_ref = spec
        .get("scaleTargetRef")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut reference = Map::new();
    reference.insert(
        "apiVersion".into(),
        target_ref
            .get("apiVersion")
            .cloned()
            .unwrap_or(json!("apps/v1")),
    );
    reference.insert(
        "kind".into(),
        target_ref
            .get("kind")
            .cloned()
            .unwrap_or(json!("Deployment")),
    );
    reference.insert(
        "name".into(),
        target_ref.get("name").cloned().unwrap_or(Value::Null),
    );
    if target_ref.get("envSourceContainerName").is_some() {
        note(
            &mut notes,
            NoteKind::Dropped,
            "spec.scaleTargetRef.envSourceContainerName",
            "Ballast reads settings from the trigger and its secret, not from container env",
        );
    }
    out.insert("scaleTargetRef".into(), Value::Object(reference));

    // Replica bounds and timing (KEDA defaults: min 0, max 100, polling 30s, cooldown 300s).
    let min = spec
        .get("minReplicaCount")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    out.insert(
        "maxReplicas".into(),
        spec.get("maxReplicaCount").cloned().unwrap_or(json!(100)),
    );
    out.insert(
        "syncPeriodSeconds".into(),
        spec.get("pollingInterval").cloned().unwrap_or(json!(30)),
    );
    if let Some(v) = spec.get("cooldownPeriod") {
        out.insert("cooldownPeriodSeconds".into(), v.clone());
    }
    if let Some(v) = spec.get("initialCooldownPeriod") {
        out.insert("initialCooldownPeriodSeconds".into(), v.clone());
    }
    if let Some(v) = spec.get("idleReplicaCount") {
        out.insert("idleReplicas".into(), v.clone());
    }
    if let Some(v) = spec.get("fallback") {
        out.insert("fallback".into(), v.clone());
    }

    // advanced.*
    if let Some(advanced) = spec.get("advanced") {
        if let Some(b) = advanced.pointer("/horizontalPodAutoscalerConfig/behavior") {
            out.insert("behavior".into(), b.clone());
        }
        if advanced
            .pointer("/horizontalPodAutoscalerConfig/name")
            .is_some()
        {
            note(
                &mut notes,
                NoteKind::Dropped,
                "spec.advanced.horizontalPodAutoscalerConfig.name",
                "Ballast makes no HPA object",
            );
        }
        if advanced.get("restoreToOriginalReplicaCount").is_some() {
            note(
                &mut notes,
                NoteKind::Dropped,
                "spec.advanced.restoreToOriginalReplicaCount",
                "deleting a HorizontalAutoscaler leaves the replica count as it is",
            );
        }
        if advanced.get("scalingModifiers").is_some() {
            note(
                &mut notes,
                NoteKind::Dropped,
                "spec.advanced.scalingModifiers",
                "Ballast has no formulas over triggers: each trigger scales on its own and the largest proposal wins",
            );
        }
    }

    // Triggers → metrics.
    let mut metrics = Vec::new();
    let mut any_event_metric = false;
    let triggers = spec
        .get("triggers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, trigger) in triggers.iter().enumerate() {
        let path = format!("spec.triggers[{i}]");
        let trigger_in = Trigger {
            value: trigger,
            path: &path,
            label,
            namespace,
            auths,
        };
        if let Some(metric) = trigger_metric(&trigger_in, &mut notes)? {
            any_event_metric |=
                metric["type"] != "Resource" && metric["type"] != "ContainerResource";
            metrics.push(metric);
        }
    }
    // KEDA's minReplicaCount 0 needs a metric that can wake the workload from zero.
    let min = if min == 0 && !any_event_metric {
        note(
            &mut notes,
            NoteKind::Changed,
            "spec.minReplicaCount",
            "0 needs an event or Prometheus trigger; set to 1",
        );
        1
    } else {
        min
    };
    out.insert("minReplicas".into(), json!(min));
    out.insert("metrics".into(), Value::Array(metrics));

    // KEDA pause annotations → fields.
    if let Some(ann) = metadata
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
    {
        if let Some(v) = ann.remove("autoscaling.keda.sh/paused") {
            out.insert("paused".into(), json!(v.as_str() == Some("true")));
            note(
                &mut notes,
                NoteKind::Changed,
                "metadata.annotations[autoscaling.keda.sh/paused]",
                "became spec.paused",
            );
        }
        if let Some(v) = ann.remove("autoscaling.keda.sh/paused-replicas") {
            let n: i64 =
                v.as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| ConvertError::Invalid {
                        source_object: label.to_string(),
                        field: "metadata.annotations[autoscaling.keda.sh/paused-replicas]".into(),
                        message: format!("{v} is not a whole number"),
                    })?;
            out.insert("paused".into(), json!(true));
            out.insert("pausedReplicas".into(), json!(n));
            note(
                &mut notes,
                NoteKind::Changed,
                "metadata.annotations[autoscaling.keda.sh/paused-replicas]",
                "became spec.paused and spec.pausedReplicas",
            );
        }
        for (key, direction) in [
            ("autoscaling.keda.sh/paused-scale-in", "scaleDown"),
            ("autoscaling.keda.sh/paused-scale-out", "scaleUp"),
        ] {
            if let Some(v) = ann.remove(key) {
                if v.as_str() == Some("true") {
                    let behavior = out.entry("behavior").or_insert_with(|| json!({}));
                    let rules = behavior
                        .as_object_mut()
                        .expect("behavior is an object")
                        .entry(direction)
                        .or_insert_with(|| json!({}));
                    rules["selectPolicy"] = json!("Disabled");
                }
                note(
                    &mut notes,
                    NoteKind::Changed,
                    format!("metadata.annotations[{key}]"),
                    format!("became spec.behavior.{direction}.selectPolicy: Disabled"),
                );
            }
        }
        if ann.is_empty() {
            metadata
                .as_object_mut()
                .expect("metadata is an object")
                .remove("annotations");
        }
    }

    let spec_value = Value::Object(out);
    let typed: HorizontalAutoscalerSpec = read_as(&spec_value, "spec", label)?;
    Ok(Converted {
        source: label.to_string(),
        object: object(
            "autoscaling.ballast.dev/v1",
            "HorizontalAutoscaler",
            metadata,
            to_value(&typed),
        ),
        notes,
    })
}

/// One trigger of a ScaledObject and what converting it needs.
pub(super) struct Trigger<'a> {
    pub(super) value: &'a Value,
    /// `spec.triggers[i]`.
    pub(super) path: &'a str,
    pub(super) label: &'a str,
    /// The ScaledObject's namespace (TriggerAuthentications are looked up in it).
    pub(super) namespace: Option<&'a str>,
    pub(super) auths: &'a Authentications,
}

/// One KEDA trigger as one Ballast metric (None when the trigger type is not supported, with a
/// note saying so), its `authenticationRef` resolved to a `credentialsRef`.
pub(super) fn trigger_metric(
    t: &Trigger,
    notes: &mut Vec<Note>,
) -> Result<Option<Value>, ConvertError> {
    let kind = t
        .value
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Some(key) = t
        .value
        .get("metadata")
        .and_then(Value::as_object)
        .and_then(|m| m.keys().find(|k| k.ends_with("FromEnv")))
    {
        return Err(ConvertError::Invalid {
            source_object: t.label.to_string(),
            field: format!("{}.metadata.{key}", t.path),
            message: "Ballast does not read the target's container environment: write the value itself in the metadata, or a secret value in a Secret named by an authenticationRef".into(),
        });
    }
    let secret = secret_of(t.value, kind, t.namespace, t.path, t.label, t.auths)?;
    let Some(mut metric) = source_metric(t.value, t.path, t.label, notes)? else {
        return Ok(None);
    };
    if let Some(name) = secret {
        let source = if kind == "prometheus" {
            "prometheus"
        } else {
            "event"
        };
        metric[source]["credentialsRef"] = json!({ "name": name });
        note(
            notes,
            NoteKind::Changed,
            format!("{}.authenticationRef", t.path),
            format!(
                "became {source}.credentialsRef {name:?} (the Secret its TriggerAuthentication names)"
            ),
        );
    }
    Ok(Some(metric))
}

/// The metric of one trigger, without its credentials.
fn source_metric(
    trigger: &Value,
    path: &str,
    label: &str,
    notes: &mut Vec<Note>,
) -> Result<Option<Value>, ConvertError> {
    let kind = trigger
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let metric_type = trigger.get("metricType").and_then(Value::as_str);
    let name = trigger.get("name").and_then(Value::as_str);
    let mut md = Metadata {
        left: trigger
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        path: format!("{path}.metadata"),
    };
    if trigger.get("useCachedMetrics").is_some() {
        note(
            notes,
            NoteKind::Dropped,
            format!("{path}.useCachedMetrics"),
            "Ballast reads each source once per sync period already",
        );
    }
    let avg = metric_type.unwrap_or("AverageValue");

    let metric = match kind {
        "cpu" | "memory" => {
            let mt = metric_type
                .map(str::to_string)
                .or_else(|| md.take("type"))
                .unwrap_or_else(|| "Utilization".into());
            let value = md.need("value", label)?;
            let tgt = match mt.as_str() {
                "Utilization" => {
                    let pct: i64 = value.parse().map_err(|_| ConvertError::Invalid {
                        source_object: label.to_string(),
                        field: format!("{path}.metadata.value"),
                        message: format!("{value:?} is not a whole percent"),
                    })?;
                    json!({ "type": "Utilization", "averageUtilization": pct })
                }
                other => target(other, &value),
            };
            match md.take("containerName") {
                Some(container) => {
                    json!({ "type": "ContainerResource", "containerResource": { "name": kind, "container": container, "target": tgt } })
                }
                None => json!({ "type": "Resource", "resource": { "name": kind, "target": tgt } }),
            }
        }
        "prometheus" => {
            let mut p = Map::new();
            p.insert(
                "serverAddress".into(),
                json!(md.need("serverAddress", label)?),
            );
            p.insert("query".into(), json!(md.need("query", label)?));
            p.insert("target".into(), target(avg, &md.need("threshold", label)?));
            if let Some(a) = md.take("activationThreshold") {
                p.insert("activationThreshold".into(), quantity(&a));
            }
            json!({ "type": "Prometheus", "prometheus": Value::Object(p) })
        }
        "redis" => {
            let address = match md.take("address") {
                Some(a) => a,
                None => {
                    let host = md.need("host", label)?;
                    let port = md.take("port").unwrap_or_else(|| "6379".into());
                    format!("{host}:{port}")
                }
            };
            let mut src = Map::new();
            src.insert("address".into(), json!(address));
            src.insert("listName".into(), json!(md.need("listName", label)?));
            if let Some(db) = md.take("databaseIndex") {
                src.insert("database".into(), json!(db.parse::<i64>().unwrap_or(0)));
            }
            if let Some(tls) = md.take("enableTLS") {
                src.insert("enableTls".into(), json!(tls == "true"));
            }
            let threshold = md.take("listLength").unwrap_or_else(|| "5".into());
            event(
                "redis-list",
                "redisList",
                Value::Object(src),
                target(avg, &threshold),
                md.take("activationListLength"),
                name,
            )
        }
        "rabbitmq" => {
            let mut src = Map::new();
            if let Some(host) = md.take("host") {
                src.insert("url".into(), json!(host));
            }
            src.insert("queueName".into(), json!(md.need("queueName", label)?));
            let mode = md.take("mode");
            let threshold = md
                .take("value")
                .or_else(|| md.take("queueLength"))
                .unwrap_or_else(|| "20".into());
            if mode.as_deref() == Some("MessageRate") {
                src.insert("mode".into(), json!("MessageRate"));
            }
            md.take("protocol");
            event(
                "rabbitmq",
                "rabbitmq",
                Value::Object(src),
                target(avg, &threshold),
                md.take("activationValue"),
                name,
            )
        }
        "postgresql" => {
            let mut src = Map::new();
            src.insert("host".into(), json!(md.need("host", label)?));
            if let Some(port) = md.take("port") {
                src.insert("port".into(), json!(port.parse::<i64>().unwrap_or(5432)));
            }
            src.insert("database".into(), json!(md.need("dbName", label)?));
            src.insert("user".into(), json!(md.need("userName", label)?));
            src.insert("query".into(), json!(md.need("query", label)?));
            if let Some(ssl) = md.take("sslmode") {
                src.insert("sslMode".into(), json!(ssl));
            }
            let threshold = md.need("targetQueryValue", label)?;
            event(
                "postgresql",
                "postgresql",
                Value::Object(src),
                target(avg, &threshold),
                md.take("activationTargetQueryValue"),
                name,
            )
        }
        "kafka" => kafka(&mut md, avg, name, label)?,
        "aws-sqs-queue" => {
            let mut src = Map::new();
            src.insert("queueUrl".into(), json!(md.need("queueURL", label)?));
            if let Some(r) = md.take("awsRegion") {
                src.insert("region".into(), json!(r));
            }
            if let Some(e) = md.take("awsEndpoint") {
                src.insert("endpoint".into(), json!(e));
            }
            if let Some(f) = md.take("scaleOnInFlight") {
                src.insert("includeInFlight".into(), json!(f == "true"));
            }
            let threshold = md.take("queueLength").unwrap_or_else(|| "5".into());
            event(
                "aws-sqs",
                "awsSqs",
                Value::Object(src),
                target(avg, &threshold),
                md.take("activationQueueLength"),
                name,
            )
        }
        "cron" => {
            let mut src = Map::new();
            if let Some(tz) = md.take("timezone") {
                src.insert("timezone".into(), json!(tz));
            }
            src.insert("start".into(), json!(md.need("start", label)?));
            src.insert("end".into(), json!(md.need("end", label)?));
            let desired = md.need("desiredReplicas", label)?;
            src.insert(
                "desiredReplicas".into(),
                json!(desired.parse::<i64>().map_err(|_| ConvertError::Invalid {
                    source_object: label.to_string(),
                    field: format!("{path}.metadata.desiredReplicas"),
                    message: format!("{desired:?} is not a whole number"),
                })?),
            );
            let mut e =
                json!({ "type": "Event", "event": { "type": "cron", "cron": Value::Object(src) } });
            if let Some(n) = name {
                e["event"]["name"] = json!(n);
            }
            e
        }
        other => {
            note(
                notes,
                NoteKind::Dropped,
                path.to_string(),
                format!(
                    "trigger type {other:?} has no Ballast source (Ballast reads cpu, memory, prometheus, redis, rabbitmq, postgresql, kafka, aws-sqs-queue and cron)"
                ),
            );
            return Ok(None);
        }
    };
    md.finish(notes);
    Ok(Some(metric))
}

fn event(
    kind: &str,
    field: &str,
    source: Value,
    target: Value,
    activation: Option<String>,
    name: Option<&str>,
) -> Value {
    let mut e = Map::new();
    e.insert("type".into(), json!(kind));
    e.insert(field.into(), source);
    e.insert("target".into(), target);
    if let Some(a) = activation {
        e.insert("activationThreshold".into(), quantity(&a));
    }
    if let Some(n) = name {
        e.insert("name".into(), json!(n));
    }
    json!({ "type": "Event", "event": Value::Object(e) })
}
