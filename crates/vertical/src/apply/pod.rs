//! A new pod's containers sized from an object's recommendation: what the admission webhook
//! writes. Containers without a recommendation, with `mode: Off`, and resources not in
//! `controlledResources` are left as they are.
//!
//! A request [`Held`] because a horizontal autoscaler scales on its utilization
//! ([`crate::coordination`]) is never lowered: it stays as it is when at or above the
//! recommendation's lower bound, and is raised to that bound when below it (or unset).

use std::collections::BTreeMap;

use ballast_api::common::parse_quantity;
use ballast_api::vertical::{RecommendedPodResources, VerticalAutoscalerSpec};
use k8s_openapi::api::core::v1::{Container, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::resize::{LimitRangeBounds, Values, resize};
use crate::coordination::Held;
use crate::error::Error;
use crate::policy::{Resource, container_policy};
use crate::recommend::{cpu_quantity, memory_quantity};

/// The namespace's `type: Container` LimitRange bounds, per resource.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ContainerLimitRange {
    pub cpu: LimitRangeBounds,
    pub memory: LimitRangeBounds,
}

/// The new resources of one container (by its index in `spec.containers`).
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerChange {
    pub index: usize,
    pub name: String,
    pub resources: ResourceRequirements,
    /// What was set, and every adjustment away from the recommendation.
    pub notes: Vec<String>,
}

/// The changes to `containers` from `recommendation` under the policies of `spec` (object
/// `name`). Only containers whose resources change are returned. Nothing is held: see
/// [`plan_held`].
pub fn plan(
    containers: &[Container],
    recommendation: &RecommendedPodResources,
    spec: &VerticalAutoscalerSpec,
    name: &str,
    limit_range: &ContainerLimitRange,
) -> Result<Vec<ContainerChange>, Error> {
    plan_held(
        containers,
        recommendation,
        spec,
        name,
        limit_range,
        &Held::none(),
    )
}

/// [`plan`], with the requests in `held` never lowered and raised only to the lower bound.
pub fn plan_held(
    containers: &[Container],
    recommendation: &RecommendedPodResources,
    spec: &VerticalAutoscalerSpec,
    name: &str,
    limit_range: &ContainerLimitRange,
    held: &Held,
) -> Result<Vec<ContainerChange>, Error> {
    let mut out = Vec::new();
    for (index, c) in containers.iter().enumerate() {
        let Some(rec) = recommendation
            .container_recommendations
            .iter()
            .find(|r| r.container_name == c.name)
        else {
            continue;
        };
        let policy = container_policy(spec, name, &c.name)?;
        if !policy.enabled {
            continue;
        }
        let mut resources = c.resources.clone().unwrap_or_default();
        let mut notes = Vec::new();
        for (resource, bounds) in [
            (Resource::Cpu, limit_range.cpu),
            (Resource::Memory, limit_range.memory),
        ] {
            let key = resource.name();
            let Some(target) = rec.target.get(key).and_then(|q| parse_quantity(&q.0).ok()) else {
                continue;
            };
            if !policy.controls(resource) {
                continue;
            }
            let current = Values {
                request: read(&resources.requests, key),
                limit: read(&resources.limits, key),
            };
            let target = if held.holds(resource, &c.name) {
                let lower = read(&rec.lower_bound, key);
                match floor(current.request, lower) {
                    Some(floor) => floor,
                    None => {
                        notes.push(format!(
                            "{key} request held (horizontal scaling on its utilization)"
                        ));
                        continue;
                    }
                }
            } else {
                target
            };
            let r = resize(resource, current, target, policy.controlled_values, bounds);
            notes.push(format!(
                "{key} request {}",
                quantity(resource, r.values.request)
            ));
            if held.holds(resource, &c.name) {
                notes.push(format!(
                    "{key} held: raised only to the lower bound (horizontal scaling on its utilization)"
                ));
            }
            notes.extend(r.notes);
            write(&mut resources.requests, key, resource, r.values.request);
            if current.limit.is_some() {
                write(&mut resources.limits, key, resource, r.values.limit);
            }
        }
        if Some(&resources) != c.resources.as_ref() && !notes.is_empty() {
            out.push(ContainerChange {
                index,
                name: c.name.clone(),
                resources,
                notes,
            });
        }
    }
    Ok(out)
}

/// The request a held resource is raised to: the lower bound when the request is below it or
/// unset; None (left as it is) otherwise, or without a lower bound.
fn floor(request: Option<f64>, lower_bound: Option<f64>) -> Option<f64> {
    let lower = lower_bound?;
    match request {
        Some(r) if r >= lower => None,
        _ => Some(lower),
    }
}

fn read(list: &Option<BTreeMap<String, Quantity>>, key: &str) -> Option<f64> {
    list.as_ref()?
        .get(key)
        .and_then(|q| parse_quantity(&q.0).ok())
}

fn quantity(resource: Resource, value: Option<f64>) -> String {
    let v = value.unwrap_or(0.0);
    match resource {
        Resource::Cpu => cpu_quantity(v).0,
        Resource::Memory => memory_quantity(v).0,
    }
}

fn write(
    list: &mut Option<BTreeMap<String, Quantity>>,
    key: &str,
    resource: Resource,
    value: Option<f64>,
) {
    if let Some(v) = value {
        list.get_or_insert_with(BTreeMap::new)
            .insert(key.to_owned(), Quantity(quantity(resource, Some(v))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_api::vertical::RecommendedContainerResources;

    fn container(name: &str, requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        let list = |kv: &[(&str, &str)]| {
            (!kv.is_empty()).then(|| {
                kv.iter()
                    .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                    .collect::<BTreeMap<_, _>>()
            })
        };
        Container {
            name: name.into(),
            resources: Some(ResourceRequirements {
                requests: list(requests),
                limits: list(limits),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn recommendation(name: &str, cpu: &str, memory: &str) -> RecommendedPodResources {
        RecommendedPodResources {
            container_recommendations: vec![RecommendedContainerResources {
                container_name: name.into(),
                target: [
                    ("cpu".to_string(), Quantity(cpu.into())),
                    ("memory".to_string(), Quantity(memory.into())),
                ]
                .into(),
                ..Default::default()
            }],
        }
    }

    fn spec(policies: serde_json::Value) -> VerticalAutoscalerSpec {
        serde_json::from_value(serde_json::json!({
            "targetRef": { "kind": "Deployment", "name": "web" },
            "resourcePolicy": { "containerPolicies": policies }
        }))
        .unwrap_or_default()
    }

    #[test]
    fn requests_follow_the_target_and_limits_keep_their_ratio() {
        let containers = [
            container(
                "app",
                &[("cpu", "100m"), ("memory", "64Mi")],
                &[("cpu", "200m")],
            ),
            container("sidecar", &[("cpu", "10m")], &[]),
        ];
        let rec = recommendation("app", "300m", "128Mi");
        let got = plan(
            &containers,
            &rec,
            &spec(serde_json::json!([])),
            "web",
            &Default::default(),
        )
        .unwrap_or_default();
        assert_eq!(got.len(), 1, "{got:?}");
        let r = &got[0].resources;
        let q = |l: &Option<BTreeMap<String, Quantity>>, k: &str| {
            l.as_ref().and_then(|l| l.get(k)).map(|q| q.0.clone())
        };
        assert_eq!(q(&r.requests, "cpu").as_deref(), Some("300m"));
        assert_eq!(q(&r.requests, "memory").as_deref(), Some("134217728"));
        assert_eq!(q(&r.limits, "cpu").as_deref(), Some("600m"));
        assert_eq!(q(&r.limits, "memory"), None, "no memory limit was set");
    }

    #[test]
    fn policies_leave_containers_and_resources_alone() {
        let containers = [container(
            "app",
            &[("cpu", "100m"), ("memory", "64Mi")],
            &[],
        )];
        let rec = recommendation("app", "300m", "128Mi");
        let cases = [
            (
                serde_json::json!([{ "containerName": "app", "mode": "Off" }]),
                None,
            ),
            (
                serde_json::json!([{ "containerName": "*", "controlledResources": ["memory"] }]),
                Some(("100m", "134217728")),
            ),
        ];
        for (policies, want) in cases {
            let got = plan(
                &containers,
                &rec,
                &spec(policies.clone()),
                "web",
                &Default::default(),
            )
            .unwrap_or_default();
            let have = got.first().map(|c| {
                let r = c.resources.requests.clone().unwrap_or_default();
                (r["cpu"].0.clone(), r["memory"].0.clone())
            });
            assert_eq!(
                have,
                want.map(|(a, b)| (a.to_string(), b.to_string())),
                "{policies}"
            );
        }
    }
    fn with_lower_bound(mut rec: RecommendedPodResources, cpu: &str) -> RecommendedPodResources {
        for c in &mut rec.container_recommendations {
            c.lower_bound = Some([("cpu".to_string(), Quantity(cpu.into()))].into());
        }
        rec
    }

    #[test]
    fn held_cpu_is_never_lowered_and_raised_only_to_the_lower_bound() {
        use crate::coordination::Clash;
        let held = Held::from_clashes(&[Clash {
            vertical: "web".into(),
            horizontal: "web".into(),
            metric: 0,
            resource: Resource::Cpu,
            container: None,
            coordinated: true,
        }]);
        let rec = with_lower_bound(recommendation("app", "300m", "128Mi"), "200m");
        // (case, cpu request, policies, expected (cpu, memory) requests; None: left alone)
        let cases = [
            (
                "above the floor: untouched",
                Some("500m"),
                serde_json::json!([]),
                Some(("500m", "134217728")),
            ),
            (
                "at the floor: untouched",
                Some("200m"),
                serde_json::json!([]),
                Some(("200m", "134217728")),
            ),
            (
                "below the floor: raised to it",
                Some("100m"),
                serde_json::json!([]),
                Some(("200m", "134217728")),
            ),
            (
                "no request: the floor",
                None,
                serde_json::json!([]),
                Some(("200m", "134217728")),
            ),
            (
                "a container not controlled is left alone",
                Some("100m"),
                serde_json::json!([{ "containerName": "app", "mode": "Off" }]),
                None,
            ),
        ];
        for (case, cpu, policies, want) in cases {
            let mut requests = vec![("memory", "64Mi")];
            requests.extend(cpu.map(|c| ("cpu", c)));
            let containers = [container("app", &requests, &[])];
            let got = plan_held(
                &containers,
                &rec,
                &spec(policies),
                "web",
                &Default::default(),
                &held,
            )
            .unwrap_or_default();
            let have = got.first().map(|c| {
                let r = c.resources.requests.clone().unwrap_or_default();
                (r["cpu"].0.clone(), r["memory"].0.clone())
            });
            assert_eq!(
                have,
                want.map(|(a, b)| (a.to_string(), b.to_string())),
                "{case}"
            );
        }
        // Nothing held: the cpu request follows the target, down as well as up.
        let containers = [container("app", &[("cpu", "500m")], &[])];
        let got = plan(
            &containers,
            &rec,
            &spec(serde_json::json!([])),
            "web",
            &Default::default(),
        )
        .unwrap_or_default();
        let cpu = got
            .first()
            .and_then(|c| c.resources.requests.clone())
            .map(|r| r["cpu"].0.clone());
        assert_eq!(cpu.as_deref(), Some("300m"));
        // Held without a lower bound: left as it is.
        let bare = recommendation("app", "300m", "128Mi");
        let got = plan_held(
            &containers,
            &bare,
            &spec(serde_json::json!([])),
            "web",
            &Default::default(),
            &held,
        )
        .unwrap_or_default();
        let cpu = got
            .first()
            .and_then(|c| c.resources.requests.clone())
            .map(|r| r["cpu"].0.clone());
        assert_eq!(cpu.as_deref(), Some("500m"));
    }
}
