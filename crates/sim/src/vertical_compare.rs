//! Vertical autoscaling with and without: a variant whose `VerticalAutoscaler`s apply their
//! recommendations (any mode but `Off`) is run a second time with every object forced to `Off`
//! (same seed, same everything else), and the report sets the two runs side by side: the cluster's
//! cost, node-hours and pending-pod time, and per object its workload's priced requests.

use crate::report::Summary;
use crate::scenario::Scenario;
use crate::vertical_report::VerticalComparison;
use ballast_api::vertical::{UpdateMode, UpdatePolicy};
use std::fmt::Write as _;

/// Whether a `VerticalAutoscaler` of `sc` applies its recommendations (so a run without is due).
pub fn applies(sc: &Scenario) -> bool {
    sc.verticals
        .iter()
        .any(|o| crate::cores::admits(crate::cores::update_mode(o)))
}

/// `sc` with every `VerticalAutoscaler` in mode `Off` (recommendations only), variant unchanged.
pub fn without_vertical(sc: &Scenario) -> Scenario {
    let mut off = sc.clone();
    for o in &mut off.verticals {
        let policy = o
            .spec
            .update_policy
            .get_or_insert_with(UpdatePolicy::default);
        policy.update_mode = Some(UpdateMode::Off);
    }
    off
}

/// Rounds for stable output (the JSON is compared byte for byte across runs).
fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Sets `without`'s figures beside `with`'s: the comparison, and each applying object's priced
/// requests in the run without.
pub fn attach(with: &mut Summary, without: &Summary) {
    let node_hours = |s: &Summary| round(s.node_hours_by_type.values().sum(), 4);
    for v in &mut with.vertical {
        let Some(applied) = v.applied.as_mut() else {
            continue;
        };
        applied.cost_per_hour_without = without
            .vertical
            .iter()
            .find(|o| o.name == v.name)
            .map(|o| o.cost_per_hour_requested);
    }
    let applied = with.vertical.iter().filter_map(|v| v.applied.as_ref());
    let (evictions, pods_sized) =
        applied.fold((0, 0), |(e, p), a| (e + a.evictions, p + a.pods_sized));
    with.vertical_comparison = Some(VerticalComparison {
        cost_with: with.cost,
        cost_without: without.cost,
        cost_saved: round(without.cost - with.cost, 4),
        node_hours_with: node_hours(with),
        node_hours_without: node_hours(without),
        pending_pod_seconds_with: with.pending_pod_seconds,
        pending_pod_seconds_without: without.pending_pod_seconds,
        under_provision_minutes_with: with.under_provision_minutes,
        under_provision_minutes_without: without.under_provision_minutes,
        evictions,
        pods_sized,
    });
}

/// The text table of the comparison of every variant that has one; empty when none has.
pub fn table(summaries: &[&Summary]) -> String {
    let mut out = String::new();
    for s in summaries {
        let Some(c) = &s.vertical_comparison else {
            continue;
        };
        if out.is_empty() {
            let _ = writeln!(
                out,
                "vertical autoscaling applied vs off (same variant, every VerticalAutoscaler forced to Off)\n{:<16} {:>10} {:>10} {:>9} {:>11} {:>11} {:>12} {:>12} {:>7} {:>7}",
                "variant",
                "cost $",
                "off $",
                "saved %",
                "node-h",
                "off node-h",
                "pending s",
                "off pend s",
                "evict",
                "sized"
            );
        }
        let saved = if c.cost_without > 0.0 {
            100.0 * c.cost_saved / c.cost_without
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "{:<16} {:>10.2} {:>10.2} {:>9.1} {:>11.1} {:>11.1} {:>12.1} {:>12.1} {:>7} {:>7}",
            s.variant,
            c.cost_with,
            c.cost_without,
            saved,
            c.node_hours_with,
            c.node_hours_without,
            c.pending_pod_seconds_with,
            c.pending_pod_seconds_without,
            c.evictions,
            c.pods_sized
        );
    }
    out
}
