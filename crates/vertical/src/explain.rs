//! `ballast explain vertical`: a snapshot (an object, its containers' usage series, `now`) → the
//! recommendation, its confidence and why.

use ballast_api::vertical::VerticalAutoscaler;
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

/// What `explain` reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub object: VerticalAutoscaler,
    pub now: Timestamp,
    pub containers: Vec<ContainerUsage>,
}

/// The recommendation of a snapshot and the settings it was made with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub settings: Settings,
    pub recommendation: Recommendation,
}

/// Feeds every series, in time order, and recommends at `now`.
pub fn explain(snapshot: &Snapshot) -> Result<Explanation, Error> {
    let name = snapshot
        .object
        .metadata
        .name
        .as_deref()
        .unwrap_or("<unnamed>");
    let settings = Settings::from_spec(&snapshot.object.spec, name)?;
    let states: Vec<ContainerState> = snapshot
        .containers
        .iter()
        .map(|c| feed(c, &settings))
        .collect();
    let tracked: Vec<TrackedContainer<'_>> = snapshot
        .containers
        .iter()
        .zip(&states)
        .map(|(c, state)| TrackedContainer {
            name: &c.name,
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
