//! Expiration: delete every node older than its NodePool's expireAfter, initialized or not.
//! Forceful: no budget, no blockers; the evicted pods are provisioned again, and drains give up
//! at the earliest terminationGracePeriod.

use super::context::{DisruptionContext, plus};
use super::report::{Action, Method, Verdict, Why};

impl<'w, 'a> DisruptionContext<'w, 'a> {
    pub(super) fn expiration(&mut self) -> Option<Action> {
        let m = Method::Expiration;
        let mut chosen = vec![];
        for i in 0..self.candidates.len() {
            let c = &self.candidates[i];
            let expirable = match &c.eligible {
                Ok(()) => true,
                Err(Why::NotInitialized) => true,
                Err(_) => false,
            };
            if !expirable {
                continue;
            }
            match c.expired {
                Some(age) => {
                    self.note(i, m, Verdict::Possible, Why::Expired { age_seconds: age });
                    chosen.push(i);
                }
                None => {
                    let w = Why::NotExpired {
                        remaining_seconds: c.expires_in,
                    };
                    self.note(i, m, Verdict::Rejected, w);
                }
            }
        }
        if chosen.is_empty() {
            return None;
        }
        let mut a = self.base_action(m, &chosen, String::new());
        a.why = format!(
            "delete {} expired node(s) [{}] (forceful: no budget, pods are provisioned again)",
            chosen.len(),
            a.nodes.join(", ")
        );
        a.drain_deadline = chosen
            .iter()
            .filter_map(|&i| self.candidates[i].grace)
            .map(|g| plus(self.now, g))
            .min();
        Some(a)
    }
}
