//! Static NodePools (`spec.replicas`, Karpenter v1's static capacity): the pool keeps exactly
//! `replicas` nodes whatever the pods ask for.
//!
//! The decision, from the pool's NodeClaims:
//! - *active* claims are those not being deleted; claims being deleted still count against
//!   `limits.nodes` until they are gone.
//! - fewer active than `replicas`: launch the difference, but never more than `limits.nodes`
//!   leaves (the only limit a static pool has, as in Karpenter); `limited` says the limit cut it.
//! - more active than `replicas`: remove the surplus, the nodes with the fewest pods first (the
//!   least disruption), then the youngest, ties by name. Scaling down does not wait for
//!   disruption budgets; the drain still honours PodDisruptionBudgets.
//! - fewer active than `replicas` and the limit leaves no room: `Limited` (nothing to do but say
//!   so).
//! - otherwise hold.
//!
//! [`static_launch_plans`] turns a launch into NodeClaims: each made for no pod, free to be any
//! instance type the pool's requirements allow, cheapest first (the launch takes the cheapest
//! offering the cloud still has). The provisioner never opens a claim in a static pool
//! (`fixed_size` in the scheduling model) and disruption never consolidates its nodes.

use std::collections::BTreeMap;

use ballast_api::nodes::NodePool;
use ballast_scheduling::{self as sched, InstanceType, NewClaim, Resources};
use jiff::Timestamp;

use crate::adapt::{self, LaunchPlan, requirement_holds};
use crate::error::{Error, ObjectKind};

/// One NodeClaim of a static pool, as the decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticClaim {
    pub name: String,
    /// Pods bound to its node (0 before it registers).
    pub pods: usize,
    pub created: Timestamp,
    /// Has a deletion timestamp.
    pub deleting: bool,
}

/// What a static pool needs now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaticDecision {
    /// As many active claims as replicas (or a limit allows no more).
    Hold,
    /// Create `count` NodeClaims; `limited` when `limits.nodes` cut the count below the shortfall.
    Launch { count: usize, limited: bool },
    /// `shortfall` nodes are missing but `limits.nodes` leaves no room for any.
    Limited { shortfall: usize },
    /// Delete these NodeClaims, in this order.
    Remove { claims: Vec<String> },
}

/// The decision for a pool of `replicas` with `limit_nodes` (its `limits.nodes`, if any) and
/// these claims. Deterministic: the order of `claims` does not matter.
pub fn decide_static(
    replicas: u32,
    limit_nodes: Option<u64>,
    claims: &[StaticClaim],
) -> StaticDecision {
    let want = replicas as usize;
    let active: Vec<&StaticClaim> = claims.iter().filter(|c| !c.deleting).collect();
    if active.len() < want {
        let shortfall = want - active.len();
        let room = limit_nodes.map_or(usize::MAX, |l| {
            usize::try_from(l)
                .unwrap_or(usize::MAX)
                .saturating_sub(claims.len())
        });
        let count = shortfall.min(room);
        if count == 0 {
            return StaticDecision::Limited { shortfall };
        }
        return StaticDecision::Launch {
            count,
            limited: count < shortfall,
        };
    }
    if active.len() > want {
        let mut order = active;
        order.sort_by(|a, b| {
            a.pods
                .cmp(&b.pods)
                .then_with(|| b.created.cmp(&a.created))
                .then_with(|| a.name.cmp(&b.name))
        });
        let surplus = order.len() - want;
        return StaticDecision::Remove {
            claims: order
                .into_iter()
                .take(surplus)
                .map(|c| c.name.clone())
                .collect(),
        };
    }
    StaticDecision::Hold
}

/// The cheapest available offering of each instance type the pool's requirements allow
/// (instance type, zone, capacity type and the type's labels), cheapest first, ties by name.
fn allowed_types(pool: &sched::NodePool, types: &[InstanceType]) -> Vec<(f64, String)> {
    let mut out = vec![];
    for t in types {
        let mut labels: BTreeMap<String, String> = t.labels.clone();
        labels.insert(sched::labels::INSTANCE_TYPE.into(), t.name.clone());
        let cheapest = t
            .offerings
            .iter()
            .filter(|o| o.available)
            .filter(|o| {
                let mut l = labels.clone();
                l.insert(sched::labels::ZONE.into(), o.zone.clone());
                l.insert(sched::labels::CAPACITY_TYPE.into(), o.capacity_type.clone());
                pool.requirements.iter().all(|r| requirement_holds(r, &l))
            })
            .map(|o| o.price)
            .min_by(f64::total_cmp);
        if let Some(price) = cheapest {
            out.push((price, t.name.clone()));
        }
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    out
}

/// `count` NodeClaims for static pool `pool`, named from `seed` (the decision time): each may
/// launch as any instance type the pool allows, cheapest first, in any zone and capacity type
/// it allows. An error names the pool and field when nothing in `types` is allowed.
pub fn static_launch_plans(
    pool: &NodePool,
    types: &[InstanceType],
    count: usize,
    seed: i128,
) -> Result<Vec<LaunchPlan>, Error> {
    let model = adapt::node_pool_to_model(pool, Resources::default())?;
    let allowed = allowed_types(&model.model, types);
    let Some((price, cheapest)) = allowed.first().cloned() else {
        return Err(Error::new(
            ObjectKind::NodePool,
            &model.name,
            "spec.template.spec.requirements",
            "no available offering of the catalog meets them, so no node can be launched",
        ));
    };
    let mut plans = Vec::with_capacity(count);
    for i in 0..count {
        let name = adapt::claim_name(&model.name, seed, i, &[]);
        let claim = NewClaim {
            name: name.clone(),
            node_pool: model.name.clone(),
            instance_type: cheapest.clone(),
            zone: String::new(),
            capacity_type: String::new(),
            price,
            labels: model.model.labels.clone(),
            taints: model.model.taints.clone(),
            requests: Resources::default(),
            pods: vec![],
            instance_type_options: allowed.iter().map(|(_, n)| n.clone()).collect(),
            pinned: vec![],
        };
        plans.push(adapt::launch_plan(
            &claim,
            pool,
            &model,
            types,
            &[],
            &name,
            &|_, _| true,
        )?);
    }
    Ok(plans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(name: &str, pods: usize, created_s: i64, deleting: bool) -> StaticClaim {
        StaticClaim {
            name: name.into(),
            pods,
            created: Timestamp::from_second(created_s).expect("time"),
            deleting,
        }
    }

    fn remove(names: &[&str]) -> StaticDecision {
        StaticDecision::Remove {
            claims: names.iter().map(|n| n.to_string()).collect(),
        }
    }

    /// (name, replicas, limits.nodes, claims, decision)
    type Case = (
        &'static str,
        u32,
        Option<u64>,
        Vec<StaticClaim>,
        StaticDecision,
    );

    #[test]
    fn keeps_exactly_replicas() {
        let a = claim("a", 3, 100, false);
        let b = claim("b", 0, 200, false);
        let c = claim("c", 0, 300, false);
        let d = claim("d", 1, 50, false);
        let gone = claim("g", 0, 10, true);
        let cases: Vec<Case> = vec![
            (
                "empty pool launches all",
                3,
                None,
                vec![],
                StaticDecision::Launch {
                    count: 3,
                    limited: false,
                },
            ),
            (
                "at replicas holds",
                2,
                None,
                vec![a.clone(), b.clone()],
                StaticDecision::Hold,
            ),
            (
                "deleting claims do not count as active",
                2,
                None,
                vec![a.clone(), gone.clone()],
                StaticDecision::Launch {
                    count: 1,
                    limited: false,
                },
            ),
            (
                "limits.nodes counts deleting claims and cuts the launch",
                4,
                Some(3),
                vec![a.clone(), gone.clone()],
                StaticDecision::Launch {
                    count: 1,
                    limited: true,
                },
            ),
            (
                "limit reached says how many are missing",
                4,
                Some(2),
                vec![a.clone(), gone.clone()],
                StaticDecision::Limited { shortfall: 3 },
            ),
            (
                "scale down removes fewest pods first, then youngest",
                1,
                None,
                vec![a.clone(), b.clone(), c.clone(), d.clone()],
                remove(&["c", "b", "d"]),
            ),
            (
                "scale to zero removes every active claim",
                0,
                None,
                vec![d.clone(), a.clone(), gone.clone()],
                remove(&["d", "a"]),
            ),
            (
                "ties break by name",
                1,
                None,
                vec![claim("y", 0, 5, false), claim("x", 0, 5, false)],
                remove(&["x"]),
            ),
        ];
        for (name, replicas, limit, claims, want) in cases {
            assert_eq!(decide_static(replicas, limit, &claims), want, "{name}");
            let mut reversed = claims.clone();
            reversed.reverse();
            assert_eq!(
                decide_static(replicas, limit, &reversed),
                want,
                "{name} (order)"
            );
        }
    }

    fn offering(zone: &str, capacity_type: &str, price: f64, available: bool) -> sched::Offering {
        sched::Offering {
            zone: zone.into(),
            capacity_type: capacity_type.into(),
            price,
            available,
        }
    }

    fn catalog() -> Vec<InstanceType> {
        let t = |name: &str, family: &str, offerings: Vec<sched::Offering>| InstanceType {
            name: name.into(),
            capacity: Resources::cpu_mem(2000, 4 << 30),
            overhead: Resources::default(),
            labels: [("example.com/family".to_string(), family.to_string())].into(),
            offerings,
        };
        vec![
            t("big", "m", vec![offering("z1", "on-demand", 0.40, true)]),
            t(
                "small",
                "m",
                vec![
                    offering("z1", "on-demand", 0.10, false),
                    offering("z2", "on-demand", 0.12, true),
                    offering("z2", "spot", 0.03, true),
                ],
            ),
            t("other", "c", vec![offering("z1", "on-demand", 0.01, true)]),
        ]
    }

    fn static_pool(requirements: serde_json::Value) -> NodePool {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "nodes.ballast.dev/v1", "kind": "NodePool",
            "metadata": { "name": "fixed" },
            "spec": { "replicas": 2, "template": {
                "metadata": { "labels": { "team": "a" } },
                "spec": {
                    "nodeClassRef": { "group": "nodes.ballast.dev", "kind": "KwokNodeClass", "name": "k" },
                    "requirements": requirements,
                } } },
        }))
        .expect("pool")
    }

    #[test]
    fn launches_the_cheapest_allowed_types_for_no_pod() {
        let pool = static_pool(serde_json::json!([
            { "key": "example.com/family", "operator": "In", "values": ["m"] },
            { "key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"] },
        ]));
        let plans = static_launch_plans(&pool, &catalog(), 2, 7).expect("plans");
        assert_eq!(plans.len(), 2);
        assert_ne!(plans[0].name, plans[1].name);
        let p = &plans[0];
        let types: Vec<&str> = p.instance_types.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(types, ["small", "big"], "family c and spot are not allowed");
        assert_eq!(
            (
                p.instance_type.as_str(),
                p.zone.as_str(),
                p.capacity_type.as_str()
            ),
            ("small", "z2", "on-demand"),
            "the unavailable z1 offering is skipped"
        );
        assert!(p.pods.is_empty());
        let labels = p.node_claim.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("team").map(String::as_str), Some("a"));
        assert_eq!(
            labels
                .get(ballast_api::nodes::labels::NODEPOOL)
                .map(String::as_str),
            Some("fixed")
        );
    }

    #[test]
    fn a_pool_nothing_satisfies_names_its_requirements() {
        let pool = static_pool(serde_json::json!([
            { "key": "example.com/family", "operator": "In", "values": ["gpu"] },
        ]));
        let e = static_launch_plans(&pool, &catalog(), 1, 7).expect_err("no type");
        assert!(
            e.to_string().contains("spec.template.spec.requirements"),
            "{e}"
        );
        let mut negative = pool.clone();
        negative.spec.replicas = Some(-1);
        let e = adapt::static_replicas(&negative).expect_err("negative");
        assert!(e.to_string().contains("spec.replicas"), "{e}");
    }
}
