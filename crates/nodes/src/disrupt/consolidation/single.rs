//! Single-node consolidation: candidates by savings ratio (price per unit of rescheduling cost)
//! descending; the first that can be deleted or replaced by one cheaper node acts, within the
//! Underutilized budget.

use ballast_api::nodes::DisruptionReason;

use crate::disrupt::candidates::savings_ratio;
use crate::disrupt::context::DisruptionContext;
use crate::disrupt::report::{Action, Method, Verdict, Why};
use crate::error::Error;

impl<'w, 'a> DisruptionContext<'w, 'a> {
    pub(in crate::disrupt) fn single_node(
        &mut self,
        already: bool,
    ) -> Result<Option<Action>, Error> {
        let m = Method::SingleNodeConsolidation;
        let mut cands = self.consolidation_candidates(m);
        cands.sort_by(|&a, &b| {
            savings_ratio(&self.candidates[b])
                .total_cmp(&savings_ratio(&self.candidates[a]))
                .then_with(|| self.node(a).name.cmp(&self.node(b).name))
        });
        let mut found: Option<Action> = None;
        for i in cands {
            if (found.is_some() || already) && !self.opts.explain_all {
                self.note(
                    i,
                    m,
                    Verdict::Rejected,
                    Why::NotEvaluated {
                        because: "another node was chosen first".into(),
                    },
                );
                continue;
            }
            let pool = self.candidates[i].pool.unwrap_or(0);
            if self.budget_left(pool, DisruptionReason::Underutilized) == 0 {
                let w = self.budget_why(pool, DisruptionReason::Underutilized);
                self.note(i, m, Verdict::Rejected, w);
                continue;
            }
            match self.consolidate(&[i], false)? {
                Ok(a) => {
                    self.note(i, m, Verdict::Possible, Self::success_note(&a));
                    if found.is_none() {
                        found = Some(a);
                    }
                }
                Err(w) => self.note(i, m, Verdict::Rejected, w),
            }
        }
        Ok(found)
    }
}
