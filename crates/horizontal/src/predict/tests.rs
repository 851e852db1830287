//! Table tests of the forecaster on series with a known shape, and property tests.

use super::*;
use proptest::prelude::*;

const STEP: i64 = 60_000;
/// A "day" compressed into 60 one-minute steps.
const DAY_STEPS: usize = 60;

fn settings(seasonality: Seasonality, history_steps: usize) -> Settings {
    Settings {
        step_millis: STEP,
        history_steps,
        look_ahead_millis: 5 * STEP,
        seasonality,
        day_millis: DAY_STEPS as i64 * STEP,
        quantile: 0.5,
        error_threshold: 0.15,
        error_window: 30,
    }
}

/// Deterministic noise in [-1, 1] (a fixed linear congruential sequence).
fn noise(step: usize) -> f64 {
    let mixed = (step as u64)
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    ((mixed >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0
}

fn daily(step: usize) -> f64 {
    (2.0 * std::f64::consts::PI * (step % DAY_STEPS) as f64 / DAY_STEPS as f64).sin()
}

fn series_of(values: impl Iterator<Item = f64>, capacity: usize) -> Series {
    let mut series = Series::new(STEP, capacity);
    for (step, value) in values.enumerate() {
        series.record(step as i64 * STEP, value);
    }
    series
}

/// Forecast after the series' last value; the truth is `shape` 5 steps later.
fn forecast_last(forecaster: &mut Forecaster, series: &Series) -> Forecast {
    let now = series.last_at_millis().unwrap_or(0);
    forecaster.forecast(series, now)
}

#[test]
fn season_trend_and_noise_forecast_within_five_percent() {
    // 100 + a slow trend + a daily swing of ±30, noise ±2; six compressed days.
    let shape = |t: usize| 100.0 + 0.05 * t as f64 + 30.0 * daily(t);
    let steps = DAY_STEPS * 6;
    let series = series_of((0..steps).map(|t| shape(t) + 2.0 * noise(t)), steps);
    for seasonality in [Seasonality::Daily, Seasonality::Auto] {
        let mut forecaster = Forecaster::new(settings(seasonality, steps));
        let forecast = forecast_last(&mut forecaster, &series);
        assert_eq!(
            forecast.state,
            PredictionState::Forecasting,
            "{seasonality:?}"
        );
        assert_eq!(forecast.season_steps, DAY_STEPS);
        assert_eq!(forecast.steps_ahead, 5);
        let truth = shape(steps - 1 + 5);
        let relative = (forecast.point - truth).abs() / truth;
        assert!(
            relative < 0.05,
            "{seasonality:?}: {} vs {truth}",
            forecast.point
        );
        assert!(forecast.error < 0.05, "recent sMAPE {}", forecast.error);
    }
}

#[test]
fn a_higher_quantile_provisions_above_the_point() {
    let steps = DAY_STEPS * 4;
    let series = series_of(
        (0..steps).map(|t| 100.0 + 30.0 * daily(t) + 5.0 * noise(t)),
        steps,
    );
    let mut high = settings(Seasonality::Daily, steps);
    high.quantile = 0.9;
    let forecast = forecast_last(&mut Forecaster::new(high), &series);
    assert!(forecast.trusted());
    assert!(forecast.provision > forecast.point + 1.0, "{forecast:?}");
    assert_eq!(forecast.provision_value(), Some(forecast.provision));
}

#[test]
fn weekly_season_is_detected() {
    // Five busy days, two quiet ones, each with a daily swing: three compressed weeks.
    let week = DAY_STEPS * 7;
    let shape = |t: usize| {
        let quiet = (t / DAY_STEPS) % 7 >= 5;
        (if quiet { 40.0 } else { 100.0 }) + 20.0 * daily(t)
    };
    let steps = week * 3;
    let series = series_of((0..steps).map(|t| shape(t) + noise(t)), steps);
    let mut forecaster = Forecaster::new(settings(Seasonality::Auto, steps));
    let forecast = forecast_last(&mut forecaster, &series);
    assert_eq!(forecast.season_steps, week);
    assert_eq!(forecast.state, PredictionState::Forecasting);
    let truth = shape(steps - 1 + 5);
    assert!(
        (forecast.point - truth).abs() / truth < 0.05,
        "{} vs {truth}",
        forecast.point
    );
}

#[test]
fn too_short_empty_and_stale_histories_are_off_with_their_reason() {
    let short = series_of((0..100).map(|t| 100.0 + daily(t)), 600);
    let mut forecaster = Forecaster::new(settings(Seasonality::Daily, 600));
    let forecast = forecast_last(&mut forecaster, &short);
    assert_eq!(forecast.state, PredictionState::HistoryTooShort);
    assert_eq!(forecast.needed_steps, 2 * DAY_STEPS + 5 + 30);
    assert_eq!(forecast.history_steps, 100);
    assert_eq!(forecast.provision_value(), None);
    assert_eq!(forecaster.project(1), None);

    let mut auto = Forecaster::new(settings(Seasonality::Auto, 600));
    assert_eq!(
        forecast_last(&mut auto, &short).state,
        PredictionState::HistoryTooShort
    );
    let empty = Series::new(STEP, 600);
    assert_eq!(
        auto.forecast(&empty, 0).state,
        PredictionState::HistoryTooShort
    );

    let long = series_of((0..400).map(|t| 100.0 + daily(t)), 600);
    let late = long.last_at_millis().unwrap_or(0) + 6 * STEP;
    assert_eq!(
        auto.forecast(&long, late).state,
        PredictionState::HistoryStale
    );
    // A weekly season in a two-day window can never fit.
    let mut weekly = Forecaster::new(settings(Seasonality::Weekly, 2 * DAY_STEPS));
    let window = series_of((0..2 * DAY_STEPS).map(|t| 100.0 + daily(t)), 2 * DAY_STEPS);
    assert_eq!(
        forecast_last(&mut weekly, &window).state,
        PredictionState::HistoryTooShort
    );
}

#[test]
fn a_level_shift_turns_prediction_off_then_back_on() {
    // Four steady days, then the load doubles for good.
    let shift = DAY_STEPS * 4;
    let shape = |t: usize| (if t >= shift { 200.0 } else { 100.0 }) + 30.0 * daily(t) + noise(t);
    let steps = DAY_STEPS * 8;
    let mut series = Series::new(STEP, steps);
    let mut forecaster = Forecaster::new(settings(Seasonality::Daily, steps));
    let mut states = Vec::new();
    for t in 0..steps {
        series.record(t as i64 * STEP, shape(t));
        let forecast = forecast_last(&mut forecaster, &series);
        states.push((t, forecast.state, forecast.error));
    }
    let state_at = |t: usize| states.get(t).map(|entry| entry.1);
    assert_eq!(state_at(shift - 1), Some(PredictionState::Forecasting));
    let off = states
        .iter()
        .find(|entry| entry.0 >= shift && entry.1 != PredictionState::Forecasting);
    let Some(&(turned_off, reason, error)) = off else {
        panic!("never turned off: {states:?}")
    };
    assert_eq!(reason, PredictionState::ErrorAboveThreshold);
    assert!(
        turned_off < shift + 30,
        "off at {turned_off}, error {error}"
    );
    let back = states
        .iter()
        .find(|entry| entry.0 > turned_off && entry.1 == PredictionState::Forecasting);
    let Some(&(turned_on, _, _)) = back else {
        panic!("never back on: {states:?}")
    };
    assert!(turned_on < shift + DAY_STEPS, "back on at {turned_on}");
    assert_eq!(state_at(steps - 1), Some(PredictionState::Forecasting));
}

#[test]
fn no_season_follows_a_ramp() {
    // A steady ramp with Auto: no season is found, the damped trend follows it.
    let steps = 300;
    let series = series_of((0..steps).map(|t| 50.0 + t as f64 + noise(t)), steps);
    let mut forecaster = Forecaster::new(settings(Seasonality::Auto, steps));
    let forecast = forecast_last(&mut forecaster, &series);
    assert_eq!(forecast.season_steps, 0);
    assert!(forecast.trusted(), "{forecast:?}");
    let truth = 50.0 + (steps - 1 + 5) as f64;
    assert!(
        (forecast.point - truth).abs() / truth < 0.02,
        "{} vs {truth}",
        forecast.point
    );
    assert!(forecaster.project(60).is_some());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn combined_replicas_never_below_reactive_nor_outside_bounds(
        min in 0u32..20, span in 0u32..50, offset in 0u32..50,
        predicted in proptest::option::of(0u32..200),
    ) {
        let max = min + span;
        let reactive = min + offset.min(span);
        let replicas = replicas::combine(reactive, predicted, max);
        prop_assert!(replicas >= reactive);
        prop_assert!(replicas >= min && replicas <= max);
    }

    #[test]
    fn a_forecast_is_a_function_of_series_and_now(
        values in proptest::collection::vec(0.0f64..1000.0, 0..400),
        other in proptest::collection::vec(0.0f64..1000.0, 0..400),
        lag in 0i64..(8 * STEP),
        seasonality in prop_oneof![Just(Seasonality::Daily), Just(Seasonality::Weekly), Just(Seasonality::Auto)],
    ) {
        let series = series_of(values.iter().copied(), 400);
        let now = series.last_at_millis().unwrap_or(0) + lag;
        let fresh = Forecaster::new(settings(seasonality, 400)).forecast(&series, now);
        // A forecaster that has seen another series first says the same.
        let mut reused = Forecaster::new(settings(seasonality, 400));
        let _ = reused.forecast(&series_of(other.iter().copied(), 400), now);
        let again = reused.forecast(&series, now);
        prop_assert_eq!(fresh, again);
        if fresh.trusted() {
            prop_assert!(fresh.point.is_finite() && fresh.provision.is_finite());
            prop_assert!(replicas::needed(fresh.provision.max(0.0), 10.0).is_some());
        }
    }
}
