//! Pieces shared by every Ballast API group: quantities, durations, object references and
//! the schema helpers that make the API server check them.

use ballast_quantity::Suffix;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};

/// The pattern the API server applies to quantity strings (the one Kubernetes' own CRD
/// generators emit for `resource.Quantity`).
pub const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// A Go-style duration made of hours, minutes and seconds ("30s", "1h30m"), as Karpenter uses.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";
/// A duration that may also be the word `Never`.
pub const DURATION_OR_NEVER_PATTERN: &str = r"^(([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+|Never)$";

static QUANTITY_RE: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(QUANTITY_PATTERN).expect("quantity pattern compiles"));

/// Schema of a required quantity: an integer or a string in quantity syntax.
pub fn quantity_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-int-or-string": true,
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": QUANTITY_PATTERN,
        "maxLength": 64,
    })
}

/// Schema of a map from resource name to quantity (`cpu: 500m`).
pub fn resource_list_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": 64,
        "additionalProperties": {
            "x-kubernetes-int-or-string": true,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "maxLength": 64,
        }
    })
}

/// Schema of a Go duration string.
pub fn duration_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "pattern": DURATION_PATTERN, "maxLength": 64 })
}

/// Schema of a Go duration string or `Never`.
pub fn duration_or_never_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "pattern": DURATION_OR_NEVER_PATTERN, "maxLength": 64 })
}

/// Why a quantity or a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{0:?} is not a quantity (examples: 500m, 2, 1.5Gi, 100M, 1e3)")]
    Quantity(String),
    #[error("{0:?} is not a duration (examples: 30s, 5m, 1h30m)")]
    Duration(String),
}

/// Reads a Kubernetes quantity into a float of base units ("500m" → 0.5, "1Ki" → 1024): the
/// grammar of `ballast-quantity`, within [`QUANTITY_PATTERN`], evaluated as the number times the
/// suffix's factor.
pub fn parse_quantity(text: &str) -> Result<f64, ParseError> {
    let s = text.trim();
    let bad = || ParseError::Quantity(text.to_string());
    if !QUANTITY_RE.is_match(s) {
        return Err(bad());
    }
    let parsed = ballast_quantity::parse(s).map_err(|_| bad())?;
    let base: f64 = parsed.number.parse().map_err(|_| bad())?;
    let factor = match parsed.suffix {
        Suffix::None => 1.0,
        Suffix::Si(-9) => 1e-9,
        Suffix::Si(-6) => 1e-6,
        Suffix::Si(-3) => 1e-3,
        Suffix::Si(3) => 1e3,
        Suffix::Si(6) => 1e6,
        Suffix::Si(9) => 1e9,
        Suffix::Si(12) => 1e12,
        Suffix::Si(15) => 1e15,
        Suffix::Si(18) => 1e18,
        Suffix::Si(_) => return Err(bad()),
        Suffix::Binary(k) => 1024f64.powi(k as i32),
        Suffix::Exponent(e) => 10f64.powi(e),
    };
    Ok(base * factor)
}

/// Reads a quantity as whole thousandths of its unit, rounding up as Kubernetes does
/// ("0.5" cpu → 500, "1Gi" → 1073741824000). Saturates at the i64 range.
pub fn quantity_milli(q: &Quantity) -> Result<i64, ParseError> {
    let v = parse_quantity(&q.0)?;
    // Exact integer arithmetic where it fits: through a float, "700m" would read as 701.
    let exact = ballast_quantity::parse(q.0.trim())
        .ok()
        .and_then(|p| p.scaled_ceil(1000))
        .map(|m| m.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64);
    Ok(exact.unwrap_or_else(|| (v * 1000.0).ceil().clamp(i64::MIN as f64, i64::MAX as f64) as i64))
}

/// Reads a quantity as a float of base units.
pub fn quantity_value(q: &Quantity) -> Result<f64, ParseError> {
    parse_quantity(&q.0)
}

/// Reads a Go duration string into seconds ("1h30m" → 5400.0).
pub fn parse_duration_seconds(text: &str) -> Result<f64, ParseError> {
    let err = || ParseError::Duration(text.to_string());
    let s = text.trim();
    if s.is_empty() {
        return Err(err());
    }
    let mut total = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        if num_end == 0 {
            return Err(err());
        }
        let n: f64 = rest[..num_end].parse().map_err(|_| err())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        total += n * unit;
        rest = &rest[unit_end..];
    }
    Ok(total)
}

/// Identifies the object a Ballast autoscaler acts on (same shape as
/// `autoscaling/v2` `CrossVersionObjectReference`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct CrossVersionObjectReference {
    /// API version of the referent, e.g. `apps/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the referent, e.g. `Deployment`.
    #[schemars(length(min = 1))]
    pub kind: String,
    /// Name of the referent.
    #[schemars(length(min = 1))]
    pub name: String,
}

impl std::fmt::Display for CrossVersionObjectReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// A reference to a Secret in the object's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// Name of the Secret.
    #[schemars(length(min = 1))]
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_as_kubernetes_does() {
        let cases: &[(&str, f64)] = &[
            ("500m", 0.5),
            ("2", 2.0),
            ("1Ki", 1024.0),
            ("1.5Gi", 1.5 * 1024.0 * 1024.0 * 1024.0),
            ("100M", 1e8),
            ("1e3", 1000.0),
            ("+3", 3.0),
            (".5", 0.5),
            ("250u", 250e-6),
        ];
        for (text, want) in cases {
            let got = parse_quantity(text).unwrap();
            assert!(
                (got - want).abs() <= want.abs() * 1e-12,
                "{text}: {got} != {want}"
            );
        }
        for bad in ["", "abc", "1.2.3", "5 m", "1Kb", "--1", "1mi"] {
            assert!(parse_quantity(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn milli_values_round_up() {
        assert_eq!(quantity_milli(&Quantity("100m".into())).unwrap(), 100);
        assert_eq!(quantity_milli(&Quantity("1".into())).unwrap(), 1000);
        assert_eq!(quantity_milli(&Quantity("1n".into())).unwrap(), 1);
        // Exact: through floats these read one thousandth too high.
        for (text, want) in [
            ("700m", 700),
            ("2300m", 2300),
            ("9m", 9),
            ("0.7", 700),
            ("1.1", 1100),
            ("123456789n", 124),
        ] {
            assert_eq!(
                quantity_milli(&Quantity(text.into())).unwrap(),
                want,
                "{text}"
            );
        }
        for (text, want) in [
            ("1Ki", 1_024_000),
            ("1.5Gi", 1_610_612_736_000),
            ("1e3", 1_000_000),
            ("5e-4", 1),
            ("-1.5", -1500),
            ("-1n", 0),
        ] {
            assert_eq!(
                quantity_milli(&Quantity(text.into())).unwrap(),
                want,
                "{text}"
            );
        }
        for n in 1..20_000i64 {
            assert_eq!(quantity_milli(&Quantity(format!("{n}m"))).unwrap(), n);
        }
        assert_eq!(quantity_milli(&Quantity("1e30".into())).unwrap(), i64::MAX);
    }

    #[test]
    fn durations_read_as_go_does() {
        assert_eq!(parse_duration_seconds("30s").unwrap(), 30.0);
        assert_eq!(parse_duration_seconds("1h30m").unwrap(), 5400.0);
        assert_eq!(parse_duration_seconds("720h").unwrap(), 720.0 * 3600.0);
        assert_eq!(parse_duration_seconds("1.5s").unwrap(), 1.5);
        for bad in ["", "h", "10", "10d", "1h-5m"] {
            assert!(
                parse_duration_seconds(bad).is_err(),
                "{bad} should be rejected"
            );
        }
    }
}
