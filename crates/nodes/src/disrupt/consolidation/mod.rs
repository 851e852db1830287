//! Consolidation: remove nodes whose pods fit elsewhere, or replace them with one cheaper node.
//! The rules on one what-if placement live here ([`DisruptionContext::consolidate`]): delete when
//! every pod fits on the other nodes, replace when exactly one strictly cheaper node holds the
//! rest, never one node by many; spot-to-spot and minSavingsPercent apply. [`multi`] looks for
//! the largest set of nodes to consolidate together, [`single`] at one node at a time.

mod multi;
mod single;

use std::collections::BTreeSet;

use ballast_scheduling as sched;

use super::context::DisruptionContext;
use super::replacement::{min_values_needed, min_values_violation};
use super::report::{Action, Method, Replacement, Why};
use super::what_if::Rehoming;
use crate::error::Error;

impl<'w, 'a> DisruptionContext<'w, 'a> {
    /// Karpenter's consolidation rules on one simulated outcome: delete when everything fits,
    /// replace when exactly one strictly cheaper node does, never 1 → many.
    fn consolidate(&mut self, nodes: &[usize], multi: bool) -> Result<Result<Action, Why>, Error> {
        if let Some(w) = self.strict_pdb(nodes) {
            return Ok(Err(w));
        }
        let method = if multi {
            Method::MultiNodeConsolidation
        } else {
            Method::SingleNodeConsolidation
        };
        let price: f64 = nodes.iter().filter_map(|&i| self.candidates[i].price).sum();
        let min_savings = nodes
            .iter()
            .filter_map(|&i| self.candidates[i].pool)
            .map(|p| self.world.pools[p].min_savings_percent)
            .fold(0.0, f64::max);
        let outcome = self.what_if.evaluate(nodes, Some(price))?;
        let (moves, claim) = match outcome {
            Rehoming::NoCheaperNode => return Ok(Err(Why::NoCheaperNodeHolds { current: price })),
            Rehoming::Unplaceable { pod, why } => return Ok(Err(Why::PodsDoNotFit { pod, why })),
            Rehoming::Fits { moves } => {
                if 100.0 < min_savings {
                    return Ok(Err(Why::BelowMinSavings {
                        percent: 100.0,
                        min: min_savings,
                    }));
                }
                let mut a = self.base_action(method, nodes, String::new());
                let moves = self.what_if.moves(moves);
                a.moves = self.moves(moves, &[]);
                a.why = format!(
                    "delete [{}]: their pods fit on the other nodes",
                    a.nodes.join(", ")
                );
                return Ok(Ok(a));
            }
            Rehoming::NewNodes { claims, .. } if claims.len() > 1 => {
                return Ok(Err(Why::WouldNeedNodes {
                    count: claims.len(),
                }));
            }
            Rehoming::NewNodes { moves, mut claims } => (moves, claims.remove(0)),
        };
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
        let spot_to_spot = all_spot && can_spot;
        if spot_to_spot && !self.opts.spot_to_spot {
            return Ok(Err(Why::SpotToSpotDisabled));
        }
        let cheaper = |limit: f64, spot_only: bool| {
            move |_: &str, o: &sched::Offering| {
                o.price < limit && (!spot_only || o.capacity_type == "spot")
            }
        };
        // No offering of the replacement's types is cheaper: no plan could be (the same answer
        // `plan_for` gives, without building one).
        let first = cheaper(price, spot_to_spot);
        if !self.any_offering(&claim, &first) {
            return Ok(Err(Why::NotCheaper { current: price }));
        }
        let mut plan = match self.plan_for(&claim, nodes, 0, &first) {
            Ok(p) => p,
            Err(_) => return Ok(Err(Why::NotCheaper { current: price })),
        };
        // Karpenter narrows on-demand→[spot, on-demand] to spot: the price filter assumed spot.
        if !spot_to_spot
            && plan.capacity_types.len() > 1
            && plan.capacity_types.iter().any(|c| c == "spot")
            && let Ok(p) = self.plan_for(&claim, nodes, 0, &cheaper(price, true))
        {
            plan = p;
        }
        if multi {
            // Replacing several nodes by one of their own types is just deleting the others.
            let mut limit = f64::INFINITY;
            for &i in nodes {
                if let (Some(t), Some(p)) =
                    (self.world.nodes[i].instance_type, self.candidates[i].price)
                    && plan.instance_types.iter().any(|o| o.name == t)
                {
                    limit = limit.min(p);
                }
            }
            if limit.is_finite() {
                match self.plan_for(
                    &claim,
                    nodes,
                    0,
                    &cheaper(
                        price.min(limit),
                        spot_to_spot || plan.capacity_types == ["spot"],
                    ),
                ) {
                    Ok(p) => plan = p,
                    Err(_) => return Ok(Err(Why::NotCheaper { current: price })),
                }
            }
        }
        if spot_to_spot && !multi {
            let need = self.opts.spot_to_spot_min_types;
            if plan.instance_types.len() < need {
                return Ok(Err(Why::SpotToSpotTooFewTypes {
                    have: plan.instance_types.len(),
                    need,
                }));
            }
            // Launch only the cheapest ones so the result is never immediately consolidatable.
            let pool = &self.world.pools[self.world.pool_idx[&claim.node_pool]];
            let keep = need.max(min_values_needed(&plan, pool, &self.world.types));
            if plan.instance_types.len() > keep {
                let names: BTreeSet<String> = plan
                    .instance_types
                    .iter()
                    .take(keep)
                    .map(|o| o.name.clone())
                    .collect();
                let limit = price;
                if let Ok(p) =
                    self.plan_for(&claim, nodes, 0, &move |t: &str, o: &sched::Offering| {
                        names.contains(t) && o.price < limit && o.capacity_type == "spot"
                    })
                {
                    plan = p;
                }
            }
        }
        let pool = &self.world.pools[self.world.pool_idx[&claim.node_pool]];
        if let Some(w) = min_values_violation(&plan, pool, &self.world.types) {
            return Ok(Err(w));
        }
        if plan.price >= price {
            return Ok(Err(Why::NotCheaper { current: price }));
        }
        let savings = price - plan.price;
        let percent = if price > 0.0 {
            savings / price * 100.0
        } else {
            0.0
        };
        if percent < min_savings {
            return Ok(Err(Why::BelowMinSavings {
                percent,
                min: min_savings,
            }));
        }
        let mut a = self.base_action(method, nodes, String::new());
        let repl = vec![Replacement { plan, model: claim }];
        a.savings = savings;
        let moves = self.what_if.moves(moves);
        a.moves = self.moves(moves, &repl);
        a.why = format!(
            "replace [{}] (${price:.4}/h) with one {} node at ${:.4}/h",
            a.nodes.join(", "),
            repl[0].plan.instance_type,
            repl[0].plan.price
        );
        a.replacements = repl;
        Ok(Ok(a))
    }

    fn success_note(a: &Action) -> Why {
        match a.replacements.first() {
            None => Why::CanDelete { savings: a.savings },
            Some(r) => Why::CanReplace {
                with: r.plan.instance_type.clone(),
                price: r.plan.price,
                savings: a.savings,
            },
        }
    }
}
