//! `ballast`: one binary for the whole suite.

mod check;
mod cli;
mod cluster_capture;
mod evaluate_cmd;
mod horizontal_cmd;
mod kubeconfig;
mod leader_cmd;
mod nodes_cmd;
mod nodes_explain_cmd;
mod serve_cmd;
mod simulate_cmd;
mod simulate_objects;
mod strict;
mod vertical_cmd;
mod vertical_explain_cmd;

use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut command = cli::Cli::command();
    if let Some(name) = std::env::args_os().next().and_then(|a| bin_name(&a)) {
        command = command.bin_name(name);
    }
    let args = match cli::Cli::from_arg_matches(&command.get_matches()) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The name usage lines give the program: `kubectl ballast` when installed as the kubectl
/// plugin `kubectl-ballast` (kubectl runs it under that file name), else clap's default (the
/// file name it was run as).
fn bin_name(argv0: &std::ffi::OsStr) -> Option<&'static str> {
    let file = std::path::Path::new(argv0).file_stem()?.to_str()?;
    (file == "kubectl-ballast").then_some("kubectl ballast")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubectl_plugin_is_named_as_kubectl_runs_it() {
        let name = |s: &str| bin_name(std::ffi::OsStr::new(s));
        assert_eq!(
            name("/usr/local/bin/kubectl-ballast"),
            Some("kubectl ballast")
        );
        assert_eq!(name("kubectl-ballast.exe"), Some("kubectl ballast"));
        assert_eq!(name("/usr/local/bin/ballast"), None);
    }
}
