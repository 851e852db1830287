//! Whether a NodePool's requirements leave it any instance type, and if not, which requirements
//! are to blame: the pool's `Ready` condition and its pods' explanations name them, instead of
//! a pod being "too large" for a pool whose largest type offers nothing.
//!
//! A type meets a requirement when its labels do, or (for zone and capacity type) one of its
//! offerings does, available or not: an offering out of capacity is a passing state, not a
//! mistake in the pool. All the requirements together must be met by one offering.

use std::collections::BTreeMap;
use std::fmt;

use ballast_scheduling::{self as sched, InstanceType, Operator, Requirement};

use crate::adapt::requirement_holds;

/// Why a NodePool has no instance type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoInstanceType {
    /// The catalog is empty.
    NoCatalog,
    /// Each of these requirements alone leaves no type.
    Each(Vec<String>),
    /// Each requirement alone leaves some type, but no type meets them all.
    Together(Vec<String>),
}

impl NoInstanceType {
    /// The requirements to blame, as written in the message (`key Op [values]`).
    pub fn requirements(&self) -> String {
        match self {
            NoInstanceType::NoCatalog => String::new(),
            NoInstanceType::Each(r) | NoInstanceType::Together(r) => r.join(", "),
        }
    }
}

impl fmt::Display for NoInstanceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoInstanceType::NoCatalog => write!(f, "no instance type is offered"),
            NoInstanceType::Each(r) if r.len() == 1 => {
                write!(f, "requirement {} leaves no instance type", r[0])
            }
            NoInstanceType::Each(r) => {
                write!(
                    f,
                    "requirements {} each leave no instance type",
                    r.join(", ")
                )
            }
            NoInstanceType::Together(r) => write!(
                f,
                "requirements {} together leave no instance type",
                r.join(", ")
            ),
        }
    }
}

/// One requirement as a user reads it: `key Op [values]`.
pub fn show_requirement(r: &Requirement) -> String {
    let op = match r.operator {
        Operator::In => "In",
        Operator::NotIn => "NotIn",
        Operator::Exists => "Exists",
        Operator::DoesNotExist => "DoesNotExist",
        Operator::Gt => "Gt",
        Operator::Lt => "Lt",
    };
    match r.operator {
        Operator::Exists | Operator::DoesNotExist => format!("{} {op}", r.key),
        _ => format!("{} {op} [{}]", r.key, r.values.join(", ")),
    }
}

/// The label sets a type can be launched with: its labels plus its name, and one offering's
/// zone and capacity type.
fn offering_labels(t: &InstanceType) -> Vec<BTreeMap<String, String>> {
    let mut base = t.labels.clone();
    base.insert(sched::labels::INSTANCE_TYPE.into(), t.name.clone());
    t.offerings
        .iter()
        .map(|o| {
            let mut l = base.clone();
            l.insert(sched::labels::ZONE.into(), o.zone.clone());
            l.insert(sched::labels::CAPACITY_TYPE.into(), o.capacity_type.clone());
            l
        })
        .collect()
}

/// None when some instance type meets every requirement of `pool`; else why none does.
pub fn no_instance_type(pool: &sched::NodePool, types: &[InstanceType]) -> Option<NoInstanceType> {
    let sets: Vec<BTreeMap<String, String>> = types.iter().flat_map(offering_labels).collect();
    if sets.is_empty() {
        return Some(NoInstanceType::NoCatalog);
    }
    if sets
        .iter()
        .any(|l| pool.requirements.iter().all(|r| requirement_holds(r, l)))
    {
        return None;
    }
    let alone: Vec<String> = pool
        .requirements
        .iter()
        .filter(|r| !sets.iter().any(|l| requirement_holds(r, l)))
        .map(show_requirement)
        .collect();
    if alone.is_empty() {
        Some(NoInstanceType::Together(
            pool.requirements.iter().map(show_requirement).collect(),
        ))
    } else {
        Some(NoInstanceType::Each(alone))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_scheduling::{Offering, Resources};

    fn itype(name: &str, arch: &str, zone: &str) -> InstanceType {
        InstanceType {
            name: name.into(),
            capacity: Resources::cpu_mem(2000, 1 << 30),
            overhead: Resources::default(),
            labels: BTreeMap::from([("kubernetes.io/arch".to_string(), arch.to_string())]),
            offerings: vec![Offering {
                zone: zone.into(),
                capacity_type: "on-demand".into(),
                price: 0.1,
                available: false,
            }],
        }
    }

    #[test]
    fn names_the_requirements_that_leave_no_type() {
        let types = [itype("a1", "amd64", "z1"), itype("g1", "arm64", "z2")];
        let arch = |v: &str| Requirement::new("kubernetes.io/arch", Operator::In, &[v]);
        let zone = |v: &str| Requirement::new(sched::labels::ZONE, Operator::In, &[v]);
        // (requirements, the answer as a sentence; "" = some type is left)
        let rows: Vec<(Vec<Requirement>, &str)> = vec![
            (vec![], ""),
            (vec![arch("arm64"), zone("z2")], ""),
            (
                vec![arch("s390x")],
                "requirement kubernetes.io/arch In [s390x] leaves no instance type",
            ),
            (
                vec![arch("s390x"), zone("z9")],
                "requirements kubernetes.io/arch In [s390x], topology.kubernetes.io/zone In \
                 [z9] each leave no instance type",
            ),
            (
                vec![arch("arm64"), zone("z1")],
                "requirements kubernetes.io/arch In [arm64], topology.kubernetes.io/zone In \
                 [z1] together leave no instance type",
            ),
            (
                vec![Requirement::new("gpu", Operator::Exists, &[])],
                "requirement gpu Exists leaves no instance type",
            ),
        ];
        for (requirements, want) in rows {
            let pool = sched::NodePool {
                name: "p".into(),
                requirements,
                ..Default::default()
            };
            let got = no_instance_type(&pool, &types).map(|n| n.to_string());
            assert_eq!(got.as_deref().unwrap_or(""), want);
        }
        let pool = sched::NodePool::default();
        assert_eq!(
            no_instance_type(&pool, &[]),
            Some(NoInstanceType::NoCatalog)
        );
    }
}
