//! The demand history of each object with `spec.predictive` (mode other than `Off`): what
//! `snapshot.demandHistory` holds for its decisions.
//!
//! ```text
//! first decision of this process ──▶ stored::load (the object's ConfigMap, if any)
//!                                 ──▶ backfill::read (its Prometheus queries over the window,
//!                                     when the history is not full)
//! every decision: ring.samples() ──▶ snapshot.demandHistory ──▶ decide ──▶ ring.record(demand)
//!                 every `save_interval` (and after the first decision) ──▶ stored::save
//! ```
//!
//! The ring's step and length come from the core's reading of `spec.predictive`
//! (`predict::view::from_spec`), so a spec change reshapes it. Objects without prediction keep
//! nothing. A stored history that cannot be read is reported once (a Warning event
//! `InvalidDemandHistory` naming the ConfigMap and key) and the history starts again.

pub mod backfill;
pub mod ring;
pub mod stored;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ballast_api::horizontal::{HorizontalAutoscaler, PredictiveMode};
use ballast_horizontal::{Decision, DemandSample};
use jiff::Timestamp;
use kube::ResourceExt;

use super::Context;
use ring::DemandRing;

/// How the demand history is kept.
#[derive(Clone, Debug)]
pub struct DemandHistoryConfig {
    /// Least time between two writes of one object's stored history.
    pub save_interval: Duration,
    /// Read a history that is not full back from the object's Prometheus queries.
    pub backfill: bool,
}

impl Default for DemandHistoryConfig {
    fn default() -> Self {
        DemandHistoryConfig {
            save_interval: Duration::from_secs(300),
            backfill: true,
        }
    }
}

/// One object's history and when it was last stored.
struct Memory {
    uid: String,
    ring: DemandRing,
    saved_at: Option<Timestamp>,
    /// The newest step at the last write (nothing new: no write).
    saved_step: Option<i64>,
}

/// `namespace/name` → history, for the objects with prediction.
#[derive(Default)]
pub(super) struct Histories {
    objects: Mutex<HashMap<String, Arc<Mutex<Memory>>>>,
}

impl Histories {
    fn get(&self, key: &str, uid: &str) -> Option<Arc<Mutex<Memory>>> {
        let objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        objects
            .get(key)
            .filter(|m| m.lock().unwrap_or_else(|e| e.into_inner()).uid == uid)
            .cloned()
    }

    fn insert(&self, key: &str, memory: Memory) -> Arc<Mutex<Memory>> {
        let memory = Arc::new(Mutex::new(memory));
        self.objects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_owned(), memory.clone());
        memory
    }

    /// Forgets a deleted object's history (or one whose prediction was turned off).
    pub(super) fn forget(&self, key: &str) {
        self.objects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// The step (ms) and length of `hza`'s history, when it predicts (`None`: `Off`, absent, or a
/// spec the decision refuses).
pub fn shape(hza: &HorizontalAutoscaler) -> Option<(i64, usize)> {
    let spec = hza
        .spec
        .predictive
        .as_ref()
        .filter(|p| p.mode != PredictiveMode::Off)?;
    let view = ballast_horizontal::predict::view::from_spec(
        Some(spec),
        hza.spec.sync_period_seconds(),
        &[],
        |_| 0,
    )
    .ok()
    .flatten()?;
    Some((view.settings.step_millis, view.settings.history_steps))
}

/// The history `hza`'s decision at `now` forecasts from; on the first decision of this process,
/// restored from the ConfigMap and backfilled from Prometheus.
pub(super) async fn before_decision(
    ctx: &Context,
    hza: &HorizontalAutoscaler,
    now: Timestamp,
) -> Vec<DemandSample> {
    let key = format!("{}/{}", hza.namespace().unwrap_or_default(), hza.name_any());
    let Some((step, capacity)) = shape(hza) else {
        ctx.demand.forget(&key);
        return Vec::new();
    };
    let uid = hza.uid().unwrap_or_default();
    let memory = match ctx.demand.get(&key, &uid) {
        Some(memory) => memory,
        None => {
            let ring = first_sight(ctx, hza, step, capacity, now).await;
            ctx.demand.insert(
                &key,
                Memory {
                    uid,
                    ring,
                    saved_at: None,
                    saved_step: None,
                },
            )
        }
    };
    let mut memory = memory.lock().unwrap_or_else(|e| e.into_inner());
    if memory.ring.step_millis() != step || memory.ring.capacity() != capacity {
        memory.ring = memory.ring.reshaped(step, capacity);
    }
    memory.ring.samples()
}

/// The history this process starts `hza` from: the stored one, completed from Prometheus.
async fn first_sight(
    ctx: &Context,
    hza: &HorizontalAutoscaler,
    step: i64,
    capacity: usize,
    now: Timestamp,
) -> DemandRing {
    let stored = match stored::load(&ctx.client, hza, capacity).await {
        Ok(ring) => ring,
        Err(problem) => {
            let note = format!("{problem}; ignored, the demand history starts again");
            super::publish(ctx, hza, true, "InvalidDemandHistory", &note).await;
            None
        }
    };
    let ring = stored
        .map(|ring| ring.reshaped(step, capacity))
        .unwrap_or_else(|| DemandRing::new(step, capacity));
    let restored = ring.len();
    if !ctx.config.demand_history.backfill || ring.len() >= capacity {
        tracing::info!(object = %hza.name_any(), restored, "demand history restored");
        return ring;
    }
    match backfill::read(&ctx.source, hza, step, capacity, now).await {
        Ok(points) => {
            let filled = ring.backfilled(points);
            tracing::info!(object = %hza.name_any(), restored, backfilled = filled.len().saturating_sub(restored), "demand history restored and backfilled");
            filled
        }
        Err(why) => {
            tracing::info!(object = %hza.name_any(), restored, %why, "demand history not backfilled");
            ring
        }
    }
}

/// Appends `decision`'s demand to `hza`'s history and stores the history when due.
pub(super) async fn after_decision(
    ctx: &Context,
    hza: &HorizontalAutoscaler,
    decision: &Decision,
    now: Timestamp,
) {
    let key = format!("{}/{}", hza.namespace().unwrap_or_default(), hza.name_any());
    let Some(memory) = ctx.demand.get(&key, &hza.uid().unwrap_or_default()) else {
        return;
    };
    let to_save = {
        let mut memory = memory.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(demand) = decision.demand {
            memory.ring.record(now.as_millisecond(), demand);
        }
        let due = memory.saved_at.is_none_or(|at| {
            now.duration_since(at).unsigned_abs() >= ctx.config.demand_history.save_interval
        });
        let new = memory.ring.last_step() != memory.saved_step;
        (due && new && !memory.ring.is_empty()).then(|| memory.ring.clone())
    };
    let Some(ring) = to_save else {
        return;
    };
    match stored::save(&ctx.client, hza, &ring).await {
        Ok(()) => {
            let mut memory = memory.lock().unwrap_or_else(|e| e.into_inner());
            memory.saved_at = Some(now);
            memory.saved_step = ring.last_step();
        }
        Err(e) => tracing::warn!(object = %key, error = %e, "storing the demand history failed"),
    }
}
