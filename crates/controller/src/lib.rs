//! The live reconcilers: kube-runtime shells that observe the cluster, build the snapshot a
//! pure core takes, run the core, and carry out its decision (scale writes, status, events,
//! NodeClaims, instances). No decision logic lives here: it is in `ballast-horizontal`,
//! `ballast-nodes`, `ballast-vertical` and `ballast-scheduling`, shared with the simulator and `ballast explain`.
//! The time every decision is made at comes from the [`Clock`] in the reconciler's options.

pub mod clock;
pub mod events;
pub mod health;
pub mod horizontal;
pub mod jobs;
pub mod leader;
pub mod metric_labels;
pub mod nodes;
pub mod runtime;
pub mod scale;
pub mod vertical;
pub mod watch_backoff;

pub use clock::Clock;
