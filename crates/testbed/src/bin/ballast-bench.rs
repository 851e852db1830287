//! `ballast-bench horizontal [flags]`: measures the horizontal controller (the `ballast` binary)
//! against the test bed; see `ballast_testbed::horizontal_bench`.

use ballast_testbed::horizontal_bench::{BenchArgs, run};
use clap::Parser;
use std::process::ExitCode;

/// Measure a Ballast reconciler against a live (test) cluster: throughput, CPU, memory.
#[derive(Parser, Debug)]
#[command(name = "ballast-bench")]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli.args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
