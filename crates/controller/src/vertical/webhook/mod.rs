//! The mutating admission webhook (`--webhook-addr`): sets a new pod's requests (and limits, by
//! `controlledValues`) from the recommendation of the `VerticalAutoscaler` whose target selects
//! it, when its `updateMode` is not `Off`. It never refuses a pod: with nothing to do, or on any
//! error, the pod is admitted as it came (and the webhook configuration should say
//! `failurePolicy: Ignore`, so a webhook that is down blocks nothing).
//!
//! The recommender's passes keep an [`Index`] of (selector, spec, recommendation) per object; a
//! LimitRange cache gives the namespace's container bounds. Changes are written as one JSON patch
//! (each changed container's `resources`) plus the annotation [`ANNOTATION`] saying what was set
//! and why a value differs from the recommendation. Requests [`Entry::held`] because a horizontal
//! autoscaler scales on their utilization are never lowered (`apply::pod::plan_held`).

pub mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use ballast_api::common::parse_quantity;
use ballast_api::vertical::{RecommendedPodResources, UpdateMode, VerticalAutoscalerSpec};
use ballast_horizontal::selector::Selector;
use ballast_vertical::apply::pod::{ContainerChange, ContainerLimitRange, plan_held};
use ballast_vertical::apply::resize::LimitRangeBounds;
use ballast_vertical::coordination::Held;
use k8s_openapi::api::core::v1::{LimitRange, Pod};
use kube::ResourceExt;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::runtime::reflector::Store;

pub use tls::{Certificate, TlsError, TlsListener};

/// Annotation the webhook writes on the pods it changed.
pub const ANNOTATION: &str = "ballast.dev/vertical-updates";
/// Path the webhook serves.
pub const PATH: &str = "/mutate-pods";

/// What the webhook needs of one object.
#[derive(Clone, Debug)]
pub struct Entry {
    pub selector: Arc<Selector>,
    pub spec: VerticalAutoscalerSpec,
    pub recommendation: Option<RecommendedPodResources>,
    /// Requests a horizontal autoscaler scales on (`horizontalCoordination: Coordinated`).
    pub held: Held,
}

/// `namespace` → object name → entry; written by the recommender's passes.
#[derive(Default)]
pub struct Index {
    entries: RwLock<HashMap<String, HashMap<String, Entry>>>,
}

impl Index {
    /// Sets (or, with None, removes) the entry of `namespace/name`.
    pub fn set(&self, namespace: &str, name: &str, entry: Option<Entry>) {
        let mut all = self.entries.write().unwrap_or_else(|e| e.into_inner());
        match entry {
            Some(e) => {
                all.entry(namespace.to_owned())
                    .or_default()
                    .insert(name.to_owned(), e);
            }
            None => {
                if let Some(ns) = all.get_mut(namespace) {
                    ns.remove(name);
                }
            }
        }
    }

    /// Keeps only the objects for which `keep(namespace, name)` holds.
    pub fn retain(&self, keep: &dyn Fn(&str, &str) -> bool) {
        let mut all = self.entries.write().unwrap_or_else(|e| e.into_inner());
        for (ns, entries) in all.iter_mut() {
            entries.retain(|name, _| keep(ns, name));
        }
    }

    /// The entry of `namespace/name`, if the last pass set one.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Entry> {
        let all = self.entries.read().unwrap_or_else(|e| e.into_inner());
        all.get(namespace)?.get(name).cloned()
    }

    /// The first object (by name) of `namespace` whose selector matches `pod`.
    fn matching(&self, namespace: &str, pod: &Pod) -> Option<(String, Entry)> {
        let all = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let empty = Default::default();
        let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
        let mut hits: Vec<_> = all
            .get(namespace)?
            .iter()
            .filter(|(_, e)| e.selector.matches(labels))
            .collect();
        hits.sort_by(|a, b| a.0.cmp(b.0));
        hits.first().map(|(n, e)| ((*n).clone(), (*e).clone()))
    }
}

#[derive(Clone)]
struct Webhook {
    index: Arc<Index>,
    limit_ranges: Store<LimitRange>,
}

/// The router of the webhook.
pub fn router(index: Arc<Index>, limit_ranges: Store<LimitRange>) -> Router {
    Router::new().route(PATH, post(mutate)).with_state(Webhook {
        index,
        limit_ranges,
    })
}

/// Serves the webhook on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TlsListener,
    index: Arc<Index>,
    limit_ranges: Store<LimitRange>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(index, limit_ranges))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The bound address of a listener.
pub fn local_addr(listener: &TlsListener) -> std::io::Result<SocketAddr> {
    axum::serve::Listener::local_addr(listener)
}

async fn mutate(
    State(w): State<Webhook>,
    Json(review): Json<AdmissionReview<Pod>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let request: AdmissionRequest<Pod> = match review.try_into() {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "admission review without a request");
            return Json(AdmissionResponse::invalid(e.to_string()).into_review());
        }
    };
    let allowed = AdmissionResponse::from(&request);
    let response = match respond(&w, &request) {
        Ok(Some(patch)) => allowed.clone().with_patch(patch).unwrap_or(allowed),
        Ok(None) => allowed,
        Err(e) => {
            tracing::warn!(pod = %request.name, namespace = ?request.namespace, error = %e, "pod admitted unchanged");
            allowed
        }
    };
    Json(response.into_review())
}

/// The patch for the pod of `request`, if any.
fn respond(
    w: &Webhook,
    request: &AdmissionRequest<Pod>,
) -> Result<Option<json_patch::Patch>, String> {
    let Some(pod) = &request.object else {
        return Ok(None);
    };
    let namespace = request
        .namespace
        .clone()
        .or_else(|| pod.namespace())
        .unwrap_or_default();
    let Some((name, entry)) = w.index.matching(&namespace, pod) else {
        return Ok(None);
    };
    let mode = entry
        .spec
        .update_policy
        .as_ref()
        .and_then(|p| p.update_mode)
        .unwrap_or_default();
    let (Some(recommendation), Some(spec)) = (&entry.recommendation, &pod.spec) else {
        return Ok(None);
    };
    if mode == UpdateMode::Off {
        return Ok(None);
    }
    let bounds = container_limit_range(&w.limit_ranges, &namespace);
    let changes = plan_held(
        &spec.containers,
        recommendation,
        &entry.spec,
        &name,
        &bounds,
        &entry.held,
    )
    .map_err(|e| e.to_string())?;
    if changes.is_empty() {
        return Ok(None);
    }
    patch(pod, &name, &changes).map(Some)
}

fn patch(
    pod: &Pod,
    object: &str,
    changes: &[ContainerChange],
) -> Result<json_patch::Patch, String> {
    let mut ops = Vec::new();
    for c in changes {
        ops.push(serde_json::json!({
            "op": "add",
            "path": format!("/spec/containers/{}/resources", c.index),
            "value": c.resources,
        }));
    }
    let text = changes
        .iter()
        .map(|c| format!("{}: {}", c.name, c.notes.join(", ")))
        .collect::<Vec<_>>()
        .join("; ");
    let text = format!("{object}: {text}");
    if pod.metadata.annotations.is_some() {
        ops.push(serde_json::json!({
            "op": "add",
            "path": format!("/metadata/annotations/{}", ANNOTATION.replace('/', "~1")),
            "value": text,
        }));
    } else {
        ops.push(serde_json::json!({
            "op": "add",
            "path": "/metadata/annotations",
            "value": { ANNOTATION: text },
        }));
    }
    serde_json::from_value(serde_json::Value::Array(ops)).map_err(|e| e.to_string())
}

/// The tightest `type: Container` bounds of the namespace's LimitRanges.
pub(crate) fn container_limit_range(
    store: &Store<LimitRange>,
    namespace: &str,
) -> ContainerLimitRange {
    let mut out = ContainerLimitRange::default();
    for lr in store.state() {
        if lr.namespace().as_deref() != Some(namespace) {
            continue;
        }
        let items = lr.spec.as_ref().map(|s| s.limits.as_slice()).unwrap_or(&[]);
        for item in items.iter().filter(|i| i.type_ == "Container") {
            let get = |l: &Option<
                std::collections::BTreeMap<
                    String,
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity,
                >,
            >,
                       k: &str| {
                l.as_ref()?.get(k).and_then(|q| parse_quantity(&q.0).ok())
            };
            for (key, bounds) in [("cpu", &mut out.cpu), ("memory", &mut out.memory)] {
                tighten(
                    bounds,
                    LimitRangeBounds {
                        min: get(&item.min, key),
                        max: get(&item.max, key),
                        max_limit_request_ratio: get(&item.max_limit_request_ratio, key),
                    },
                );
            }
        }
    }
    out
}

fn tighten(into: &mut LimitRangeBounds, with: LimitRangeBounds) {
    let pick = |a: Option<f64>, b: Option<f64>, f: fn(f64, f64) -> f64| match (a, b) {
        (Some(x), Some(y)) => Some(f(x, y)),
        (x, y) => x.or(y),
    };
    into.min = pick(into.min, with.min, f64::max);
    into.max = pick(into.max, with.max, f64::min);
    into.max_limit_request_ratio = pick(
        into.max_limit_request_ratio,
        with.max_limit_request_ratio,
        f64::min,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_ranges_combine_to_the_tightest() {
        let mut b = LimitRangeBounds::default();
        tighten(
            &mut b,
            LimitRangeBounds {
                min: Some(0.1),
                max: Some(4.0),
                max_limit_request_ratio: None,
            },
        );
        tighten(
            &mut b,
            LimitRangeBounds {
                min: Some(0.2),
                max: Some(8.0),
                max_limit_request_ratio: Some(3.0),
            },
        );
        assert_eq!(
            b,
            LimitRangeBounds {
                min: Some(0.2),
                max: Some(4.0),
                max_limit_request_ratio: Some(3.0)
            }
        );
    }

    #[test]
    fn the_patch_sets_resources_and_the_annotation() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "p", "annotations": { "a": "b" } },
            "spec": { "containers": [{ "name": "app" }] }
        }))
        .unwrap_or_default();
        let change = ContainerChange {
            index: 0,
            name: "app".into(),
            resources: Default::default(),
            notes: vec!["cpu request 300m".into()],
        };
        let p = patch(&pod, "web", &[change]).map(|p| serde_json::to_value(p).unwrap_or_default());
        let text = p.map(|v| v.to_string()).unwrap_or_default();
        assert!(text.contains("/spec/containers/0/resources"), "{text}");
        assert!(
            text.contains("/metadata/annotations/ballast.dev~1vertical-updates"),
            "{text}"
        );
        assert!(text.contains("web: app: cpu request 300m"), "{text}");
    }
}
