//! Resource lists (`cpu: 500m`, `memory: 1Gi`, `nvidia.com/gpu: 1`) to and from the model's
//! [`Resources`]: the one place a Kubernetes resource list becomes numbers, and numbers become a
//! resource list. `cpu` is read in millicores, every other resource in units (bytes for memory
//! and storage); a quantity that does not parse or is negative is never a resource.
//!
//! Two readings of the same rule: [`resources_from_list`] for specs Ballast validates (a bad entry
//! is an [`Error`] naming the object and field) and [`readable_resources`] for status observed on
//! objects others write (a bad entry is left out, so one odd node does not stop a decision).

use ballast_api::nodes::ResourceList;
use ballast_scheduling::Resources;
use ballast_scheduling::quantity::{
    format_bytes, format_cpu_millis, parse_cpu_millis, parse_units,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::error::{Error, ObjectKind};

/// The value of one entry of a resource list: millicores for `cpu`, units for anything else.
/// Errs (saying why) when the quantity does not parse or is negative.
pub fn quantity_value(resource: &str, text: &str) -> Result<i64, String> {
    let parsed = if resource == "cpu" {
        parse_cpu_millis(text)
    } else {
        parse_units(text)
    };
    match parsed {
        Ok(v) if v < 0 => Err(format!("negative quantity {text}")),
        Ok(v) => Ok(v),
        Err(e) => Err(e.to_string()),
    }
}

/// Reads a resource list of a spec into model resources; the first bad entry is an error naming
/// `kind`, `name` and the field `{field}.{resource}`.
pub fn resources_from_list(
    list: &ResourceList,
    kind: ObjectKind,
    name: &str,
    field: &str,
) -> Result<Resources, Error> {
    let mut r = Resources::default();
    for (k, Quantity(text)) in list {
        let v = quantity_value(k, text)
            .map_err(|why| Error::new(kind, name, format!("{field}.{k}"), why))?;
        r.set(k, v);
    }
    Ok(r)
}

/// Reads an observed resource list (a node's capacity or allocatable, a container's requests)
/// into model resources, leaving out entries that do not parse or are negative. `None` reads as
/// no resources.
pub fn readable_resources(list: Option<&ResourceList>) -> Resources {
    let mut r = Resources::default();
    for (k, Quantity(text)) in list.into_iter().flatten() {
        if let Ok(v) = quantity_value(k, text) {
            r.set(k, v);
        }
    }
    r
}

/// Writes model resources as a resource list: `cpu` in millicores or cores, `memory` and
/// `ephemeral-storage` with binary suffixes, anything else as a plain integer.
pub fn resources_to_list(r: &Resources) -> ResourceList {
    r.iter()
        .map(|(k, v)| {
            let text = match k {
                "cpu" => format_cpu_millis(v),
                "memory" | "ephemeral-storage" => format_bytes(v),
                _ => v.to_string(),
            };
            (k.to_string(), Quantity(text))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[(&str, &str)]) -> ResourceList {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
            .collect()
    }

    /// The three readings this module replaced agreed on every well-formed list; they differed
    /// only on bad entries. Each row: entry, what the strict reading says, what the lenient one
    /// keeps.
    /// (resource, quantity, strict reading, lenient reading)
    type Row = (
        &'static str,
        &'static str,
        Result<i64, &'static str>,
        Option<i64>,
    );

    #[test]
    fn one_rule_for_every_entry() {
        let rows: [Row; 9] = [
            ("cpu", "500m", Ok(500), Some(500)),
            ("cpu", "2", Ok(2000), Some(2000)),
            ("memory", "1Gi", Ok(1 << 30), Some(1 << 30)),
            ("memory", "1k", Ok(1000), Some(1000)),
            ("nvidia.com/gpu", "1", Ok(1), Some(1)),
            ("pods", "110", Ok(110), Some(110)),
            // A negative capacity was kept by the kwok provider's reading; every reading now
            // leaves it out (the strict one says why).
            ("cpu", "-1", Err("negative quantity -1"), None),
            ("memory", "-1Gi", Err("negative quantity -1Gi"), None),
            ("memory", "lots", Err("unparseable"), None),
        ];
        for (resource, text, strict, lenient) in rows {
            let one = list(&[(resource, text)]);
            let got = resources_from_list(&one, ObjectKind::Node, "n1", "status.capacity");
            match (strict, &got) {
                (Ok(v), Ok(r)) => assert_eq!(r.get(resource), v, "{resource}: {text}"),
                (Err(why), Err(e)) if why != "unparseable" => {
                    assert_eq!(e.why, why, "{resource}: {text}");
                    assert_eq!(e.field, format!("status.capacity.{resource}"));
                }
                (Err(_), Err(_)) => {}
                _ => panic!("{resource}: {text}: {got:?}"),
            }
            let read = readable_resources(Some(&one));
            assert_eq!(
                read.iter().find(|(k, _)| *k == resource).map(|(_, v)| v),
                lenient,
                "{resource}: {text}"
            );
        }
        assert!(readable_resources(None).is_zero());
    }

    #[test]
    fn written_lists_read_back() {
        let r = readable_resources(Some(&list(&[
            ("cpu", "1930m"),
            ("memory", "7Gi"),
            ("ephemeral-storage", "20Gi"),
            ("pods", "29"),
            ("nvidia.com/gpu", "2"),
        ])));
        let written = resources_to_list(&r);
        assert_eq!(written["cpu"], Quantity("1930m".into()));
        assert_eq!(readable_resources(Some(&written)), r);
        assert_eq!(
            resources_from_list(&written, ObjectKind::NodePool, "p", "spec.limits").unwrap(),
            r
        );
    }
}
