//! When an in-place resize (`InPlaceOrRecreate`) gives way to an eviction: the VPA updater's
//! timings, read from the resize conditions the kubelet sets on the pod.
//!
//! - `PodResizePending` with reason `Infeasible` (the node can never hold it): evict at once
//!   (ours: the VPA waits for the pending timeout whatever the reason; an infeasible resize is
//!   not re-evaluated by the kubelet, so waiting only delays the same outcome);
//! - `PodResizePending` (`Deferred` or any other reason) for longer than
//!   [`PENDING_TIMEOUT_SECONDS`] (5 min);
//! - `PodResizeInProgress` for longer than [`IN_PROGRESS_TIMEOUT_SECONDS`] (1 h).
//!
//! Time is counted from each condition's `lastTransitionTime` (the VPA counts from its own
//! in-memory resize attempt; the condition survives a restart of the updater). Until then the pod
//! is left alone: no second resize, no eviction.

/// A resize pending this long (seconds) falls back to eviction (the VPA's 5 min).
pub const PENDING_TIMEOUT_SECONDS: i64 = 300;
/// A resize in progress this long (seconds) falls back to eviction (the VPA's 1 h).
pub const IN_PROGRESS_TIMEOUT_SECONDS: i64 = 3600;

/// How long a resize may stay pending or in progress before the pod is evicted, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub pending: i64,
    pub in_progress: i64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            pending: PENDING_TIMEOUT_SECONDS,
            in_progress: IN_PROGRESS_TIMEOUT_SECONDS,
        }
    }
}

/// A pod's resize conditions (only those with status `True`), as the kubelet reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResizeConditions {
    /// `PodResizePending`: its reason (`Deferred`, `Infeasible`) and Unix second of transition.
    pub pending: Option<(String, i64)>,
    /// `PodResizeInProgress`: its reason (empty, or `Error`) and Unix second of transition.
    pub in_progress: Option<(String, i64)>,
}

/// Where a pod's in-place resize stands for the updater.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ResizeState {
    /// No resize under way: the pod is judged on its requests.
    #[default]
    Idle,
    /// A resize is under way and not yet overdue: leave the pod alone (why, in words).
    Waiting(String),
    /// The resize will not happen (in time): the pod qualifies for eviction (why, in words).
    Overdue(String),
}

/// The state of a pod's resize from its `conditions` at `now` (Unix seconds).
pub fn resize_state(conditions: &ResizeConditions, timeouts: &Timeouts, now: i64) -> ResizeState {
    let mut waiting = None;
    if let Some((reason, since)) = &conditions.pending {
        let age = now - since;
        if reason == "Infeasible" {
            return ResizeState::Overdue("the kubelet found the resize infeasible".to_owned());
        }
        let reason = if reason.is_empty() { "pending" } else { reason };
        if age > timeouts.pending {
            return ResizeState::Overdue(format!(
                "resize {reason} for {age}s (fallback after {}s)",
                timeouts.pending
            ));
        }
        waiting = Some(format!("resize {reason} for {age}s"));
    }
    if let Some((reason, since)) = &conditions.in_progress {
        let age = now - since;
        let reason = if reason.is_empty() {
            String::new()
        } else {
            format!(" ({reason})")
        };
        if age > timeouts.in_progress {
            return ResizeState::Overdue(format!(
                "resize in progress{reason} for {age}s (fallback after {}s)",
                timeouts.in_progress
            ));
        }
        waiting.get_or_insert(format!("resize in progress{reason} for {age}s"));
    }
    waiting.map_or(ResizeState::Idle, ResizeState::Waiting)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn pending(reason: &str, age: i64) -> Option<(String, i64)> {
        Some((reason.to_owned(), NOW - age))
    }

    #[test]
    fn table() {
        // (pending, in progress, timeouts, expected: 'i' idle, 'w' waiting, 'o' overdue)
        let short = Timeouts {
            pending: 5,
            in_progress: 10,
        };
        let cases = [
            (None, None, Timeouts::default(), 'i'),
            (pending("Deferred", 60), None, Timeouts::default(), 'w'),
            (pending("Deferred", 300), None, Timeouts::default(), 'w'),
            (pending("Deferred", 301), None, Timeouts::default(), 'o'),
            (pending("", 301), None, Timeouts::default(), 'o'),
            (pending("Infeasible", 0), None, Timeouts::default(), 'o'),
            (None, pending("", 3599), Timeouts::default(), 'w'),
            (None, pending("Error", 3601), Timeouts::default(), 'o'),
            // a new resize pending while the last one is still in progress: either may be overdue
            (
                pending("Deferred", 10),
                pending("", 4000),
                Timeouts::default(),
                'o',
            ),
            (
                pending("Deferred", 400),
                pending("", 10),
                Timeouts::default(),
                'o',
            ),
            (
                pending("Deferred", 10),
                pending("", 10),
                Timeouts::default(),
                'w',
            ),
            // a short timeout (tests)
            (pending("Deferred", 6), None, short, 'o'),
            (None, pending("", 6), short, 'w'),
            (None, pending("", 11), short, 'o'),
        ];
        for (i, (pending, in_progress, timeouts, want)) in cases.into_iter().enumerate() {
            let conditions = ResizeConditions {
                pending,
                in_progress,
            };
            let got = resize_state(&conditions, &timeouts, NOW);
            let kind = match &got {
                ResizeState::Idle => 'i',
                ResizeState::Waiting(_) => 'w',
                ResizeState::Overdue(_) => 'o',
            };
            assert_eq!(kind, want, "case {i}: {got:?}");
        }
    }

    #[test]
    fn the_reason_says_how_long() {
        let c = ResizeConditions {
            pending: pending("Deferred", 400),
            in_progress: None,
        };
        assert_eq!(
            resize_state(&c, &Timeouts::default(), NOW),
            ResizeState::Overdue("resize Deferred for 400s (fallback after 300s)".to_owned())
        );
    }
}
