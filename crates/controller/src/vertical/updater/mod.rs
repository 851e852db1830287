//! The updater: applies recommendations to running pods, every [`UpdaterConfig::interval`] (1 m,
//! the VPA updater's loop), for each `VerticalAutoscaler` whose `updateMode` is `Recreate` (or its
//! alias `Auto`, and the default when unset) or `InPlaceOrRecreate`. Only the leader runs it (it
//! runs inside the recommender's loop, which a standby does not enter).
//!
//! Per object, from the caches and the recommender's index (selector and recommendation, the very
//! ones the webhook sizes new pods from):
//!
//! 1. the target's live pods: selected, `Running`, not being deleted;
//! 2. each as a `PodView` (`apply::view`), the PDBs over them ([`pdb`]: the smallest
//!    `disruptionsAllowed`), and with `InPlaceOrRecreate` each pod's resize state from its
//!    `PodResizePending`/`PodResizeInProgress` conditions (`apply::fallback`);
//! 3. `apply::eviction::choose_with` picks the pods (minReplicas, tolerance, PDB budget);
//! 4. `Recreate`: each is evicted ([`evict`]); `InPlaceOrRecreate`: each is resized ([`resize`]),
//!    and evicted instead when the API server refuses the resize or its resize is overdue —
//!    [`object`].
//!
//! Every action gets an event on the object (`Evicted`, `Resized`; warnings `EvictionBlocked`,
//! `EvictionFailed`, `ResizeFailed`) and a count in the metrics (`evictions`, `resizes`).

pub mod evict;
mod object;
pub mod pdb;
pub mod resize;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ballast_api::vertical::{UpdateMode, VerticalAutoscaler};
use ballast_vertical::apply::eviction::DEFAULT_TOLERANCE;
use ballast_vertical::apply::fallback::Timeouts;
use k8s_openapi::api::core::v1::{LimitRange, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::runtime::reflector::Store;

use super::VerticalRecommender;

/// Settings of the updater.
#[derive(Clone, Debug, PartialEq)]
pub struct UpdaterConfig {
    /// Time between two passes over every autoscaler.
    pub interval: Duration,
    /// When an in-place resize pending or in progress falls back to eviction (VPA's 5 min, 1 h).
    pub timeouts: Timeouts,
    /// Share of a workload's live pods updated per pass (at least one).
    pub tolerance: f64,
}

impl Default for UpdaterConfig {
    fn default() -> Self {
        UpdaterConfig {
            interval: Duration::from_secs(60),
            timeouts: Timeouts::default(),
            tolerance: DEFAULT_TOLERANCE,
        }
    }
}

/// The caches one updater pass reads.
pub(super) struct Caches<'a> {
    pub autoscalers: &'a Store<VerticalAutoscaler>,
    pub pods: &'a Store<Pod>,
    pub budgets: &'a Store<PodDisruptionBudget>,
    pub limit_ranges: &'a Store<LimitRange>,
}

/// How an object's pods are updated, if at all.
fn in_place(va: &VerticalAutoscaler) -> Option<bool> {
    let mode = va
        .spec
        .update_policy
        .as_ref()
        .and_then(|p| p.update_mode)
        .unwrap_or_default();
    match mode {
        UpdateMode::Recreate | UpdateMode::Auto => Some(false),
        UpdateMode::InPlaceOrRecreate => Some(true),
        UpdateMode::Off | UpdateMode::Initial => None,
    }
}

/// A pod that counts as live for the updater: `Running` and not being deleted.
fn live(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

impl VerticalRecommender {
    /// One updater pass over every object of the caches.
    pub(super) async fn update(&self, caches: &Caches<'_>, config: &UpdaterConfig) {
        if !self.config.leadership.is_leading() {
            return;
        }
        let mut pods_by_namespace: BTreeMap<String, Vec<Arc<Pod>>> = BTreeMap::new();
        for p in caches.pods.state().into_iter().filter(|p| live(p)) {
            pods_by_namespace
                .entry(p.namespace().unwrap_or_default())
                .or_default()
                .push(p);
        }
        let budgets = caches.budgets.state();
        for va in caches.autoscalers.state() {
            let Some(in_place) = in_place(&va) else {
                continue;
            };
            let (ns, name) = (va.namespace().unwrap_or_default(), va.name_any());
            // No entry: the recommender could not read the target (its condition says why).
            let Some(entry) = self.index.get(&ns, &name) else {
                continue;
            };
            if entry.recommendation.is_none() {
                continue;
            }
            let empty = BTreeMap::new();
            let pods: Vec<&Pod> = pods_by_namespace
                .get(&ns)
                .into_iter()
                .flatten()
                .map(|p| p.as_ref())
                .filter(|p| {
                    entry
                        .selector
                        .matches(p.metadata.labels.as_ref().unwrap_or(&empty))
                })
                .collect();
            let target = object::Target {
                va: &va,
                entry: &entry,
                in_place,
                pods: &pods,
                budgets: &budgets,
            };
            self.update_object(&target, caches.limit_ranges, config)
                .await;
        }
        self.metrics.updater_passes.inc();
    }
}
