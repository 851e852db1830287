//! `ballast`: one binary for the whole suite.

mod check;
mod cli;
mod evaluate_cmd;
mod horizontal_cmd;
mod leader_cmd;
mod nodes_cmd;
mod serve_cmd;
mod strict;
mod vertical_cmd;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
