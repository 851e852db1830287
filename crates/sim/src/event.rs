//! The events of a run and the wake-ups the cluster asks for. The cluster (`crate::world`) never
//! touches the event queue: it appends to its `Wakeups`, which the engine moves into the queue in
//! the order they were asked for.

use crate::state::{Millis, NodeId, PodId};

/// Something that happens at an instant of virtual time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Event {
    /// Take a sample for the time series.
    Sample,
    /// Autoscaler `i` syncs.
    HpaSync(usize),
    /// The scheduler binds what it can.
    Schedule,
    /// The provisioner's batch window closes.
    Provision,
    /// A disruption pass may run.
    Disrupt,
    /// Evict what may leave the node, or try again later.
    Drain(NodeId),
    /// A launched node becomes Ready.
    NodeReady(NodeId),
    /// A bound pod becomes Ready.
    PodReady(PodId),
    /// A batch pod completes.
    PodFinish(PodId),
    /// Batch pod `i` of the scenario is created.
    BatchArrive(usize),
    /// A spot node gets its interruption warning.
    Interrupt(NodeId),
    /// An interrupted spot node's instance is reclaimed.
    Reclaim(NodeId),
    /// Scheduled interruption `i` of `settings.spotInterruptions` is due.
    ScheduledInterrupt(usize),
    /// The vertical recommender's loop: every `VerticalAutoscaler` gets a recommendation, which
    /// the admission of new pods then uses, and the updater evicts pods off it (`Recreate`).
    Recommend,
}

/// Wake-ups asked for and not yet queued, oldest first.
#[derive(Debug, Clone, Default)]
pub(crate) struct Wakeups {
    asked: Vec<(Millis, Event)>,
}

impl Wakeups {
    /// Asks for `event` at `at`.
    pub(crate) fn at(&mut self, at: Millis, event: Event) {
        self.asked.push((at, event));
    }

    /// Hands over what was asked for, in order, and forgets it.
    pub(crate) fn take(&mut self) -> std::vec::Drain<'_, (Millis, Event)> {
        self.asked.drain(..)
    }
}
