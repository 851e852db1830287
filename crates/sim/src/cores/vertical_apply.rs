//! Applying vertical recommendations in virtual time, with the code the live webhook and updater
//! run (`ballast_vertical::apply`):
//!
//! - **admission** (`Initial`, `Recreate`, `InPlaceOrRecreate`): after each recommendation the
//!   workload's new pods ask for what `apply::pod::plan` writes into a new pod (the capped target;
//!   the simulator has no LimitRange and no limits), so every pod created from then on has it;
//! - **updater** (`Recreate`, and `InPlaceOrRecreate`, simulated as `Recreate`: the simulator has
//!   no in-place resize), right after the recommender in the same one-minute loop:
//!   `apply::eviction::choose` over the workload's Ready pods, and the chosen ones are evicted; the
//!   Deployment controller replaces them, and the replacements go through admission, scheduling
//!   and start-up like any pod.
//!
//! The simulator models no OOM kill, so the updater's OOM rule never fires. Availability: a pod
//! not Ready (a replacement still pending or starting) counts as unavailable, both for the
//! workload's `maxUnavailable` (its PDB) and for the updater's eviction tolerance across passes
//! (at most half the desired replicas unavailable, as the VPA updater's tolerance).

use crate::cores::vertical::VerticalState;
use crate::observed::timestamp;
use crate::state::PodId;
use crate::world::World;
use ballast_api::common::parse_quantity;
use ballast_api::vertical::{
    RecommendedContainerResources, ResourceList, UpdateMode, VerticalAutoscaler,
};
use ballast_scheduling::model::Resources;
use ballast_vertical::apply::eviction::{
    Bounds, ContainerView, DEFAULT_MIN_REPLICAS, DEFAULT_TOLERANCE, Limits, PodView, choose,
};
use ballast_vertical::apply::pod::{ContainerLimitRange, plan};
use ballast_vertical::policy::Resource;
use k8s_openapi::api::core::v1::{Container, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

/// The mode an object's `updatePolicy.updateMode` asks for, as the simulator carries it out:
/// absent is the API's default (`Recreate`), `Auto` is `Recreate`.
pub(crate) fn update_mode(object: &VerticalAutoscaler) -> UpdateMode {
    let mode = object
        .spec
        .update_policy
        .as_ref()
        .and_then(|p| p.update_mode)
        .unwrap_or_default();
    match mode {
        UpdateMode::Auto => UpdateMode::Recreate,
        other => other,
    }
}

/// Whether new pods get the object's recommendation.
pub(crate) fn admits(mode: UpdateMode) -> bool {
    mode != UpdateMode::Off
}

/// Whether the updater evicts pods whose requests are off the recommendation.
fn evicts(mode: UpdateMode) -> bool {
    matches!(mode, UpdateMode::Recreate | UpdateMode::InPlaceOrRecreate)
}

/// The requests the admission webhook would give a new pod of `v`'s workload now, from the
/// template's, and whether it changed them (false: the policy leaves the container alone, or the
/// recommendation is the template's). None without a recommendation or when `plan` fails.
fn admitted_requests(world: &mut World, v: &VerticalState) -> Option<(Resources, bool)> {
    let (_, rec) = v.latest.as_ref()?;
    let template = &world.sc.workloads[v.workload].pod.requests;
    let container = Container {
        name: v.container.clone(),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                (
                    "cpu".to_string(),
                    Quantity(format!("{}m", template.cpu_millis)),
                ),
                (
                    "memory".to_string(),
                    Quantity(template.memory_bytes.to_string()),
                ),
            ])),
            ..Default::default()
        }),
        ..Default::default()
    };
    let short = v.object.metadata.name.as_deref().unwrap_or("<unnamed>");
    let changes = match plan(
        &[container],
        &rec.to_status(),
        &v.object.spec,
        short,
        &ContainerLimitRange::default(),
    ) {
        Ok(c) => c,
        Err(e) => {
            let message = format!("VerticalAutoscaler {}: admission: {e}", v.name);
            world.rec.error(world.now, message);
            return None;
        }
    };
    let mut out = template.clone();
    let Some(requests) = changes.first().and_then(|c| c.resources.requests.as_ref()) else {
        return Some((out, false));
    };
    if let Some(cores) = read(requests, "cpu") {
        out.cpu_millis = (cores * 1000.0).round() as i64;
    }
    if let Some(bytes) = read(requests, "memory") {
        out.memory_bytes = bytes.round() as i64;
    }
    Some((out, true))
}

fn read(list: &ResourceList, key: &str) -> Option<f64> {
    list.get(key).and_then(|q| parse_quantity(&q.0).ok())
}

/// After a recommendation: the new pods of each applying object's workload get it.
pub(crate) fn admit(world: &mut World, verticals: &[VerticalState]) {
    for v in verticals.iter().filter(|v| !v.failed && admits(v.mode)) {
        if let Some((requests, sized)) = admitted_requests(world, v) {
            world.set_pod_requests(v.workload, requests, sized);
        }
    }
}

/// The updater's pass: each `Recreate` object's chosen pods are evicted.
pub(crate) fn update(world: &mut World, verticals: &[VerticalState]) {
    for v in verticals.iter().filter(|v| !v.failed && evicts(v.mode)) {
        for p in chosen_pods(world, v) {
            world.evict_for_update(p, v.workload);
        }
    }
}

/// A resource's recommendation as the object's status says it (rounded as the live updater
/// reads it, so that a pod sized from the target is within the bounds).
fn bounds(c: &RecommendedContainerResources, key: &str) -> Option<Bounds> {
    let get = |l: Option<&ResourceList>| l.and_then(|l| read(l, key));
    Some(Bounds {
        target: get(Some(&c.target))?,
        lower: get(c.lower_bound.as_ref())?,
        upper: get(c.upper_bound.as_ref())?,
    })
}

/// The pods of `v`'s workload the updater evicts now.
fn chosen_pods(world: &World, v: &VerticalState) -> Vec<PodId> {
    let Some((_, rec)) = v.latest.as_ref() else {
        return Vec::new();
    };
    let status = rec.to_status();
    let Some(c) = status
        .container_recommendations
        .iter()
        .find(|c| c.container_name == v.container)
    else {
        return Vec::new();
    };
    let (cpu, memory) = (bounds(c, "cpu"), bounds(c, "memory"));
    let ready: Vec<PodId> = world.workloads[v.workload]
        .pods
        .iter()
        .copied()
        .filter(|&p| world.pods[p].is_ready(world.now))
        .collect();
    let views: Vec<PodView> = ready
        .iter()
        .map(|&p| {
            let pod = &world.pods[p];
            let started = pod.bound_at.unwrap_or(pod.created);
            PodView {
                name: pod.spec.name.clone(),
                started: timestamp(world.sc.start, started).as_second(),
                containers: vec![ContainerView {
                    name: v.container.clone(),
                    resources: vec![
                        (
                            Resource::Cpu,
                            Some(pod.requests.cpu_millis as f64 / 1000.0),
                            cpu,
                        ),
                        (
                            Resource::Memory,
                            Some(pod.requests.memory_bytes as f64),
                            memory,
                        ),
                    ],
                    last_oom: None,
                }],
            }
        })
        .collect();
    let limits = limits(world, v, ready.len());
    let now = timestamp(world.sc.start, world.now).as_second();
    let chosen: Vec<String> = choose(&views, &limits, now)
        .into_iter()
        .filter(|c| c.update)
        .map(|c| c.pod)
        .collect();
    ready
        .into_iter()
        .filter(|&p| chosen.contains(&world.pods[p].spec.name))
        .collect()
}

/// The pass's limits: the object's `minReplicas` and `evictionRequirements`, the default
/// tolerance, and the disruptions allowed now by the workload's PDB and by the tolerance across
/// passes (pods not Ready are unavailable).
fn limits(world: &World, v: &VerticalState, ready: usize) -> Limits {
    let policy = v.object.spec.update_policy.as_ref();
    let desired = world.workloads[v.workload].desired.max(0);
    let unavailable = desired - ready as i32;
    let tolerated = ((f64::from(desired) * DEFAULT_TOLERANCE).floor() as i32).max(1);
    let mut allowed = tolerated - unavailable;
    if let Some(max) = world.sc.workloads[v.workload].max_unavailable {
        allowed = allowed.min(max - unavailable);
    }
    Limits {
        min_replicas: policy
            .and_then(|p| p.min_replicas)
            .unwrap_or(DEFAULT_MIN_REPLICAS),
        tolerance: DEFAULT_TOLERANCE,
        pdb_allowed: Some(allowed.max(0) as u32),
        requirements: policy
            .map(|p| p.eviction_requirements.clone())
            .unwrap_or_default(),
    }
}
