//! Drift: replace a node that no longer matches its NodePool (template hash, a Drifted condition
//! from the cloud provider, node class, requirements, labels, or an instance type or offering no
//! longer offered), one node per pass, empty nodes first then oldest, within the Drifted budget.
//! A terminationGracePeriod lets drift go ahead despite blockers (they only delay the drain).

use ballast_api::nodes::{self as api, DisruptionReason};

use super::context::{DisruptionContext, plus};
use super::report::{Action, Method, Replacement, Verdict, Why};
use super::what_if::{Moves, Rehoming};
use crate::adapt;
use crate::error::Error;
use crate::world::PoolInfo;

impl<'w, 'a> DisruptionContext<'w, 'a> {
    pub(super) fn drift(&mut self) -> Result<Option<Action>, Error> {
        let m = Method::Drift;
        let mut found: Option<Action> = None;
        for i in self.drifted_in_order() {
            let drift = self.candidates[i].drifted.clone().unwrap_or_default();
            if found.is_some() && !self.opts.explain_all {
                self.note(
                    i,
                    m,
                    Verdict::Rejected,
                    Why::NotEvaluated {
                        because: "another drifted node goes first".into(),
                    },
                );
                continue;
            }
            let pool = self.candidates[i].pool.unwrap_or(0);
            if self.budget_left(pool, DisruptionReason::Drifted) == 0 {
                let w = self.budget_why(pool, DisruptionReason::Drifted);
                self.note(i, m, Verdict::Rejected, w);
                continue;
            }
            // Drift is eventual: with a terminationGracePeriod, blockers only delay the drain.
            let grace = self.candidates[i].grace;
            if let Some(b) = self.candidates[i].blockers.first().cloned() {
                if grace.is_none() {
                    self.note(i, m, Verdict::Rejected, b);
                    continue;
                }
                self.note(
                    i,
                    m,
                    Verdict::Possible,
                    Why::BlockersOverriddenByGracePeriod,
                );
            }
            let Some((moves, replacements)) = self.drift_replacement(i)? else {
                continue;
            };
            self.note(i, m, Verdict::Possible, Why::Drifted { why: drift.clone() });
            if found.is_none() {
                found = Some(self.drift_action(i, &drift, moves, replacements));
            }
        }
        Ok(found)
    }

    /// Eligible drifted nodes, empty ones first (cheapest to replace), then oldest first; the
    /// others are noted as not drifted.
    fn drifted_in_order(&mut self) -> Vec<usize> {
        let m = Method::Drift;
        let mut order = vec![];
        for i in 0..self.candidates.len() {
            if self.candidates[i].eligible.is_err() {
                continue;
            }
            match self.candidates[i].drifted.clone() {
                None => self.note(i, m, Verdict::Rejected, Why::NotDrifted),
                Some(_) => order.push(i),
            }
        }
        order.sort_by(|&a, &b| {
            let (ca, cb) = (&self.candidates[a], &self.candidates[b]);
            (!ca.movable.is_empty())
                .cmp(&!cb.movable.is_empty())
                .then_with(|| {
                    self.world.nodes[a]
                        .created
                        .cmp(&self.world.nodes[b].created)
                })
                .then_with(|| self.node(a).name.cmp(&self.node(b).name))
        });
        order
    }

    /// Where drifted node `i`'s pods would go and the new nodes they need, at any price; None
    /// (with a note why) when they cannot go.
    fn drift_replacement(&mut self, i: usize) -> Result<Option<(Moves, Vec<Replacement>)>, Error> {
        let m = Method::Drift;
        if let Some(w) = self.strict_pdb(&[i]) {
            self.note(i, m, Verdict::Rejected, w);
            return Ok(None);
        }
        let outcome = self.what_if.evaluate(&[i], None)?;
        let (moves, claims) = match outcome {
            Rehoming::Unplaceable { pod, why } => {
                self.note(i, m, Verdict::Rejected, Why::PodsDoNotFit { pod, why });
                return Ok(None);
            }
            Rehoming::Fits { moves } => (moves, vec![]),
            Rehoming::NewNodes { moves, claims } => (moves, claims),
            // Only given for a price limit, and drift asks with none.
            Rehoming::NoCheaperNode => {
                let current = self.candidates[i].price.unwrap_or(0.0);
                self.note(i, m, Verdict::Rejected, Why::NoCheaperNodeHolds { current });
                return Ok(None);
            }
        };
        let mut replacements = vec![];
        let mut failed = None;
        for (k, c) in claims.iter().enumerate() {
            match self.plan_for(c, &[i], k, &|_, _| true) {
                Ok(p) => replacements.push(Replacement {
                    plan: p,
                    model: c.clone(),
                }),
                Err(e) => failed = Some(e),
            }
        }
        if let Some(e) = failed {
            self.note(
                i,
                m,
                Verdict::Rejected,
                Why::Error {
                    message: e.to_string(),
                },
            );
            return Ok(None);
        }
        Ok(Some((moves, replacements)))
    }

    /// Replace drifted node `i` (`drift` says why) by `replacements`.
    fn drift_action(
        &self,
        i: usize,
        drift: &str,
        moves: Moves,
        replacements: Vec<Replacement>,
    ) -> Action {
        let mut a = self.base_action(Method::Drift, &[i], String::new());
        a.savings = a.removed_price - replacements.iter().map(|r| r.plan.price).sum::<f64>();
        let moves = self.what_if.moves(moves);
        a.moves = self.moves(moves, &replacements);
        a.why = format!(
            "replace drifted node {} ({drift}) with {} new node(s)",
            a.nodes[0],
            replacements.len()
        );
        a.replacements = replacements;
        a.drain_deadline = self.candidates[i].grace.map(|g| plus(self.now, g));
        a
    }

    pub(super) fn drift_reason(&self, i: usize, pool: &PoolInfo) -> Option<String> {
        let snap = self.world.snap;
        let n = self.node(i);
        let info = &self.world.nodes[i];
        let claim = info.claim.map(|c| &snap.node_claims[c]);
        if let Some(c) = claim {
            if let Some(h) = c
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(api::labels::NODEPOOL_HASH))
                && *h != pool.model.hash
            {
                return Some(format!(
                    "NodePool template changed (hash {h} → {})",
                    pool.model.hash
                ));
            }
            if let Some(d) = c.status.as_ref().and_then(|s| {
                s.conditions
                    .iter()
                    .find(|c| c.type_ == "Drifted" && c.status == "True")
            }) {
                return Some(format!("{} ({})", d.reason, d.message));
            }
            if c.spec.node_class_ref != pool.api.spec.template.spec.node_class_ref {
                return Some("node class reference changed".into());
            }
        }
        // requirement_holds reads either spelling of a key, so the node's own labels do.
        for r in &pool.model.model.requirements {
            let holds = match info.on_node.get(&r.key) {
                Some(v) => adapt::requirement_holds_for(r, v),
                None => adapt::requirement_holds(r, &n.labels),
            };
            debug_assert_eq!(holds, adapt::requirement_holds(r, &n.labels));
            if !holds {
                return Some(format!(
                    "no longer matches requirement {} {:?} {:?}",
                    r.key, r.operator, r.values
                ));
            }
        }
        for (k, v) in &pool.model.model.labels {
            if adapt::model_label(&n.labels, k).is_some_and(|x| x != v) {
                return Some(format!("template label {k}={v} differs"));
            }
        }
        // World resolved the type and its offering.
        if let Some(t) = info.instance_type {
            if info.type_index.is_none() {
                return Some(format!("instance type {t} no longer offered"));
            }
            if let (Some(z), Some(c), None) = (info.zone, info.capacity_type, info.offering) {
                return Some(format!("no {c} offering of {t} in {z} any more"));
            }
        }
        None
    }
}
