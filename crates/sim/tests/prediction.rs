//! The report's forecast figures on a bundled predictive scenario: present only where
//! `spec.predictive` is on, and consistent with the history the forecast needs.

use ballast_sim::report::VariantResult;
use std::path::Path;

/// `simulations/api-predictive-flash.yaml` cut to `hours` (its flash crowd at 60 h left out).
fn run_flash(hours: u32) -> Vec<VariantResult> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../simulations/api-predictive-flash.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace("duration: 72h", &format!("duration: {hours}h"));
    ballast_sim::scenario::load_str(&text, &path)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|s| ballast_sim::run(s, &mut |_| {}).unwrap())
        .collect()
}

#[test]
fn forecast_figures_only_for_predictive_autoscalers() {
    let results = run_flash(54);
    let by_variant = |name: &str| {
        results
            .iter()
            .find(|r| r.summary.variant == name)
            .unwrap_or_else(|| panic!("variant {name}"))
    };
    let reactive = &by_variant("reactive").summary.workloads[0];
    assert_eq!(reactive.forecast, None, "reactive has no forecast");

    let forecast = by_variant("predictive").summary.workloads[0]
        .forecast
        .expect("the predictive variant reports its forecast");
    // One decision per 15 s sync over 54 h.
    assert!(
        (12_900..=12_970).contains(&forecast.decisions),
        "{forecast:?}"
    );
    // A daily season needs two days of history: nothing is trusted before 48 h, so at most the
    // last 6 h of 54 (11%) can be.
    assert!(
        forecast.trusted_percent > 0.0 && forecast.trusted_percent <= 11.2,
        "{forecast:?}"
    );
    // A flat load is easy to forecast once the model runs.
    let error = forecast.mean_error_percent.expect("an error was measured");
    assert!((0.0..10.0).contains(&error), "{forecast:?}");

    let text = ballast_sim::prediction_report::table(&results);
    assert!(text.contains("predictive"), "{text}");
    assert!(!text.contains("reactive"), "{text}");
    let json = ballast_sim::report::json(&results);
    assert_eq!(json.matches("\"forecast\"").count(), 1, "{json}");
}
