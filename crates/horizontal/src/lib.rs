//! Ballast's horizontal decision core: the desired replica count of one `HorizontalAutoscaler`
//! from an observed [`Snapshot`] (the object with its stored history, the target's scale, the
//! selected pods, one reading per metric) and `now`.
//!
//! It implements the Kubernetes HPA algorithm (tolerances, utilization integer math, missing and
//! unready pods, several metrics, stabilization windows, behavior policies, limits, scale to
//! zero) and KEDA-style activation, cooldown, idle replicas, fallback, pause and cron windows.
//! No API calls, no clock, no randomness: the live controller, the simulator and
//! `ballast explain horizontal` call the same functions.
//!
//! Three steps, so a caller can keep the hot part allocation-free:
//!
//! ```text
//! Snapshot ──prepare──▶ Prepared ──decide──▶ Outcome ──render──▶ Decision
//!  (serde)   (parse once)  (numbers only, reusable buffers)  (conditions, events, status, reasons)
//! ```
//!
//! [`explain`] runs the three. [`wake`] says whether a reading taken between two syncs would
//! activate an object resting at zero (the controller's activation poll). [`persist`] says when a decided status must be written and what a
//! restarted controller assumes about the decisions it did not see. See `docs/horizontal.md`.

pub mod decide;
pub mod jobs;
pub mod persist;
pub mod predict;
pub mod prepare;
pub mod problems;
pub mod render;
pub mod selector;
pub mod snapshot;
pub mod wake;

pub use decide::{
    Cooldown, Limit, MetricError, MetricOutcome, MetricState, Outcome, Path, Reason, Rule,
    Stabilization, decide,
};
pub use prepare::{History, Millis, PodFacts, Prepared, effective_metrics, prepare};
pub use render::{Decision, Event, EventType, Explanation, MetricProposal, milli_quantity, render};
pub use snapshot::{
    ConditionStatus, ContainerSnapshot, ControllerConfig, DemandSample, MetricReading, PodPhase,
    PodSample, PodSnapshot, ReadyCondition, Snapshot, SnapshotError, TargetScale,
};

/// Runs one decision on a snapshot: what `ballast explain horizontal -f SNAPSHOT` prints (with
/// `Display` for people, `Serialize` for `-o json`).
pub fn explain(snapshot: &Snapshot) -> Result<Decision, SnapshotError> {
    let prepared = prepare(snapshot)?;
    let mut outcome = Outcome::default();
    decide(&prepared, &mut outcome);
    Ok(render(&prepared, &outcome))
}
