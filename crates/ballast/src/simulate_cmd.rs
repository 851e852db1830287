//! `ballast simulate`: runs a scenario file or a bundled scenario (compiled into the binary, so
//! an installed `ballast` needs no source tree) and writes its reports.

use anyhow::{Context, Result, bail};
use ballast_sim::bundle;
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Scenario file (default: the bundled scenario `api-daily`). Relative paths in it are read
    /// from its folder; `bundled:NAME` names a bundled file (`catalog: bundled:aws-like`).
    #[arg(conflicts_with_all = ["name", "list"])]
    pub scenario: Option<PathBuf>,
    /// Run a bundled scenario by name (`--list` shows them).
    #[arg(long = "scenario", value_name = "NAME", conflicts_with = "list")]
    pub name: Option<String>,
    /// List the bundled scenarios, one line each, and exit.
    #[arg(long)]
    pub list: bool,
    /// Folder for report.json, summary.csv, <variant>.csv and report.html.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Print the JSON report on standard output instead of the table.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Exit 0 even when pods could not be placed or objects conflict (the summary is still
    /// printed, as a warning).
    #[arg(long)]
    pub allow_unschedulable: bool,
    #[command(flatten)]
    pub objects: crate::simulate_objects::ObjectsFlags,
}

/// The bundled scenarios, one line each: name and description.
fn list() -> String {
    let scenarios = bundle::scenarios();
    let width = scenarios.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for s in scenarios {
        let default = if s.name == bundle::DEFAULT_SCENARIO {
            " (the default)"
        } else {
            ""
        };
        out.push_str(&format!("{:<width$}  {}{default}\n", s.name, s.description));
    }
    out
}

/// The scenario to run: the file given, the bundled scenario named, or the bundled default.
fn scenario_path(args: &SimulateArgs) -> Result<PathBuf> {
    if let Some(path) = &args.scenario {
        return Ok(path.clone());
    }
    let name = args.name.as_deref().unwrap_or(bundle::DEFAULT_SCENARIO);
    match bundle::scenario_path(name) {
        Some(path) => Ok(path),
        None => {
            let names: Vec<&str> = bundle::scenarios().iter().map(|s| s.name).collect();
            bail!(
                "--scenario {name}: no bundled scenario of that name (bundled: {}; a scenario \
                 file is given by path, without --scenario)",
                names.join(", ")
            )
        }
    }
}

/// Fails unless the reports can be written into `dir` (made if missing), before a run spends its
/// time.
fn check_writable(dir: &Path) -> Result<()> {
    let probe = dir.join(".ballast-write-check");
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&probe, b""))
        .and_then(|()| std::fs::remove_file(&probe))
        .with_context(|| format!("--out {}: cannot write the reports there", dir.display()))
}

pub fn run(args: SimulateArgs) -> Result<ExitCode> {
    if args.list {
        print!("{}", list());
        return Ok(ExitCode::SUCCESS);
    }
    let path = scenario_path(&args)?;
    if args.objects.save_scenario.is_none() {
        check_writable(&args.out)?;
    }
    let prepared = if args.objects.taken() {
        let whole = args.scenario.is_some() || args.name.is_some();
        match crate::simulate_objects::prepare(&args.objects, &path, whole)? {
            crate::simulate_objects::Next::Saved => return Ok(ExitCode::SUCCESS),
            crate::simulate_objects::Next::Run(label, scenarios) => Some((label, scenarios)),
        }
    } else {
        None
    };
    let bar = if args.quiet || args.json {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(1000);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:40}] {percent}% {elapsed}",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        b
    };
    let started = std::time::Instant::now();
    let mut progress = |variant: usize, fraction: f64| {
        bar.set_message(format!("variant {}", variant + 1));
        bar.set_position((fraction * 1000.0) as u64);
    };
    let (path, results) = match prepared {
        Some((label, scenarios)) => (label, ballast_sim::run_all(scenarios, &mut progress)?),
        None => {
            let results = ballast_sim::run_file(&path, &mut progress)?;
            (path, results)
        }
    };
    bar.finish_and_clear();
    let written = ballast_sim::write_outputs(&args.out, &results)
        .with_context(|| format!("writing {}", args.out.display()))?;
    if args.json {
        print!("{}", ballast_sim::report::json(&results));
    } else {
        let simulated: f64 = results.iter().map(|r| r.summary.hours * 3600.0).sum();
        let wall = started.elapsed().as_secs_f64();
        println!("{}", path.display());
        print!("{}", ballast_sim::report::terminal_table(&results));
        print!("{}", ballast_sim::report::interruption_table(&results));
        print!("{}", ballast_sim::prediction_report::table(&results));
        print!("{}", ballast_sim::report::vertical_table(&results));
        println!(
            "{} variant(s), {:.0} simulated hours in {:.2}s wall ({:.0}x real time)",
            results.len(),
            simulated / 3600.0,
            wall,
            simulated / wall.max(1e-9)
        );
        for w in written {
            println!("wrote {}", w.display());
        }
        for r in &results {
            for e in &r.summary.errors {
                eprintln!("{}: {e}", r.summary.variant);
            }
        }
    }
    for r in &results {
        for w in &r.summary.warnings {
            eprintln!("warning: {w}");
        }
    }
    match ballast_sim::outcome::trouble(&results) {
        None => Ok(ExitCode::SUCCESS),
        Some(trouble) if args.allow_unschedulable => {
            eprint!("warning: the results are not to be trusted:\n{trouble}");
            Ok(ExitCode::SUCCESS)
        }
        Some(trouble) => {
            eprint!(
                "error: the results are not to be trusted (--allow-unschedulable to accept \
                 them):\n{trouble}"
            );
            Ok(ExitCode::from(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<SimulateArgs, clap::Error> {
        use clap::Parser;
        let mut all = vec!["ballast", "simulate"];
        all.extend_from_slice(a);
        match crate::cli::Cli::try_parse_from(all)?.command {
            crate::cli::Command::Simulate(s) => Ok(s),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_scenario_is_a_file_a_bundled_name_or_the_default() {
        let path = |a: &[&str]| scenario_path(&args(a).unwrap()).map(|p| p.display().to_string());
        assert_eq!(path(&[]).unwrap(), "bundled:api-daily.yaml");
        assert_eq!(
            path(&["--scenario", "week-mix"]).unwrap(),
            "bundled:week-mix.yaml"
        );
        assert_eq!(path(&["my.yaml"]).unwrap(), "my.yaml");
        let e = path(&["--scenario", "nope"]).unwrap_err().to_string();
        assert!(
            e.contains("--scenario nope") && e.contains("api-daily, "),
            "{e}"
        );
        assert!(args(&["my.yaml", "--scenario", "api-daily"]).is_err());
        assert!(args(&["--list", "--scenario", "api-daily"]).is_err());
    }

    #[test]
    fn the_list_gives_every_bundled_scenario_one_line() {
        let shown = list();
        assert_eq!(shown.lines().count(), bundle::scenarios().len());
        let daily = shown.lines().find(|l| l.starts_with("api-daily ")).unwrap();
        assert!(
            daily.contains("nightly batch burst") && daily.ends_with("(the default)"),
            "{daily}"
        );
    }
}
