//! One object's update: its pods judged by `apply::eviction::choose_with`, then each chosen pod
//! resized or evicted, with an event and a count for each.

use std::collections::BTreeMap;
use std::sync::Arc;

use ballast_api::vertical::VerticalAutoscaler;
use ballast_vertical::apply::eviction::{DEFAULT_MIN_REPLICAS, Limits, choose_with};
use ballast_vertical::apply::fallback::{ResizeState, resize_state};
use ballast_vertical::apply::view::{pod_view, resize_conditions};
use k8s_openapi::api::core::v1::{LimitRange, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};

use super::evict::{Evicted, evict};
use super::resize::{Resized, resize};
use super::{UpdaterConfig, pdb};
use crate::events;
use crate::vertical::webhook::{Entry, container_limit_range};
use crate::vertical::{Metrics, VerticalRecommender};

/// One object and what the pass knows of it.
pub(super) struct Target<'a> {
    pub va: &'a VerticalAutoscaler,
    pub entry: &'a Entry,
    /// `InPlaceOrRecreate` (else `Recreate`).
    pub in_place: bool,
    /// Its live pods.
    pub pods: &'a [&'a Pod],
    pub budgets: &'a [Arc<PodDisruptionBudget>],
}

/// Why a pod is evicted: for its requests, or because its resize will not happen.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cause {
    Recommendation,
    Resize,
}

impl Cause {
    fn label(self) -> &'static str {
        match self {
            Cause::Recommendation => "recommendation",
            Cause::Resize => "resize",
        }
    }
}

impl VerticalRecommender {
    pub(super) async fn update_object(
        &self,
        t: &Target<'_>,
        limit_ranges: &Store<LimitRange>,
        config: &UpdaterConfig,
    ) {
        let (ns, name) = (t.va.namespace().unwrap_or_default(), t.va.name_any());
        let Some(recommendation) = &t.entry.recommendation else {
            return;
        };
        let now = self.config.clock.now().as_second();
        let bounds = container_limit_range(limit_ranges, &ns);
        let mut views = Vec::with_capacity(t.pods.len());
        let mut resizes = BTreeMap::new();
        for pod in t.pods {
            match pod_view(
                pod,
                recommendation,
                &t.entry.spec,
                &name,
                &bounds,
                &t.entry.held,
            ) {
                Ok(v) => views.push(v),
                // An invalid spec: the recommender's condition already says so.
                Err(e) => {
                    tracing::debug!(object = %format!("{ns}/{name}"), error = %e, "not updated");
                    return;
                }
            }
            if t.in_place {
                let state = resize_state(&resize_conditions(pod), &config.timeouts, now);
                resizes.insert(pod.name_any(), state);
            }
        }
        let pdb_allowed = pdb::allowed(t.budgets, &ns, t.pods);
        let policy = t.va.spec.update_policy.as_ref();
        let limits = Limits {
            min_replicas: policy
                .and_then(|p| p.min_replicas)
                .unwrap_or(DEFAULT_MIN_REPLICAS),
            tolerance: config.tolerance,
            // A resize disrupts nothing: only evictions spend the PDB's budget (below).
            pdb_allowed: if t.in_place { None } else { pdb_allowed },
            requirements: policy
                .map(|p| p.eviction_requirements.clone())
                .unwrap_or_default(),
        };
        let mut evictions_left = pdb_allowed.unwrap_or(u32::MAX);
        for choice in choose_with(&views, &resizes, &limits, now)
            .into_iter()
            .filter(|c| c.update)
        {
            let Some(pod) = t.pods.iter().find(|p| p.name_any() == choice.pod) else {
                continue;
            };
            let overdue = matches!(resizes.get(&choice.pod), Some(ResizeState::Overdue(_)));
            let (cause, why) = if t.in_place && !overdue {
                match self.resize_one(t, pod, &bounds, &choice.reason).await {
                    Some(refused) => (Cause::Resize, refused),
                    None => continue,
                }
            } else if overdue {
                (Cause::Resize, choice.reason.clone())
            } else {
                (Cause::Recommendation, choice.reason.clone())
            };
            if evictions_left == 0 {
                let note = format!(
                    "pod {}: not evicted, its PodDisruptionBudget allows no more now ({why})",
                    choice.pod
                );
                self.count_eviction(cause, "blocked");
                self.publish_update(t.va, true, "EvictionBlocked", &note)
                    .await;
                continue;
            }
            if self.evict_one(t.va, pod, cause, &why).await {
                evictions_left -= 1;
            }
        }
    }

    /// Resizes `pod`; returns why it must be evicted instead when the API server refuses.
    async fn resize_one(
        &self,
        t: &Target<'_>,
        pod: &Pod,
        bounds: &ballast_vertical::apply::pod::ContainerLimitRange,
        reason: &str,
    ) -> Option<String> {
        let object = t.va.name_any();
        let pod_name = pod.name_any();
        let outcome = resize(&self.client, pod, t.entry, &object, bounds).await;
        let result = match &outcome {
            Resized::Yes(_) => "resized",
            Resized::Refused(_) => "refused",
            Resized::Failed(_) => "failed",
            Resized::Unchanged | Resized::Gone => return None,
        };
        self.metrics
            .resizes
            .get_or_create(&Metrics::label("result", result))
            .inc();
        match outcome {
            Resized::Yes(set) => {
                tracing::info!(pod = %format!("{}/{pod_name}", pod.namespace().unwrap_or_default()), %set, "resized in place");
                let note = format!("pod {pod_name} resized in place ({reason}): {set}");
                self.publish_update(t.va, false, "Resized", &note).await;
                None
            }
            Resized::Refused(message) => Some(format!("resize refused: {message}")),
            Resized::Failed(message) => {
                let note = format!("pod {pod_name}: resize failed, will retry: {message}");
                self.publish_update(t.va, true, "ResizeFailed", &note).await;
                None
            }
            Resized::Unchanged | Resized::Gone => None,
        }
    }

    /// Evicts `pod`; true when it was evicted.
    async fn evict_one(&self, va: &VerticalAutoscaler, pod: &Pod, cause: Cause, why: &str) -> bool {
        let (ns, pod_name) = (pod.namespace().unwrap_or_default(), pod.name_any());
        let outcome = evict(&self.evictions, &ns, &pod_name).await;
        let (result, warning, reason, note) = match &outcome {
            Evicted::Yes => (
                "evicted",
                false,
                "Evicted",
                format!("pod {pod_name} evicted ({why})"),
            ),
            Evicted::Blocked(m) => (
                "blocked",
                true,
                "EvictionBlocked",
                format!("pod {pod_name}: eviction refused, will retry ({why}): {m}"),
            ),
            Evicted::Failed(m) => (
                "failed",
                true,
                "EvictionFailed",
                format!("pod {pod_name}: eviction failed ({why}): {m}"),
            ),
            Evicted::Gone => return false,
        };
        tracing::info!(pod = %format!("{ns}/{pod_name}"), result, %why, "eviction");
        self.count_eviction(cause, result);
        self.publish_update(va, warning, reason, &note).await;
        outcome == Evicted::Yes
    }

    fn count_eviction(&self, cause: Cause, result: &str) {
        self.metrics
            .evictions
            .get_or_create(&vec![
                ("cause", cause.label().to_owned()),
                ("result", result.to_owned()),
            ])
            .inc();
    }

    async fn publish_update(
        &self,
        va: &VerticalAutoscaler,
        warning: bool,
        reason: &str,
        note: &str,
    ) {
        let event = events::Event {
            warning,
            reason,
            note,
            action: "Update",
        };
        match self.recorder.publish(&event, &va.object_ref(&())).await {
            Ok(()) => {
                self.metrics
                    .events
                    .get_or_create(&Metrics::label("reason", reason))
                    .inc();
            }
            Err(e) => {
                self.metrics.event_errors.inc();
                tracing::warn!(reason, error = %e, "publishing an event failed");
            }
        }
    }
}
