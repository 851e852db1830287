//! The prediction step of [`crate::decide`]: the demand of this decision, the forecast from the
//! demand history, and the reactive proposal raised to the prediction in `Scale` mode.
//!
//! Runs on the `Normal` path only, after the metrics' largest proposal and before
//! normalization, so stabilization windows, rate policies and `[min, max]` still apply to the
//! combined count: a scale-down after the forecast peak waits for the down window as any other.

use super::forecast::{Forecast, Forecaster};
use super::replicas;
use crate::decide::{MetricState, Outcome, Rule};
use crate::prepare::Prepared;
use ballast_api::horizontal::PredictiveMode;
use serde::Serialize;

/// What the prediction step found.
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize)]
pub struct PredictionOutcome {
    /// Whether it ran (`spec.predictive` not `Off`, on the `Normal` path).
    pub ran: bool,
    #[serde(skip)]
    pub forecast: Forecast,
    /// Replicas the trusted forecast asks for.
    pub predicted: Option<i32>,
    /// The reactive proposal before the prediction.
    pub reactive: i32,
    /// Whether the prediction raised the proposal.
    pub raised: bool,
}

/// The demand of the evaluated metrics: the largest `ratio × pods counted` (replicas before
/// rounding) of a valid metric, `value / target` for per-replica averages of one value.
pub fn demand(out: &Outcome, status_replicas: i32) -> Option<f64> {
    out.metrics
        .iter()
        .filter(|metric| metric.state == MetricState::Valid && metric.ratio.is_finite())
        .map(|metric| match metric.rule {
            Rule::AverageValue | Rule::AverageWithinTolerance => {
                metric.ratio * f64::from(status_replicas.max(0))
            }
            _ => metric.ratio * f64::from(metric.ready + metric.extra),
        })
        .filter(|demand| demand.is_finite() && *demand >= 0.0)
        .reduce(f64::max)
}

/// The proposal after prediction: `reactive`, or in `Scale` mode with a trusted forecast
/// beyond the scale-up tolerance of the current count `max(reactive, min(predicted, max))`.
pub fn apply(p: &Prepared, out: &mut Outcome, reactive: i32) -> i32 {
    out.prediction = PredictionOutcome {
        reactive,
        ..PredictionOutcome::default()
    };
    let Some(view) = p.prediction.as_ref() else {
        return reactive;
    };
    let forecaster = match out.forecaster.as_mut() {
        Some(forecaster) if forecaster.settings() == &view.settings => forecaster,
        _ => out.forecaster.insert(Forecaster::new(view.settings)),
    };
    let forecast = forecaster.forecast(&view.series, p.now);
    let predicted = forecast
        .provision_value()
        .and_then(|load| replicas::needed(load.max(0.0), 1.0))
        .map(|count| i32::try_from(count).unwrap_or(i32::MAX));
    out.prediction.ran = true;
    out.prediction.forecast = forecast;
    out.prediction.predicted = predicted;
    if view.mode != PredictiveMode::Scale || reactive < 0 {
        return reactive;
    }
    let max = u32::try_from(p.spec.max.max(0)).unwrap_or(0);
    let reactive_count = u32::try_from(reactive).unwrap_or(0);
    // The reactive rule's scale-up tolerance applies to the forecast too: a forecast within it
    // of the current count (a flat load on a replica boundary) adds nothing.
    let current = f64::from(p.scale.spec_replicas.max(0));
    let beyond = forecast.provision > current * (1.0 + p.spec.tol_up);
    let combined = replicas::combine(
        reactive_count,
        predicted
            .filter(|_| beyond)
            .and_then(|count| u32::try_from(count).ok()),
        max.max(reactive_count),
    );
    let combined = i32::try_from(combined).unwrap_or(i32::MAX);
    out.prediction.raised = combined > reactive;
    combined
}
