//! The lower bound of cost that honours each NodePool's rules: a pod is priced only on the
//! instance types, capacity types and zones some pool may launch for it (its requirements, its
//! taints against the pod's tolerations, the pod's node selector), each type with that pool's
//! DaemonSet overhead taken off. A pool that allows no offering adds nothing; a pod no pool can
//! take is left out of the bound (the summary reports it as pending).
//!
//! The bound itself is `ballast_scheduling::bound`'s fractional packing; this file only says which
//! (pool, type, capacity type) a row of demand may use.

use ballast_nodes::adapt::{node_pool_to_model, requirement_holds};
use ballast_scheduling::bound::fractional_lower_bound_rows;
use ballast_scheduling::model::{
    InstanceType, NodePool, Requirement, Resources, TaintEffect, Toleration, labels, tolerated,
};
use std::collections::{BTreeMap, BTreeSet};

use crate::scenario::Scenario;

/// What a pod asks of a node, beyond room: the taints it tolerates and its node selector.
#[derive(Debug, Clone, PartialEq)]
struct Constraint {
    tolerations: Vec<Toleration>,
    node_selector: BTreeMap<String, String>,
}

/// One instance type as one pool may launch it with one capacity type: the type with only the
/// offerings the pool allows, its overhead raised by the pool's DaemonSet overhead.
struct PoolOffer {
    /// Labels every node of it carries (type, pool, capacity type), and the zones it may have.
    labels: BTreeMap<String, String>,
    zones: BTreeSet<String>,
    pool: usize,
}

/// The pool-aware catalog of one run, with the demand classes (workloads, batch pods) sorted by
/// what they ask of a node.
pub(crate) struct PoolBound {
    types: Vec<InstanceType>,
    offers: Vec<PoolOffer>,
    /// `allowed[class][offer]`.
    allowed: Vec<Vec<bool>>,
    /// The class of each workload, then of each batch pod of the scenario.
    workload_class: Vec<usize>,
    batch_class: Vec<usize>,
}

/// Keys a requirement is judged on: a type's labels, its name, zone and capacity type. A pool's
/// requirement on another key only labels its nodes, so it restricts no type.
fn type_keys(types: &[InstanceType]) -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = types
        .iter()
        .flat_map(|t| t.labels.keys().cloned())
        .collect();
    for k in [labels::INSTANCE_TYPE, labels::ZONE, labels::CAPACITY_TYPE] {
        keys.insert(k.to_string());
    }
    keys
}

/// The (type, capacity type) offers `pool` may launch: every offering whose labels meet each of
/// the pool's requirements on a type key. `by_zone`: one offer per zone as well (some pod selects
/// a zone).
fn pool_offers(
    by_zone: bool,
    pi: usize,
    pool: &NodePool,
    types: &[InstanceType],
    keys: &BTreeSet<String>,
    out_types: &mut Vec<InstanceType>,
    out_offers: &mut Vec<PoolOffer>,
) {
    let judged: Vec<&Requirement> = pool
        .requirements
        .iter()
        .filter(|r| keys.contains(&r.key))
        .collect();
    for t in types {
        let mut base = t.labels.clone();
        base.insert(labels::INSTANCE_TYPE.into(), t.name.clone());
        // (capacity type, zone when split) → offerings allowed
        let mut by_capacity: BTreeMap<(&str, &str), Vec<_>> = BTreeMap::new();
        for o in &t.offerings {
            let mut l = base.clone();
            l.insert(labels::ZONE.into(), o.zone.clone());
            l.insert(labels::CAPACITY_TYPE.into(), o.capacity_type.clone());
            if judged.iter().all(|r| requirement_holds(r, &l)) {
                let zone = if by_zone { o.zone.as_str() } else { "" };
                by_capacity
                    .entry((&o.capacity_type, zone))
                    .or_default()
                    .push(o);
            }
        }
        for ((capacity, _), offerings) in by_capacity {
            let mut overhead = t.overhead.clone();
            for (k, v) in pool.daemonset_overhead.iter() {
                overhead.set(k, overhead.get(k) + v);
            }
            let mut node_labels = base.clone();
            node_labels.extend(pool.labels.clone());
            node_labels.insert(labels::NODEPOOL.into(), pool.name.clone());
            node_labels.insert(labels::CAPACITY_TYPE.into(), capacity.to_string());
            out_offers.push(PoolOffer {
                labels: node_labels,
                zones: offerings.iter().map(|o| o.zone.clone()).collect(),
                pool: pi,
            });
            out_types.push(InstanceType {
                name: t.name.clone(),
                capacity: t.capacity.clone(),
                overhead,
                labels: t.labels.clone(),
                offerings: offerings.into_iter().cloned().collect(),
            });
        }
    }
}

/// Whether a pod asking `c` may run on `offer` of `pool`: it tolerates the pool's taints that keep
/// pods off, and each entry of its node selector is a label the node has (a zone among the offer's
/// zones), or a value the pool's requirements on a label of its own allow.
fn allows(c: &Constraint, offer: &PoolOffer, pool: &NodePool, keys: &BTreeSet<String>) -> bool {
    let tolerates = pool
        .taints
        .iter()
        .filter(|t| matches!(t.effect, TaintEffect::NoSchedule | TaintEffect::NoExecute))
        .all(|t| tolerated(&c.tolerations, t));
    tolerates
        && c.node_selector.iter().all(|(k, v)| {
            if k == labels::ZONE {
                return offer.zones.contains(v);
            }
            if let Some(have) = offer.labels.get(k) {
                return have == v;
            }
            let own: Vec<&Requirement> = pool
                .requirements
                .iter()
                .filter(|r| &r.key == k && !keys.contains(k))
                .collect();
            let one = BTreeMap::from([(k.clone(), v.clone())]);
            !own.is_empty() && own.iter().all(|r| requirement_holds(r, &one))
        })
}

impl PoolBound {
    /// The pool-aware catalog of scenario `sc` over `types` (its catalog).
    pub(crate) fn new(sc: &Scenario, types: &[InstanceType]) -> PoolBound {
        let constraint =
            |tolerations: &[Toleration], node_selector: &BTreeMap<String, String>| Constraint {
                tolerations: tolerations.to_vec(),
                node_selector: node_selector.clone(),
            };
        let workloads = sc
            .workloads
            .iter()
            .map(|w| constraint(&w.pod.tolerations, &w.pod.node_selector));
        let batch = sc
            .batch_pods
            .iter()
            .map(|b| constraint(&b.tolerations, &b.node_selector));
        // A pool that does not compile is refused by the provisioner too: it launches nothing.
        let pools: Vec<NodePool> = sc
            .node_pools
            .iter()
            .filter_map(|p| node_pool_to_model(p, Resources::default()).ok())
            .map(|m| m.model)
            .collect();
        PoolBound::build(&pools, types, workloads, batch)
    }

    /// The pool-aware catalog of `pools` over `types`, for pods asking what `workloads` and
    /// `batch` ask (one entry per workload, per batch pod).
    fn build(
        pools: &[NodePool],
        types: &[InstanceType],
        workloads: impl Iterator<Item = Constraint>,
        batch: impl Iterator<Item = Constraint>,
    ) -> PoolBound {
        let mut classes: Vec<Constraint> = Vec::new();
        let mut class_of = |c: Constraint| match classes.iter().position(|x| *x == c) {
            Some(i) => i,
            None => {
                classes.push(c);
                classes.len() - 1
            }
        };
        let workload_class = workloads.map(&mut class_of).collect();
        let batch_class = batch.map(&mut class_of).collect();
        let keys = type_keys(types);
        let by_zone = classes
            .iter()
            .any(|c| c.node_selector.contains_key(labels::ZONE));
        let (mut bound_types, mut offers) = (Vec::new(), Vec::new());
        for (pi, pool) in pools.iter().enumerate() {
            pool_offers(
                by_zone,
                pi,
                pool,
                types,
                &keys,
                &mut bound_types,
                &mut offers,
            );
        }
        let allowed = classes
            .iter()
            .map(|c| {
                offers
                    .iter()
                    .map(|o| allows(c, o, &pools[o.pool], &keys))
                    .collect()
            })
            .collect();
        PoolBound {
            types: bound_types,
            offers,
            allowed,
            workload_class,
            batch_class,
        }
    }

    /// The demand class of workload `w`.
    pub(crate) fn workload(&self, w: usize) -> usize {
        self.workload_class[w]
    }

    /// The demand class of the scenario's batch pod `b`.
    pub(crate) fn batch(&self, b: usize) -> usize {
        self.batch_class[b]
    }

    /// $ per hour the demand needs at least: `demand` rows of (requests of one pod, pods), and
    /// the demand class of each row in `classes`.
    pub(crate) fn per_hour(&self, demand: &[(Resources, usize)], classes: &[usize]) -> f64 {
        if self.offers.is_empty() {
            return 0.0;
        }
        fractional_lower_bound_rows(
            demand,
            &self.types,
            &Resources::default(),
            &|_| true,
            &|row, t| self.allowed[classes[row]][t],
        )
        .value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_scheduling::model::{Offering, Operator, Taint, TolerationOperator};

    const FAMILY: &str = "nodes.ballast.dev/instance-family";

    fn offering(zone: &str, capacity_type: &str, price: f64) -> Offering {
        Offering {
            zone: zone.into(),
            capacity_type: capacity_type.into(),
            price,
            available: true,
        }
    }

    /// Two types of 2 CPUs: c (on-demand $0.10 in z1, spot $0.03 in z1 and $0.02 in z2) and
    /// m (on-demand $0.12 in z1, spot $0.04 in z1).
    fn types() -> Vec<InstanceType> {
        let ty = |family: &str, offerings: Vec<Offering>| InstanceType {
            name: format!("{family}.large"),
            capacity: Resources::cpu_mem(2000, 8 << 30),
            overhead: Resources::default(),
            labels: BTreeMap::from([(FAMILY.to_string(), family.to_string())]),
            offerings,
        };
        vec![
            ty(
                "c",
                vec![
                    offering("z1", "on-demand", 0.10),
                    offering("z1", "spot", 0.03),
                    offering("z2", "spot", 0.02),
                ],
            ),
            ty(
                "m",
                vec![
                    offering("z1", "on-demand", 0.12),
                    offering("z1", "spot", 0.04),
                ],
            ),
        ]
    }

    fn pool(name: &str, requirements: &[(&str, &str)]) -> NodePool {
        NodePool {
            name: name.into(),
            requirements: requirements
                .iter()
                .map(|(k, v)| Requirement::new(k, Operator::In, &[v]))
                .collect(),
            ..Default::default()
        }
    }

    fn pod(tolerate: bool, selector: &[(&str, &str)]) -> Constraint {
        let tolerations = if tolerate {
            vec![Toleration {
                key: "dedicated".into(),
                operator: TolerationOperator::Exists,
                value: String::new(),
                effect: None,
            }]
        } else {
            vec![]
        };
        Constraint {
            tolerations,
            node_selector: selector
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// $ per hour of four pods of one CPU each: two CPUs at the cheapest allowed price per node.
    fn four_pods(pools: &[NodePool], c: Constraint) -> f64 {
        let b = PoolBound::build(pools, &types(), std::iter::once(c), std::iter::empty());
        let v = b.per_hour(&[(Resources::cpu_mem(1000, 0), 4)], &[b.workload(0)]);
        (v * 1e6).round() / 1e6
    }

    #[test]
    fn each_pool_rule_bounds_at_the_price_it_allows() {
        let ct = labels::CAPACITY_TYPE;
        let mut tainted = pool("tainted", &[]);
        tainted.taints = vec![Taint::new("dedicated", "x", TaintEffect::NoSchedule)];
        let mut overhead = pool("overhead", &[(ct, "on-demand")]);
        overhead.daemonset_overhead = Resources::cpu_mem(1000, 0);
        let on_demand = pool("od", &[(ct, "on-demand")]);
        // (pools, the pod, $ per hour worked by hand: 4 CPUs = 2 nodes' worth at the price)
        let rows: Vec<(&str, Vec<NodePool>, Constraint, f64)> = vec![
            (
                "no rule: c spot z2",
                vec![pool("any", &[])],
                pod(false, &[]),
                2.0 * 0.02,
            ),
            (
                "capacity type: c on-demand",
                vec![on_demand.clone()],
                pod(false, &[]),
                2.0 * 0.10,
            ),
            (
                "zone z1: c spot z1",
                vec![pool("z1", &[(labels::ZONE, "z1")])],
                pod(false, &[]),
                2.0 * 0.03,
            ),
            (
                "family m: m spot z1",
                vec![pool("m", &[(FAMILY, "m")])],
                pod(false, &[]),
                2.0 * 0.04,
            ),
            (
                "family none: nothing",
                vec![pool("x", &[(FAMILY, "x")])],
                pod(false, &[]),
                0.0,
            ),
            (
                "taint not tolerated: the on-demand pool",
                vec![tainted.clone(), on_demand.clone()],
                pod(false, &[]),
                2.0 * 0.10,
            ),
            (
                "taint tolerated",
                vec![tainted, on_demand],
                pod(true, &[]),
                2.0 * 0.02,
            ),
            // one CPU left per node: four nodes' worth
            (
                "daemonset overhead",
                vec![overhead],
                pod(false, &[]),
                4.0 * 0.10,
            ),
            (
                "selector zone z1",
                vec![pool("any", &[])],
                pod(false, &[(labels::ZONE, "z1")]),
                2.0 * 0.03,
            ),
            (
                "selector on-demand",
                vec![pool("any", &[])],
                pod(false, &[(ct, "on-demand")]),
                2.0 * 0.10,
            ),
            (
                "selector pool",
                vec![pool("any", &[])],
                pod(false, &[(labels::NODEPOOL, "other")]),
                0.0,
            ),
            ("no pool", vec![], pod(false, &[]), 0.0),
        ];
        for (why, pools, c, want) in rows {
            assert_eq!(four_pods(&pools, c), (want * 1e6f64).round() / 1e6, "{why}");
        }
    }
}
