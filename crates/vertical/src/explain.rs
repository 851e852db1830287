//! `ballast explain vertical`: a snapshot (an object, its containers' usage series or their
//! checkpoints, `now`) → the recommendation, its confidence and why.
//!
//! A container is given either as usage series (`containers`: fed in time order) or as the
//! status of its `VerticalAutoscalerCheckpoint` (`checkpoints`: restored exactly, as the
//! recommender restores it), never both: a live capture holds checkpoints, a recorded trace
//! series. Containers are recommended in name order, as the recommender tracks them.

use std::collections::BTreeMap;

use ballast_api::vertical::{VerticalAutoscaler, VerticalAutoscalerCheckpointStatus};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::aggregate::ContainerState;
use crate::error::Error;
use crate::recommend::{Recommendation, TrackedContainer, recommend_with};
use crate::settings::Settings;

/// Usage of one container: `[unix seconds, value]` pairs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerUsage {
    pub name: String,
    /// CPU request in cores (the samples' weight), 0 when none.
    #[serde(default)]
    pub cpu_request: f64,
    /// Memory request in bytes (used by OOM bumps), 0 when none.
    #[serde(default)]
    pub memory_request: f64,
    /// CPU usage samples, cores.
    #[serde(default)]
    pub cpu: Vec<(i64, f64)>,
    /// Memory usage samples, bytes.
    #[serde(default)]
    pub memory: Vec<(i64, f64)>,
    /// Unix seconds of OOM kills.
    #[serde(default)]
    pub oom_kills: Vec<i64>,
}

/// One container's saved state: the `status` of its `VerticalAutoscalerCheckpoint`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerCheckpoint {
    /// The container (the checkpoint's `spec.containerName`).
    pub name: String,
    pub status: VerticalAutoscalerCheckpointStatus,
}

/// What `explain` reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub object: VerticalAutoscaler,
    pub now: Timestamp,
    /// Containers given by their usage series.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<ContainerUsage>,
    /// Containers given by their checkpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoints: Vec<ContainerCheckpoint>,
}

/// The recommendation of a snapshot and the settings it was made with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub settings: Settings,
    pub recommendation: Recommendation,
}

/// Restores every checkpoint, feeds every series in time order, and recommends at `now`.
///
/// Errs when the object's settings are invalid, a container is named twice (in either list),
/// or a checkpoint does not restore (each naming the field).
pub fn explain(snapshot: &Snapshot) -> Result<Explanation, Error> {
    let name = snapshot
        .object
        .metadata
        .name
        .as_deref()
        .unwrap_or("<unnamed>");
    let settings = Settings::from_spec(&snapshot.object.spec, name)?;
    let states = states(snapshot, &settings, name)?;
    let tracked: Vec<TrackedContainer<'_>> = states
        .iter()
        .map(|(container, state)| TrackedContainer {
            name: container,
            state,
        })
        .collect();
    let recommendation = recommend_with(
        &snapshot.object.spec,
        name,
        &settings,
        &tracked,
        snapshot.now,
    )?;
    Ok(Explanation {
        settings,
        recommendation,
    })
}

/// `snapshot` with every container given as the checkpoint of its state at `now` (series fed,
/// checkpoints kept): what a recommender that had seen the series would have saved. It
/// explains as `snapshot` does.
pub fn checkpointed(snapshot: &Snapshot) -> Result<Snapshot, Error> {
    let name = snapshot
        .object
        .metadata
        .name
        .as_deref()
        .unwrap_or("<unnamed>");
    let settings = Settings::from_spec(&snapshot.object.spec, name)?;
    let checkpoints = states(snapshot, &settings, name)?
        .iter()
        .map(|(container, state)| ContainerCheckpoint {
            name: container.clone(),
            status: crate::checkpoint::save(state, snapshot.now),
        })
        .collect();
    Ok(Snapshot {
        object: snapshot.object.clone(),
        now: snapshot.now,
        containers: Vec::new(),
        checkpoints,
    })
}

/// Each container's state, by name: restored from its checkpoint or fed its series.
fn states(
    snapshot: &Snapshot,
    settings: &Settings,
    name: &str,
) -> Result<BTreeMap<String, ContainerState>, Error> {
    let mut states = BTreeMap::new();
    let mut add = |container: &str, field: String, state: ContainerState| {
        if states.insert(container.to_string(), state).is_some() {
            return Err(Error::invalid(
                name,
                &field,
                format!("container {container:?} is given twice (as series or checkpoint)"),
            ));
        }
        Ok(())
    };
    for (i, c) in snapshot.checkpoints.iter().enumerate() {
        let object = format!("{name}: checkpoints[{i}] (container {})", c.name);
        let state = crate::checkpoint::restore(&c.status, settings, &object)?;
        add(&c.name, format!("checkpoints[{i}].name"), state)?;
    }
    for (i, c) in snapshot.containers.iter().enumerate() {
        add(&c.name, format!("containers[{i}].name"), feed(c, settings))?;
    }
    Ok(states)
}

/// Formats an amount with its unit.
type Unit = fn(f64) -> String;

#[derive(Clone, Copy)]
enum Event {
    Cpu(f64),
    Memory(f64),
    Oom,
}

fn feed(c: &ContainerUsage, settings: &Settings) -> ContainerState {
    let mut events: Vec<(i64, u8, Event)> = Vec::new();
    events.extend(c.cpu.iter().map(|(t, v)| (*t, 0, Event::Cpu(*v))));
    events.extend(c.memory.iter().map(|(t, v)| (*t, 1, Event::Memory(*v))));
    events.extend(c.oom_kills.iter().map(|t| (*t, 2, Event::Oom)));
    events.sort_by_key(|(t, order, _)| (*t, *order));
    let mut state = ContainerState::new(settings);
    for (at, _, e) in events {
        match e {
            Event::Cpu(v) => state.add_cpu(at, v, c.cpu_request),
            Event::Memory(v) => state.add_memory(at, v),
            Event::Oom => state.add_oom(at, c.memory_request),
        }
    }
    state
}

impl Explanation {
    /// The explanation in words.
    pub fn text(&self) -> String {
        let mut out = format!("estimator: {:?}\n", self.settings.mode);
        for c in &self.recommendation.containers {
            out.push_str(&format!(
                "container {} (confidence {:.2} days)\n",
                c.container_name, c.confidence
            ));
            let cpu = |v: f64| format!("{:.0}m", (v * 1000.0).ceil());
            let memory = |v: f64| format!("{:.1}Mi", v / 1048576.0);
            let units: [(&str, _, Unit); 2] = [("cpu", c.cpu, cpu), ("memory", c.memory, memory)];
            for (what, r, unit) in units {
                if let Some(r) = r {
                    out.push_str(&format!(
                        "  {what}: target {} (uncapped {}), bounds [{}, {}]\n",
                        unit(r.target),
                        unit(r.uncapped_target),
                        unit(r.lower_bound),
                        unit(r.upper_bound)
                    ));
                }
            }
            for reason in &c.reasons {
                out.push_str(&format!("  because {reason}\n"));
            }
        }
        for s in &self.recommendation.skipped {
            out.push_str(&format!("skipped {s}\n"));
        }
        out
    }
}
