//! `spec.predictive` through the whole pipeline: a daily demand compressed into 10 minutes
//! (60 steps of 10 s), a ramp 2 minutes ahead.

mod common;

use ballast_api::horizontal::{PredictiveMode, PredictiveSeasonality, PredictiveSpec};
use ballast_horizontal::{DemandSample, Path};
use common::*;
use proptest::prelude::*;

const STEP_SECONDS: i64 = 10;
const DAY_STEPS: i64 = 60;

/// Demand in replicas at step `t` of the compressed day: 6 ± 4.
fn demand(t: i64) -> f64 {
    6.0 + 4.0 * (2.0 * std::f64::consts::PI * (t % DAY_STEPS) as f64 / DAY_STEPS as f64).sin()
}

/// `steps` samples ending at `now` (the last at phase 59: the ramp is about to start).
fn history(steps: i64) -> Vec<DemandSample> {
    let end = 4 * DAY_STEPS - 1;
    (end - steps + 1..=end)
        .map(|t| DemandSample {
            time: ago((end - t) * STEP_SECONDS),
            replicas: demand(t),
        })
        .collect()
}

fn predictive(mode: PredictiveMode) -> PredictiveSpec {
    PredictiveSpec {
        mode,
        look_ahead_seconds: Some(120),
        history_window_seconds: Some(3600),
        step_seconds: Some(10),
        seasonality: Some(PredictiveSeasonality::Daily),
        season_length_seconds: Some(600),
        ..PredictiveSpec::default()
    }
}

/// Six replicas carrying 56 of a per-replica target of 10: within tolerance, reactive says 6.
fn object(mode: Option<PredictiveMode>, samples: i64) -> B {
    let mut b = hpa(Some(1), 20, vec![prometheus(target_avg("10"), None)])
        .current(6)
        .reading(value("56"))
        .spec(|spec| spec.predictive = mode.map(predictive));
    b.0.demand_history = history(samples);
    b
}

#[test]
fn scale_mode_rises_before_the_ramp() {
    let reactive = object(None, 240).decide();
    assert_eq!(reactive.desired_replicas, 6);
    let decision = object(Some(PredictiveMode::Scale), 240).decide();
    assert_eq!(decision.path, Path::Normal);
    assert_eq!(
        cond(&decision, "PredictionActive"),
        Some(("True", "Forecasting"))
    );
    // 12 steps ahead the demand is 6 + 4·sin(2π·11/60) ≈ 9.6: 10 replicas.
    assert_eq!(decision.desired_replicas, 10, "{decision}");
    let status = decision
        .status
        .prediction
        .as_ref()
        .expect("status.prediction");
    assert!(status.trusted);
    assert_eq!(status.reason, "Forecasting");
    assert_eq!(status.predicted_replicas, Some(10));
    assert_eq!(status.season_seconds, Some(600));
    assert_eq!(status.next_hour.len(), 12);
    assert!(
        decision
            .to_string()
            .contains("the proposal rises from 6 to 10"),
        "{decision}"
    );
}

#[test]
fn a_flat_demand_on_a_replica_boundary_adds_nothing() {
    // 6 replicas of demand with a little noise: the 0.9 quantile is just above 6, within the
    // scale-up tolerance of the current 6, so no seventh replica.
    let mut b = object(Some(PredictiveMode::Scale), 0);
    b.0.metrics = vec![value("60")];
    let end = 4 * DAY_STEPS - 1;
    b.0.demand_history = (0..=end)
        .map(|t| DemandSample {
            time: ago((end - t) * STEP_SECONDS),
            replicas: if t % 2 == 0 { 5.99 } else { 6.01 },
        })
        .collect();
    let decision = b.decide();
    assert_eq!(
        cond(&decision, "PredictionActive"),
        Some(("True", "Forecasting"))
    );
    assert_eq!(
        decision
            .status
            .prediction
            .as_ref()
            .and_then(|s| s.predicted_replicas),
        Some(7)
    );
    assert_eq!(decision.desired_replicas, 6, "{decision}");
}

#[test]
fn forecast_only_reports_and_scales_reactively() {
    let decision = object(Some(PredictiveMode::ForecastOnly), 240).decide();
    assert_eq!(decision.desired_replicas, 6);
    assert_eq!(
        cond(&decision, "PredictionActive"),
        Some(("True", "Forecasting"))
    );
    assert_eq!(
        decision
            .status
            .prediction
            .as_ref()
            .and_then(|s| s.predicted_replicas),
        Some(10)
    );
    assert!(decision.to_string().contains("forecast only"), "{decision}");
}

#[test]
fn too_short_a_history_scales_reactively_with_its_reason() {
    let decision = object(Some(PredictiveMode::Scale), 100).decide();
    assert_eq!(decision.desired_replicas, 6);
    assert_eq!(
        cond(&decision, "PredictionActive"),
        Some(("False", "HistoryTooShort"))
    );
    let status = decision
        .status
        .prediction
        .as_ref()
        .expect("status.prediction");
    assert!(!status.trusted);
    assert!(status.next_hour.is_empty());
}

#[test]
fn off_is_as_if_absent() {
    let off = object(Some(PredictiveMode::Off), 240).decide();
    let absent = object(None, 240).decide();
    assert_eq!(cond(&off, "PredictionActive"), None);
    assert_eq!(off.status.prediction, None);
    assert_eq!(off.desired_replicas, absent.desired_replicas);
    assert_eq!(off.to_string(), absent.to_string());
}

#[test]
fn a_bad_quantile_is_an_invalid_spec_naming_the_field() {
    let decision = object(Some(PredictiveMode::Scale), 240)
        .spec(|spec| {
            if let Some(predictive) = spec.predictive.as_mut() {
                predictive.quantile = Some(q("1.5"));
            }
        })
        .decide();
    assert_eq!(decision.path, Path::InvalidSpec);
    let (status, reason) = cond(&decision, "ScalingActive").unwrap_or_default();
    assert_eq!((status, reason), ("False", "InvalidSpec"));
    let message = &decision
        .conditions
        .iter()
        .find(|c| c.type_ == "ScalingActive")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(message.contains("spec.predictive.quantile"), "{message}");
    assert!(message.contains("(0, 1)"), "{message}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Predictive replicas are never below the reactive ones nor outside [min, max], and a
    /// decision is a function of the snapshot (and its `now`).
    #[test]
    fn predictive_never_below_reactive_nor_outside_bounds(
        demands in proptest::collection::vec(0.0f64..40.0, 0..240),
        reading in 0u32..400,
        current in 1i32..20,
        min in 1i32..5,
        max in 5i32..25,
    ) {
        let build = |mode: Option<PredictiveMode>| {
            let mut b = hpa(Some(min), max, vec![prometheus(target_avg("10"), None)])
                .current(current.clamp(min, max))
                .reading(value(&reading.to_string()))
                .spec(|spec| spec.predictive = mode.map(predictive));
            let end = demands.len() as i64 - 1;
            b.0.demand_history = demands
                .iter()
                .enumerate()
                .map(|(t, d)| DemandSample { time: ago((end - t as i64) * STEP_SECONDS), replicas: *d })
                .collect();
            b
        };
        let reactive = build(None).decide();
        let predicted = build(Some(PredictiveMode::Scale)).decide();
        prop_assert!(predicted.desired_replicas >= reactive.desired_replicas);
        prop_assert!(predicted.desired_replicas >= min && predicted.desired_replicas <= max);
        let again = build(Some(PredictiveMode::Scale)).decide();
        prop_assert_eq!(predicted.to_string(), again.to_string());
        prop_assert_eq!(predicted.status, again.status);
    }
}
