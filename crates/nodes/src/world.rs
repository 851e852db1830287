//! The snapshot resolved once per decision: NodePools compiled, the catalog expanded, each node
//! tied to its NodePool and NodeClaim, prices looked up.

use std::borrow::Cow;
use std::collections::BTreeMap;

use ballast_api::common::parse_duration_seconds;
use ballast_api::nodes::{ConsolidationPolicy, DisruptionReason, NodeClaim, NodePool};
use ballast_scheduling::{self as sched, InstanceType, Resources};
use jiff::Timestamp;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::adapt::{self, PoolModel};
use crate::budget::Budget;
use crate::error::{Error, ObjectKind};
use crate::snapshot::{ClusterNode, ClusterSnapshot};

/// A NodePool ready for decisions.
#[derive(Debug, Clone)]
pub struct PoolInfo<'a> {
    pub api: &'a NodePool,
    pub model: PoolModel,
    pub policy: ConsolidationPolicy,
    /// None: `Never` (consolidation disabled). Default 0s.
    pub consolidate_after: Option<f64>,
    pub expire_after: Option<f64>,
    pub termination_grace_period: Option<f64>,
    pub budgets: Vec<Budget>,
    /// Ballast: the least saving, as a percent of the removed nodes' price, a consolidation
    /// must bring.
    pub min_savings_percent: f64,
}

/// What is known about one node.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo<'a> {
    /// Index into `World::pools`.
    pub pool: Option<usize>,
    /// A NodePool label is on the node or its NodeClaim (the pool may be unknown).
    pub managed: bool,
    /// The well-known labels on the node itself (not its NodeClaim's): `on_node.pool` says
    /// whether the NodePool label is on the node.
    pub on_node: adapt::WellKnown<'a>,
    /// Index into `snapshot.node_claims`.
    pub claim: Option<usize>,
    pub created: Option<Timestamp>,
    pub price: Option<f64>,
    pub instance_type: Option<&'a str>,
    /// Index into `World::types` of the (first) type named `instance_type`.
    pub type_index: Option<usize>,
    pub zone: Option<&'a str>,
    pub capacity_type: Option<&'a str>,
    /// Index into that type's offerings of the (first) one in `zone` with `capacity_type`.
    pub offering: Option<usize>,
    pub expire_after: Option<f64>,
    pub termination_grace_period: Option<f64>,
}

pub struct World<'a> {
    pub snap: &'a ClusterSnapshot,
    /// The snapshot's instance types, and the catalog's expanded (borrowed when there is no
    /// catalog to expand).
    pub types: Cow<'a, [InstanceType]>,
    pub pools: Vec<PoolInfo<'a>>,
    pub pool_idx: BTreeMap<String, usize>,
    pub nodes: Vec<NodeInfo<'a>>,
    /// NodeClaims whose node is not in the snapshot (launching or registering).
    pub in_flight: Vec<usize>,
    /// Objects left out because they are invalid (a bad NodePool must not stop the others).
    pub skipped: Vec<Error>,
}

/// The NodePool a node names, by its own label or else its NodeClaim's.
pub(crate) fn pool_label_of<'s>(
    n: &'s ClusterNode,
    claim: Option<&'s NodeClaim>,
) -> Option<&'s str> {
    adapt::pool_label(&n.labels).or_else(|| {
        claim
            .and_then(|c| c.metadata.labels.as_ref())
            .and_then(|l| adapt::pool_label(l))
    })
}

fn claim_time(c: &NodeClaim) -> Option<Timestamp> {
    c.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

impl<'a> World<'a> {
    pub fn new(snap: &'a ClusterSnapshot) -> Result<World<'a>, Error> {
        let mut types = Cow::Borrowed(&snap.instance_types[..]);
        if let Some(cat) = &snap.catalog {
            for t in cat.instance_types()? {
                if types.iter().any(|x| x.name == t.name) {
                    return Err(Error::new(
                        ObjectKind::InstanceType,
                        &t.name,
                        "name",
                        "listed both in catalog and instanceTypes",
                    ));
                }
                types.to_mut().push(t);
            }
        }
        let mut skipped = vec![];
        let mut pools = vec![];
        let mut pool_idx = BTreeMap::new();
        for np in &snap.node_pools {
            match pool_info(np, snap) {
                Ok(p) => {
                    if pool_idx.contains_key(&p.model.name) {
                        return Err(Error::new(
                            ObjectKind::NodePool,
                            &p.model.name,
                            "metadata.name",
                            "duplicate NodePool",
                        ));
                    }
                    pool_idx.insert(p.model.name.clone(), pools.len());
                    pools.push(p);
                }
                Err(e) => skipped.push(e),
            }
        }
        // Hashed rather than ordered: names are long and alike, and comparing them is most of
        // what an ordered map would do here.
        let mut claim_idx: FxHashMap<&str, usize> =
            FxHashMap::with_capacity_and_hasher(snap.node_claims.len(), Default::default());
        for (i, c) in snap.node_claims.iter().enumerate() {
            let name = adapt::object_name_ref(&c.metadata, ObjectKind::NodeClaim)?;
            if claim_idx.insert(name, i).is_some() {
                return Err(Error::new(
                    ObjectKind::NodeClaim,
                    name,
                    "metadata.name",
                    "duplicate NodeClaim",
                ));
            }
        }
        // The first of a name, as a search along the list would find.
        let mut type_idx: FxHashMap<&str, usize> =
            FxHashMap::with_capacity_and_hasher(types.len(), Default::default());
        for (i, t) in types.iter().enumerate() {
            type_idx.entry(t.name.as_str()).or_insert(i);
        }
        let mut nodes = Vec::with_capacity(snap.nodes.len());
        let mut registered = vec![false; snap.node_claims.len()];
        let mut names: FxHashSet<&str> =
            FxHashSet::with_capacity_and_hasher(snap.nodes.len(), Default::default());
        for n in &snap.nodes {
            if n.name.is_empty() || !names.insert(n.name.as_str()) {
                return Err(Error::new(
                    ObjectKind::Node,
                    &n.name,
                    "name",
                    "empty or duplicate",
                ));
            }
            let claim = match &n.node_claim {
                None => None,
                Some(c) => Some(*claim_idx.get(c.as_str()).ok_or_else(|| {
                    Error::new(
                        ObjectKind::Node,
                        &n.name,
                        "nodeClaim",
                        format!("no NodeClaim {c:?} in the snapshot"),
                    )
                })?),
            };
            if let Some(c) = claim {
                registered[c] = true;
            }
            let claim_obj = claim.map(|c| &snap.node_claims[c]);
            // The node's own labels, and its NodeClaim's for those it lacks.
            let on_node = adapt::WellKnown::of(&n.labels);
            let known = on_node.or(|| {
                claim_obj
                    .and_then(|c| c.metadata.labels.as_ref())
                    .map(adapt::WellKnown::of)
                    .unwrap_or_default()
            });
            debug_assert_eq!(known.pool, pool_label_of(n, claim_obj));
            let pool_name = known.pool;
            let pool = pool_name.and_then(|p| pool_idx.get(p).copied());
            let (instance_type, zone, capacity_type) =
                (known.instance_type, known.zone, known.capacity_type);
            let type_index = instance_type.and_then(|t| type_idx.get(t).copied());
            let offering = match (type_index, zone, capacity_type) {
                (Some(t), Some(z), Some(c)) => types[t]
                    .offerings
                    .iter()
                    .position(|o| o.zone == z && o.capacity_type == c),
                _ => None,
            };
            if let Some(p) = n.price
                && (!p.is_finite() || p < 0.0)
            {
                return Err(Error::new(
                    ObjectKind::Node,
                    &n.name,
                    "price",
                    format!("{p} is not a price"),
                ));
            }
            let price = n
                .price
                .or_else(|| Some(types[type_index?].offerings[offering?].price));
            let (expire_after, tgp) = match claim_obj {
                Some(c) => {
                    let nm = c.metadata.name.as_deref().unwrap_or_default();
                    let e = adapt::duration_or_never(
                        c.spec.expire_after.as_deref(),
                        ObjectKind::NodeClaim,
                        nm,
                        "spec.expireAfter",
                    )?;
                    let g = match &c.spec.termination_grace_period {
                        None => None,
                        Some(g) => Some(parse_duration_seconds(g).map_err(|e| {
                            Error::new(
                                ObjectKind::NodeClaim,
                                nm,
                                "spec.terminationGracePeriod",
                                e.to_string(),
                            )
                        })?),
                    };
                    (e, g)
                }
                None => pool
                    .map(|p| (pools[p].expire_after, pools[p].termination_grace_period))
                    .unwrap_or((None, None)),
            };
            nodes.push(NodeInfo {
                pool,
                managed: pool_name.is_some(),
                on_node,
                claim,
                created: claim_obj.and_then(claim_time).or(n.created),
                price,
                instance_type,
                type_index,
                zone,
                capacity_type,
                offering,
                expire_after,
                termination_grace_period: tgp,
            });
        }
        let in_flight = (0..snap.node_claims.len())
            .filter(|&i| {
                !registered[i] && snap.node_claims[i].metadata.deletion_timestamp.is_none()
            })
            .collect();
        Ok(World {
            snap,
            types,
            pools,
            pool_idx,
            nodes,
            in_flight,
            skipped,
        })
    }

    pub fn node(&self, i: usize) -> &'a ClusterNode {
        &self.snap.nodes[i]
    }

    /// Scheduling pools, in snapshot order.
    pub fn model_pools(&self) -> Vec<sched::NodePool> {
        self.pools.iter().map(|p| p.model.model.clone()).collect()
    }

    /// The in-flight NodeClaims as the model's claims; ones that cannot be read (or name an
    /// unknown pool or type) are reported and left out.
    pub fn in_flight_claims(&self, skipped: &mut Vec<Error>) -> Vec<sched::InFlightClaim> {
        let mut out = vec![];
        for &i in &self.in_flight {
            match adapt::node_claim_to_in_flight(&self.snap.node_claims[i]) {
                Ok(c) if !self.pool_idx.contains_key(&c.node_pool) => skipped.push(Error::new(
                    ObjectKind::NodeClaim,
                    &c.name,
                    "metadata.labels.nodes.ballast.dev/nodepool",
                    format!("unknown NodePool {:?}", c.node_pool),
                )),
                Ok(c) if !self.types.iter().any(|t| t.name == c.instance_type) => {
                    skipped.push(Error::new(
                        ObjectKind::NodeClaim,
                        &c.name,
                        "node.kubernetes.io/instance-type",
                        format!("unknown instance type {:?}", c.instance_type),
                    ))
                }
                Ok(c) => out.push(c),
                Err(e) => skipped.push(e),
            }
        }
        out
    }

    /// A node in the model's form.
    pub fn model_node(&self, i: usize) -> sched::Node {
        let n = self.node(i);
        sched::Node {
            name: n.name.clone(),
            labels: adapt::model_labels(&n.labels),
            taints: n.taints.clone(),
            allocatable: n.allocatable.clone(),
            capacity: n.capacity.clone(),
            unschedulable: n.unschedulable,
            initializing: !n.initialized,
        }
    }
}

fn pool_info<'a>(np: &'a NodePool, snap: &ClusterSnapshot) -> Result<PoolInfo<'a>, Error> {
    let k = ObjectKind::NodePool;
    let name = adapt::object_name(&np.metadata, k)?;
    // Overhead needs the compiled pool (taints, labels); compile once without, then with it.
    let bare = adapt::node_pool_to_model(np, Resources::default())?;
    let mut overhead = adapt::daemonset_overhead(&snap.daemon_sets, &bare.model);
    for (rk, v) in snap.daemonset_overhead.iter() {
        let cur = overhead.get(rk);
        overhead.set(rk, cur.saturating_add(v));
    }
    let model = PoolModel {
        model: sched::NodePool {
            daemonset_overhead: overhead,
            ..bare.model
        },
        ..bare
    };
    let d = np.spec.disruption.clone().unwrap_or_default();
    let consolidate_after = match d.consolidate_after.as_deref() {
        None => Some(0.0),
        other => adapt::duration_or_never(other, k, &name, "spec.disruption.consolidateAfter")?,
    };
    let t = &np.spec.template.spec;
    let expire_after = match t.expire_after.as_deref() {
        None => Some(720.0 * 3600.0),
        other => adapt::duration_or_never(other, k, &name, "spec.template.spec.expireAfter")?,
    };
    let termination_grace_period = match &t.termination_grace_period {
        None => None,
        Some(g) => Some(parse_duration_seconds(g).map_err(|e| {
            Error::new(
                k,
                &name,
                "spec.template.spec.terminationGracePeriod",
                e.to_string(),
            )
        })?),
    };
    let mut budgets = vec![];
    for (i, b) in d.budgets.iter().enumerate() {
        budgets.push(Budget::parse(b, &name, i)?);
    }
    if budgets.is_empty() {
        budgets.push(Budget::default_budget());
    }
    let min_savings_percent = match d.min_savings_percent {
        None => 0.0,
        Some(p) if (0..=100).contains(&p) => f64::from(p),
        Some(p) => {
            return Err(Error::new(
                k,
                &name,
                "spec.disruption.minSavingsPercent",
                format!("{p} is outside 0..=100"),
            ));
        }
    };
    Ok(PoolInfo {
        api: np,
        model,
        policy: d.consolidation_policy.unwrap_or_default(),
        consolidate_after,
        expire_after,
        termination_grace_period,
        budgets,
        min_savings_percent,
    })
}

/// The reasons budgets are counted for.
pub const REASONS: [DisruptionReason; 3] = [
    DisruptionReason::Empty,
    DisruptionReason::Drifted,
    DisruptionReason::Underutilized,
];
