//! Waking an object at rest: whether a reading taken between two syncs would activate it.
//!
//! An object in activation mode that rests at zero (or idle) replicas only needs its next
//! decision when a source shows work. A caller may therefore read the sources of resting objects
//! more often than their sync period (the controller's activation poll) and, when a reading
//! would activate the object, ask for its decision at once. Whether a reading would activate is
//! decided here, by the same [`decide`] the sync runs on the same snapshot, so the poll never
//! judges a threshold differently from the decision it triggers; the decision the poll asks for
//! then reads every metric again and is the one that writes the scale.
//!
//! - [`resting`]: after a decision, whether the object rests at zero or idle replicas (the
//!   objects a poll looks after);
//! - [`polled_sources`]: the metrics such a poll reads (event sources with a backlog to read;
//!   cron windows need no read and are evaluated against `now`);
//! - [`would_activate`]: whether a decision on a snapshot with those readings activates.

use ballast_api::horizontal::{
    EventMetricSource, EventSourceType, HorizontalAutoscaler, MetricSourceType,
};

use crate::decide::{Outcome, Path, decide};
use crate::prepare::{effective_metrics, prepare};
use crate::render::Decision;
use crate::snapshot::{Snapshot, SnapshotError};

/// Whether the object `decision` was taken for now rests at zero or idle replicas with nothing
/// active (paths `Idle` and `Deactivated`): its next activation may come from a reading taken
/// before its next sync. False when the decision's scale write failed (the target's count is
/// then unknown), when paused, and on every other path.
pub fn resting(decision: &Decision) -> bool {
    let wrote = !decision.events.iter().any(|e| e.reason == "FailedRescale");
    wrote && matches!(decision.path, Path::Idle | Path::Deactivated)
}

/// The metrics of `autoscaler` (by position in its effective metrics) whose sources an
/// activation poll reads: `Event` metrics other than cron. Cron windows need no read (a poll
/// passes their empty reading, so a window that opens wakes the object too); every other metric
/// is left unread by a poll (its reading is a failure, which never activates nor blocks an
/// activation).
pub fn polled_sources(autoscaler: &HorizontalAutoscaler) -> Vec<(usize, EventMetricSource)> {
    effective_metrics(autoscaler)
        .into_iter()
        .enumerate()
        .filter(|(_, m)| m.type_ == MetricSourceType::Event)
        .filter_map(|(i, m)| m.event.map(|e| (i, e)))
        .filter(|(_, e)| e.type_ != EventSourceType::Cron)
        .collect()
}

/// Whether the decision on `snapshot` activates the target from zero or idle replicas
/// (`Path::Activated`): the very decision a sync would take on the same snapshot. Paused objects,
/// objects outside activation mode, readings at or below their activation thresholds and failed
/// readings never activate. Errors when the snapshot cannot be prepared (an invalid object).
pub fn would_activate(snapshot: &Snapshot) -> Result<bool, SnapshotError> {
    let prepared = prepare(snapshot)?;
    let mut outcome = Outcome::default();
    decide(&prepared, &mut outcome);
    Ok(outcome.path == Path::Activated)
}
