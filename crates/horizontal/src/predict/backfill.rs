//! The demand history of an object read back from its metrics' own past: which queries to run
//! over the history window, and the demand their values make.
//!
//! A caller (the live controller) runs each query as a range query at the history's step and
//! turns every instant's values into one demand with [`demand`], the arithmetic a decision uses
//! ([`crate::predict::decision::demand`]): for a Prometheus metric with an `averageValue`
//! target, the demand is `value / averageValue` (replicas before rounding). Other metrics are
//! not read back: a `value` target's demand is `value / target × the pods of the time`, and the
//! past pod count is unknown; resource, pods, object, external and event metrics have no query
//! of their own. An object with any such metric gets no backfill at all, since the largest
//! metric wins and a demand from only some of them would understate the past.

use ballast_api::horizontal::{HorizontalAutoscaler, MetricSourceType, PrometheusMetricSource};

use crate::prepare::{Target, effective_metrics, value_target};

/// One metric whose past a range query gives.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryQuery {
    /// Its index in `spec.metrics`.
    pub index: usize,
    pub source: PrometheusMetricSource,
    /// What one replica should carry (the `averageValue` target).
    pub per_replica: f64,
}

/// The queries that give the past demand of `object`, one per metric, or why there is none
/// (naming the field).
pub fn plan(object: &HorizontalAutoscaler) -> Result<Vec<HistoryQuery>, String> {
    if object.spec.metrics.is_empty() {
        return Err(
            "spec.metrics is empty: the default CPU metric has no query to read its past from"
                .into(),
        );
    }
    effective_metrics(object)
        .into_iter()
        .enumerate()
        .map(|(index, metric)| {
            let field = format!("spec.metrics[{index}]");
            let source = match (metric.type_, metric.prometheus) {
                (MetricSourceType::Prometheus, Some(source)) => source,
                (kind, _) => {
                    return Err(format!(
                        "{field}: a {kind:?} metric has no query to read its past from"
                    ));
                }
            };
            let target = format!("{field}.prometheus.target");
            match value_target(&source.target, &target, "prometheus")? {
                Target::AverageValue(milli) => Ok(HistoryQuery {
                    index,
                    source,
                    per_replica: milli as f64 / 1000.0,
                }),
                _ => Err(format!(
                    "{target}: only an averageValue target gives the past demand (a value target's depends on the pod count of the time)"
                )),
            }
        })
        .collect()
}

/// The demand of one instant from each query's value (`values[i]` for `plan[i]`; `None` where
/// a query had no value then): the largest `value / per_replica`, or `None` when a value is
/// missing, negative or not finite (a missing metric is not a zero load).
pub fn demand(plan: &[HistoryQuery], values: &[Option<f64>]) -> Option<f64> {
    if plan.is_empty() || plan.len() != values.len() {
        return None;
    }
    let mut largest: Option<f64> = None;
    for (query, value) in plan.iter().zip(values) {
        let value = (*value)?;
        let demand = value / query.per_replica;
        if !demand.is_finite() || demand < 0.0 {
            return None;
        }
        largest = Some(largest.map_or(demand, |l| l.max(demand)));
    }
    largest
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(metrics: serde_json::Value) -> HorizontalAutoscaler {
        serde_json::from_value(json!({
            "apiVersion": "autoscaling.ballast.dev/v1", "kind": "HorizontalAutoscaler",
            "metadata": { "name": "web", "namespace": "ns" },
            "spec": {
                "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" },
                "maxReplicas": 10, "metrics": metrics
            }
        }))
        .expect("an autoscaler")
    }

    fn prometheus(query: &str, target: serde_json::Value) -> serde_json::Value {
        json!({ "type": "Prometheus", "prometheus": { "query": query, "target": target } })
    }

    #[test]
    fn plans_name_the_field_that_prevents_a_backfill() {
        let average = json!({ "type": "AverageValue", "averageValue": "250m" });
        // (case, spec.metrics, the per-replica targets or the start of the error)
        type Row<'a> = (&'a str, serde_json::Value, Result<Vec<f64>, &'a str>);
        let rows: Vec<Row> = vec![
            (
                "one average",
                json!([prometheus("q", average.clone())]),
                Ok(vec![0.25]),
            ),
            (
                "two averages",
                json!([
                    prometheus("a", average.clone()),
                    prometheus("b", json!({ "type": "AverageValue", "averageValue": "4" }))
                ]),
                Ok(vec![0.25, 4.0]),
            ),
            ("no metrics", json!([]), Err("spec.metrics is empty")),
            (
                "a value target",
                json!([prometheus("q", json!({ "type": "Value", "value": "10" }))]),
                Err("spec.metrics[0].prometheus.target: only an averageValue"),
            ),
            (
                "a resource metric beside",
                json!([prometheus("q", average), { "type": "Resource", "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": 50 } } }]),
                Err("spec.metrics[1]: a Resource metric has no query"),
            ),
            (
                "a zero target",
                json!([prometheus(
                    "q",
                    json!({ "type": "AverageValue", "averageValue": "0" })
                )]),
                Err("spec.metrics[0].prometheus.target.averageValue: must be greater than 0"),
            ),
        ];
        for (name, metrics, want) in rows {
            let got = plan(&object(metrics));
            match want {
                Ok(per_replica) => {
                    let got = got.unwrap_or_else(|e| panic!("{name}: {e}"));
                    let seen: Vec<f64> = got.iter().map(|q| q.per_replica).collect();
                    assert_eq!(seen, per_replica, "{name}");
                    assert!(got.iter().enumerate().all(|(i, q)| q.index == i), "{name}");
                }
                Err(prefix) => {
                    let error = got.expect_err(name);
                    assert!(error.starts_with(prefix), "{name}: {error}");
                }
            }
        }
    }

    #[test]
    fn demand_is_the_largest_value_over_its_target() {
        let plan = plan(&object(json!([
            prometheus("a", json!({ "type": "AverageValue", "averageValue": "2" })),
            prometheus(
                "b",
                json!({ "type": "AverageValue", "averageValue": "500m" })
            ),
        ])))
        .expect("a plan");
        let rows: [(&[Option<f64>], Option<f64>); 6] = [
            (&[Some(10.0), Some(1.0)], Some(5.0)),
            (&[Some(1.0), Some(3.0)], Some(6.0)),
            (&[Some(0.0), Some(0.0)], Some(0.0)),
            (&[Some(10.0), None], None),
            (&[Some(-1.0), Some(1.0)], None),
            (&[Some(f64::NAN), Some(1.0)], None),
        ];
        for (values, want) in rows {
            assert_eq!(demand(&plan, values), want, "{values:?}");
        }
        assert_eq!(demand(&plan, &[Some(1.0)]), None, "a value per query");
        assert_eq!(demand(&[], &[]), None);
    }

    /// The backfilled demand is the demand a decision reports for the same reading.
    #[test]
    fn backfill_agrees_with_a_decision() {
        use crate::snapshot::{MetricReading, Snapshot, TargetScale};
        let mut autoscaler = object(json!([prometheus(
            "q",
            json!({ "type": "AverageValue", "averageValue": "2" })
        )]));
        autoscaler.spec.min_replicas = Some(1);
        let snapshot = Snapshot {
            autoscaler: autoscaler.clone(),
            scale: TargetScale {
                spec_replicas: 3,
                status_replicas: Some(3),
                selector: "app=web".into(),
                ..TargetScale::default()
            },
            pods: Vec::new(),
            metrics: vec![MetricReading {
                value: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                    "13".into(),
                )),
                ..MetricReading::default()
            }],
            other_autoscalers: Vec::new(),
            config: Default::default(),
            now: "2026-01-01T00:00:00Z".parse().expect("a time"),
            demand_history: Vec::new(),
        };
        let decided = crate::explain(&snapshot).expect("a decision");
        let plan = plan(&autoscaler).expect("a plan");
        assert_eq!(decided.demand, demand(&plan, &[Some(13.0)]));
        assert_eq!(decided.demand, Some(6.5));
    }
}
