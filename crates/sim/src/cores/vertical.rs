//! The vertical recommendation: the usage of each `VerticalAutoscaler`'s target workload, fed
//! into the vertical core's container state at every sample of the run, and the core's
//! recommendation asked for at a fixed period of virtual time (the recommender's loop).
//! Applying the recommendations (update modes) is `vertical_apply`'s.
//!
//! A simulated pod has one container, named after its workload. Every Ready pod adds one CPU
//! and one memory sample per sample of the run (the vertical core aggregates a workload's pods
//! by container name); its usage is what the horizontal adapter's metrics show: the load split
//! evenly over the Ready pods, at most a pod's capacity each, turned into CPU by
//! `perPod.baseCpu` and `perPod.cpuPerUnit`, and into memory by `perPod.memory` and
//! `perPod.memoryPerUnit`. A CPU sample weighs the pod's own CPU request (requests are per pod
//! once recommendations are applied).

use crate::cores::vertical_apply::update_mode;
use crate::observed::timestamp;
use crate::record::Recorder;
use crate::scenario::Scenario;
use crate::state::Millis;
use crate::world::World;
use ballast_api::vertical::{UpdateMode, VerticalAutoscaler};
use ballast_vertical::{ContainerState, Recommendation, Settings, TrackedContainer};

/// Virtual milliseconds between two recommendations (the VPA recommender's one-minute loop).
pub(crate) const RECOMMEND_PERIOD_MS: Millis = 60_000;

/// A `VerticalAutoscaler` of the scenario, the workload it targets and the usage seen so far.
#[derive(Debug, Clone)]
pub(crate) struct VerticalState {
    /// The object as written in the scenario.
    pub object: VerticalAutoscaler,
    /// `namespace/name` of the object.
    pub name: String,
    /// The workload it targets.
    pub workload: usize,
    settings: Settings,
    /// The name of the pods' one container.
    pub container: String,
    usage: ContainerState,
    /// The last recommendation and when it was made; None before the first.
    pub latest: Option<(Millis, Recommendation)>,
    /// The core refused the object (reported once); it is asked nothing more.
    pub failed: bool,
    /// How its recommendations are applied (`vertical_apply::update_mode`).
    pub mode: UpdateMode,
    /// The requests of the workload's Ready pods, summed over the samples.
    pub requested: RequestTally,
}

/// Requests of Ready pods summed over samples: their mean is what a Ready pod asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct RequestTally {
    pub cpu_millis: f64,
    pub memory_bytes: f64,
    /// Ready pods counted (a pod counts once per sample).
    pub pods: u64,
}

/// `namespace/name` of a `VerticalAutoscaler`.
fn object_name(object: &VerticalAutoscaler) -> String {
    let ns = object.metadata.namespace.as_deref().unwrap_or("default");
    let name = object.metadata.name.as_deref().unwrap_or("<unnamed>");
    format!("{ns}/{name}")
}

/// The scenario's `VerticalAutoscaler` objects, each with its target workload. An object whose
/// target is not in the scenario, or whose `spec.estimation` the core refuses, is reported in
/// `rec` (naming the object and field) and left out; the others go on.
pub(crate) fn verticals(sc: &Scenario, rec: &mut Recorder) -> Vec<VerticalState> {
    let mut out = Vec::new();
    for object in &sc.verticals {
        let name = object_name(object);
        let ns = object.metadata.namespace.as_deref().unwrap_or("default");
        let target = &object.spec.target_ref;
        let Some(w) = sc
            .workloads
            .iter()
            .position(|w| w.name == target.name && w.namespace == ns)
        else {
            rec.error(
                0,
                format!(
                    "VerticalAutoscaler {name}: spec.targetRef: no workload {ns}/{} in the scenario; it gets no recommendation",
                    target.name
                ),
            );
            continue;
        };
        let short = object.metadata.name.as_deref().unwrap_or("<unnamed>");
        let settings = match Settings::from_spec(&object.spec, short) {
            Ok(s) => s,
            Err(e) => {
                rec.error(
                    0,
                    format!("VerticalAutoscaler {name}: {e}; it gets no recommendation"),
                );
                continue;
            }
        };
        out.push(VerticalState {
            object: object.clone(),
            name,
            workload: w,
            settings,
            container: sc.workloads[w].name.clone(),
            usage: ContainerState::new(&settings),
            latest: None,
            failed: false,
            mode: update_mode(object),
            requested: RequestTally::default(),
        });
    }
    out
}

/// Adds one usage sample per Ready pod of each object's workload, at the world's `now`.
pub(crate) fn observe_usage(world: &World, verticals: &mut [VerticalState]) {
    let at = timestamp(world.sc.start, world.now).as_second();
    for v in verticals.iter_mut().filter(|v| !v.failed) {
        let spec = &world.sc.workloads[v.workload];
        let ready = world.ready_pods(v.workload);
        if ready == 0 {
            continue;
        }
        let load = world.load(v.workload, world.now);
        let per_pod_load = (load / ready as f64).min(spec.per_pod.capacity);
        let cores = spec.per_pod.cpu_millis(per_pod_load).max(0.0) / 1000.0;
        let bytes = spec.per_pod.memory_bytes(per_pod_load).max(0.0);
        let pods = &world.workloads[v.workload].pods;
        for pod in pods.iter().map(|&p| &world.pods[p]) {
            if pod.ready_at.is_none() {
                continue;
            }
            let request = &pod.requests;
            v.usage
                .add_cpu(at, cores, request.cpu_millis as f64 / 1000.0);
            v.usage.add_memory(at, bytes);
            v.requested.cpu_millis += request.cpu_millis as f64;
            v.requested.memory_bytes += request.memory_bytes as f64;
            v.requested.pods += 1;
        }
    }
}

/// Asks the vertical core for each object's recommendation at the world's `now`. An object the
/// core refuses (a container policy it cannot read) is reported once and asked no more.
pub(crate) fn recommend(world: &mut World, verticals: &mut [VerticalState]) {
    let now = timestamp(world.sc.start, world.now);
    for v in verticals.iter_mut().filter(|v| !v.failed) {
        let containers = [TrackedContainer {
            name: &v.container,
            state: &v.usage,
        }];
        let short = v.object.metadata.name.as_deref().unwrap_or("<unnamed>");
        match ballast_vertical::recommend_with(&v.object.spec, short, &v.settings, &containers, now)
        {
            Ok(r) => v.latest = Some((world.now, r)),
            Err(e) => {
                v.failed = true;
                world
                    .rec
                    .error(world.now, format!("VerticalAutoscaler {}: {e}", v.name));
            }
        }
    }
}
