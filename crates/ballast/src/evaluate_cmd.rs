//! `ballast evaluate vertical DIR`: replays a folder of usage series (`*.csv` or `*.csv.gz`) through
//! both estimator modes of the vertical core and prints the table of slack, overruns and evictions.

use anyhow::{Context, Result, bail};
use ballast_vertical::evaluate::{ReplayOptions, evaluate, halves, table};
use ballast_vertical::series::{Series, parse};
use clap::{Args, ValueEnum};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Evaluated {
    Vertical,
}

#[derive(Args, Debug)]
pub struct EvaluateArgs {
    /// What to evaluate.
    #[arg(value_enum)]
    pub what: Evaluated,
    /// Folder of usage series, one `<name>.csv` or `<name>.csv.gz` per workload (a
    /// `manifest.csv` is skipped).
    pub dir: PathBuf,
    /// Minutes between two recommendations.
    #[arg(long, default_value_t = 5)]
    pub every: i64,
    /// Hours of each series before scoring starts.
    #[arg(long, default_value_t = 24)]
    pub warmup: i64,
    /// Set the per-pod floors (25m CPU, 250Mi memory) to zero in both modes.
    #[arg(long)]
    pub no_floors: bool,
    /// Also print the figures of the series at even and at odd positions in name order (the
    /// Adaptive mode's costs were tuned on the even half; the odd half is held out).
    #[arg(long)]
    pub split: bool,
    /// Print the figures as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Runs the evaluation.
pub fn run(args: &EvaluateArgs) -> Result<ExitCode> {
    let series = read_dir(&args.dir)?;
    let options = ReplayOptions {
        step_seconds: args.every.max(1) * 60,
        warmup_seconds: args.warmup.max(0) * 3600,
        floors: !args.no_floors,
        ..ReplayOptions::default()
    };
    let started = std::time::Instant::now();
    let results = evaluate(&series, &options)?;
    let split = if args.split {
        let (even, odd) = halves(&series);
        Some((evaluate(&even, &options)?, evaluate(&odd, &options)?))
    } else {
        None
    };
    if args.json {
        let value = match &split {
            None => serde_json::to_value(&results)?,
            Some((even, odd)) => {
                serde_json::json!({"all": results, "evenPositions": even, "oddPositions": odd})
            }
        };
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", table(&results));
        if let Some((even, odd)) = &split {
            print!("\nseries at even positions (0, 2, 4, ...; the costs were tuned on these):\n");
            print!("{}", table(even));
            print!("\nseries at odd positions (held out):\n");
            print!("{}", table(odd));
        }
        println!(
            "{} series from {}, a recommendation every {} min, {} h warm-up, floors {}, {:.1}s",
            series.len(),
            args.dir.display(),
            args.every,
            args.warmup,
            if args.no_floors { "off" } else { "on" },
            started.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Every series of `dir`, by file name.
fn read_dir(dir: &Path) -> Result<Vec<Series>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("reading folder {}", dir.display()))?;
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading folder {}", dir.display()))?
            .path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name != "manifest.csv" && (name.ends_with(".csv") || name.ends_with(".csv.gz")) {
            paths.push(path);
        }
    }
    paths.sort();
    if paths.is_empty() {
        bail!("{}: no *.csv or *.csv.gz series found", dir.display());
    }
    paths.iter().map(|p| read_series(p)).collect()
}

fn read_series(path: &Path) -> Result<Series> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = if path.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_string(&mut s)
            .with_context(|| format!("{}: not a gzip of UTF-8 text", path.display()))?;
        s
    } else {
        String::from_utf8(bytes).with_context(|| format!("{}: not UTF-8 text", path.display()))?
    };
    Ok(parse(&path.display().to_string(), &text)?)
}
