//! What `/readyz` and `/healthz` answer: a [`Ready`] flag set once a reconciler's caches are
//! synced, and [`Heartbeats`] of its loops, which fail liveness when a loop that runs stops
//! turning (stuck on a call that never returns, a deadlock).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Set once the caches are synced (cheap to clone; every clone reads the same flag).
#[derive(Clone, Debug, Default)]
pub struct Ready(Arc<AtomicBool>);

impl Ready {
    /// Sets the flag.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    /// Whether the flag is set.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The last turn of each named loop and how late a turn may be (cheap to clone).
#[derive(Clone, Debug, Default)]
pub struct Heartbeats(Arc<Mutex<BTreeMap<&'static str, (Instant, Duration)>>>);

impl Heartbeats {
    /// Notes a turn of `name`, whose next turn must come within `limit`.
    pub fn beat(&self, name: &'static str, limit: Duration) {
        self.beat_at(name, limit, Instant::now());
    }

    /// [`Heartbeats::beat`] at a given instant (tests).
    pub fn beat_at(&self, name: &'static str, limit: Duration, at: Instant) {
        let mut beats = self.0.lock().unwrap_or_else(|e| e.into_inner());
        beats.insert(name, (at, limit));
    }

    /// Forgets `name` (a loop that stopped on purpose).
    pub fn stop(&self, name: &'static str) {
        let mut beats = self.0.lock().unwrap_or_else(|e| e.into_inner());
        beats.remove(name);
    }

    /// The loops late at `now`, by name.
    pub fn late(&self, now: Instant) -> Vec<&'static str> {
        let beats = self.0.lock().unwrap_or_else(|e| e.into_inner());
        beats
            .iter()
            .filter(|(_, (at, limit))| now.saturating_duration_since(*at) > *limit)
            .map(|(name, _)| *name)
            .collect()
    }

    /// True when no loop is late now (and when none runs yet).
    pub fn healthy(&self) -> bool {
        self.late(Instant::now()).is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_is_late_once_its_limit_passed() {
        let h = Heartbeats::default();
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        assert!(h.late(t0).is_empty());
        h.beat_at("provisioner", 60 * s, t0);
        h.beat_at("disruption", 120 * s, t0);
        assert!(h.late(t0 + 60 * s).is_empty());
        assert_eq!(h.late(t0 + 61 * s), ["provisioner"]);
        h.beat_at("provisioner", 60 * s, t0 + 61 * s);
        assert_eq!(h.late(t0 + 121 * s), ["disruption"]);
        h.stop("disruption");
        assert!(h.late(t0 + 121 * s).is_empty());
    }
}
