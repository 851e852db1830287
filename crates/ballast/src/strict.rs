//! Strict reading of the files users hand to `explain`: an empty file, a file of another kind
//! or a misspelt field is an error naming the field, never a default silently taken.
//!
//! Serde ignores unknown fields unless a type denies them, and `#[serde(flatten)]` (how the
//! snapshot files put their own keys beside the cluster's) hides them even then. So a file is
//! first read as a YAML value (syntax errors keep their line), its top-level keys are checked
//! against the fields the target type declares, and the value is then deserialized with every
//! ignored nested field collected and every type error given by its path.

use anyhow::{Result, anyhow, bail};
use serde::de::{self, DeserializeOwned, Visitor};
use serde_json::{Map, Value};

/// Largest input file read (64 MiB): far above any real set of objects or snapshot, far below
/// what would make a command run for minutes.
pub const MAX_INPUT_BYTES: usize = 64 << 20;
/// Deepest flow nesting (`[[[...`, `{{{...`) read: Ballast's objects nest about 10 levels; the
/// YAML parser slows down with the square of the depth.
pub const MAX_FLOW_DEPTH: usize = 64;

/// Refuses an input too large or too deeply nested to be an honest one, before any parsing,
/// naming the limit and where it was passed.
pub fn guard(text: &str, file: &str) -> Result<()> {
    if text.len() > MAX_INPUT_BYTES {
        bail!(
            "{file}: {} bytes, above the {} MiB input limit; split the objects into several files",
            text.len(),
            MAX_INPUT_BYTES >> 20
        );
    }
    for (number, line) in text.lines().enumerate() {
        let mut depth = 0usize;
        let mut quote: Option<char> = None;
        for c in line.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '#') => break,
                (None, '"' | '\'') => quote = Some(c),
                (None, '[' | '{') => depth += 1,
                (None, ']' | '}') => depth = depth.saturating_sub(1),
                _ => {}
            }
            if depth > MAX_FLOW_DEPTH {
                bail!(
                    "{file}: line {}: brackets nested deeper than {MAX_FLOW_DEPTH} levels; no Ballast input nests that deep",
                    number + 1
                );
            }
        }
    }
    Ok(())
}

/// Reads `text` as a YAML mapping: errs on an empty file, a non-mapping document, and on the
/// shapes of other files users confuse it with. `what` names the expected file in errors
/// (`a node snapshot (see docs/nodes.md, "The snapshot")`).
pub fn mapping(text: &str, what: &str) -> Result<Map<String, Value>> {
    let value: Value =
        serde_yaml::from_str(text).map_err(|e| anyhow!("not {what}: YAML error: {e}"))?;
    let map = match value {
        Value::Null => bail!("the file is empty: expected {what}"),
        Value::Object(map) => map,
        other => bail!(
            "not {what}: the document is a {}, not a mapping",
            kind_of(&other)
        ),
    };
    if let (Some(api_version), Some(kind)) = (map.get("apiVersion"), map.get("kind")) {
        bail!(
            "not {what}: this is a Kubernetes object ({} {}); a snapshot holds the objects under its own keys",
            api_version.as_str().unwrap_or("?"),
            kind.as_str().unwrap_or("?")
        );
    }
    Ok(map)
}

/// Errs when `map` has a key that is neither one of `T`'s fields nor in `extra`, naming the
/// key and the closest known one.
pub fn known_keys<T: DeserializeOwned>(
    map: &Map<String, Value>,
    extra: &[&str],
    what: &str,
) -> Result<()> {
    let mut known: Vec<&str> = fields_of::<T>().to_vec();
    known.extend_from_slice(extra);
    for key in map.keys() {
        if !known.contains(&key.as_str()) {
            bail!("{what}: unknown field `{key}`{}", suggestion(key, &known));
        }
    }
    Ok(())
}

/// Deserializes `value` into `T`: a type error names its path under `field`, and a nested
/// field `T` does not know is an error too (`apiVersion` and `kind` of embedded objects aside).
pub fn typed<T: DeserializeOwned>(value: Value, field: &str, what: &str) -> Result<T> {
    let mut unknown = Vec::new();
    let result: Result<T, _> = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(
        value,
        &mut |path: serde_ignored::Path| unknown.push(path.to_string()),
    ));
    let parsed = result.map_err(|e| {
        let inner = e.path().to_string();
        anyhow!("{what}: {}: {}", join(field, &inner), e.inner())
    })?;
    // Embedded Kubernetes objects carry `apiVersion` and `kind`, which their Rust types leave
    // to the enclosing list's type.
    let unknown = unknown
        .iter()
        .find(|p| !(p.ends_with("apiVersion") || p.ends_with(".kind") || p.as_str() == "kind"));
    if let Some(path) = unknown {
        bail!("{what}: unknown field `{}`", join(field, &indexed(path)));
    }
    Ok(parsed)
}

fn join(field: &str, inner: &str) -> String {
    match (
        field.is_empty(),
        inner == "." || inner == "?" || inner.is_empty(),
    ) {
        (true, true) => "(top level)".into(),
        (true, false) => inner.to_string(),
        (false, true) => field.to_string(),
        (false, false) => format!("{field}.{inner}"),
    }
}

/// `a.0.b` (how paths of ignored fields read) as `a[0].b`.
fn indexed(path: &str) -> String {
    let mut out = String::new();
    for segment in path.split('.') {
        if segment.parse::<usize>().is_ok() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "mapping",
    }
}

/// ` (did you mean `x`?)` when a known key is close to `key`, else the list of known keys.
fn suggestion(key: &str, known: &[&str]) -> String {
    let best = known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(key, k), *k))
        .min();
    match best {
        Some((d, k)) if d <= 2.max(key.len() / 4) => format!(" (did you mean `{k}`?)"),
        _ => format!(" (known fields: {})", known.join(", ")),
    }
}

/// The field names a struct type declares to serde (its `#[serde(rename_all)]` spelling).
pub fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut fields));
    fields
}

/// A deserializer that only records the field list a struct asks for, then stops.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names recorded")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Stop
    }
}

impl<'de> de::Deserializer<'de> for FieldNames<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        *self.0 = fields;
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Inner {
        node_pools: Vec<String>,
        #[serde(default)]
        max_nodes: Option<u32>,
    }

    #[test]
    fn reads_and_refuses() {
        let cases: &[(&str, Result<(), &str>)] = &[
            ("nodePools: [a]", Ok(())),
            ("", Err("the file is empty")),
            ("# only a comment\n", Err("the file is empty")),
            ("[1, 2]", Err("is a list, not a mapping")),
            (
                "nodePoolz: [a]",
                Err("unknown field `nodePoolz` (did you mean `nodePools`?)"),
            ),
            (
                "zzz: 1\nnodePools: []",
                Err("unknown field `zzz` (known fields: nodePools, maxNodes"),
            ),
            (
                "apiVersion: v1\nkind: Pod",
                Err("this is a Kubernetes object (v1 Pod)"),
            ),
            (
                "nodePools: 3",
                Err("snap: nodePools: invalid type: integer `3`"),
            ),
            (
                "nodePools: [a]\nmaxNodes: -1",
                Err("snap: maxNodes: invalid value"),
            ),
            (
                "nodePools: [a: {b: c}]",
                Err("snap: nodePools[0]: invalid type"),
            ),
        ];
        for (text, want) in cases {
            let got = mapping(text, "a snap")
                .and_then(|m| {
                    known_keys::<Inner>(&m, &[], "snap")?;
                    Ok(m)
                })
                .and_then(|m| typed::<Inner>(Value::Object(m), "", "snap"));
            match (want, got) {
                (Ok(()), Ok(_)) => {}
                (Err(fragment), Err(e)) => {
                    let text_of = format!("{e:#}");
                    assert!(
                        text_of.contains(fragment),
                        "{text:?}: {text_of:?} lacks {fragment:?}"
                    );
                }
                (want, got) => panic!("{text:?}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn guard_refuses_deep_flow_nesting_but_not_brackets_in_strings() {
        let deep = format!("spec: {}{}", "[".repeat(100), "]".repeat(100));
        let e = guard(&deep, "f.yaml").unwrap_err().to_string();
        assert!(
            e.contains("f.yaml: line 1: brackets nested deeper than 64"),
            "{e}"
        );
        let quoted = format!(
            "query: '{}'\nother: \"{}\" # {}",
            "[".repeat(100),
            "{".repeat(100),
            "[".repeat(100)
        );
        guard(&quoted, "f.yaml").unwrap();
        guard("a: [[1, 2], {b: [3]}]", "f.yaml").unwrap();
    }

    #[test]
    fn nested_unknown_fields_are_named_by_path() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Outer {
            inner: Inner,
        }
        let v: Value = serde_yaml::from_str("inner: {nodePools: [], extra: 1}").unwrap();
        let e = typed::<Outer>(v, "", "snap").unwrap_err();
        assert_eq!(e.to_string(), "snap: unknown field `inner.extra`");
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Many {
            items: Vec<Inner>,
        }
        let v: Value =
            serde_yaml::from_str("items: [{nodePools: []}, {nodePools: [], x: 1}]").unwrap();
        let e = typed::<Many>(v, "top", "snap").unwrap_err();
        assert_eq!(e.to_string(), "snap: unknown field `top.items[1].x`");
    }
}
