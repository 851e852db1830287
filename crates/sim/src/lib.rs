//! Ballast's capacity simulator: a discrete-event simulation with a virtual clock and an
//! in-memory cluster, in which every autoscaling decision is taken by the same pure cores the
//! live controllers run (`ballast-horizontal`, `ballast-nodes`, `ballast-scheduling`,
//! `ballast-vertical`).
//!
//! `bundle` holds the scenarios compiled into the binary and reads a scenario's files from the
//! disk or from it. The rooms, each depending only on those listed before it: `state` (node, pod and workload
//! records), `event` (events and wake-ups), `record` (what a run counts), `observed` (the node
//! controllers' snapshot, kept up to date), `world` (the cluster and the Kubernetes parts that act
//! on it), `cores` (the Ballast decisions, reading the world), `vertical_report` (the vertical
//! recommendations against the requests, priced), `bound` (the lower bound of cost each NodePool's
//! rules allow), `report` (reads the world and the record),
//! `vertical_compare` (a variant with its vertical autoscaling forced off, side by side),
//! `engine` (the event queue, dispatching to the world and the cores).
//!
//! Deterministic: the same scenario and seed give byte-identical reports.

mod bound;
pub mod bundle;
mod cores;
mod engine;
mod event;
pub mod html;
pub mod limits;
pub mod manifests;
mod observed;
pub mod outcome;
pub mod prediction_report;
mod record;
pub mod report;
pub mod scenario;
pub mod spot;
mod state;
pub mod trace;
mod vertical_compare;
mod vertical_report;
mod world;

use report::VariantResult;
use std::path::{Path, PathBuf};

pub use engine::{SetupError, Simulation};
pub use scenario::{Scenario, ScenarioError};
pub use world::WorldError;

/// Why a scenario file or a variant of it cannot be run. Each message is whole (it names the
/// file, the variant and the field where it can, and says what the inner error says), so the
/// inner errors are held as fields, not as sources a caller would print a second time.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The scenario file (or a file it points to) cannot be read or is invalid.
    #[error("{0}")]
    Scenario(Box<ScenarioError>),
    /// A variant's start state cannot be built (an unknown instance type or offering of the start
    /// nodes, a bad catalog, an autoscaler without its workload).
    #[error("{}: scenario {scenario}, variant {variant}: {error}", path.display())]
    Setup {
        path: PathBuf,
        scenario: String,
        variant: String,
        error: Box<SetupError>,
    },
}

impl From<ScenarioError> for SimError {
    fn from(error: ScenarioError) -> SimError {
        SimError::Scenario(Box::new(error))
    }
}

/// Runs one prepared scenario (one variant). A variant one of whose `VerticalAutoscaler`s applies
/// its recommendations is run a second time with every object `Off`, and its summary says both
/// (`verticalComparison`).
pub fn run(scenario: Scenario, progress: &mut dyn FnMut(f64)) -> Result<VariantResult, SimError> {
    let workload_names = scenario.workloads.iter().map(|w| w.name.clone()).collect();
    let (path, name, variant) = (
        scenario.path.clone(),
        scenario.name.clone(),
        scenario.variant.clone(),
    );
    let setup = |error| SimError::Setup {
        path: path.clone(),
        scenario: name.clone(),
        variant: variant.clone(),
        error: Box::new(error),
    };
    // Vertical autoscaling applied: the same variant with every object Off, for the comparison
    // (built once the first run is over, so that one cluster is held at a time).
    let off =
        vertical_compare::applies(&scenario).then(|| vertical_compare::without_vertical(&scenario));
    let problems = scenario
        .catalog
        .instance_types()
        .map(|types| outcome::scenario_problems(&scenario, &types))
        .unwrap_or_default();
    let simulation = Simulation::new(scenario).map_err(setup)?;
    let share = if off.is_some() { 0.5 } else { 1.0 };
    let (rec, mut summary) = simulation.run(&mut |f| progress(f * share));
    if let Some(off) = off {
        let (_, off_summary) = Simulation::new(off)
            .map_err(setup)?
            .run(&mut |f| progress(0.5 + f * 0.5));
        vertical_compare::attach(&mut summary, &off_summary);
    }
    summary.problems = problems;
    Ok(VariantResult {
        summary,
        series: rec.series,
        workload_names,
        phase_seconds: rec.phase_seconds,
        phase_counts: rec.phase_counts,
    })
}

/// Loads a scenario file and runs every variant in order. `progress(variant index, fraction)`.
pub fn run_file(
    path: &Path,
    progress: &mut dyn FnMut(usize, f64),
) -> Result<Vec<VariantResult>, SimError> {
    run_all(scenario::load(path)?, progress)
}

/// Runs prepared scenarios (the variants of one file) in order. `progress(variant index,
/// fraction)`.
pub fn run_all(
    scenarios: Vec<Scenario>,
    progress: &mut dyn FnMut(usize, f64),
) -> Result<Vec<VariantResult>, SimError> {
    let mut out = Vec::with_capacity(scenarios.len());
    for (i, sc) in scenarios.into_iter().enumerate() {
        out.push(run(sc, &mut |f| progress(i, f))?);
    }
    Ok(out)
}
/// Writes `report.json`, `summary.csv`, `<variant>.csv` and `report.html` into `dir`.
pub fn write_outputs(
    dir: &Path,
    results: &[VariantResult],
) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let mut put = |name: String, body: String| -> std::io::Result<()> {
        let p = dir.join(name);
        std::fs::write(&p, body)?;
        written.push(p);
        Ok(())
    };
    put("report.json".into(), report::json(results))?;
    put("summary.csv".into(), report::summary_csv(results))?;
    for v in results {
        put(format!("{}.csv", v.summary.variant), report::series_csv(v))?;
    }
    put("report.html".into(), html::page(results))?;
    Ok(written)
}
