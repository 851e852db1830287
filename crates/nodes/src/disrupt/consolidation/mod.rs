//! Consolidation: remove nodes whose pods fit elsewhere, or replace them with one cheaper node.
//! The rules on one what-if placement live here ([`DisruptionContext::consolidate`]): delete when
//! every pod fits on the other nodes, replace when exactly one strictly cheaper node holds the
//! rest, never one node by many; spot-to-spot and minSavingsPercent apply. [`multi`] looks for
//! the largest set of nodes to consolidate together, [`single`] at one node at a time.

mod multi;
mod single;

use super::context::DisruptionContext;
use super::replacement::min_values_violation;
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
        let plan = match self.replacement_plan(nodes, &claim, price, multi) {
            Ok(p) => p,
            Err(w) => return Ok(Err(w)),
        };
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
