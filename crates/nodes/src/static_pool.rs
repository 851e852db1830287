//! Static NodePools (`spec.replicas`, Karpenter v1's static capacity): the pool keeps exactly
//! `replicas` nodes whatever the pods ask for.
//!
//! The decision, from the pool's NodeClaims:
//! - *active* claims are those not being deleted; claims being deleted still count against
//!   `limits.nodes` until they are gone.
//! - fewer active than `replicas`: launch the difference, but never more than `limits.nodes`
//!   leaves (the only limit a static pool has, as in Karpenter); `limited` says the limit cut it.
//! - more active than `replicas`: remove the surplus, the nodes with the fewest pods first (the
//!   least disruption), then the youngest, ties by name. Scaling down does not wait for
//!   disruption budgets; the drain still honours PodDisruptionBudgets.
//! - otherwise hold.
//!
//! This file is the decision only: the NodePool field, its scale subresource, the controller that
//! carries the decision out and the consolidation exclusion are still to come.

use jiff::Timestamp;

/// One NodeClaim of a static pool, as the decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticClaim {
    pub name: String,
    /// Pods bound to its node (0 before it registers).
    pub pods: usize,
    pub created: Timestamp,
    /// Has a deletion timestamp.
    pub deleting: bool,
}

/// What a static pool needs now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaticDecision {
    /// As many active claims as replicas (or a limit allows no more).
    Hold,
    /// Create `count` NodeClaims; `limited` when `limits.nodes` cut the count below the shortfall.
    Launch { count: usize, limited: bool },
    /// Delete these NodeClaims, in this order.
    Remove { claims: Vec<String> },
}

/// The decision for a pool of `replicas` with `limit_nodes` (its `limits.nodes`, if any) and
/// these claims. Deterministic: the order of `claims` does not matter.
pub fn decide_static(
    replicas: u32,
    limit_nodes: Option<u64>,
    claims: &[StaticClaim],
) -> StaticDecision {
    let want = replicas as usize;
    let active: Vec<&StaticClaim> = claims.iter().filter(|c| !c.deleting).collect();
    if active.len() < want {
        let shortfall = want - active.len();
        let room = limit_nodes.map_or(usize::MAX, |l| {
            usize::try_from(l)
                .unwrap_or(usize::MAX)
                .saturating_sub(claims.len())
        });
        let count = shortfall.min(room);
        if count == 0 {
            return StaticDecision::Hold;
        }
        return StaticDecision::Launch {
            count,
            limited: count < shortfall,
        };
    }
    if active.len() > want {
        let mut order = active;
        order.sort_by(|a, b| {
            a.pods
                .cmp(&b.pods)
                .then_with(|| b.created.cmp(&a.created))
                .then_with(|| a.name.cmp(&b.name))
        });
        let surplus = order.len() - want;
        return StaticDecision::Remove {
            claims: order
                .into_iter()
                .take(surplus)
                .map(|c| c.name.clone())
                .collect(),
        };
    }
    StaticDecision::Hold
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(name: &str, pods: usize, created_s: i64, deleting: bool) -> StaticClaim {
        StaticClaim {
            name: name.into(),
            pods,
            created: Timestamp::from_second(created_s).expect("time"),
            deleting,
        }
    }

    fn remove(names: &[&str]) -> StaticDecision {
        StaticDecision::Remove {
            claims: names.iter().map(|n| n.to_string()).collect(),
        }
    }

    /// (name, replicas, limits.nodes, claims, decision)
    type Case = (
        &'static str,
        u32,
        Option<u64>,
        Vec<StaticClaim>,
        StaticDecision,
    );

    #[test]
    fn keeps_exactly_replicas() {
        let a = claim("a", 3, 100, false);
        let b = claim("b", 0, 200, false);
        let c = claim("c", 0, 300, false);
        let d = claim("d", 1, 50, false);
        let gone = claim("g", 0, 10, true);
        let cases: Vec<Case> = vec![
            (
                "empty pool launches all",
                3,
                None,
                vec![],
                StaticDecision::Launch {
                    count: 3,
                    limited: false,
                },
            ),
            (
                "at replicas holds",
                2,
                None,
                vec![a.clone(), b.clone()],
                StaticDecision::Hold,
            ),
            (
                "deleting claims do not count as active",
                2,
                None,
                vec![a.clone(), gone.clone()],
                StaticDecision::Launch {
                    count: 1,
                    limited: false,
                },
            ),
            (
                "limits.nodes counts deleting claims and cuts the launch",
                4,
                Some(3),
                vec![a.clone(), gone.clone()],
                StaticDecision::Launch {
                    count: 1,
                    limited: true,
                },
            ),
            (
                "limit reached holds",
                4,
                Some(2),
                vec![a.clone(), gone.clone()],
                StaticDecision::Hold,
            ),
            (
                "scale down removes fewest pods first, then youngest",
                1,
                None,
                vec![a.clone(), b.clone(), c.clone(), d.clone()],
                remove(&["c", "b", "d"]),
            ),
            (
                "scale to zero removes every active claim",
                0,
                None,
                vec![d.clone(), a.clone(), gone.clone()],
                remove(&["d", "a"]),
            ),
            (
                "ties break by name",
                1,
                None,
                vec![claim("y", 0, 5, false), claim("x", 0, 5, false)],
                remove(&["x"]),
            ),
        ];
        for (name, replicas, limit, claims, want) in cases {
            assert_eq!(decide_static(replicas, limit, &claims), want, "{name}");
            let mut reversed = claims.clone();
            reversed.reverse();
            assert_eq!(
                decide_static(replicas, limit, &reversed),
                want,
                "{name} (order)"
            );
        }
    }
}
