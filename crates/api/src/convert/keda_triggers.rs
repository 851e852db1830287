//! KEDA triggers, one source type at a time: each trigger type's metadata keys become one Ballast
//! metric (`prometheus` → Prometheus; `redis`, `rabbitmq`, `postgresql`, `kafka`,
//! `aws-sqs-queue`, `cron` → Event; `cpu`, `memory` → Resource or ContainerResource). Keys a
//! trigger type has no Ballast equivalent for are reported one by one.

use super::{ConvertError, Note, NoteKind, note};
use serde_json::{Map, Value, json};

/// Takes metadata keys out of a trigger's metadata one by one, so the leftovers can be
/// reported.
pub(super) struct Metadata {
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
fn kafka(md: &mut Metadata, cx: &TriggerContext) -> Result<Value, ConvertError> {
    let label = cx.label;
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
    let activation = md.take("activationLagThreshold");
    Ok(event("kafka", "kafka", src, &threshold, activation, cx))
}

/// A KEDA threshold as a quantity value (KEDA writes them as strings).
pub(super) fn quantity(text: &str) -> Value {
    Value::String(text.trim().to_string())
}

fn target(metric_type: &str, threshold: &str) -> Value {
    match metric_type {
        "Value" => json!({ "type": "Value", "value": quantity(threshold) }),
        _ => json!({ "type": "AverageValue", "averageValue": quantity(threshold) }),
    }
}

/// What every trigger type's conversion reads besides its metadata.
struct TriggerContext<'a> {
    /// `spec.triggers[i]`.
    path: &'a str,
    label: &'a str,
    /// `metricType` as written, `AverageValue` when absent.
    metric_type: &'a str,
    name: Option<&'a str>,
}

/// The metric of one trigger, without its credentials (None for a trigger type Ballast has no
/// source for, with a note saying so).
pub(super) fn source_metric(
    trigger: &Value,
    path: &str,
    label: &str,
    notes: &mut Vec<Note>,
) -> Result<Option<Value>, ConvertError> {
    let kind = trigger
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let written_type = trigger.get("metricType").and_then(Value::as_str);
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
    let cx = TriggerContext {
        path,
        label,
        metric_type: written_type.unwrap_or("AverageValue"),
        name: trigger.get("name").and_then(Value::as_str),
    };
    let metric = match kind {
        "cpu" | "memory" => resource(&mut md, kind, written_type, &cx)?,
        "prometheus" => prometheus(&mut md, &cx)?,
        "redis" => redis(&mut md, &cx)?,
        "rabbitmq" => rabbitmq(&mut md, &cx)?,
        "postgresql" => postgresql(&mut md, &cx)?,
        "kafka" => kafka(&mut md, &cx)?,
        "aws-sqs-queue" => sqs(&mut md, &cx)?,
        "cron" => cron(&mut md, &cx)?,
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

/// `cpu` / `memory`: a Resource metric, or a ContainerResource one with `containerName`.
fn resource(
    md: &mut Metadata,
    kind: &str,
    written_type: Option<&str>,
    cx: &TriggerContext,
) -> Result<Value, ConvertError> {
    let metric_type = written_type
        .map(str::to_string)
        .or_else(|| md.take("type"))
        .unwrap_or_else(|| "Utilization".into());
    let value = md.need("value", cx.label)?;
    let target = match metric_type.as_str() {
        "Utilization" => {
            let percent: i64 = value.parse().map_err(|_| ConvertError::Invalid {
                source_object: cx.label.to_string(),
                field: format!("{}.metadata.value", cx.path),
                message: format!("{value:?} is not a whole percent"),
            })?;
            json!({ "type": "Utilization", "averageUtilization": percent })
        }
        other => target(other, &value),
    };
    Ok(match md.take("containerName") {
        Some(container) => {
            json!({ "type": "ContainerResource", "containerResource": { "name": kind, "container": container, "target": target } })
        }
        None => json!({ "type": "Resource", "resource": { "name": kind, "target": target } }),
    })
}

fn prometheus(md: &mut Metadata, cx: &TriggerContext) -> Result<Value, ConvertError> {
    let mut p = Map::new();
    p.insert(
        "serverAddress".into(),
        json!(md.need("serverAddress", cx.label)?),
    );
    p.insert("query".into(), json!(md.need("query", cx.label)?));
    let threshold = md.need("threshold", cx.label)?;
    p.insert("target".into(), target(cx.metric_type, &threshold));
    if let Some(a) = md.take("activationThreshold") {
        p.insert("activationThreshold".into(), quantity(&a));
    }
    Ok(json!({ "type": "Prometheus", "prometheus": Value::Object(p) }))
}

fn redis(md: &mut Metadata, cx: &TriggerContext) -> Result<Value, ConvertError> {
    let address = match md.take("address") {
        Some(a) => a,
        None => {
            let host = md.need("host", cx.label)?;
            let port = md.take("port").unwrap_or_else(|| "6379".into());
            format!("{host}:{port}")
        }
    };
    let mut src = Map::new();
    src.insert("address".into(), json!(address));
    src.insert("listName".into(), json!(md.need("listName", cx.label)?));
    if let Some(db) = md.take("databaseIndex") {
        src.insert("database".into(), json!(db.parse::<i64>().unwrap_or(0)));
    }
    if let Some(tls) = md.take("enableTLS") {
        src.insert("enableTls".into(), json!(tls == "true"));
    }
    let threshold = md.take("listLength").unwrap_or_else(|| "5".into());
    let activation = md.take("activationListLength");
    Ok(event(
        "redis-list",
        "redisList",
        src,
        &threshold,
        activation,
        cx,
    ))
}

fn rabbitmq(md: &mut Metadata, cx: &TriggerContext) -> Result<Value, ConvertError> {
    let mut src = Map::new();
    if let Some(host) = md.take("host") {
        src.insert("url".into(), json!(host));
    }
    src.insert("queueName".into(), json!(md.need("queueName", cx.label)?));
    let mode = md.take("mode");
    let threshold = md
        .take("value")
        .or_else(|| md.take("queueLength"))
        .unwrap_or_else(|| "20".into());
    if mode.as_deref() == Some("MessageRate") {
        src.insert("mode".into(), json!("MessageRate"));
    }
    md.take("protocol");
    let activation = md.take("activationValue");
    Ok(event(
        "rabbitmq", "rabbitmq", src, &threshold, activation, cx,
    ))
}

fn postgresql(md: &mut Metadata, cx: &TriggerContext) -> Result<Value, ConvertError> {
    let mut src = Map::new();
    src.insert("host".into(), json!(md.need("host", cx.label)?));
    if let Some(port) = md.take("port") {
        src.insert("port".into(), json!(port.parse::<i64>().unwrap_or(5432)));
    }
    src.insert("database".into(), json!(md.need("dbName", cx.label)?));
    src.insert("user".into(), json!(md.need("userName", cx.label)?));
    src.insert("query".into(), json!(md.need("query", cx.label)?));
    if let Some(ssl) = md.take("sslmode") {
        src.insert("sslMode".into(), json!(ssl));
    }
    let threshold = md.need("targetQueryValue", cx.label)?;
    let activation = md.take("activationTargetQueryValue");
    Ok(event(
        "postgresql",
        "postgresql",
        src,
        &threshold,
        activation,
        cx,
    ))
}

fn sqs(md: &mut Metadata, cx: &TriggerContext) -> Result<Value, ConvertError> {
    let mut src = Map::new();
    src.insert("queueUrl".into(), json!(md.need("queueURL", cx.label)?));
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
    let activation = md.take("activationQueueLength");
    Ok(event("aws-sqs", "awsSqs", src, &threshold, activation, cx))
}

fn cron(md: &mut Metadata, cx: &TriggerContext) -> Result<Value, ConvertError> {
    let mut src = Map::new();
    if let Some(tz) = md.take("timezone") {
        src.insert("timezone".into(), json!(tz));
    }
    src.insert("start".into(), json!(md.need("start", cx.label)?));
    src.insert("end".into(), json!(md.need("end", cx.label)?));
    let desired = md.need("desiredReplicas", cx.label)?;
    let desired = desired.parse::<i64>().map_err(|_| ConvertError::Invalid {
        source_object: cx.label.to_string(),
        field: format!("{}.metadata.desiredReplicas", cx.path),
        message: format!("{desired:?} is not a whole number"),
    })?;
    src.insert("desiredReplicas".into(), json!(desired));
    let mut e = json!({ "type": "Event", "event": { "type": "cron", "cron": Value::Object(src) } });
    if let Some(n) = cx.name {
        e["event"]["name"] = json!(n);
    }
    Ok(e)
}

/// An Event metric of source `kind`, its settings under `field`.
fn event(
    kind: &str,
    field: &str,
    source: Map<String, Value>,
    threshold: &str,
    activation: Option<String>,
    cx: &TriggerContext,
) -> Value {
    let mut e = Map::new();
    e.insert("type".into(), json!(kind));
    e.insert(field.into(), Value::Object(source));
    e.insert("target".into(), target(cx.metric_type, threshold));
    if let Some(a) = activation {
        e.insert("activationThreshold".into(), quantity(&a));
    }
    if let Some(n) = cx.name {
        e.insert("name".into(), json!(n));
    }
    json!({ "type": "Event", "event": Value::Object(e) })
}
