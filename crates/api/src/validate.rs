//! Offline validation of Ballast objects: the structural schema of the CRD (types, enums,
//! required fields, ranges, patterns, unknown fields), then its CEL rules evaluated locally
//! with the Kubernetes CEL library, then checks the schema cannot express (cron syntax).
//! Errors name the field the way the API server does (`spec.metrics[0].type`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::LazyLock;

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The verdict on one object.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectReport {
    /// `Kind namespace/name`.
    pub object: String,
    pub errors: Vec<FieldError>,
}

impl ObjectReport {
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

/// A YAML document that could not be read.
#[derive(Debug, Clone)]
pub struct DocumentError {
    /// Index of the document in its stream (0-based).
    pub index: usize,
    pub message: String,
}

/// Splits a YAML stream into JSON values, skipping empty documents.
pub fn yaml_documents(text: &str) -> Vec<Result<Value, DocumentError>> {
    let mut out = Vec::new();
    for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        match Value::deserialize(doc) {
            Ok(Value::Null) => {}
            Ok(v) => out.push(Ok(v)),
            Err(e) => {
                out.push(Err(DocumentError {
                    index,
                    message: e.to_string(),
                }));
                // The parser cannot resynchronise after a syntax error.
                break;
            }
        }
    }
    out
}

/// Schemas of every Ballast kind, keyed by `apiVersion` and `kind`.
static SCHEMAS: LazyLock<BTreeMap<(String, String), Value>> = LazyLock::new(|| {
    let mut map = BTreeMap::new();
    for crd in crate::crds() {
        let group = crd.spec.group.clone();
        let kind = crd.spec.names.kind.clone();
        for version in &crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
            {
                let v = serde_json::to_value(schema).expect("CRD schemas serialize");
                map.insert((format!("{group}/{}", version.name), kind.clone()), v);
            }
        }
    }
    map
});

/// Whether `apiVersion`/`kind` names a Ballast kind.
pub fn is_ballast_kind(api_version: &str, kind: &str) -> bool {
    SCHEMAS.contains_key(&(api_version.to_string(), kind.to_string()))
}

/// Validates one object given as JSON.
pub fn validate_object(object: &Value) -> ObjectReport {
    let label = crate::convert::describe(object);
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(schema) = SCHEMAS.get(&(api_version.to_string(), kind.to_string())) else {
        let known: Vec<String> = SCHEMAS.keys().map(|(v, k)| format!("{v} {k}")).collect();
        return ObjectReport {
            object: label,
            errors: vec![FieldError {
                field: "apiVersion/kind".into(),
                message: format!(
                    "{api_version:?} {kind:?} is not a Ballast kind (known: {})",
                    known.join(", ")
                ),
            }],
        };
    };
    let mut errors = Vec::new();
    if object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        errors.push(FieldError {
            field: "metadata.name".into(),
            message: "Required value".into(),
        });
    }
    let mut body = object.clone();
    if let Some(m) = body.as_object_mut() {
        // The API server owns these; the schema only says `metadata: object`.
        m.remove("metadata");
        m.remove("apiVersion");
        m.remove("kind");
    }
    check_schema(schema, &body, "", &mut errors);
    // CEL runs unless a value has the wrong type or a required field is missing (its rules
    // could not be evaluated); a value out of range or an unknown field does not hide the
    // rules' findings.
    if !errors.iter().any(breaks_rules)
        && let Err(cel_errors) = check_rules(api_version, kind, schema, &body)
    {
        for e in cel_errors {
            errors.push(FieldError {
                field: cel_field(&e.field_path),
                message: e.message.clone(),
            });
        }
    }
    if errors.is_empty() {
        semantic_checks(kind, &body, &mut errors);
    }
    ObjectReport {
        object: label,
        errors,
    }
}

thread_local! {
    /// The CEL functions, registered once per thread.
    static RULES: kube::core::cel::Validator = kube::core::cel::Validator::new();
    /// Each kind's rules, compiled once per thread (compiling dominates checking one object).
    static COMPILED: RefCell<HashMap<(String, String), Rc<kube::core::cel::CompiledSchema>>> =
        RefCell::new(HashMap::new());
    /// The schemas' patterns, compiled once per thread.
    static PATTERNS: RefCell<HashMap<String, Option<regex::Regex>>> = RefCell::new(HashMap::new());
}

/// Evaluates the CEL rules of `apiVersion`/`kind` (whose schema is `schema`) on `body`.
fn check_rules(
    api_version: &str,
    kind: &str,
    schema: &Value,
    body: &Value,
) -> Result<(), kube::core::cel::ValidationErrors> {
    let key = (api_version.to_string(), kind.to_string());
    let compiled = COMPILED.with(|c| {
        c.borrow_mut()
            .entry(key)
            .or_insert_with(|| Rc::new(kube::core::cel::compile_schema(schema)))
            .clone()
    });
    RULES.with(|v| v.validate_compiled(&compiled, body, None))
}

/// Whether `text` matches the schema pattern `pattern` (a pattern that does not compile
/// matches everything, as before: the schema is ours and tested).
fn matches_pattern(pattern: &str, text: &str) -> bool {
    PATTERNS.with(|p| {
        p.borrow_mut()
            .entry(pattern.to_string())
            .or_insert_with(|| regex::Regex::new(pattern).ok())
            .as_ref()
            .is_none_or(|re| re.is_match(text))
    })
}

/// Whether a schema error leaves the object unfit for its CEL rules.
fn breaks_rules(e: &FieldError) -> bool {
    e.message == "Required value"
        || e.message.contains("must be of type")
        || e.message.contains("must be an integer or a string")
}

fn cel_field(path: &str) -> String {
    let p = path.trim_start_matches('.');
    if p.is_empty() {
        "(object)".into()
    } else {
        p.to_string()
    }
}

/// Validates every document of a YAML stream.
pub fn validate_yaml_stream(text: &str) -> Vec<ObjectReport> {
    yaml_documents(text)
        .into_iter()
        .map(|doc| match doc {
            Ok(v) => validate_object(&v),
            Err(e) => ObjectReport {
                object: format!("document {}", e.index + 1),
                errors: vec![FieldError {
                    field: "(yaml)".into(),
                    message: e.message,
                }],
            },
        })
        .collect()
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check_schema(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let field = if path.is_empty() {
        "(object)".to_string()
    } else {
        path.to_string()
    };
    let mut err = |message: String| {
        errors.push(FieldError {
            field: field.clone(),
            message,
        })
    };
    if value.is_null() {
        // The API server prunes nulls of non-nullable fields before validating.
        return;
    }
    if schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
        && schema.get("properties").is_none()
    {
        return;
    }
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true);
    let actual = type_name(value);
    if int_or_string {
        if actual != "integer" && actual != "string" {
            err(format!(
                "Invalid value: {actual}: must be an integer or a string"
            ));
            return;
        }
    } else if let Some(want) = schema.get("type").and_then(Value::as_str) {
        let ok = want == actual || (want == "number" && actual == "integer");
        if !ok {
            err(format!(
                "Invalid value: \"{actual}\": must be of type {want}"
            ));
            return;
        }
    }
    if let Some(Value::Array(options)) = schema.get("enum")
        && !options.contains(value)
    {
        let list: Vec<String> = options.iter().map(|o| o.to_string()).collect();
        err(format!(
            "Unsupported value: {value}: supported values: {}",
            list.join(", ")
        ));
    }
    match value {
        Value::String(s) => {
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && (s.chars().count() as u64) < min
            {
                err(format!(
                    "Invalid value: {value}: must be at least {min} characters long"
                ));
            }
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && s.chars().count() as u64 > max
            {
                err(format!("Too long: may not be longer than {max}"));
            }
            if let Some(p) = schema.get("pattern").and_then(Value::as_str)
                && !matches_pattern(p, s)
            {
                err(format!("Invalid value: {value}: should match '{p}'"));
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or_default();
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && x < min
            {
                err(format!(
                    "Invalid value: {n}: must be greater than or equal to {min}"
                ));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && x > max
            {
                err(format!(
                    "Invalid value: {n}: must be less than or equal to {max}"
                ));
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && items.len() as u64 > max
            {
                err(format!(
                    "Too many: {}: must have at most {max} items",
                    items.len()
                ));
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                err(format!("Invalid value: must have at least {min} items"));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check_schema(item_schema, item, &format!("{path}[{i}]"), errors);
                }
            }
        }
        Value::Object(map) => {
            if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
                && map.len() as u64 > max
            {
                err(format!(
                    "Too many: {}: must have at most {max} items",
                    map.len()
                ));
            }
            if let Some(Value::Array(required)) = schema.get("required") {
                for r in required.iter().filter_map(Value::as_str) {
                    if map.get(r).is_none_or(Value::is_null) {
                        errors.push(FieldError {
                            field: join(path, r),
                            message: "Required value".into(),
                        });
                    }
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (k, v) in map {
                let child = join(path, k);
                if let Some(s) = props.and_then(|p| p.get(k)) {
                    check_schema(s, v, &child, errors);
                } else if let Some(s) = additional.filter(|a| a.is_object()) {
                    check_schema(s, v, &child, errors);
                } else if additional.and_then(Value::as_bool) != Some(true) {
                    errors.push(FieldError {
                        field: child,
                        message: "unknown field".into(),
                    });
                }
            }
        }
        _ => {}
    }
}

/// Reads a five-field cron expression (or an `@daily`-style macro).
pub fn parse_cron(expr: &str) -> Result<croner::Cron, String> {
    expr.parse::<croner::Cron>()
        .map_err(|e| format!("{expr:?} is not a cron expression: {e}"))
}

fn semantic_checks(kind: &str, body: &Value, errors: &mut Vec<FieldError>) {
    match kind {
        "NodePool" => {
            if let Some(budgets) = body
                .pointer("/spec/disruption/budgets")
                .and_then(Value::as_array)
            {
                for (i, b) in budgets.iter().enumerate() {
                    if let Some(s) = b.get("schedule").and_then(Value::as_str)
                        && let Err(message) = parse_cron(s)
                    {
                        errors.push(FieldError {
                            field: format!("spec.disruption.budgets[{i}].schedule"),
                            message,
                        });
                    }
                }
            }
        }
        "HorizontalAutoscaler" => {
            if let Some(metrics) = body.pointer("/spec/metrics").and_then(Value::as_array) {
                for (i, m) in metrics.iter().enumerate() {
                    if let Some(cron) = m.pointer("/event/cron") {
                        for key in ["start", "end"] {
                            if let Some(s) = cron.get(key).and_then(Value::as_str)
                                && let Err(message) = parse_cron(s)
                            {
                                errors.push(FieldError {
                                    field: format!("spec.metrics[{i}].event.cron.{key}"),
                                    message,
                                });
                            }
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
