//! Multi-node consolidation: candidates by disruption cost ascending, within the Underutilized
//! budgets and `multi_node_max_candidates`; the largest prefix of two or more that consolidates
//! (deleted, or replaced by one cheaper node), found by binary search.

use std::collections::{BTreeMap, BTreeSet};

use ballast_api::nodes::DisruptionReason;

use crate::disrupt::context::DisruptionContext;
use crate::disrupt::report::{Action, Method, Verdict, Why};
use crate::error::Error;

impl<'w, 'a> DisruptionContext<'w, 'a> {
    pub(in crate::disrupt) fn multi_node(&mut self) -> Result<Option<Action>, Error> {
        let m = Method::MultiNodeConsolidation;
        let mut cands = self.consolidation_candidates(m);
        cands.sort_by(|&a, &b| {
            self.candidates[a]
                .disruption_cost
                .total_cmp(&self.candidates[b].disruption_cost)
                .then_with(|| self.node(a).name.cmp(&self.node(b).name))
        });
        let mut budget: BTreeMap<usize, u64> = BTreeMap::new();
        let mut usable = vec![];
        for i in cands {
            let pool = self.candidates[i].pool.unwrap_or(0);
            let left = *budget
                .entry(pool)
                .or_insert_with(|| self.budget_left(pool, DisruptionReason::Underutilized));
            if left == 0 {
                let w = self.budget_why(pool, DisruptionReason::Underutilized);
                self.note(i, m, Verdict::Rejected, w);
                continue;
            }
            budget.insert(pool, left - 1);
            usable.push(i);
        }
        let max = usable.len().min(self.opts.multi_node_max_candidates);
        if max < 2 {
            for &i in &usable {
                self.note(i, m, Verdict::Rejected, Why::TooFewCandidates);
            }
            return Ok(None);
        }
        for &i in &usable[max..] {
            self.note(
                i,
                m,
                Verdict::Rejected,
                Why::NotEvaluated {
                    because: format!("beyond the first {max} candidates"),
                },
            );
        }
        // Largest prefix [0, mid] that consolidates, by binary search (at least two nodes).
        let (mut lo, mut hi) = (1usize, max - 1);
        let mut best: Option<Action> = None;
        let mut last_fail: Option<Why> = None;
        while lo <= hi {
            let mid = (lo + hi) / 2;
            let set: Vec<usize> = usable[..=mid].to_vec();
            match self.consolidate(&set, true)? {
                Ok(a) => {
                    best = Some(a);
                    lo = mid + 1;
                }
                Err(w) => {
                    last_fail = Some(w);
                    if mid == 0 {
                        break;
                    }
                    hi = mid - 1;
                }
            }
        }
        self.note_multi_node(&usable[..max], best.as_ref(), last_fail);
        Ok(best)
    }
    /// Notes for the evaluated candidates: in the chosen set, or why not.
    fn note_multi_node(
        &mut self,
        evaluated: &[usize],
        best: Option<&Action>,
        last_fail: Option<Why>,
    ) {
        let m = Method::MultiNodeConsolidation;
        match best {
            Some(a) => {
                let chosen: BTreeSet<&String> = a.nodes.iter().collect();
                for &i in evaluated {
                    if chosen.contains(&self.node(i).name) {
                        self.note(
                            i,
                            m,
                            Verdict::Possible,
                            Why::InMultiNodeSet {
                                size: a.nodes.len(),
                            },
                        );
                    } else {
                        self.note(
                            i,
                            m,
                            Verdict::Rejected,
                            Why::NotEvaluated {
                                because: format!(
                                    "outside the largest consolidatable prefix ({} nodes)",
                                    a.nodes.len()
                                ),
                            },
                        );
                    }
                }
            }
            None => {
                let w = last_fail.unwrap_or(Why::TooFewCandidates);
                for &i in evaluated {
                    self.note(
                        i,
                        m,
                        Verdict::Rejected,
                        Why::NotEvaluated {
                            because: format!(
                                "no prefix of two or more consolidates (smallest tried: {w})"
                            ),
                        },
                    );
                }
            }
        }
    }
}
