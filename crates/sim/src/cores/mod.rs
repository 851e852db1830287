//! Adapters between the simulated cluster and the real Ballast cores. This is the only place
//! the simulator asks for a decision; the decision code itself is the controllers'. They read
//! the world (`crate::world`) and return what the decision says; the engine applies it.

mod horizontal;
mod nodes;
mod vertical;
mod vertical_apply;

pub(crate) use horizontal::{AutoscalerState, autoscalers, horizontal};
pub(crate) use nodes::{disrupt, disruption_due, pool_timers, provision, static_pools};
pub(crate) use vertical::{
    RECOMMEND_PERIOD_MS, VerticalState, observe_usage, recommend, verticals,
};
pub(crate) use vertical_apply::{admit, admits, update, update_mode};
