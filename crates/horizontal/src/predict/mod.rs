//! Predictive scaling: forecast a metric's value `look-ahead` after `now` from its history, and
//! provision for it before the load arrives.
//!
//! ```text
//! samples ──record──▶ Series (fixed ring of evenly spaced values)
//!            │
//!            ▼
//! Forecaster::forecast(series, now)
//!   season::detect (autocorrelation at a day, a week)      when seasonality is Auto
//!   model::HoltWinters (level + damped trend + season)     one pass over the series
//!   accuracy::ErrorWindow + Trust (recent sMAPE, hysteresis)
//!   interval::quantile (Student's t on the recent errors)
//!            │
//!            ▼
//! Forecast { state, point, provision, error, … } ──replicas::needed──▶ predicted replicas
//!            replicas::combine(reactive, predicted, max) = max(reactive, min(predicted, max))
//! ```
//!
//! Pure and deterministic: no clock (`now` is an argument), no randomness, and no allocation per
//! call beyond the buffers made once from the [`Settings`]. See `docs/horizontal.md`
//! ("Predictive scaling") for the model and its defaults.

pub mod accuracy;
pub mod backfill;
pub mod decision;
pub mod forecast;
pub mod interval;
pub mod model;
pub mod replicas;
pub mod season;
pub mod series;
pub mod view;

pub use forecast::{Forecast, Forecaster, PredictionState, Seasonality, Settings};
pub use series::Series;

#[cfg(test)]
mod tests;
