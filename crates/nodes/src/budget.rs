//! Disruption budgets: how many of a NodePool's nodes may be disrupting at once, per reason.
//!
//! A budget is a count (`5`) or a percent of the pool's nodes (`10%`, rounded up like a PDB's
//! maxUnavailable), optionally active only during a window that opens at each hit of a UTC cron
//! schedule and stays open for `duration`, optionally limited to some reasons. The most restrictive
//! active budget that applies to a reason wins; a pool with no budget gets `10%`.

use ballast_api::common::parse_duration_seconds;
use ballast_api::nodes::{self as api, DisruptionReason};
use ballast_api::validate::parse_cron;
use jiff::{Timestamp, tz::TimeZone};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ObjectKind};

/// How many nodes a budget lets go.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Amount {
    Count(u64),
    /// Percent of the pool's nodes, rounded up.
    Percent(u32),
}

/// A parsed budget.
#[derive(Debug, Clone)]
pub struct Budget {
    pub amount: Amount,
    pub schedule: Option<(String, croner::Cron)>,
    pub duration_seconds: f64,
    /// Empty: every reason.
    pub reasons: Vec<DisruptionReason>,
    /// Text of the budget as written, for explanations.
    pub text: String,
}

impl Budget {
    /// Karpenter's default: 10% of the nodes, always, for every reason.
    pub fn default_budget() -> Budget {
        Budget {
            amount: Amount::Percent(10),
            schedule: None,
            duration_seconds: 0.0,
            reasons: vec![],
            text: "10% (default)".into(),
        }
    }

    pub fn parse(b: &api::Budget, pool: &str, i: usize) -> Result<Budget, Error> {
        let field = |f: &str| format!("spec.disruption.budgets[{i}].{f}");
        let e = |f: &str, why: String| Error::new(ObjectKind::NodePool, pool, field(f), why);
        let nodes = b.nodes.trim();
        let amount = if let Some(p) = nodes.strip_suffix('%') {
            match p.parse::<u32>() {
                Ok(v) if v <= 100 => Amount::Percent(v),
                _ => {
                    return Err(e(
                        "nodes",
                        format!("{nodes:?} is not a percent between 0% and 100%"),
                    ));
                }
            }
        } else {
            Amount::Count(
                nodes
                    .parse::<u64>()
                    .map_err(|_| e("nodes", format!("{nodes:?} is not a count or a percent")))?,
            )
        };
        let schedule = match (&b.schedule, &b.duration) {
            (None, None) => None,
            (Some(s), Some(_)) => Some((s.clone(), parse_cron(s).map_err(|w| e("schedule", w))?)),
            (Some(_), None) => return Err(e("duration", "a schedule needs a duration".into())),
            (None, Some(_)) => return Err(e("schedule", "a duration needs a schedule".into())),
        };
        let duration_seconds = match &b.duration {
            None => 0.0,
            Some(d) => parse_duration_seconds(d).map_err(|w| e("duration", w.to_string()))?,
        };
        let mut text = nodes.to_string();
        if let (Some(s), Some(d)) = (&b.schedule, &b.duration) {
            text.push_str(&format!(" during {s:?} for {d}"));
        }
        if !b.reasons.is_empty() {
            text.push_str(&format!(" for {:?}", b.reasons));
        }
        Ok(Budget {
            amount,
            schedule,
            duration_seconds,
            reasons: b.reasons.clone(),
            text,
        })
    }

    /// Whether the window is open at `now`: some schedule hit lies in `(now - duration, now]`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        let Some((_, cron)) = &self.schedule else {
            return true;
        };
        let Ok(start) = now.checked_sub(jiff::SignedDuration::from_secs_f64(
            self.duration_seconds.max(0.0),
        )) else {
            return false;
        };
        let from = start.to_zoned(TimeZone::UTC).datetime();
        let to = now.to_zoned(TimeZone::UTC).datetime();
        // Next hit strictly after the start of the look-back; active when it is not after now.
        match cron.find_next_occurrence(&from, false) {
            Ok(next) => next <= to,
            Err(_) => false,
        }
    }

    pub fn applies_to(&self, reason: DisruptionReason) -> bool {
        self.reasons.is_empty() || self.reasons.contains(&reason)
    }

    /// Nodes this budget allows at `now` for a pool of `nodes` nodes (None: not active).
    pub fn allowed(&self, now: Timestamp, nodes: usize) -> Option<u64> {
        if !self.is_active(now) {
            return None;
        }
        Some(match self.amount {
            Amount::Count(c) => c,
            Amount::Percent(p) => (nodes as u64 * u64::from(p)).div_ceil(100),
        })
    }
}

/// The budget that governs a reason: the smallest allowance among the active budgets for it.
/// Returns (allowed, the winning budget's text); `u64::MAX` when no budget is active.
pub fn allowed_disruptions(
    budgets: &[Budget],
    now: Timestamp,
    nodes: usize,
    reason: DisruptionReason,
) -> (u64, String) {
    let mut best = (u64::MAX, "no active budget".to_string());
    for b in budgets.iter().filter(|b| b.applies_to(reason)) {
        if let Some(a) = b.allowed(now, nodes)
            && a < best.0
        {
            best = (a, b.text.clone());
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(nodes: &str, schedule: Option<&str>, duration: Option<&str>) -> Budget {
        let b = api::Budget {
            nodes: nodes.into(),
            schedule: schedule.map(Into::into),
            duration: duration.map(Into::into),
            reasons: vec![],
        };
        Budget::parse(&b, "p", 0).unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn percent_rounds_up() {
        let now = at("2025-01-01T12:00:00Z");
        assert_eq!(budget("10%", None, None).allowed(now, 5), Some(1));
        assert_eq!(budget("10%", None, None).allowed(now, 10), Some(1));
        assert_eq!(budget("10%", None, None).allowed(now, 11), Some(2));
        assert_eq!(budget("0%", None, None).allowed(now, 100), Some(0));
        assert_eq!(budget("100%", None, None).allowed(now, 7), Some(7));
        assert_eq!(budget("3", None, None).allowed(now, 100), Some(3));
        assert_eq!(budget("10%", None, None).allowed(now, 0), Some(0));
    }

    #[test]
    fn schedule_window() {
        // Opens every day at 09:00 UTC for 8 hours.
        let b = budget("0", Some("0 9 * * *"), Some("8h"));
        assert!(!b.is_active(at("2025-01-01T08:59:59Z")));
        assert!(b.is_active(at("2025-01-01T09:00:00Z")));
        assert!(b.is_active(at("2025-01-01T16:59:59Z")));
        assert!(!b.is_active(at("2025-01-01T17:00:01Z")));
        assert_eq!(b.allowed(at("2025-01-01T08:00:00Z"), 10), None);
        assert_eq!(b.allowed(at("2025-01-01T10:00:00Z"), 10), Some(0));
    }

    #[test]
    fn most_restrictive_active_wins() {
        let now = at("2025-01-01T10:00:00Z");
        let bs = vec![
            budget("50%", None, None),
            budget("2", Some("0 9 * * *"), Some("2h")),
            budget("0", Some("0 20 * * *"), Some("1h")),
        ];
        assert_eq!(
            allowed_disruptions(&bs, now, 10, DisruptionReason::Underutilized).0,
            2
        );
        assert_eq!(
            allowed_disruptions(&bs, at("2025-01-01T20:30:00Z"), 10, DisruptionReason::Empty).0,
            0
        );
        assert_eq!(
            allowed_disruptions(&bs, at("2025-01-01T15:00:00Z"), 10, DisruptionReason::Empty).0,
            5
        );
    }

    #[test]
    fn reasons_filter() {
        let now = at("2025-01-01T10:00:00Z");
        let mut drift_only = budget("0", None, None);
        drift_only.reasons = vec![DisruptionReason::Drifted];
        let bs = vec![budget("10%", None, None), drift_only];
        assert_eq!(
            allowed_disruptions(&bs, now, 20, DisruptionReason::Drifted).0,
            0
        );
        assert_eq!(
            allowed_disruptions(&bs, now, 20, DisruptionReason::Empty).0,
            2
        );
    }

    #[test]
    fn bad_budgets_name_the_field() {
        let b = api::Budget {
            nodes: "lots".into(),
            ..Default::default()
        };
        let e = Budget::parse(&b, "pool", 3).unwrap_err();
        assert_eq!(e.field, "spec.disruption.budgets[3].nodes");
        let b = api::Budget {
            nodes: "1".into(),
            schedule: Some("not cron".into()),
            duration: Some("1h".into()),
            reasons: vec![],
        };
        assert!(
            Budget::parse(&b, "pool", 0)
                .unwrap_err()
                .field
                .ends_with("schedule")
        );
    }
}
