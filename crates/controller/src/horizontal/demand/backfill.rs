//! The past demand of an object whose metrics are Prometheus queries with `averageValue`
//! targets: each query run as a range query over the history window at the history's step,
//! turned into demand by the core (`ballast_horizontal::predict::backfill`).

use std::collections::BTreeMap;

use ballast_api::horizontal::HorizontalAutoscaler;
use ballast_horizontal::predict::backfill;
use ballast_metrics::MetricSource;
use jiff::Timestamp;
use kube::ResourceExt;

/// `(time in milliseconds, demand)` over the `capacity` steps of `step_millis` before `now`,
/// oldest first; an error says why there is none (a metric without a query, a failed query).
pub async fn read(
    source: &MetricSource,
    hza: &HorizontalAutoscaler,
    step_millis: i64,
    capacity: usize,
    now: Timestamp,
) -> Result<Vec<(i64, f64)>, String> {
    let plan = backfill::plan(hza)?;
    let namespace = hza.namespace().unwrap_or_default();
    let step = (step_millis / 1000).max(1);
    let end = now.as_second();
    // Aligned on steps, so each point falls at the start of its step.
    let end = end - end.rem_euclid(step);
    let start = end - step * (capacity as i64 - 1).max(0);
    let mut by_time: BTreeMap<i64, Vec<Option<f64>>> = BTreeMap::new();
    for (i, query) in plan.iter().enumerate() {
        let points = source
            .read_prometheus_range(&namespace, &query.source, (start, end, step))
            .await
            .map_err(|e| {
                format!(
                    "spec.metrics[{}] ({}): {e}",
                    query.index, query.source.query
                )
            })?;
        for (at, value) in points {
            by_time.entry(at).or_insert_with(|| vec![None; plan.len()])[i] = Some(value);
        }
    }
    Ok(by_time
        .into_iter()
        .filter_map(|(at, values)| backfill::demand(&plan, &values).map(|d| (at, d)))
        .collect())
}
