//! Disruption budgets applied to one pass: how many nodes each NodePool may still lose for each
//! reason (the budget in force, from [`crate::budget`], less the nodes already disrupting), and
//! the methods taking from it.

use ballast_api::nodes::{self as api, DisruptionReason};
use ballast_scheduling as sched;

use super::context::DisruptionContext;
use super::report::{BudgetReport, Why};
use crate::budget;
use crate::world::REASONS;

fn reason_idx(r: DisruptionReason) -> usize {
    REASONS.iter().position(|x| *x == r).unwrap_or(0)
}

impl<'w, 'a> DisruptionContext<'w, 'a> {
    pub(super) fn build_budgets(&mut self) -> Vec<BudgetReport> {
        let snap = self.world.snap;
        let mut counts = vec![(0usize, 0usize); self.world.pools.len()];
        for (i, n) in snap.nodes.iter().enumerate() {
            let Some(p) = self.world.nodes[i].pool else {
                continue;
            };
            if !n.initialized {
                continue;
            }
            counts[p].0 += 1;
            if !n.ready
                || n.deleting
                || n.taints
                    .iter()
                    .any(|t| sched::aliases::same_key(&t.key, api::labels::DISRUPTED_TAINT))
            {
                counts[p].1 += 1;
            }
        }
        let mut out = vec![];
        for (pi, pool) in self.world.pools.iter().enumerate() {
            for (ri, &reason) in REASONS.iter().enumerate() {
                let (allowed, text) =
                    budget::allowed_disruptions(&pool.budgets, self.now, counts[pi].0, reason);
                let available = allowed.saturating_sub(counts[pi].1 as u64);
                self.budget.insert((pi, ri), available);
                out.push(BudgetReport {
                    node_pool: pool.model.name.clone(),
                    reason,
                    nodes: counts[pi].0,
                    allowed: (allowed != u64::MAX).then_some(allowed),
                    disrupting: counts[pi].1,
                    available,
                    budget: text,
                });
            }
        }
        out
    }

    pub(super) fn budget_left(&self, pool: usize, reason: DisruptionReason) -> u64 {
        self.budget
            .get(&(pool, reason_idx(reason)))
            .copied()
            .unwrap_or(0)
    }

    pub(super) fn take_budget(&mut self, pool: usize, reason: DisruptionReason) {
        if let Some(b) = self.budget.get_mut(&(pool, reason_idx(reason))) {
            *b = b.saturating_sub(1);
        }
    }

    pub(super) fn budget_why(&self, pool: usize, reason: DisruptionReason) -> Why {
        let text =
            budget::allowed_disruptions(&self.world.pools[pool].budgets, self.now, 0, reason).1;
        Why::Budget {
            reason,
            budget: text,
        }
    }
}
