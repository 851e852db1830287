//! `spec.predictive` read once by `prepare`: the mode, the forecaster's [`Settings`] and the
//! demand history as a [`Series`].
//!
//! The demand of a decision is what its metrics ask for in replicas before rounding (each
//! metric's ratio × the pods it counted; the largest metric wins): it measures the load and not
//! the replica count, so the history of a scaled workload is still the history of its load.

use super::forecast::{Seasonality, Settings};
use super::series::Series;
use crate::prepare::Millis;
use crate::snapshot::DemandSample;
use ballast_api::common::quantity_value;
use ballast_api::horizontal::{PredictiveMode, PredictiveSeasonality, PredictiveSpec};
use ballast_api::predictive::{
    DEFAULT_ERROR_THRESHOLD, DEFAULT_ERROR_WINDOW_STEPS, DEFAULT_HISTORY_WINDOW_SECONDS,
    DEFAULT_QUANTILE, DEFAULT_SEASON_LENGTH_SECONDS, DEFAULT_STEP_SECONDS,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Pod start-up assumed by the default look-ahead (added to the sync period).
pub const DEFAULT_START_UP_SECONDS: i32 = 120;

/// The prediction part of a prepared snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct PredictionView {
    pub mode: PredictiveMode,
    pub settings: Settings,
    /// The demand history (replicas before rounding).
    pub series: Series,
}

/// The view of `spec.predictive` with `samples` as history; `None` when absent or `Off`; an
/// error `(field, message)` for a field a schema cannot check (a quantile outside (0, 1), a
/// threshold outside (0, 2]).
pub fn from_spec(
    spec: Option<&PredictiveSpec>,
    sync_period_seconds: i32,
    samples: &[DemandSample],
    millis: impl Fn(&DemandSample) -> Millis,
) -> Result<Option<PredictionView>, (String, String)> {
    let Some(spec) = spec.filter(|spec| spec.mode != PredictiveMode::Off) else {
        return Ok(None);
    };
    let quantile = fraction(
        spec.quantile.as_ref(),
        "quantile",
        DEFAULT_QUANTILE,
        1.0,
        false,
    )?;
    let threshold = fraction(
        spec.error_threshold.as_ref(),
        "errorThreshold",
        DEFAULT_ERROR_THRESHOLD,
        2.0,
        true,
    )?;
    let step = i64::from(spec.step_seconds.unwrap_or(DEFAULT_STEP_SECONDS).max(1)) * 1000;
    let window = i64::from(
        spec.history_window_seconds
            .unwrap_or(DEFAULT_HISTORY_WINDOW_SECONDS),
    );
    let look_ahead = spec
        .look_ahead_seconds
        .unwrap_or(sync_period_seconds.saturating_add(DEFAULT_START_UP_SECONDS));
    let settings = Settings {
        step_millis: step,
        history_steps: usize::try_from(window.max(0) * 1000 / step)
            .unwrap_or(0)
            .max(10),
        look_ahead_millis: i64::from(look_ahead.max(1)) * 1000,
        seasonality: match spec.seasonality.unwrap_or_default() {
            PredictiveSeasonality::Daily => Seasonality::Daily,
            PredictiveSeasonality::Weekly => Seasonality::Weekly,
            PredictiveSeasonality::Auto => Seasonality::Auto,
        },
        day_millis: i64::from(
            spec.season_length_seconds
                .unwrap_or(DEFAULT_SEASON_LENGTH_SECONDS),
        ) * 1000,
        quantile,
        error_threshold: threshold,
        error_window: usize::try_from(
            spec.error_window_steps
                .unwrap_or(DEFAULT_ERROR_WINDOW_STEPS),
        )
        .unwrap_or(1)
        .max(1),
    };
    let mut series = Series::new(step, settings.history_steps);
    for sample in samples {
        series.record(millis(sample), sample.replicas);
    }
    Ok(Some(PredictionView {
        mode: spec.mode,
        settings,
        series,
    }))
}

/// A quantity in (0, `max`) (or (0, `max`] when `inclusive`), named `spec.predictive.<field>`.
fn fraction(
    value: Option<&Quantity>,
    field: &str,
    default: f64,
    max: f64,
    inclusive: bool,
) -> Result<f64, (String, String)> {
    let name = format!("spec.predictive.{field}");
    let Some(value) = value else {
        return Ok(default);
    };
    let number = quantity_value(value).map_err(|error| (name.clone(), error.to_string()))?;
    let within = number > 0.0 && (number < max || (inclusive && number <= max));
    if !number.is_finite() || !within {
        let bound = if inclusive { "]" } else { ")" };
        return Err((
            name,
            format!("must be in (0, {max}{bound}, got {}", value.0),
        ));
    }
    Ok(number)
}
