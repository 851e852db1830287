//! Ballast's capacity simulator: a discrete-event simulation with a virtual clock and an
//! in-memory cluster, in which every autoscaling decision is taken by the same pure cores the
//! live controllers run (`ballast-horizontal`, `ballast-nodes`, `ballast-scheduling`).
//!
//! Deterministic: the same scenario and seed give byte-identical reports.

mod cores;
mod engine;
pub mod html;
pub mod report;
pub mod scenario;
mod state;
pub mod trace;

use report::VariantResult;
use std::path::Path;

pub use engine::Sim;
pub use scenario::{Scenario, ScenarioError};

/// Runs one prepared scenario (one variant).
pub fn run(scenario: Scenario, progress: &mut dyn FnMut(f64)) -> Result<VariantResult, String> {
    let workload_names = scenario.workloads.iter().map(|w| w.name.clone()).collect();
    let label = format!("{}/{}", scenario.name, scenario.variant);
    let sim = Sim::new(scenario).map_err(|e| format!("{label}: {e}"))?;
    let outcome = sim.run(progress);
    let rec = outcome.recorder;
    let summary = rec
        .summary
        .ok_or_else(|| format!("{label}: the run produced no summary"))?;
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
) -> Result<Vec<VariantResult>, String> {
    let scenarios = scenario::load(path).map_err(|e| e.to_string())?;
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
