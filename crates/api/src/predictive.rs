//! `spec.predictive` and `status.prediction` of a `HorizontalAutoscaler` (a Ballast addition):
//! scale ahead of a forecast of each metric, or only report the forecast.
//!
//! The horizontal core (`ballast_horizontal::predict`) reads these fields; `docs/horizontal.md`
//! ("Predictive scaling") explains the model. Durations are in seconds, as the HPA's own
//! fields are; the quantile and error threshold are quantities (`"0.9"`, `900m`), as the
//! behavior's tolerance is.

use crate::common::{Time, quantity_schema};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Default quantile of the forecast to provision for.
pub const DEFAULT_QUANTILE: f64 = 0.9;
/// Default recent sMAPE (0 to 2) above which the forecast is not used.
pub const DEFAULT_ERROR_THRESHOLD: f64 = 0.2;
/// Default seconds of history a forecast reads (14 days).
pub const DEFAULT_HISTORY_WINDOW_SECONDS: i32 = 14 * 86_400;
/// Default resolution of the history.
pub const DEFAULT_STEP_SECONDS: i32 = 60;
/// Default length of a day (the daily season; 7 of them make the weekly one).
pub const DEFAULT_SEASON_LENGTH_SECONDS: i32 = 86_400;
/// How many recent forecasts the error is measured over by default.
pub const DEFAULT_ERROR_WINDOW_STEPS: i32 = 60;

/// What prediction does. Write `'Off'` quoted in YAML: YAML 1.1 reads a bare `Off` as false
/// (`ballast_api::yaml` quotes it when writing).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum PredictiveMode {
    /// No forecast (as if the field were absent).
    #[default]
    Off,
    /// Forecast and report in the status, but scale reactively.
    ForecastOnly,
    /// Scale to max(reactive, predicted) while the forecast is trusted.
    Scale,
}

/// Which season the forecast models.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum PredictiveSeasonality {
    Daily,
    Weekly,
    /// The day or the week, whichever the history repeats at, or none.
    #[default]
    Auto,
}

/// `spec.predictive`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(
    validation = Rule::new("!has(self.historyWindowSeconds) || !has(self.stepSeconds) || self.historyWindowSeconds >= 10 * self.stepSeconds").message("historyWindowSeconds must be at least 10 steps (stepSeconds)").field_path(".historyWindowSeconds"),
    validation = Rule::new("!has(self.seasonLengthSeconds) || !has(self.stepSeconds) || self.seasonLengthSeconds >= 2 * self.stepSeconds").message("seasonLengthSeconds must be at least 2 steps (stepSeconds)").field_path(".seasonLengthSeconds")
)]
#[serde(rename_all = "camelCase")]
pub struct PredictiveSpec {
    /// `Off`, `ForecastOnly` or `Scale`.
    pub mode: PredictiveMode,
    /// How far ahead to forecast (default: the sync period plus 120 s of pod start-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub look_ahead_seconds: Option<i32>,
    /// How much history a forecast reads (default 14 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 3024000))]
    pub history_window_seconds: Option<i32>,
    /// The history's resolution (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub step_seconds: Option<i32>,
    /// `Daily`, `Weekly` or `Auto` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seasonality: Option<PredictiveSeasonality>,
    /// The length of a "day" (default 86400): less compresses the season, for tests and
    /// simulations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 86400))]
    pub season_length_seconds: Option<i32>,
    /// The quantile of the forecast to provision for, in (0, 1) (default 0.9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "quantity_schema")]
    pub quantile: Option<Quantity>,
    /// The recent symmetric mean absolute percentage error (0 to 2) above which the forecast
    /// is not used (default 0.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "quantity_schema")]
    pub error_threshold: Option<Quantity>,
    /// How many recent forecasts the error is measured over (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10080))]
    pub error_window_steps: Option<i32>,
}

/// `status.prediction`: the last forecast.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct PredictionStatus {
    /// Whether the forecast is used (`Scale`) or would be (`ForecastOnly`).
    pub trusted: bool,
    /// `Forecasting`, `HistoryTooShort`, `HistoryStale` or `ErrorAboveThreshold`.
    pub reason: String,
    /// The recent symmetric mean absolute percentage error, as a decimal string (`0.042`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent_error: Option<String>,
    /// The season found or set, in seconds (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub season_seconds: Option<i64>,
    /// Replicas the forecast asks for at now + look-ahead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_replicas: Option<i32>,
    /// The forecast of the next hour at coarse resolution (up to 12 points).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 12))]
    pub next_hour: Vec<ForecastPoint>,
}

/// One point of the forecast.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForecastPoint {
    pub time: Time,
    /// The forecast demand (what the metrics ask for in replicas before rounding), as a
    /// decimal string.
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_is_written_quoted_and_read_either_way() {
        let spec = PredictiveSpec {
            mode: PredictiveMode::Off,
            ..PredictiveSpec::default()
        };
        let text = crate::yaml::to_string(&spec).expect("serializes");
        assert_eq!(text, "mode: 'Off'\n");
        for written in ["mode: 'Off'\n", "mode: Off\n"] {
            let read: PredictiveSpec = serde_yaml::from_str(written).expect("reads");
            assert_eq!(read.mode, PredictiveMode::Off, "{written}");
        }
        let scale: PredictiveSpec =
            serde_yaml::from_str("mode: Scale\nseasonality: Weekly\nquantile: '0.95'\n")
                .expect("reads");
        assert_eq!(scale.seasonality, Some(PredictiveSeasonality::Weekly));
    }
}
