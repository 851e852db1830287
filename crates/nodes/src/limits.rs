//! NodePool limits as written (`spec.limits`) and as the solver reads them.
//!
//! A limit caps the total capacity of a pool's nodes. A zero limit means no capacity of that
//! resource at all: a pool with `cpu: "0"` launches no node, since every node has some cpu.
//! The scheduling model reads a zero amount as "unset" (its [`Resources`] cannot tell the two
//! apart), so [`pool_limits`] keeps a zero limit on a built-in resource (`cpu`, `memory`, `pods`,
//! `ephemeral-storage`) as the smallest positive amount: one millicore, one byte, one pod. No
//! instance type has that little, so the solver refuses every new node and names the resource.
//! A zero limit on an extended resource (`nvidia.com/gpu: 0`) is kept as zero: it keeps out the
//! types that have some of it and no other.

use ballast_api::nodes::ResourceList;
use ballast_scheduling::Resources;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::error::{Error, ObjectKind};
use crate::resource_list::{quantity_value, resources_from_list};

/// The resources the scheduling model keeps as fields, where zero reads as unset.
const BUILT_IN: [&str; 4] = ["cpu", "memory", "pods", "ephemeral-storage"];

/// A pool's limits as the solver reads them (see the module doc for zero limits). Errs naming
/// the pool and the field `spec.limits.{resource}` when an entry does not parse or is negative.
pub fn pool_limits(list: &ResourceList, pool: &str) -> Result<Resources, Error> {
    let mut limits = resources_from_list(list, ObjectKind::NodePool, pool, "spec.limits")?;
    for resource in BUILT_IN {
        if list.contains_key(resource) && limits.get(resource) == 0 {
            limits.set(resource, 1);
        }
    }
    Ok(limits)
}

/// One limit of a pool and how much of it is in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitUse {
    /// The resource, as written (`cpu`, `nodes`, `nvidia.com/gpu`).
    pub resource: String,
    /// The pool's usage of it (cpu in millicores, memory in bytes, others in units).
    pub used: i64,
    /// The limit, zero kept as zero.
    pub limit: i64,
}

/// The limits of `list` that `used` has reached (usage at or over the limit), in the list's
/// order; a zero limit is always reached. Entries that do not parse are left out (the pool's
/// `Ready` condition reports them).
pub fn limits_reached(list: &ResourceList, used: &Resources) -> Vec<LimitUse> {
    list.iter()
        .filter_map(|(k, Quantity(text))| {
            let limit = quantity_value(k, text).ok()?;
            let used = used.get(k);
            (used >= limit).then(|| LimitUse {
                resource: k.clone(),
                used,
                limit,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A resource list written as (resource, quantity) pairs.
    type Entries = &'static [(&'static str, &'static str)];

    fn list(entries: &[(&str, &str)]) -> ResourceList {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
            .collect()
    }

    #[test]
    fn zero_limits_are_kept() {
        // (limits, resource, amount the solver reads)
        let rows: [(Entries, &str, i64); 7] = [
            (&[("cpu", "0")], "cpu", 1),
            (&[("cpu", "0m")], "cpu", 1),
            (&[("memory", "0Gi")], "memory", 1),
            (&[("pods", "0")], "pods", 1),
            (&[("cpu", "2")], "cpu", 2000),
            (&[("nvidia.com/gpu", "0")], "nvidia.com/gpu", 0),
            (&[("memory", "1Gi")], "cpu", 0),
        ];
        for (entries, resource, want) in rows {
            let got = pool_limits(&list(entries), "p").unwrap();
            assert_eq!(got.get(resource), want, "{entries:?}");
        }
        let bad = pool_limits(&list(&[("cpu", "-1")]), "p").unwrap_err();
        assert_eq!(bad.field, "spec.limits.cpu");
    }

    #[test]
    fn reached_limits_include_zero_ones() {
        let used = Resources::cpu_mem(8000, 0).with("nodes", 2);
        // (limits, resources reached)
        let rows: [(Entries, &[&str]); 5] = [
            (&[("cpu", "0")], &["cpu"]),
            (&[("cpu", "8"), ("nodes", "3")], &["cpu"]),
            (&[("cpu", "16"), ("nodes", "2")], &["nodes"]),
            (&[("nvidia.com/gpu", "0")], &["nvidia.com/gpu"]),
            (&[("memory", "1Gi"), ("cpu", "lots")], &[]),
        ];
        for (entries, want) in rows {
            let got: Vec<String> = limits_reached(&list(entries), &used)
                .into_iter()
                .map(|u| u.resource)
                .collect();
            assert_eq!(got, want, "{entries:?}");
        }
    }
}
