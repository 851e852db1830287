//! Replacement NodeClaims: the launch plan for a claim the what-if placement opened (named,
//! priced, its instance types filtered), whether any offering could pass a price filter, and the
//! NodePool's minValues on the types a plan keeps.

use std::collections::BTreeSet;

use ballast_scheduling::{self as sched, NewClaim};

use super::context::DisruptionContext;
use super::report::Why;
use crate::adapt::{self, LaunchPlan};
use crate::error::Error;
use crate::world::PoolInfo;

impl<'w, 'a> DisruptionContext<'w, 'a> {
    /// Whether some instance type the claim may launch as has an available offering that the
    /// NodePool allows and the filter lets through: else `plan_for` can only fail.
    pub(super) fn any_offering(
        &self,
        c: &NewClaim,
        filter: &dyn Fn(&str, &sched::Offering) -> bool,
    ) -> bool {
        let Some(pool) = self.world.pool_idx.get(&c.node_pool) else {
            return true; // let plan_for say
        };
        let pool = &self.world.pools[*pool].model;
        c.instance_type_options.iter().any(|tn| {
            self.world
                .types
                .iter()
                .find(|t| &t.name == tn)
                .is_some_and(|t| {
                    t.offerings.iter().any(|o| {
                        o.available
                            && filter(tn, o)
                            && adapt::pool_allows(pool, sched::labels::ZONE, &o.zone)
                            && adapt::pool_allows(
                                pool,
                                sched::labels::CAPACITY_TYPE,
                                &o.capacity_type,
                            )
                    })
                })
        })
    }

    pub(super) fn plan_for(
        &self,
        c: &NewClaim,
        nodes: &[usize],
        k: usize,
        filter: &dyn Fn(&str, &sched::Offering) -> bool,
    ) -> Result<LaunchPlan, Error> {
        let pool = &self.world.pools[self.world.pool_idx[&c.node_pool]];
        let pods: Vec<&sched::Pod> = nodes
            .iter()
            .flat_map(|&i| {
                self.candidates[i]
                    .movable
                    .iter()
                    .map(move |&kk| &self.node(i).pods[kk].pod)
            })
            .filter(|p| c.pods.contains(&p.key()))
            .collect();
        let seed = self.now.as_nanosecond();
        let name = adapt::claim_name(
            &c.node_pool,
            seed,
            k + 1000 * nodes.first().copied().unwrap_or(0),
            &c.pods,
        );
        adapt::launch_plan(
            c,
            pool.api,
            &pool.model,
            &self.world.types,
            &pods,
            &name,
            filter,
        )
    }

    /// The one node, cheaper than `price` (what `nodes` cost together), to launch for the pods
    /// the what-if placement put on `claim`; or why there is none. Spot nodes are replaced by
    /// spot only (when allowed, and from the cheapest `spot_to_spot_min_types` types); a multi-node
    /// replacement must also be cheaper than any of the nodes of one of its own types.
    pub(super) fn replacement_plan(
        &self,
        nodes: &[usize],
        claim: &NewClaim,
        price: f64,
        multi: bool,
    ) -> Result<LaunchPlan, Why> {
        let spot_to_spot = self.spot_to_spot(nodes, claim);
        if spot_to_spot && !self.opts.spot_to_spot {
            return Err(Why::SpotToSpotDisabled);
        }
        // No offering of the replacement's types is cheaper: no plan could be (the same answer
        // `plan_for` gives, without building one).
        let first = cheaper(price, spot_to_spot);
        if !self.any_offering(claim, &first) {
            return Err(Why::NotCheaper { current: price });
        }
        let mut plan = self
            .plan_for(claim, nodes, 0, &first)
            .map_err(|_| Why::NotCheaper { current: price })?;
        // Karpenter narrows on-demand→[spot, on-demand] to spot: the price filter assumed spot.
        if !spot_to_spot
            && plan.capacity_types.len() > 1
            && plan.capacity_types.iter().any(|c| c == "spot")
            && let Ok(p) = self.plan_for(claim, nodes, 0, &cheaper(price, true))
        {
            plan = p;
        }
        if multi {
            plan = self.below_own_types(plan, nodes, claim, price, spot_to_spot)?;
        }
        if spot_to_spot && !multi {
            plan = self.cheapest_spot_types(plan, nodes, claim, price)?;
        }
        Ok(plan)
    }

    /// Whether all `nodes` are spot and one of the claim's types has a spot offering.
    fn spot_to_spot(&self, nodes: &[usize], claim: &NewClaim) -> bool {
        let all_spot = nodes
            .iter()
            .all(|&i| self.world.nodes[i].capacity_type == Some("spot"));
        let can_spot = self
            .world
            .types
            .iter()
            .filter(|t| claim.instance_type_options.contains(&t.name))
            .any(|t| {
                t.offerings
                    .iter()
                    .any(|o| o.capacity_type == "spot" && o.available)
            });
        all_spot && can_spot
    }

    /// Replacing several nodes by one of their own types is just deleting the others: the plan
    /// again, cheaper than the cheapest of the nodes whose type it may launch.
    fn below_own_types(
        &self,
        plan: LaunchPlan,
        nodes: &[usize],
        claim: &NewClaim,
        price: f64,
        spot_to_spot: bool,
    ) -> Result<LaunchPlan, Why> {
        let mut limit = f64::INFINITY;
        for &i in nodes {
            if let (Some(t), Some(p)) =
                (self.world.nodes[i].instance_type, self.candidates[i].price)
                && plan.instance_types.iter().any(|o| o.name == t)
            {
                limit = limit.min(p);
            }
        }
        if !limit.is_finite() {
            return Ok(plan);
        }
        let spot_only = spot_to_spot || plan.capacity_types == ["spot"];
        self.plan_for(claim, nodes, 0, &cheaper(price.min(limit), spot_only))
            .map_err(|_| Why::NotCheaper { current: price })
    }

    /// A spot-to-spot plan needs `spot_to_spot_min_types` cheaper types, and launches only the
    /// cheapest ones (enough for minValues) so the result is never immediately consolidatable.
    fn cheapest_spot_types(
        &self,
        plan: LaunchPlan,
        nodes: &[usize],
        claim: &NewClaim,
        price: f64,
    ) -> Result<LaunchPlan, Why> {
        let need = self.opts.spot_to_spot_min_types;
        if plan.instance_types.len() < need {
            return Err(Why::SpotToSpotTooFewTypes {
                have: plan.instance_types.len(),
                need,
            });
        }
        let pool = &self.world.pools[self.world.pool_idx[&claim.node_pool]];
        let keep = need.max(min_values_needed(&plan, pool, &self.world.types));
        if plan.instance_types.len() <= keep {
            return Ok(plan);
        }
        let names: BTreeSet<String> = plan
            .instance_types
            .iter()
            .take(keep)
            .map(|o| o.name.clone())
            .collect();
        let limit = price;
        Ok(self
            .plan_for(claim, nodes, 0, &move |t: &str, o: &sched::Offering| {
                names.contains(t) && o.price < limit && o.capacity_type == "spot"
            })
            .unwrap_or(plan))
    }
}

/// An offering filter: cheaper than `limit`, and spot only when `spot_only`.
fn cheaper(limit: f64, spot_only: bool) -> impl Fn(&str, &sched::Offering) -> bool {
    move |_: &str, o: &sched::Offering| o.price < limit && (!spot_only || o.capacity_type == "spot")
}

fn type_values(plan: &LaunchPlan, key: &str, types: &[sched::InstanceType]) -> BTreeSet<String> {
    let model_key = adapt::to_model_key(key);
    if model_key == sched::labels::INSTANCE_TYPE {
        return plan.instance_types.iter().map(|o| o.name.clone()).collect();
    }
    if model_key == sched::labels::ZONE {
        return plan.zones.iter().cloned().collect();
    }
    if model_key == sched::labels::CAPACITY_TYPE {
        return plan.capacity_types.iter().cloned().collect();
    }
    plan.instance_types
        .iter()
        .filter_map(|o| types.iter().find(|t| t.name == o.name))
        .filter_map(|t| t.labels.get(model_key).cloned())
        .collect()
}

pub(super) fn min_values_violation(
    plan: &LaunchPlan,
    pool: &PoolInfo,
    types: &[sched::InstanceType],
) -> Option<Why> {
    for r in &pool.model.model.requirements {
        if let Some(need) = r.min_values {
            let have = type_values(plan, &r.key, types).len();
            if have < need as usize {
                return Some(Why::MinValues {
                    key: r.key.clone(),
                    have,
                    need,
                });
            }
        }
    }
    None
}

/// Fewest cheapest types that still satisfy every minValues of the pool.
fn min_values_needed(plan: &LaunchPlan, pool: &PoolInfo, types: &[sched::InstanceType]) -> usize {
    let mut n = 0;
    for r in &pool.model.model.requirements {
        let Some(need) = r.min_values else { continue };
        for k in 1..=plan.instance_types.len() {
            let sub = LaunchPlan {
                instance_types: plan.instance_types[..k].to_vec(),
                ..plan.clone()
            };
            if type_values(&sub, &r.key, types).len() >= need as usize {
                n = n.max(k);
                break;
            }
        }
    }
    n
}
