//! One [`Snapshot`] of a `HorizontalAutoscaler` read straight from the API server, as the
//! reconciler would build it on its next sync (`ballast explain horizontal --live`).
//!
//! The reconciler's own pieces are reused, not caches: the target's scale through [`Targets`],
//! the namespace's pods listed once into a [`PodIndex`] and selected as a reconcile selects them,
//! the other autoscalers of the namespace registered in [`Selectors`] (one scale read each) for
//! `AmbiguousSelector`, and the metrics read through the [`MetricSource`]. The stored status
//! history is resumed at `now`, as a first decision of a process resumes it
//! ([`persist::resume`]). With `spec.predictive`, the demand history is the one last stored in
//! the object's ConfigMap ([`super::demand::stored`]; the reconciler's own may hold a few newer
//! steps, and is not backfilled here). Nothing is written.

use std::sync::Arc;

use ballast_api::horizontal::HorizontalAutoscaler;
use ballast_horizontal::selector::Selector;
use ballast_horizontal::{ControllerConfig as DecisionConfig, DemandSample, Snapshot, persist};
use ballast_metrics::MetricSource;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use super::Error;
use super::ambiguity::Selectors;
use super::pods::{IndexedPod, PodIndex};
use crate::scale::{Targets, error_text};

/// Reads `namespace/name` and everything its decision looks at, and returns the snapshot the
/// reconciler would decide on at `now` with the controller-wide `decision` settings.
///
/// Target, selector and metric problems are recorded in the snapshot (the decision reports
/// them); an error means the autoscaler itself could not be read ([`Error::NotFound`],
/// [`Error::Read`]) or the pods or autoscalers of its namespace could not be listed.
pub async fn capture(
    client: &Client,
    source: &MetricSource,
    decision: &DecisionConfig,
    namespace: &str,
    name: &str,
    now: Timestamp,
) -> Result<Snapshot, Error> {
    let key = format!("{namespace}/{name}");
    let read_error = |what: &'static str| {
        let key = key.clone();
        move |e: kube::Error| Error::Read {
            what,
            key,
            message: error_text(&e),
        }
    };
    let hzas: Api<HorizontalAutoscaler> = Api::namespaced(client.clone(), namespace);
    let hza = hzas
        .get_opt(name)
        .await
        .map_err(read_error("the object"))?
        .ok_or_else(|| Error::NotFound { key: key.clone() })?;
    let mut autoscaler = hza.clone();
    super::trim(&mut autoscaler);
    if let Some(h) = autoscaler.status.as_mut().and_then(|s| s.history.as_mut()) {
        persist::resume(h, Time(now));
    }

    let demand_history = stored_demand(client, &hza).await;
    let targets = Targets::new(client.clone());
    let read = targets.read(namespace, &hza.spec.scale_target_ref).await;
    let mut snapshot = Snapshot {
        autoscaler,
        scale: read.scale.clone(),
        pods: Vec::new(),
        metrics: Vec::new(),
        other_autoscalers: Vec::new(),
        demand_history,
        config: decision.clone(),
        now,
    };
    if read.scale.error.is_some() || read.scale.selector.trim().is_empty() {
        return Ok(snapshot);
    }
    let Ok(selector) = Selector::parse(&read.scale.selector) else {
        return Ok(snapshot);
    };
    let selected = select_pods(client, namespace, &selector)
        .await
        .map_err(read_error("the pods"))?;
    let others = others_selecting(client, &targets, namespace, name, &selected)
        .await
        .map_err(read_error("the other autoscalers"))?;
    snapshot.pods = selected.iter().map(|p| p.snapshot.clone()).collect();
    if others.is_empty() {
        snapshot.metrics = source.readings(&hza, &read.scale.selector).await;
    }
    snapshot.other_autoscalers = others;
    Ok(snapshot)
}

/// The demand history stored for `hza` (none without prediction, or when it cannot be read).
async fn stored_demand(client: &Client, hza: &HorizontalAutoscaler) -> Vec<DemandSample> {
    let Some((step, capacity)) = super::demand::shape(hza) else {
        return Vec::new();
    };
    match super::demand::stored::load(client, hza, capacity).await {
        Ok(Some(ring)) => ring.reshaped(step, capacity).samples(),
        Ok(None) => Vec::new(),
        Err(problem) => {
            tracing::warn!(%problem, "the stored demand history is ignored");
            Vec::new()
        }
    }
}

/// The pods of `namespace` that `selector` selects, sorted by name, as the pod index holds them.
async fn select_pods(
    client: &Client,
    namespace: &str,
    selector: &Selector,
) -> Result<Vec<Arc<IndexedPod>>, kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let index = PodIndex::default();
    for pod in pods.list(&ListParams::default()).await? {
        index.apply(&pod);
    }
    Ok(index.select(namespace, selector))
}

/// The other autoscalers of `namespace` (`namespace/name`, sorted) whose targets' selectors
/// select one of `pods`.
async fn others_selecting(
    client: &Client,
    targets: &Targets,
    namespace: &str,
    name: &str,
    pods: &[Arc<IndexedPod>],
) -> Result<Vec<String>, kube::Error> {
    let hzas: Api<HorizontalAutoscaler> = Api::namespaced(client.clone(), namespace);
    let selectors = Selectors::default();
    for other in hzas.list(&ListParams::default()).await? {
        let other_name = other.name_any();
        if other_name == name || other.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let read = targets.read(namespace, &other.spec.scale_target_ref).await;
        selectors.record(namespace, &other_name, &read);
    }
    Ok(selectors.others_selecting(namespace, name, pods))
}
