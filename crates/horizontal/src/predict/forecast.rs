//! One forecast: the value of a metric `look-ahead` after `now`, from its [`Series`], and whether
//! it may be used.
//!
//! ```text
//! series, now ──▶ fresh? ──▶ season (fixed or detected) ──▶ long enough? ──▶ one pass of the
//!   model: at every step, the forecast made look-ahead steps earlier is compared with the value
//!   (ErrorWindow, Trust), then the model takes the value in ──▶ point, quantile, state
//! ```
//!
//! A [`Forecaster`] owns every buffer a pass needs (season slots, forecasts in flight, the error
//! window), sized once from its [`Settings`]; `forecast` reuses them, so a call allocates nothing.
//! The result depends on the series and `now` only: the pass starts from scratch each time.

use super::accuracy::{ErrorWindow, Trust};
use super::interval;
use super::model::{HoltWinters, SMOOTHING};
use super::season;
use super::series::Series;

/// How many steps a series may lag behind `now` before its forecast is stale.
pub const STALE_STEPS: i64 = 5;

/// Without a season the model still needs this many steps before its first forecast.
pub const MIN_TREND_STEPS: usize = 10;

/// Which season the model uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Seasonality {
    /// One day (`Settings::day_millis`).
    Daily,
    /// Seven days.
    Weekly,
    /// The day or the week, whichever the history repeats at (autocorrelation), or none.
    #[default]
    Auto,
}

/// What a [`Forecaster`] is asked, in milliseconds and steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// The history's step (its resolution).
    pub step_millis: i64,
    /// How many steps of history are kept (the history window).
    pub history_steps: usize,
    /// How far past `now` to forecast.
    pub look_ahead_millis: i64,
    pub seasonality: Seasonality,
    /// The length of a "day" (86 400 000; less to compress a day for tests).
    pub day_millis: i64,
    /// The quantile of the forecast to provision for, in (0, 1).
    pub quantile: f64,
    /// The recent sMAPE (0 to 2) above which the forecast is not used.
    pub error_threshold: f64,
    /// How many recent forecasts the error is measured over.
    pub error_window: usize,
}

impl Settings {
    /// The day in steps (at least 2).
    pub fn day_steps(&self) -> usize {
        steps_in(self.day_millis, self.step_millis).max(2)
    }

    /// The week in steps.
    pub fn week_steps(&self) -> usize {
        self.day_steps().saturating_mul(7)
    }

    /// The look-ahead in steps (at least 1).
    pub fn look_ahead_steps(&self) -> usize {
        steps_in(self.look_ahead_millis, self.step_millis).max(1)
    }

    fn longest_season(&self) -> usize {
        let longest = match self.seasonality {
            Seasonality::Daily => self.day_steps(),
            Seasonality::Weekly | Seasonality::Auto => self.week_steps(),
        };
        longest.min(self.history_steps / 2)
    }
}

/// Steps of `step` needed to cover `millis`, rounded up; 0 for a non-positive duration.
fn steps_in(millis: i64, step: i64) -> usize {
    let step = step.max(1);
    usize::try_from((millis.max(0) + step - 1) / step).unwrap_or(usize::MAX)
}

/// Why a forecast is or is not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PredictionState {
    /// Trusted: its recent error is under the threshold.
    Forecasting,
    /// Not enough history for the season and the error window.
    #[default]
    HistoryTooShort,
    /// The newest value is more than [`STALE_STEPS`] steps old.
    HistoryStale,
    /// The recent error is above the threshold (or has not yet fallen below 80% of it).
    ErrorAboveThreshold,
}

/// The result of one forecast.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Forecast {
    pub state: PredictionState,
    /// The season used, in steps (0: none).
    pub season_steps: usize,
    /// How many steps after the newest value the forecast is for.
    pub steps_ahead: usize,
    /// The point forecast (0 unless the model ran).
    pub point: f64,
    /// The forecast's `quantile`: the value to provision for.
    pub provision: f64,
    /// The recent sMAPE.
    pub error: f64,
    /// How many forecasts the error was measured over.
    pub comparisons: usize,
    /// The steps of history the forecast needs (for `HistoryTooShort`).
    pub needed_steps: usize,
    /// The steps of history it had.
    pub history_steps: usize,
}

impl Forecast {
    /// Whether the forecast may be used.
    pub fn trusted(&self) -> bool {
        self.state == PredictionState::Forecasting
    }

    /// The value to provision for when trusted.
    pub fn provision_value(&self) -> Option<f64> {
        self.trusted().then_some(self.provision)
    }
}

/// Forecasts with fixed [`Settings`] and reusable buffers.
#[derive(Clone, Debug)]
pub struct Forecaster {
    settings: Settings,
    model: HoltWinters,
    /// Forecasts in flight, by target step modulo the length.
    pending: Vec<f64>,
    errors: ErrorWindow,
    /// Whether `model` holds a pass over the last series.
    fitted: bool,
}

impl Forecaster {
    /// A forecaster and its buffers for `settings`.
    pub fn new(settings: Settings) -> Self {
        let in_flight = settings
            .look_ahead_steps()
            .saturating_add(STALE_STEPS as usize + 2);
        Forecaster {
            settings,
            model: HoltWinters::new(SMOOTHING, settings.longest_season()),
            pending: vec![0.0; in_flight],
            errors: ErrorWindow::new(settings.error_window),
            fitted: false,
        }
    }

    /// The settings it was made with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The forecast for `now` + look-ahead from `series` (of the settings' step).
    pub fn forecast(&mut self, series: &Series, now_millis: i64) -> Forecast {
        self.fitted = false;
        let mut result = Forecast {
            history_steps: series.len(),
            ..Forecast::default()
        };
        let Some(last_at) = series.last_at_millis() else {
            result.needed_steps = self.needed(self.first_season(), 1);
            return result;
        };
        let step = series.step_millis();
        let lag = now_millis.saturating_sub(last_at).max(0);
        if lag > STALE_STEPS.saturating_mul(step) {
            result.state = PredictionState::HistoryStale;
            return result;
        }
        let ahead = steps_in(lag.saturating_add(self.settings.look_ahead_millis), step).max(1);
        result.steps_ahead = ahead.min(self.pending.len() - 1);
        let Some(season) = self.season(series) else {
            result.needed_steps = self.needed(self.first_season(), result.steps_ahead);
            return result;
        };
        result.season_steps = season;
        result.needed_steps = self.needed(season, result.steps_ahead);
        if series.len() < result.needed_steps {
            return result;
        }
        self.pass(series, season, &mut result);
        result
    }

    /// The forecast `steps` after the newest value of the last series forecast, when that pass
    /// ran (for the status's coarse path of the next hour).
    pub fn project(&self, steps: usize) -> Option<f64> {
        self.fitted.then(|| self.model.project(steps))
    }

    fn pass(&mut self, series: &Series, season: usize, result: &mut Forecast) {
        let ahead = result.steps_ahead;
        let Some(first) = self.model.start(series, season) else {
            return;
        };
        self.errors.reset(self.settings.error_window);
        let mut trust = Trust::Unjudged;
        let slots = self.pending.len();
        for index in first..series.len() {
            let value = series.get(index).unwrap_or(0.0);
            if index >= first + ahead {
                let made = self.pending.get(index % slots).copied().unwrap_or(value);
                self.errors.add(value, made);
                if self.errors.is_full() {
                    trust = trust.judge(self.errors.error(), self.settings.error_threshold);
                }
            }
            self.model.update(index, value);
            if let Some(slot) = self.pending.get_mut((index + ahead) % slots) {
                *slot = self.model.project(ahead);
            }
        }
        self.fitted = true;
        result.point = self.model.project(ahead);
        let spread = self.errors.root_mean_square();
        result.provision = interval::quantile(
            result.point,
            spread,
            self.errors.len(),
            self.settings.quantile,
        );
        result.error = self.errors.error();
        result.comparisons = self.errors.len();
        result.state = match trust {
            Trust::Trusted => PredictionState::Forecasting,
            Trust::Distrusted => PredictionState::ErrorAboveThreshold,
            Trust::Unjudged => PredictionState::HistoryTooShort,
        };
    }

    /// The season to use; `None` when `Auto` has less than two days to judge from. A fixed season
    /// longer than half the history window can never be fitted: its `needed_steps` exceed the
    /// window, so the forecast stays `HistoryTooShort`.
    fn season(&self, series: &Series) -> Option<usize> {
        let longest = self.settings.longest_season();
        match self.settings.seasonality {
            Seasonality::Daily => Some(self.settings.day_steps()),
            Seasonality::Weekly => Some(self.settings.week_steps()),
            Seasonality::Auto => {
                let day = self.settings.day_steps();
                if series.len() < day.saturating_mul(2) {
                    return None;
                }
                let week = self.settings.week_steps();
                let candidates = [day, week];
                let usable = if week <= longest {
                    &candidates[..]
                } else {
                    &candidates[..1]
                };
                Some(season::detect(series, usable).map_or(0, |(period, _)| period))
            }
        }
    }

    fn first_season(&self) -> usize {
        match self.settings.seasonality {
            Seasonality::Weekly => self.settings.week_steps(),
            Seasonality::Daily | Seasonality::Auto => self.settings.day_steps(),
        }
    }

    fn needed(&self, season: usize, ahead: usize) -> usize {
        HoltWinters::warm_up(season)
            .max(MIN_TREND_STEPS)
            .saturating_add(ahead)
            .saturating_add(self.settings.error_window.max(1))
    }
}
