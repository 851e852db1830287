//! Which pods of one workload the updater updates this pass (`Recreate`: evicts;
//! `InPlaceOrRecreate`: resizes first), in order, and why each other pod is left alone.
//!
//! A pod qualifies (the VPA updater's rules) when one of its controlled requests
//! - lies outside the recommendation's [lowerBound, upperBound] — always;
//! - differs from the target by at least [`MIN_CHANGE`] and the pod has lived [`MIN_AGE_SECONDS`];
//! - or the container was OOM-killed within [`OOM_WINDOW_SECONDS`] of its start and the memory
//!   target is above the request.
//!
//! `evictionRequirements` then may veto a pod whose change goes the wrong way. Qualified pods are
//! taken by priority (out-of-bounds first, then the largest relative change), at most
//! `max(1, ⌊replicas × tolerance⌋)` per pass, never more than the PDB allows, and none when fewer
//! than `minReplicas` pods are live.
//!
//! With in-place resizes ([`choose_with`]), a pod whose resize is under way is left alone, and
//! one whose resize is overdue ([`super::fallback`]) qualifies first, whatever its requests.

use std::collections::BTreeMap;

use ballast_api::vertical::{ChangeRequirement, EvictionRequirement};

use super::fallback::ResizeState;
use crate::policy::Resource;

/// Relative change of a request that makes an old pod worth updating.
pub const MIN_CHANGE: f64 = 0.1;
/// Age after which a pod is updated for a [`MIN_CHANGE`] (12 h).
pub const MIN_AGE_SECONDS: i64 = 12 * 3600;
/// An OOM kill this soon after a container's start marks its pod for update (10 min).
pub const OOM_WINDOW_SECONDS: i64 = 600;
/// Share of a workload's replicas updated per pass by default.
pub const DEFAULT_TOLERANCE: f64 = 0.5;
/// Fewest live replicas for any update, when the object sets none.
pub const DEFAULT_MIN_REPLICAS: i32 = 2;

/// One resource of a container's recommendation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub target: f64,
    pub lower: f64,
    pub upper: f64,
}

/// One container of a live pod: its current requests and its recommendation.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerView {
    pub name: String,
    /// (resource, current request or None, recommendation or None when not controlled).
    pub resources: Vec<(Resource, Option<f64>, Option<Bounds>)>,
    /// Unix seconds of the last OOM kill and of the start it ended, if any.
    pub last_oom: Option<(i64, i64)>,
}

/// One live pod of the workload.
#[derive(Debug, Clone, PartialEq)]
pub struct PodView {
    pub name: String,
    /// Unix second it started.
    pub started: i64,
    pub containers: Vec<ContainerView>,
}

/// The workload-wide limits of a pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// `updatePolicy.minReplicas` (default [`DEFAULT_MIN_REPLICAS`]).
    pub min_replicas: i32,
    /// Share of replicas per pass ([`DEFAULT_TOLERANCE`]).
    pub tolerance: f64,
    /// Disruptions the PDBs covering these pods allow now (None: no PDB).
    pub pdb_allowed: Option<u32>,
    pub requirements: Vec<EvictionRequirement>,
}

/// Why a pod is updated or left alone.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub pod: String,
    pub update: bool,
    pub reason: String,
    /// Ordering key: out of bounds first, then the largest relative change.
    priority: (bool, f64),
}

/// The pods to update this pass, in order, then every other pod with why not.
pub fn choose(pods: &[PodView], limits: &Limits, now: i64) -> Vec<Choice> {
    choose_with(pods, &BTreeMap::new(), limits, now)
}

/// [`choose`] with the state of each pod's in-place resize (by pod name; absent: idle). A
/// waiting pod is not updated; an overdue one is updated first (the caller evicts it).
pub fn choose_with(
    pods: &[PodView],
    resizes: &BTreeMap<String, ResizeState>,
    limits: &Limits,
    now: i64,
) -> Vec<Choice> {
    let mut choices: Vec<Choice> = pods
        .iter()
        .map(|p| match resizes.get(&p.name) {
            Some(ResizeState::Waiting(why)) => Choice {
                pod: p.name.clone(),
                update: false,
                reason: format!("in-place resize under way: {why}"),
                priority: (false, 0.0),
            },
            Some(ResizeState::Overdue(why)) => Choice {
                pod: p.name.clone(),
                update: true,
                reason: why.clone(),
                priority: (true, f64::INFINITY),
            },
            _ => qualify(p, limits, now),
        })
        .collect();
    choices.sort_by(|a, b| {
        (b.update, b.priority.0)
            .cmp(&(a.update, a.priority.0))
            .then(b.priority.1.total_cmp(&a.priority.1))
            .then(a.pod.cmp(&b.pod))
    });
    let live = pods.len();
    let mut budget = if (live as i64) < i64::from(limits.min_replicas) {
        0
    } else {
        ((live as f64 * limits.tolerance).floor() as usize).max(1)
    };
    let pdb = limits.pdb_allowed.map_or(usize::MAX, |a| a as usize);
    budget = budget.min(pdb);
    for c in choices.iter_mut().filter(|c| c.update) {
        if budget == 0 {
            c.update = false;
            c.reason = if (live as i64) < i64::from(limits.min_replicas) {
                format!(
                    "{} (held: {live} live pods, minReplicas {})",
                    c.reason, limits.min_replicas
                )
            } else {
                format!("{} (held: this pass's eviction budget is spent)", c.reason)
            };
            continue;
        }
        budget -= 1;
    }
    choices
}

fn qualify(pod: &PodView, limits: &Limits, now: i64) -> Choice {
    let mut out_of_bounds = None;
    let mut largest = (0.0, String::new());
    let mut oom = None;
    for c in &pod.containers {
        for &(resource, request, bounds) in &c.resources {
            let Some(b) = bounds else { continue };
            let request = request.unwrap_or(0.0);
            if !vetoed(resource, request, b.target, &limits.requirements) {
                if request < b.lower || request > b.upper {
                    out_of_bounds.get_or_insert(format!(
                        "{}: {} request outside the recommended bounds",
                        c.name,
                        resource.name()
                    ));
                }
                let change = relative_change(request, b.target);
                if change > largest.0 {
                    largest = (change, format!("{}: {}", c.name, resource.name()));
                }
            }
            if resource == Resource::Memory
                && b.target > request
                && c.last_oom
                    .is_some_and(|(at, start)| at - start <= OOM_WINDOW_SECONDS)
            {
                oom.get_or_insert(format!("{}: OOM-killed soon after its start", c.name));
            }
        }
    }
    let old = now - pod.started >= MIN_AGE_SECONDS;
    let outside = out_of_bounds.is_some();
    let (update, reason) = match (out_of_bounds, oom) {
        (Some(r), _) => (true, r),
        (None, Some(r)) => (true, r),
        (None, None) if old && largest.0 >= MIN_CHANGE => (
            true,
            format!(
                "{} request {:.0}% off the target after 12 h",
                largest.1,
                largest.0 * 100.0
            ),
        ),
        (None, None) => (false, "requests within bounds".to_owned()),
    };
    Choice {
        pod: pod.name.clone(),
        update,
        priority: (outside, largest.0),
        reason,
    }
}

/// `|target − request| ÷ request` (a missing request counts as an infinite change).
fn relative_change(request: f64, target: f64) -> f64 {
    if request <= 0.0 {
        return f64::INFINITY;
    }
    (target - request).abs() / request
}

/// True when an `evictionRequirement` on `resource` forbids this direction of change.
fn vetoed(
    resource: Resource,
    request: f64,
    target: f64,
    requirements: &[EvictionRequirement],
) -> bool {
    requirements.iter().any(|r| {
        r.resources.iter().any(|n| n == resource.name())
            && match r.change_requirement {
                ChangeRequirement::TargetHigherThanRequests => target <= request,
                ChangeRequirement::TargetLowerThanRequests => target >= request,
            }
    })
}

#[cfg(test)]
#[path = "eviction_tests.rs"]
mod tests;
