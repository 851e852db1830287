//! Property tests: any spec survives JSON and YAML and back unchanged, and what Ballast
//! generates passes its own validation; plus the documented defaults.

use ballast_api::common::CrossVersionObjectReference;
use ballast_api::horizontal::*;
use ballast_api::nodes::*;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use proptest::prelude::*;

fn quantity() -> impl Strategy<Value = Quantity> {
    (
        1u32..100_000,
        prop::sample::select(vec!["", "m", "k", "Mi", "Gi"]),
    )
        .prop_map(|(n, s)| Quantity(format!("{n}{s}")))
}

fn target() -> impl Strategy<Value = MetricTarget> {
    prop_oneof![
        (1i32..200).prop_map(|u| MetricTarget {
            type_: MetricTargetType::Utilization,
            average_utilization: Some(u),
            ..Default::default()
        }),
        quantity().prop_map(|q| MetricTarget {
            type_: MetricTargetType::AverageValue,
            average_value: Some(q),
            ..Default::default()
        }),
        quantity().prop_map(|q| MetricTarget {
            type_: MetricTargetType::Value,
            value: Some(q),
            ..Default::default()
        }),
    ]
}

fn metric() -> impl Strategy<Value = MetricSpec> {
    prop_oneof![
        (prop::sample::select(vec!["cpu", "memory"]), target()).prop_map(|(n, mut t)| {
            if t.type_ == MetricTargetType::Value {
                t = MetricTarget {
                    type_: MetricTargetType::Utilization,
                    average_utilization: Some(70),
                    ..Default::default()
                };
            }
            MetricSpec {
                type_: MetricSourceType::Resource,
                resource: Some(ResourceMetricSource {
                    name: n.into(),
                    target: t,
                }),
                ..Default::default()
            }
        }),
        ("[a-z_]{1,12}", quantity()).prop_map(|(q, v)| MetricSpec {
            type_: MetricSourceType::Prometheus,
            prometheus: Some(PrometheusMetricSource {
                query: format!("sum({q})"),
                target: MetricTarget {
                    type_: MetricTargetType::AverageValue,
                    average_value: Some(v),
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..Default::default()
        }),
        ("[a-z]{1,10}", quantity()).prop_map(|(l, v)| MetricSpec {
            type_: MetricSourceType::Event,
            event: Some(EventMetricSource {
                type_: EventSourceType::RedisList,
                redis_list: Some(RedisListSource {
                    address: "127.0.0.1:6379".into(),
                    list_name: l,
                    ..Default::default()
                }),
                target: Some(MetricTarget {
                    type_: MetricTargetType::AverageValue,
                    average_value: Some(v),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    ]
}

fn rules() -> impl Strategy<Value = Option<ScalingRules>> {
    prop::option::of(
        (
            0i32..=3600,
            prop::sample::select(vec![
                SelectPolicy::Max,
                SelectPolicy::Min,
                SelectPolicy::Disabled,
            ]),
            1i32..100,
            1i32..=1800,
        )
            .prop_map(|(w, sp, v, p)| ScalingRules {
                stabilization_window_seconds: Some(w),
                select_policy: Some(sp),
                policies: vec![ScalingPolicy {
                    type_: ScalingPolicyType::Percent,
                    value: v,
                    period_seconds: p,
                }],
                tolerance: None,
            }),
    )
}

fn hza_spec() -> impl Strategy<Value = HorizontalAutoscalerSpec> {
    (
        1i32..50,
        0i32..50,
        prop::collection::vec(metric(), 1..4),
        rules(),
        rules(),
        prop::option::of(1i32..600),
    )
        .prop_map(
            |(min, extra, metrics, up, down, sync)| HorizontalAutoscalerSpec {
                scale_target_ref: CrossVersionObjectReference {
                    api_version: Some("apps/v1".into()),
                    kind: "Deployment".into(),
                    name: "web".into(),
                },
                min_replicas: Some(min),
                max_replicas: min + extra,
                metrics,
                behavior: Some(HorizontalAutoscalerBehavior {
                    scale_up: up,
                    scale_down: down,
                }),
                sync_period_seconds: sync,
                ..Default::default()
            },
        )
}

fn pool_spec() -> impl Strategy<Value = NodePoolSpec> {
    (
        prop::collection::vec(
            ("[a-z]{1,8}", prop::collection::vec("[a-z0-9]{1,8}", 1..4)),
            0..4,
        ),
        prop::option::of(1i32..=100),
        prop::sample::select(vec![
            ConsolidationPolicy::WhenEmpty,
            ConsolidationPolicy::WhenEmptyOrUnderutilized,
        ]),
        0u32..100,
    )
        .prop_map(|(reqs, weight, policy, pct)| NodePoolSpec {
            template: NodeClaimTemplate {
                metadata: None,
                spec: NodeClaimTemplateSpec {
                    requirements: reqs
                        .into_iter()
                        .map(|(k, vs)| NodeSelectorRequirementWithMinValues {
                            key: format!("example.com/{k}"),
                            operator: RequirementOperator::In,
                            values: vs,
                            min_values: None,
                        })
                        .collect(),
                    node_class_ref: NodeClassReference {
                        group: "nodes.ballast.dev".into(),
                        kind: "KwokNodeClass".into(),
                        name: "k".into(),
                    },
                    ..Default::default()
                },
            },
            disruption: Some(Disruption {
                consolidation_policy: Some(policy),
                consolidate_after: Some("30s".into()),
                budgets: vec![Budget {
                    nodes: format!("{pct}%"),
                    ..Default::default()
                }],
                min_savings_percent: None,
            }),
            limits: None,
            weight,
            replicas: None,
        })
}

fn object<T: serde::Serialize>(
    api_version: &str,
    kind: &str,
    namespaced: bool,
    spec: &T,
) -> serde_json::Value {
    let mut meta = serde_json::json!({"name": "x"});
    if namespaced {
        meta["namespace"] = "default".into();
    }
    serde_json::json!({"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": spec})
}

proptest! {
    #[test]
    fn horizontal_specs_round_trip_and_validate(spec in hza_spec()) {
        let json = serde_json::to_string(&spec).unwrap();
        prop_assert_eq!(&serde_json::from_str::<HorizontalAutoscalerSpec>(&json).unwrap(), &spec);
        let yaml = serde_yaml::to_string(&spec).unwrap();
        prop_assert_eq!(&serde_yaml::from_str::<HorizontalAutoscalerSpec>(&yaml).unwrap(), &spec);
        let report = ballast_api::validate::validate_object(&object("autoscaling.ballast.dev/v1", "HorizontalAutoscaler", true, &spec));
        prop_assert!(report.is_valid(), "{:?}", report.errors);
    }

    #[test]
    fn nodepool_specs_round_trip_and_validate(spec in pool_spec()) {
        let json = serde_json::to_string(&spec).unwrap();
        prop_assert_eq!(&serde_json::from_str::<NodePoolSpec>(&json).unwrap(), &spec);
        let yaml = serde_yaml::to_string(&spec).unwrap();
        prop_assert_eq!(&serde_yaml::from_str::<NodePoolSpec>(&yaml).unwrap(), &spec);
        let report = ballast_api::validate::validate_object(&object("nodes.ballast.dev/v1", "NodePool", false, &spec));
        prop_assert!(report.is_valid(), "{:?}", report.errors);
    }
}

#[test]
fn documented_defaults() {
    let spec: HorizontalAutoscalerSpec =
        serde_yaml::from_str("scaleTargetRef: {kind: Deployment, name: web}\nmaxReplicas: 5\n")
            .unwrap();
    assert_eq!(spec.min_replicas(), 1, "HPA default");
    assert_eq!(spec.sync_period_seconds(), 15);
    assert_eq!(spec.cooldown_period_seconds(), 300, "KEDA default");
    assert!(
        spec.metrics.is_empty(),
        "empty means 80% CPU, decided by the core"
    );
    let target: MetricTarget =
        serde_yaml::from_str("type: AverageValue\naverageValue: 500m\n").unwrap();
    assert_eq!(
        ballast_api::common::quantity_milli(target.average_value.as_ref().unwrap()).unwrap(),
        500
    );
}
