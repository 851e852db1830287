//! How well each workload's forecast did, for autoscalers with `spec.predictive` (absent
//! otherwise): the report's "forecast error" figures.
//!
//! The figures come from the horizontal core's own prediction step, decision by decision, so the
//! report shows what the live controller would have seen in its status:
//! - *decisions*: decisions where the prediction step ran (`spec.predictive` not `Off`, on the
//!   `Normal` path);
//! - *trusted*: the share of those whose forecast was trusted (enough history, fresh, its recent
//!   error under the object's threshold): only then can `Scale` mode act on it;
//! - *forecast error*: the mean of the forecast's recent sMAPE (symmetric mean absolute
//!   percentage error, 0–200%) over the decisions that had measured it, trusted or not;
//! - *raised*: decisions where a trusted forecast raised the reactive proposal (`Scale` mode
//!   only; `ForecastOnly` reports and never raises).

use std::fmt::Write as _;

use ballast_horizontal::predict::decision::PredictionOutcome;
use serde::Serialize;

use crate::report::VariantResult;

/// What the decisions of one workload's autoscaler said about its forecast, added up.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ForecastTally {
    decisions: u64,
    trusted: u64,
    measured: u64,
    error_sum: f64,
    raised: u64,
}

impl ForecastTally {
    /// Counts one decision's prediction step (nothing when it did not run).
    pub fn add(&mut self, prediction: &PredictionOutcome) {
        if !prediction.ran {
            return;
        }
        self.decisions += 1;
        let forecast = &prediction.forecast;
        if forecast.trusted() {
            self.trusted += 1;
        }
        if forecast.comparisons > 0 && forecast.error.is_finite() {
            self.measured += 1;
            self.error_sum += forecast.error;
        }
        if prediction.raised {
            self.raised += 1;
        }
    }

    /// The report's figures; `None` when no decision ran the prediction step.
    pub fn summary(&self) -> Option<ForecastSummary> {
        (self.decisions > 0).then(|| ForecastSummary {
            decisions: self.decisions,
            trusted_percent: round(100.0 * self.trusted as f64 / self.decisions as f64),
            mean_error_percent: (self.measured > 0)
                .then(|| round(100.0 * self.error_sum / self.measured as f64)),
            raised: self.raised,
        })
    }
}

/// One workload's forecast figures in the report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ForecastSummary {
    /// Decisions where the prediction step ran.
    pub decisions: u64,
    /// Share of them with a trusted forecast, %.
    pub trusted_percent: f64,
    /// Mean recent sMAPE of the forecast, % (absent before any forecast could be measured).
    pub mean_error_percent: Option<f64>,
    /// Decisions where the forecast raised the replica count.
    pub raised: u64,
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0 + 0.0
}

fn error_cell(s: &ForecastSummary) -> String {
    s.mean_error_percent
        .map_or_else(|| "-".to_string(), |e| format!("{e:.1}%"))
}

/// Every variant's forecast figures, a row per predictive workload, as a fixed-width table for
/// the terminal; empty when no workload of any variant is predictive.
pub fn table(results: &[VariantResult]) -> String {
    let rows: Vec<(&str, &str, &ForecastSummary)> = results
        .iter()
        .flat_map(|v| {
            v.summary.workloads.iter().filter_map(|w| {
                w.forecast
                    .as_ref()
                    .map(|f| (v.summary.variant.as_str(), w.name.as_str(), f))
            })
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from("forecasts of the predictive autoscalers (spec.predictive):\n");
    let _ = writeln!(
        out,
        "{:<24} {:<16} {:>9} {:>8} {:>14} {:>7}",
        "variant", "workload", "decisions", "trusted", "forecast error", "raised"
    );
    for (variant, workload, f) in rows {
        let _ = writeln!(
            out,
            "{:<24} {:<16} {:>9} {:>7.1}% {:>14} {:>7}",
            variant,
            workload,
            f.decisions,
            f.trusted_percent,
            error_cell(f),
            f.raised
        );
    }
    out
}

/// One variant's forecast figures as an HTML table (empty when it has no predictive workload).
pub fn html(workloads: &[crate::report::WorkloadSummary], escape: fn(&str) -> String) -> String {
    let rows: Vec<_> = workloads
        .iter()
        .filter_map(|w| w.forecast.as_ref().map(|f| (w, f)))
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<h3>Predictive scaling</h3><p>From the horizontal core's prediction step at each \
         decision: the share of decisions whose forecast was trusted, the forecast's mean recent \
         error (sMAPE, 0–200%), and how often it raised the replica count.</p>\
         <table border=\"1\" cellpadding=\"4\" style=\"border-collapse:collapse\">\
         <tr><th>workload</th><th>decisions</th><th>trusted</th><th>forecast error</th>\
         <th>raised</th></tr>",
    );
    for (w, f) in rows {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{:.1}%</td><td>{}</td><td>{}</td></tr>",
            escape(&w.name),
            f.decisions,
            f.trusted_percent,
            error_cell(f),
            f.raised
        );
    }
    out.push_str("</table>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_horizontal::predict::forecast::{Forecast, PredictionState};

    fn step(
        ran: bool,
        state: PredictionState,
        error: f64,
        comparisons: usize,
        raised: bool,
    ) -> PredictionOutcome {
        PredictionOutcome {
            ran,
            forecast: Forecast {
                state,
                error,
                comparisons,
                ..Forecast::default()
            },
            raised,
            ..PredictionOutcome::default()
        }
    }

    #[test]
    fn tallies_what_the_prediction_step_said() {
        use PredictionState::*;
        struct Case {
            name: &'static str,
            steps: Vec<PredictionOutcome>,
            want: Option<ForecastSummary>,
        }
        let cases = [
            Case {
                name: "never ran: no figures",
                steps: vec![step(false, Forecasting, 0.1, 5, false)],
                want: None,
            },
            Case {
                name: "history too short: no error measured yet",
                steps: vec![step(true, HistoryTooShort, 0.0, 0, false); 3],
                want: Some(ForecastSummary {
                    decisions: 3,
                    trusted_percent: 0.0,
                    mean_error_percent: None,
                    raised: 0,
                }),
            },
            Case {
                name: "mixed: error averaged over measured decisions only",
                steps: vec![
                    step(true, HistoryTooShort, 0.0, 0, false),
                    step(true, ErrorAboveThreshold, 0.5, 4, false),
                    step(true, Forecasting, 0.1, 8, true),
                    step(true, Forecasting, 0.3, 8, false),
                    step(false, Forecasting, 9.0, 8, true),
                ],
                want: Some(ForecastSummary {
                    decisions: 4,
                    trusted_percent: 50.0,
                    mean_error_percent: Some(30.0),
                    raised: 1,
                }),
            },
        ];
        for case in cases {
            let mut tally = ForecastTally::default();
            for s in &case.steps {
                tally.add(s);
            }
            assert_eq!(tally.summary(), case.want, "{}", case.name);
        }
    }
}
