//! Native `autoscaling/v2` HorizontalPodAutoscaler objects (`controller horizontal
//! --native-hpa`), reconciled in place as kube-controller-manager's HPA controller would.
//!
//! The HPAs are watched and each one is read as the `HorizontalAutoscaler` the core decides
//! ([`status::autoscaler_of`]: the spec through the mapping `ballast convert` uses, the status
//! and the history stored in an annotation read back), so the reconcile is the one of
//! [`super`]: schedule, scale read, pod selection, metric reads, `prepare → decide → render`,
//! the scale write, events. Only three things differ, chosen by the context's kind: the status
//! is written to the HPA in upstream's shape ([`write_status`]), events name the HPA, and the
//! selector index names an HPA with its kind (an HPA and a `HorizontalAutoscaler` on one target
//! are `AmbiguousSelector` on both, and neither scales).
//!
//! Every HPA is decided every `Config::native_hpa` (upstream's
//! `--horizontal-pod-autoscaler-sync-period`, 15 s by default): the HPA has no field for it.

pub mod status;

use std::sync::Arc;

use ballast_api::horizontal::{HorizontalAutoscaler, HorizontalAutoscalerStatus};
use ballast_horizontal::{Decision, persist};
use futures::{Stream, StreamExt};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;

use super::{Context, Error, Kind, patch, schedule::Schedule, wake};
use crate::{events, scale};

/// The context of the native reconciler beside `own`'s: its own schedule, queue and event
/// recorder; the pod index, the selector index and the metrics shared.
pub(super) fn context_beside(own: &Context) -> Context {
    let config = own.config.clone();
    Context {
        kind: Kind::Native,
        client: own.client.clone(),
        targets: scale::Targets::new(own.client.clone()),
        pods: own.pods.clone(),
        source: own.source.clone(),
        recorder: events::Recorder::new(
            own.client.clone(),
            super::CONTROLLER_NAME,
            config.instance.clone(),
            config.clock.clone(),
        ),
        schedule: Schedule::new(),
        resting: wake::Resting::default(),
        demand: Default::default(),
        selectors: own.selectors.clone(),
        peers: std::sync::OnceLock::new(),
        objects: std::sync::OnceLock::new(),
        verticals: std::sync::OnceLock::new(),
        metrics: own.metrics.clone(),
        permits: tokio::sync::Semaphore::new(usize::from(config.concurrency.max(1))),
        config,
    }
}

/// The watch of HPAs, each read as the `HorizontalAutoscaler` to decide, into a new store; an
/// HPA whose spec cannot be read leaves the store (a Warning event `InvalidSpec` names it and the
/// field) until it is fixed.
pub(super) fn watch(
    ctx: &Arc<Context>,
) -> (
    Store<HorizontalAutoscaler>,
    impl Stream<Item = Result<HorizontalAutoscaler, watcher::Error>> + Send + 'static,
) {
    let api: Api<HorizontalPodAutoscaler> = match &ctx.config.namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let period = ctx
        .config
        .native_hpa
        .map_or(15, |p| p.as_secs().clamp(1, 3600) as i32);
    let (store, writer) = reflector::store();
    let reporter = ctx.clone();
    let objects = watcher::watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .filter_map(move |event| {
            let ctx = reporter.clone();
            async move {
                match event {
                    Ok(e) => read_event(&ctx, e, period).await.map(Ok),
                    Err(e) => Some(Err(e)),
                }
            }
        })
        .reflect(writer)
        .applied_objects();
    (store, objects)
}

/// One watch event of HPAs as the event of the objects to decide (`None`: nothing to store).
async fn read_event(
    ctx: &Context,
    event: watcher::Event<HorizontalPodAutoscaler>,
    period: i32,
) -> Option<watcher::Event<HorizontalAutoscaler>> {
    use watcher::Event as E;
    Some(match event {
        E::Init => E::Init,
        E::InitDone => E::InitDone,
        E::Delete(hpa) => E::Delete(shell(&hpa)),
        E::Apply(hpa) => match read(ctx, &hpa, period).await {
            Some(h) => E::Apply(h),
            None => E::Delete(shell(&hpa)),
        },
        E::InitApply(hpa) => E::InitApply(read(ctx, &hpa, period).await?),
    })
}

/// The object to decide for `hpa`, or `None` (reported) when its spec cannot be read.
async fn read(
    ctx: &Context,
    hpa: &HorizontalPodAutoscaler,
    period: i32,
) -> Option<HorizontalAutoscaler> {
    match status::autoscaler_of(hpa, period) {
        Ok((object, dropped)) => {
            if let Some(why) = dropped {
                tracing::warn!(object = %status::label(hpa), %why, "stored scaling history dropped");
            }
            Some(object)
        }
        Err(e) => {
            tracing::warn!(error = %e, "a HorizontalPodAutoscaler Ballast cannot decide");
            if ctx.config.leadership.is_leading() {
                let object = shell(hpa);
                let note = e.to_string();
                let ev = events::Event {
                    warning: true,
                    reason: "InvalidSpec",
                    note: &note,
                    action: "ComputeReplicas",
                };
                let _ = ctx
                    .recorder
                    .publish(&ev, &Kind::Native.reference(&object))
                    .await;
            }
            None
        }
    }
}

/// An object with the HPA's metadata only (what a deletion needs to find its entry).
fn shell(hpa: &HorizontalPodAutoscaler) -> HorizontalAutoscaler {
    let mut object = HorizontalAutoscaler::new("", Default::default());
    object.metadata.name = hpa.metadata.name.clone();
    object.metadata.namespace = hpa.metadata.namespace.clone();
    object.metadata.uid = hpa.metadata.uid.clone();
    object
}

/// Patches the HPA's status (and the history annotation, which the status subresource of an
/// HPA accepts) with what changed since `written`, in upstream's shape; `Ok(false)` when nothing
/// but time moved (see [`persist`]).
pub(super) async fn write_status(
    written: Option<&HorizontalAutoscalerStatus>,
    ns: &str,
    name: &str,
    decision: &Decision,
    ctx: &Context,
) -> Result<bool, Error> {
    if written.is_some_and(|w| persist::only_time_moved(w, &decision.status)) {
        ctx.metrics.status_writes_skipped.inc();
        return Ok(false);
    }
    let old = status::document(written);
    let new = status::document(Some(&decision.status));
    let Some(body) = patch::merge_patch(&old, &new) else {
        return Ok(false);
    };
    let key = format!("HorizontalPodAutoscaler {ns}/{name}");
    super::patch_status::<HorizontalPodAutoscaler>(ctx, ns, name, key, &body).await
}
