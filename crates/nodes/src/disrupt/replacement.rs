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
pub(super) fn min_values_needed(
    plan: &LaunchPlan,
    pool: &PoolInfo,
    types: &[sched::InstanceType],
) -> usize {
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
