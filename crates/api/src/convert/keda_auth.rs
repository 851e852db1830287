//! KEDA `TriggerAuthentication` → the `credentialsRef` of a Ballast metric.
//!
//! KEDA maps each trigger parameter to a key of some Secret (`secretTargetRef`); Ballast reads
//! one Secret per source, at fixed keys (listed on `credentialsRef` in the HorizontalAutoscaler
//! API). A reference converts when the TriggerAuthentication is in the same input, names one
//! Secret, and maps each parameter to the key Ballast reads for it. Anything else would give an
//! object that cannot authenticate, so it is an error saying what to change, never a note.

use super::{ConvertError, describe, str_at};
use serde_json::Value;

/// The TriggerAuthentications and ClusterTriggerAuthentications of one input.
#[derive(Debug, Default, Clone)]
pub struct Authentications {
    objects: Vec<Value>,
}

impl Authentications {
    /// Keeps `object` if it is a (Cluster)TriggerAuthentication; says whether it was one.
    pub fn offer(&mut self, object: &Value) -> bool {
        let group = str_at(object, "apiVersion");
        let kind = str_at(object, "kind");
        let is_auth = group.starts_with("keda.sh/")
            && matches!(
                kind.as_str(),
                "TriggerAuthentication" | "ClusterTriggerAuthentication"
            );
        if is_auth {
            self.objects.push(object.clone());
        }
        is_auth
    }

    fn find(&self, kind: &str, namespace: Option<&str>, name: &str) -> Option<&Value> {
        self.objects.iter().find(|o| {
            str_at(o, "kind") == kind
                && o.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
                && (kind == "ClusterTriggerAuthentication"
                    || o.pointer("/metadata/namespace").and_then(Value::as_str) == namespace)
        })
    }
}

/// The Secret keys Ballast reads for KEDA parameter `parameter` of trigger type `trigger` (the
/// first is the one to suggest).
fn ballast_keys(trigger: &str, parameter: &str) -> Option<&'static [&'static str]> {
    let tls = matches!(trigger, "redis" | "rabbitmq" | "postgresql" | "kafka");
    match (parameter, tls) {
        ("ca", true) => return Some(&["ca", "ca.crt"]),
        ("cert", true) => return Some(&["cert", "tls.crt"]),
        ("key", true) => return Some(&["key", "tls.key"]),
        _ => {}
    }
    ballast_key(trigger, parameter).map(std::slice::from_ref)
}

/// The one Secret key Ballast reads for a credential parameter.
fn ballast_key(trigger: &str, parameter: &str) -> Option<&'static &'static str> {
    match (trigger, parameter) {
        ("redis", "password") => Some(&"password"),
        ("rabbitmq", "host") => Some(&"url"),
        ("postgresql", "password") => Some(&"password"),
        ("kafka", "username") => Some(&"username"),
        ("kafka", "password") => Some(&"password"),
        ("kafka", "sasl") => Some(&"sasl"),
        ("kafka", "tls") => Some(&"tls"),
        ("aws-sqs-queue", "awsAccessKeyID") => Some(&"awsAccessKeyID"),
        ("aws-sqs-queue", "awsSecretAccessKey") => Some(&"awsSecretAccessKey"),
        ("prometheus", "bearerToken") => Some(&"token"),
        ("prometheus", "username") => Some(&"username"),
        ("prometheus", "password") => Some(&"password"),
        _ => None,
    }
}

/// The Secret a trigger's `authenticationRef` resolves to, for its metric's `credentialsRef`.
/// `namespace` is the ScaledObject's; `path` is the trigger's (`spec.triggers[1]`).
pub fn secret_of(
    trigger: &Value,
    trigger_type: &str,
    namespace: Option<&str>,
    path: &str,
    label: &str,
    auths: &Authentications,
) -> Result<Option<String>, ConvertError> {
    let Some(reference) = trigger.get("authenticationRef") else {
        return Ok(None);
    };
    let field = format!("{path}.authenticationRef");
    let fail = |message: String| ConvertError::Invalid {
        source_object: label.to_string(),
        field: field.clone(),
        message,
    };
    let name = str_at(reference, "name");
    let kind = reference
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("TriggerAuthentication");
    let auth = auths.find(kind, namespace, &name).ok_or_else(|| {
        fail(format!(
            "names {kind} {name:?}, which is not in the input: convert it in the same file (Ballast then reads the Secret it names), or set the metric's credentialsRef by hand"
        ))
    })?;
    let spec = auth.get("spec").cloned().unwrap_or(Value::Null);
    let what = describe(auth);
    if let Some(other) = spec
        .as_object()
        .and_then(|m| m.keys().find(|k| k.as_str() != "secretTargetRef"))
    {
        return Err(fail(format!(
            "{what} uses spec.{other}; Ballast reads credentials only from a Secret (secretTargetRef)"
        )));
    }
    let entries = spec
        .get("secretTargetRef")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut secret: Option<String> = None;
    for (i, entry) in entries.iter().enumerate() {
        let parameter = str_at(entry, "parameter");
        let (entry_secret, key) = (str_at(entry, "name"), str_at(entry, "key"));
        let at = format!("{what}: spec.secretTargetRef[{i}]");
        let Some(accepted) = ballast_keys(trigger_type, &parameter) else {
            return Err(fail(format!(
                "{at}: parameter {parameter:?} has no Ballast equivalent for trigger type {trigger_type:?}"
            )));
        };
        let wanted = accepted[0];
        if !accepted.contains(&key.as_str()) {
            return Err(fail(format!(
                "{at}: Ballast reads key {wanted:?} of Secret {entry_secret:?} for {parameter:?}, not {key:?}: add key {wanted:?} to the Secret (same value) and convert again"
            )));
        }
        match &secret {
            Some(s) if *s != entry_secret => {
                return Err(fail(format!(
                    "{at}: names Secret {entry_secret:?} beside {s:?}; Ballast reads one Secret per source"
                )));
            }
            _ => secret = Some(entry_secret),
        }
    }
    secret
        .map(Some)
        .ok_or_else(|| fail(format!("{what} has no secretTargetRef")))
}
