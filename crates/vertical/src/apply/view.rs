//! A live pod as the updater judges it: its containers' current requests beside the
//! recommendation ([`pod_view`]), and its in-place resize conditions ([`resize_conditions`]).
//!
//! The requests are the pod's spec (what was asked, including a resize not yet carried out, so a
//! resized pod is not resized again). The recommendation's target and bounds are kept within the
//! namespace's LimitRange `min`/`max`, as the webhook and a resize would set them: a target the
//! LimitRange cuts never makes a pod out of bounds for ever. Containers without a recommendation,
//! with `mode: Off`, and resources outside `controlledResources` carry no bounds (never judged).
//! A request [`Held`] for a horizontal autoscaler is judged only against its floor, as
//! [`super::pod::plan_held`] applies it: at or above the lower bound it carries no bounds (the
//! webhook would keep it); below it (or unset), its bounds are [lower bound, ∞) with the lower
//! bound as target.

use ballast_api::common::parse_quantity;
use ballast_api::vertical::{RecommendedPodResources, ResourceList, VerticalAutoscalerSpec};
use k8s_openapi::api::core::v1::{Container, Pod};

use super::eviction::{Bounds, ContainerView, PodView};
use super::fallback::ResizeConditions;
use super::pod::ContainerLimitRange;
use super::resize::LimitRangeBounds;
use crate::coordination::Held;
use crate::error::Error;
use crate::policy::{Resource, container_policy};

/// `pod` as [`super::eviction::choose`] sees it, under `recommendation` and the policies of
/// `spec` (object `name`), with the requests `held` for a horizontal autoscaler; `started` falls
/// back to the creation time, then to 0.
pub fn pod_view(
    pod: &Pod,
    recommendation: &RecommendedPodResources,
    spec: &VerticalAutoscalerSpec,
    name: &str,
    limit_range: &ContainerLimitRange,
    held: &Held,
) -> Result<PodView, Error> {
    let started = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .or(pod.metadata.creation_timestamp.as_ref())
        .map_or(0, |t| t.0.as_second());
    let mut containers = Vec::new();
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        let policy = container_policy(spec, name, &c.name)?;
        let rec = recommendation
            .container_recommendations
            .iter()
            .find(|r| r.container_name == c.name)
            .filter(|_| policy.enabled);
        let mut resources = Vec::new();
        for (resource, range) in [
            (Resource::Cpu, limit_range.cpu),
            (Resource::Memory, limit_range.memory),
        ] {
            let bounds = rec
                .filter(|_| policy.controls(resource))
                .and_then(|r| bounds(r.target.clone(), &r.lower_bound, &r.upper_bound, resource))
                .map(|b| clamp(b, range));
            let request = request(c, resource);
            let bounds = if held.holds(resource, &c.name) {
                bounds.and_then(|b| floor_only(b, request))
            } else {
                bounds
            };
            resources.push((resource, request, bounds));
        }
        containers.push(ContainerView {
            name: c.name.clone(),
            resources,
            last_oom: last_oom(pod, &c.name),
        });
    }
    Ok(PodView {
        name: pod.metadata.name.clone().unwrap_or_default(),
        started,
        containers,
    })
}

/// The pod's `PodResizePending` and `PodResizeInProgress` conditions that are `True`.
pub fn resize_conditions(pod: &Pod) -> ResizeConditions {
    let mut out = ResizeConditions::default();
    let conditions = pod
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten());
    for c in conditions.filter(|c| c.status == "True") {
        let entry = (
            c.reason.clone().unwrap_or_default(),
            c.last_transition_time
                .as_ref()
                .map_or(0, |t| t.0.as_second()),
        );
        match c.type_.as_str() {
            "PodResizePending" => out.pending = Some(entry),
            "PodResizeInProgress" => out.in_progress = Some(entry),
            _ => {}
        }
    }
    out
}

fn bounds(
    target: ResourceList,
    lower: &Option<ResourceList>,
    upper: &Option<ResourceList>,
    resource: Resource,
) -> Option<Bounds> {
    let read = |l: &ResourceList| {
        l.get(resource.name())
            .and_then(|q| parse_quantity(&q.0).ok())
    };
    let target = read(&target)?;
    Some(Bounds {
        target,
        lower: lower.as_ref().and_then(read).unwrap_or(target).min(target),
        upper: upper.as_ref().and_then(read).unwrap_or(target).max(target),
    })
}

/// A held request's bounds: none when it is at or above the lower bound (kept as it is), else
/// the lower bound as target with no upper bound (raised to it, never lowered).
fn floor_only(b: Bounds, request: Option<f64>) -> Option<Bounds> {
    match request {
        Some(r) if r >= b.lower => None,
        _ => Some(Bounds {
            target: b.lower,
            lower: b.lower,
            upper: f64::INFINITY,
        }),
    }
}

fn clamp(b: Bounds, range: LimitRangeBounds) -> Bounds {
    let f = |v: f64| {
        let v = range.min.map_or(v, |m| v.max(m));
        range.max.map_or(v, |m| v.min(m))
    };
    Bounds {
        target: f(b.target),
        lower: f(b.lower),
        upper: f(b.upper),
    }
}

fn request(c: &Container, resource: Resource) -> Option<f64> {
    let q = c
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get(resource.name())?;
    parse_quantity(&q.0).ok()
}

/// The last OOM kill of container `name` (finish, start), from its last or current state.
fn last_oom(pod: &Pod, name: &str) -> Option<(i64, i64)> {
    let status = pod
        .status
        .as_ref()?
        .container_statuses
        .iter()
        .flatten()
        .find(|s| s.name == name)?;
    [
        status.state.as_ref().and_then(|s| s.terminated.as_ref()),
        status
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref()),
    ]
    .into_iter()
    .flatten()
    .filter(|t| t.reason.as_deref() == Some("OOMKilled"))
    .find_map(|t| {
        let finished = t.finished_at.as_ref()?.0.as_second();
        let started = t.started_at.as_ref().map_or(finished, |s| s.0.as_second());
        Some((finished, started))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": "web-1", "creationTimestamp": "2026-01-01T00:00:00Z" },
            "spec": { "containers": [
                { "name": "app", "resources": { "requests": { "cpu": "100m", "memory": "64Mi" } } },
                { "name": "sidecar" }
            ] },
            "status": status
        }))
        .unwrap_or_default()
    }

    fn recommendation() -> RecommendedPodResources {
        serde_json::from_value(serde_json::json!({ "containerRecommendations": [{
            "containerName": "app",
            "target": { "cpu": "500m", "memory": "128Mi" },
            "lowerBound": { "cpu": "400m", "memory": "100Mi" },
            "upperBound": { "cpu": "800m", "memory": "256Mi" }
        }]}))
        .unwrap_or_default()
    }

    fn spec(policies: serde_json::Value) -> VerticalAutoscalerSpec {
        serde_json::from_value(serde_json::json!({
            "targetRef": { "kind": "Deployment", "name": "web" },
            "resourcePolicy": { "containerPolicies": policies }
        }))
        .unwrap_or_default()
    }

    #[test]
    fn requests_bounds_start_and_oom() {
        let p = pod(serde_json::json!({
            "startTime": "2026-01-01T00:01:00Z",
            "containerStatuses": [{ "name": "app", "image": "", "imageID": "", "ready": true,
                "restartCount": 1,
                "lastState": { "terminated": { "exitCode": 137, "reason": "OOMKilled",
                    "startedAt": "2026-01-01T00:01:00Z", "finishedAt": "2026-01-01T00:03:00Z" } } }]
        }));
        let v = pod_view(
            &p,
            &recommendation(),
            &spec(serde_json::json!([])),
            "web",
            &Default::default(),
            &Held::none(),
        );
        let v = v.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.name, "web-1");
        assert_eq!(v.started, 1_767_225_660);
        let app = &v.containers[0];
        assert_eq!(app.resources[0].1, Some(0.1));
        assert_eq!(
            app.resources[0].2,
            Some(Bounds {
                target: 0.5,
                lower: 0.4,
                upper: 0.8
            })
        );
        assert_eq!(app.last_oom, Some((1_767_225_780, 1_767_225_660)));
        // no recommendation: no bounds, never judged
        assert!(v.containers[1].resources.iter().all(|r| r.2.is_none()));
    }

    #[test]
    fn a_held_request_is_judged_only_against_its_floor() {
        use crate::coordination::Clash;
        let held = Held::from_clashes(&[Clash {
            vertical: "web".into(),
            horizontal: "web".into(),
            metric: 0,
            resource: Resource::Cpu,
            container: None,
            coordinated: true,
        }]);
        let all = spec(serde_json::json!([]));
        // cpu request 100m, below the 400m lower bound: raised to it, never lowered.
        let mut p = pod(serde_json::json!({}));
        let v = pod_view(
            &p,
            &recommendation(),
            &all,
            "web",
            &Default::default(),
            &held,
        );
        let app = &v.unwrap_or_else(|e| panic!("{e}")).containers[0];
        assert_eq!(
            app.resources[0].2,
            Some(Bounds {
                target: 0.4,
                lower: 0.4,
                upper: f64::INFINITY
            })
        );
        assert!(app.resources[1].2.is_some(), "memory is not held");
        // cpu request 2: above the floor, kept: never judged.
        let container = &mut p.spec.as_mut().unwrap().containers[0];
        let requests = container
            .resources
            .as_mut()
            .unwrap()
            .requests
            .as_mut()
            .unwrap();
        requests.insert(
            "cpu".into(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("2".into()),
        );
        let v = pod_view(
            &p,
            &recommendation(),
            &all,
            "web",
            &Default::default(),
            &held,
        );
        assert_eq!(
            v.unwrap_or_else(|e| panic!("{e}")).containers[0].resources[0].2,
            None
        );
    }

    #[test]
    fn policies_and_limit_ranges_shape_the_bounds() {
        let p = pod(serde_json::json!({}));
        let memory_only =
            spec(serde_json::json!([{ "containerName": "*", "controlledResources": ["memory"] }]));
        let v = pod_view(
            &p,
            &recommendation(),
            &memory_only,
            "web",
            &Default::default(),
            &Held::none(),
        );
        let v = v.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.containers[0].resources[0].2, None, "cpu not controlled");
        assert!(v.containers[0].resources[1].2.is_some());
        assert_eq!(
            v.started, 1_767_225_600,
            "creation time without a start time"
        );

        let range = ContainerLimitRange {
            cpu: LimitRangeBounds {
                max: Some(0.45),
                ..Default::default()
            },
            ..Default::default()
        };
        let v = pod_view(
            &p,
            &recommendation(),
            &spec(serde_json::json!([])),
            "web",
            &range,
            &Held::none(),
        );
        let v = v.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            v.containers[0].resources[0].2,
            Some(Bounds {
                target: 0.45,
                lower: 0.4,
                upper: 0.45
            })
        );
    }

    #[test]
    fn resize_conditions_are_read_when_true() {
        let p = pod(serde_json::json!({ "conditions": [
            { "type": "PodResizePending", "status": "True", "reason": "Deferred",
              "lastTransitionTime": "2026-01-01T00:05:00Z" },
            { "type": "PodResizeInProgress", "status": "False",
              "lastTransitionTime": "2026-01-01T00:04:00Z" },
            { "type": "Ready", "status": "True" }
        ]}));
        assert_eq!(
            resize_conditions(&p),
            ResizeConditions {
                pending: Some(("Deferred".to_owned(), 1_767_225_900)),
                in_progress: None
            }
        );
    }
}
