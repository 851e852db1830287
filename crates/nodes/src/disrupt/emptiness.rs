//! Emptiness: delete nodes with no pods to move, once their consolidateAfter has passed, as many
//! as the Empty budgets allow, most savings per unit of disruption first.

use ballast_api::nodes::DisruptionReason;

use super::candidates::savings_ratio;
use super::context::DisruptionContext;
use super::report::{Action, Method, Verdict, Why};

impl<'w, 'a> DisruptionContext<'w, 'a> {
    pub(super) fn emptiness(&mut self) -> Option<Action> {
        let m = Method::Emptiness;
        let mut order: Vec<usize> = vec![];
        for i in 0..self.candidates.len() {
            let c = &self.candidates[i];
            if c.eligible.is_err() {
                continue;
            }
            if !c.movable.is_empty() {
                let pods = c.movable.len();
                self.note(i, m, Verdict::Rejected, Why::NotEmpty { pods });
                continue;
            }
            if let Some(b) = c.blockers.first().cloned() {
                self.note(i, m, Verdict::Rejected, b);
                continue;
            }
            if let Some(u) = c.unconsolidatable.clone() {
                self.note(i, m, Verdict::Rejected, u);
                continue;
            }
            order.push(i);
        }
        order.sort_by(|&a, &b| {
            let (ca, cb) = (&self.candidates[a], &self.candidates[b]);
            savings_ratio(cb)
                .total_cmp(&savings_ratio(ca))
                .then_with(|| self.node(a).name.cmp(&self.node(b).name))
        });
        let mut chosen = vec![];
        for i in order {
            let pool = self.candidates[i].pool.unwrap_or(0);
            if self.budget_left(pool, DisruptionReason::Empty) == 0 {
                let w = self.budget_why(pool, DisruptionReason::Empty);
                self.note(i, m, Verdict::Rejected, w);
                continue;
            }
            self.take_budget(pool, DisruptionReason::Empty);
            self.note(i, m, Verdict::Possible, Why::Empty);
            chosen.push(i);
        }
        if chosen.is_empty() {
            return None;
        }
        let mut a = self.base_action(m, &chosen, String::new());
        a.why = format!(
            "delete {} empty node(s) [{}]",
            chosen.len(),
            a.nodes.join(", ")
        );
        Some(a)
    }
}
