//! Small conversions shared by the readers: numbers into quantities, label selectors into their
//! string form.

use ballast_api::common::LabelSelector;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::error::ReadError;

/// Largest magnitude a value may have: thousandths must fit an i64 (as the core reads them).
const MAX_ABS: f64 = 9.0e15;

/// A quantity of whole thousandths: `1500` → `1500m`, `2000` → `2`.
pub fn milli_quantity(milli: i64) -> Quantity {
    if milli % 1000 == 0 {
        Quantity((milli / 1000).to_string())
    } else {
        Quantity(format!("{milli}m"))
    }
}

/// A float read from a source (Prometheus sample, queue length, SQL value) as a quantity,
/// rounded to the nearest thousandth. NaN, infinities and values beyond ±9e15 are errors.
pub fn float_quantity(v: f64) -> Result<Quantity, ReadError> {
    if !v.is_finite() {
        return Err(ReadError::NotFinite(v));
    }
    if v.abs() > MAX_ABS {
        return Err(ReadError::OutOfRange(v));
    }
    // `v * 1000` is within ±9e18 < i64::MAX; round() absorbs binary noise (0.7 * 1000).
    Ok(milli_quantity((v * 1000.0).round() as i64))
}

/// Parses a number the way sources print them ("5", "12.50", "1.5e+20", " 3 ").
pub fn parse_number(text: &str) -> Result<f64, ReadError> {
    let t = text.trim();
    t.parse::<f64>()
        .map_err(|_| ReadError::Source(format!("{t:?} is not a number")))
}

/// The string form of a label selector (`a=b,c in (d,e),!f`), as `labelSelector` query
/// parameters take it. An empty or absent selector is the empty string (everything).
pub fn selector_string(sel: Option<&LabelSelector>) -> Result<String, ReadError> {
    let Some(sel) = sel else {
        return Ok(String::new());
    };
    let mut parts = Vec::new();
    if let Some(labels) = &sel.match_labels {
        for (k, v) in labels {
            parts.push(format!("{k}={v}"));
        }
    }
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default();
        let part = match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(ReadError::InvalidSpec(format!(
                    "selector: operator {} on {} needs values",
                    e.operator, e.key
                )));
            }
            "In" => format!("{} in ({})", e.key, values.join(",")),
            "NotIn" => format!("{} notin ({})", e.key, values.join(",")),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => {
                return Err(ReadError::InvalidSpec(format!(
                    "selector: unknown operator {other:?}"
                )));
            }
        };
        parts.push(part);
    }
    Ok(parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use std::collections::BTreeMap;

    #[test]
    fn floats_become_thousandths() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (3.0, "3"),
            (0.7, "700m"),
            (2.3, "2300m"),
            (1234.5678, "1234568m"),
            (0.0004, "0"),
            (0.0005, "1m"),
            (-1.5, "-1500m"),
            (1e12, "1000000000000"),
        ];
        for (v, want) in cases {
            assert_eq!(float_quantity(*v).unwrap().0, *want, "{v}");
        }
        assert!(matches!(
            float_quantity(f64::NAN),
            Err(ReadError::NotFinite(_))
        ));
        assert!(matches!(
            float_quantity(f64::INFINITY),
            Err(ReadError::NotFinite(_))
        ));
        assert!(matches!(
            float_quantity(-f64::INFINITY),
            Err(ReadError::NotFinite(_))
        ));
        assert!(matches!(
            float_quantity(1e16),
            Err(ReadError::OutOfRange(_))
        ));
    }

    #[test]
    fn quantities_round_trip_through_the_core_reader() {
        for milli in [
            0i64,
            1,
            9,
            700,
            999,
            1000,
            1001,
            2300,
            123_456_789,
            -5,
            -5000,
        ] {
            let q = milli_quantity(milli);
            assert_eq!(
                ballast_api::common::quantity_milli(&q).unwrap(),
                milli,
                "{}",
                q.0
            );
        }
    }

    #[test]
    fn numbers_parse_as_sources_print_them() {
        for (t, want) in [
            ("5", 5.0),
            ("12.50", 12.5),
            ("1.5e+20", 1.5e20),
            (" 3 ", 3.0),
            ("-2", -2.0),
        ] {
            assert_eq!(parse_number(t).unwrap(), want, "{t}");
        }
        assert!(parse_number("abc").is_err());
        assert!(parse_number("").is_err());
    }

    #[test]
    fn selectors_print_as_kubernetes_parses_them() {
        let req = |key: &str, op: &str, values: &[&str]| LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: if values.is_empty() {
                None
            } else {
                Some(values.iter().map(|s| s.to_string()).collect())
            },
        };
        let sel = LabelSelector {
            match_labels: Some(BTreeMap::from([
                ("app".into(), "web".into()),
                ("tier".into(), "front".into()),
            ])),
            match_expressions: Some(vec![
                req("env", "In", &["prod", "staging"]),
                req("zone", "NotIn", &["a"]),
                req("canary", "Exists", &[]),
                req("legacy", "DoesNotExist", &[]),
            ]),
        };
        assert_eq!(
            selector_string(Some(&sel)).unwrap(),
            "app=web,tier=front,env in (prod,staging),zone notin (a),canary,!legacy"
        );
        assert_eq!(selector_string(None).unwrap(), "");
        assert_eq!(
            selector_string(Some(&LabelSelector::default())).unwrap(),
            ""
        );
        let bad = LabelSelector {
            match_expressions: Some(vec![req("x", "In", &[])]),
            ..Default::default()
        };
        assert!(selector_string(Some(&bad)).is_err());
        let bad = LabelSelector {
            match_expressions: Some(vec![req("x", "Gt", &["1"])]),
            ..Default::default()
        };
        assert!(selector_string(Some(&bad)).is_err());
    }
}
