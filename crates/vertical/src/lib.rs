//! Pure decision core of the vertical reconciler: usage histograms that decay with age, and the
//! request recommendations read from them (VPA recommender parity by default, plus an Adaptive
//! mode that picks, per container, the estimator with the lowest recent cost).
//!
//! No clock, no I/O: every function takes the samples and `now` it needs, so the live controller,
//! the simulator, `ballast explain` and `ballast evaluate` get the same answers.
//!
//! - [`histogram`]: decaying exponential-bucket histograms;
//! - [`aggregate`]: one container's usage state (CPU samples, memory interval peaks, OOM bumps);
//! - [`adaptive`]: the model-choosing estimator;
//! - [`window`]: peaks of recent time windows (the Adaptive mode's moving-window signal);
//! - [`estimate`]: percentiles, margins, confidence, floors;
//! - [`policy`]: container policies (mode, controlled resources, min/max allowed);
//! - [`settings`]: defaults and per-object overrides;
//! - [`checkpoint`]: state to and from `VerticalAutoscalerCheckpoint`;
//! - [`recommend`]: the entry point;
//! - [`apply`]: a container's new requests and limits, and which pods the updater updates;
//! - [`workload`]: one object's containers, fed by observed samples and OOM kills;
//! - [`coordination`]: when a horizontal autoscaler on the same target fights the requests, and
//!   which requests are then held;
//! - [`status`]: the object's status (recommendation, conditions) and events after a pass;
//! - [`series`] and [`evaluate`]: replaying usage traces to measure the estimators;
//! - [`frontier`]: what simple rules and a perfect estimator reach on the same traces.

pub mod adaptive;
pub mod aggregate;
pub mod apply;
pub mod checkpoint;
pub mod coordination;
pub mod error;
pub mod estimate;
pub mod evaluate;
pub mod explain;
pub mod frontier;
pub mod histogram;
pub mod policy;
pub mod recommend;
pub mod series;
pub mod settings;
pub mod status;
pub mod window;
pub mod workload;

pub use aggregate::ContainerState;
pub use error::Error;
pub use recommend::{Recommendation, TrackedContainer, recommend, recommend_with};
pub use settings::Settings;
pub use workload::{OomKill, UsageSample, Workload};
