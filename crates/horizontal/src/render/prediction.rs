//! The prediction section of a render: the `PredictionActive` condition, `status.prediction`
//! (the forecast of the next hour at 5-minute resolution) and one explanation line.

use super::{Draft, time};
use crate::decide::Outcome;
use crate::predict::PredictionState;
use crate::predict::decision::PredictionOutcome;
use crate::prepare::Prepared;
use ballast_api::horizontal::{ForecastPoint, PredictionStatus, PredictiveMode};

/// Resolution of `status.prediction.nextHour`.
const POINT_MILLIS: i64 = 5 * 60_000;
/// Points of `status.prediction.nextHour`.
const POINTS: i64 = 12;

/// The condition's reason for a forecast state.
pub(super) fn reason(state: PredictionState) -> &'static str {
    match state {
        PredictionState::Forecasting => "Forecasting",
        PredictionState::HistoryTooShort => "HistoryTooShort",
        PredictionState::HistoryStale => "HistoryStale",
        PredictionState::ErrorAboveThreshold => "ErrorAboveThreshold",
    }
}

/// Sets `PredictionActive` and adds the explanation line, when the prediction step ran.
pub(super) fn prediction_section(d: &mut Draft, p: &Prepared, out: &Outcome) {
    let Some(view) = p.prediction.as_ref().filter(|_| out.prediction.ran) else {
        return;
    };
    let forecast = &out.prediction.forecast;
    let scale = view.mode == PredictiveMode::Scale;
    let message = match forecast.state {
        PredictionState::Forecasting if scale => format!(
            "forecasting {:.2} replicas of demand (quantile {}), recent error {:.1}%",
            forecast.provision,
            view.settings.quantile,
            forecast.error * 100.0
        ),
        PredictionState::Forecasting => format!(
            "forecast only (not used to scale): {:.2} replicas of demand, recent error {:.1}%",
            forecast.provision,
            forecast.error * 100.0
        ),
        PredictionState::HistoryTooShort => format!(
            "history too short: {} of {} steps of {} s; scaling reactively",
            forecast.history_steps,
            forecast.needed_steps,
            view.settings.step_millis / 1000
        ),
        PredictionState::HistoryStale => {
            "the newest demand sample is more than 5 steps old; scaling reactively".to_string()
        }
        PredictionState::ErrorAboveThreshold => format!(
            "recent error {:.1}% is above the threshold {:.1}% (or not yet below 80% of it); scaling reactively",
            forecast.error * 100.0,
            view.settings.error_threshold * 100.0
        ),
    };
    d.condition(
        "PredictionActive",
        forecast.trusted(),
        reason(forecast.state),
        message.clone(),
    );
    d.lines.push(line(&out.prediction, view.mode, &message));
}

fn line(prediction: &PredictionOutcome, mode: PredictiveMode, message: &str) -> String {
    let mode = if mode == PredictiveMode::Scale {
        "Scale"
    } else {
        "ForecastOnly"
    };
    match prediction.predicted {
        Some(predicted) if prediction.raised => format!(
            "Prediction ({mode}): {message}; the forecast asks for {predicted} replicas, so the proposal rises from {} to {predicted}",
            prediction.reactive
        ),
        Some(predicted) => format!(
            "Prediction ({mode}): {message}; the forecast asks for {predicted} replicas, the reactive proposal {} stands",
            prediction.reactive
        ),
        None => format!("Prediction ({mode}): {message}"),
    }
}

/// `status.prediction`: the last forecast when the step ran, the stored one otherwise (while
/// `spec.predictive` is on), none without it.
pub(super) fn prediction_status(
    p: &Prepared,
    out: &Outcome,
    old: Option<&PredictionStatus>,
) -> Option<PredictionStatus> {
    let view = p.prediction.as_ref()?;
    if !out.prediction.ran {
        return old.cloned();
    }
    let forecast = &out.prediction.forecast;
    let step = view.settings.step_millis.max(1);
    let last = view.series.last_at_millis().unwrap_or(p.now);
    let forecaster = out.forecaster.as_ref();
    let next_hour = (1..=POINTS)
        .filter_map(|point| {
            let steps = usize::try_from(point * POINT_MILLIS / step).ok()?;
            let value = forecaster?.project(steps)?;
            Some(ForecastPoint {
                time: time(last.saturating_add(point * POINT_MILLIS)),
                value: format!("{:.3}", value.max(0.0)),
            })
        })
        .collect();
    Some(PredictionStatus {
        trusted: forecast.trusted(),
        reason: reason(forecast.state).to_string(),
        recent_error: (forecast.comparisons > 0).then(|| format!("{:.4}", forecast.error)),
        season_seconds: (forecast.season_steps > 0)
            .then(|| i64::try_from(forecast.season_steps).unwrap_or(i64::MAX) * step / 1000),
        predicted_replicas: out.prediction.predicted,
        next_hour,
    })
}
