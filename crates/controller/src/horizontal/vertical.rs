//! The `VerticalConflict` condition: a `VerticalAutoscaler` on the same target applies the
//! requests a metric of this autoscaler divides by (`Utilization` of a `Resource` or
//! `ContainerResource` metric). The rule is `ballast_vertical::coordination`; this module keeps
//! the cache of vertical autoscalers it reads (one watch, no read per decision) and sets the
//! condition on a decision.
//!
//! The condition appears with the first conflict and stays (False, `NoConflict`) once it is over,
//! as `Paused` does. Until the cache is filled (or when the `VerticalAutoscaler` CRD is not
//! installed) the condition is left as it was.

use ballast_api::horizontal::HorizontalAutoscaler;
use ballast_api::vertical::VerticalAutoscaler;
use ballast_horizontal::Decision;
use ballast_vertical::coordination::{self, HORIZONTAL_CONDITION};
use ballast_vertical::status::Note;
use futures::{FutureExt, StreamExt};
use jiff::Timestamp;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

/// A cache of the vertical autoscalers of `namespace` (all when None), filled by a background
/// watch that stops when the returned handle is aborted.
pub(super) fn watch(
    client: Client,
    namespace: Option<&str>,
) -> (Store<VerticalAutoscaler>, tokio::task::JoinHandle<()>) {
    let api: Api<VerticalAutoscaler> = match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    let task = tokio::spawn(async move {
        stream
            .for_each(|r| async move {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "verticalautoscalers watch");
                }
            })
            .await;
    });
    (store, task)
}

/// Sets the condition on `decision` (its status and its list) from the vertical autoscalers of
/// `hza`'s namespace; returns the event of a change.
pub(super) fn mark(
    decision: &mut Decision,
    hza: &HorizontalAutoscaler,
    verticals: &Store<VerticalAutoscaler>,
    now: Timestamp,
) -> Option<Note> {
    verticals.wait_until_ready().now_or_never()?.ok()?;
    let ns = hza.namespace();
    let clashes: Vec<_> = verticals
        .state()
        .iter()
        .filter(|v| v.namespace() == ns && v.metadata.deletion_timestamp.is_none())
        .flat_map(|v| coordination::clashes(v, hza))
        .collect();
    let finding = coordination::horizontal_finding(&clashes);
    let conditions = &mut decision.status.conditions;
    if !finding.conflict && !conditions.iter().any(|c| c.type_ == HORIZONTAL_CONDITION) {
        return None;
    }
    let note = coordination::record(conditions, HORIZONTAL_CONDITION, &finding, now);
    decision.conditions = decision.status.conditions.clone();
    note
}
