//! Command-line interface. Each subcommand is a thin shell over a library crate.

use anyhow::{Context, Result, bail};
use ballast_api::convert::{ConvertError, Converted};
use ballast_api::validate::{FieldError, ObjectReport};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "ballast",
    version,
    about = "Ballast: horizontal, vertical and node autoscaling for Kubernetes, and an offline simulator of them"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per run: the size of the largest variant (the controllers' flags) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print every Ballast CRD as YAML (or write one file per CRD into a folder).
    Crds(CrdsArgs),
    /// Turn upstream objects (HPA, KEDA ScaledObject, VPA, Karpenter NodePool/EC2NodeClass) into Ballast objects.
    Convert(ConvertArgs),
    /// Check Ballast objects against the CRD schemas and CEL rules, offline.
    Validate(ValidateArgs),
    /// Run one or more reconcilers against the cluster of the current kubeconfig.
    Controller(ControllerArgs),
    /// Run a capacity simulation in virtual time and report cost and waiting.
    Simulate(crate::simulate_cmd::SimulateArgs),
    /// Run one decision on a snapshot file, or on the cluster now (`--live`), and say why.
    Explain(ExplainArgs),
    /// Replay recorded usage through a core's modes and compare them.
    Evaluate(crate::evaluate_cmd::EvaluateArgs),
    /// Print a shell completion script (e.g. `ballast completions bash > /etc/bash_completion.d/ballast`).
    Completions(CompletionsArgs),
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell the script is for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub struct CrdsArgs {
    /// Write `<name>.yaml` files into this folder instead of printing.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// File to read (`-` for standard input); may hold several YAML documents.
    #[arg(short = 'f', long = "filename")]
    pub file: String,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    pub output: Format,
    /// Fail when any field had to be dropped.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// File to read (`-` for standard input); may hold several YAML documents.
    #[arg(short = 'f', long = "filename")]
    pub file: String,
    /// Output format of the report.
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<Format>,
}

/// Each reconciler runs as its own process (its own Deployment, role and leader election).
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Reconciler {
    Horizontal,
    Vertical,
    Nodes,
}

#[derive(Args, Debug)]
pub struct ControllerArgs {
    /// Which reconciler to run.
    #[arg(value_enum)]
    pub reconciler: Reconciler,
    #[command(flatten)]
    pub horizontal: crate::horizontal_cmd::HorizontalFlags,
    #[command(flatten)]
    pub nodes: crate::nodes_cmd::NodesFlags,
    #[command(flatten)]
    pub vertical: crate::vertical_cmd::VerticalFlags,
    #[command(flatten)]
    pub leader: crate::leader_cmd::LeaderFlags,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Decision {
    Horizontal,
    Provision,
    Disruption,
    Vertical,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["file", "live"])))]
pub struct ExplainArgs {
    #[arg(value_enum)]
    pub decision: Decision,
    /// Snapshot file (`-` for standard input).
    #[arg(short = 'f', long = "filename", conflicts_with = "live")]
    pub file: Option<String>,
    /// Capture the snapshot from the cluster of the current kubeconfig instead of a file, as the
    /// controller would see it now: `NAMESPACE/NAME` of a HorizontalAutoscaler or
    /// VerticalAutoscaler; for provision and disruption nothing, or a NodePool to scope to.
    #[arg(
        long,
        value_name = "NAMESPACE/NAME|POOL",
        num_args = 0..=1,
        default_missing_value = ""
    )]
    pub live: Option<String>,
    /// With `--live`: also write the captured snapshot to this file, as YAML that `-f` reads.
    #[arg(long, value_name = "FILE", requires = "live", conflicts_with = "file")]
    pub save_snapshot: Option<PathBuf>,
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<Format>,
    /// How `--live` reads metrics and decides: the flags of `ballast controller horizontal`.
    #[command(flatten)]
    pub capture: crate::horizontal_cmd::DecisionFlags,
    /// How `--live` reads instance types and decides: the flags of `ballast controller nodes`.
    #[command(flatten)]
    pub nodes: crate::nodes_cmd::NodesDecisionFlags,
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Crds(args) => crds(args),
        Command::Convert(args) => convert(args),
        Command::Validate(args) => validate(args),
        Command::Controller(args) => match args.reconciler {
            Reconciler::Horizontal => {
                crate::horizontal_cmd::controller(&args.horizontal, &args.leader)
            }
            Reconciler::Nodes => {
                crate::horizontal_cmd::init_logs(args.horizontal.log_json);
                crate::nodes_cmd::controller(&args.nodes, &args.leader)
            }
            Reconciler::Vertical => {
                crate::vertical_cmd::controller(&args.horizontal, &args.vertical, &args.leader)
            }
        },
        Command::Simulate(args) => crate::simulate_cmd::run(args),
        Command::Evaluate(args) => crate::evaluate_cmd::run(&args),
        Command::Completions(args) => completions(args),
        Command::Explain(args) => explain(args),
    }
}

fn explain(args: ExplainArgs) -> Result<ExitCode> {
    use ballast_controller::nodes::capture::Pass;
    let file = match (&args.live, &args.file) {
        (Some(target), _) => return explain_live(&args, target),
        (None, Some(file)) => file,
        (None, None) => bail!("explain needs -f SNAPSHOT or --live"),
    };
    let text = read_input(file)?;
    match args.decision {
        Decision::Horizontal => crate::horizontal_cmd::explain(&text, args.output),
        Decision::Provision => {
            crate::nodes_explain_cmd::explain_file(Pass::Provisioning, &text, args.output)
        }
        Decision::Disruption => {
            crate::nodes_explain_cmd::explain_file(Pass::Disruption, &text, args.output)
        }
        Decision::Vertical => crate::vertical_explain_cmd::explain(&text, args.output),
    }
}

/// `explain DECISION --live TARGET`: TARGET is `NAMESPACE/NAME` for horizontal and vertical, an
/// optional NodePool for provision and disruption (empty: every pool in scope).
fn explain_live(args: &ExplainArgs, target: &str) -> Result<ExitCode> {
    use ballast_controller::nodes::capture::Pass;
    let save = args.save_snapshot.as_deref();
    let pool = Some(target).filter(|p| !p.is_empty());
    match args.decision {
        Decision::Horizontal => {
            crate::horizontal_cmd::explain_live(target, &args.capture, save, args.output)
        }
        Decision::Vertical => crate::vertical_explain_cmd::explain_live(target, save, args.output),
        Decision::Provision => {
            let pass = Pass::Provisioning;
            crate::nodes_explain_cmd::explain_live(pass, pool, &args.nodes, save, args.output)
        }
        Decision::Disruption => {
            let pass = Pass::Disruption;
            crate::nodes_explain_cmd::explain_live(pass, pool, &args.nodes, save, args.output)
        }
    }
}

/// The text of `file` (`-`: standard input), refused when too large or too deeply nested
/// ([`crate::strict::guard`]).
fn read_input(file: &str) -> Result<String> {
    let limit = crate::strict::MAX_INPUT_BYTES as u64 + 1;
    let mut text = String::new();
    if file == "-" {
        std::io::stdin()
            .take(limit)
            .read_to_string(&mut text)
            .context("reading standard input")?;
    } else {
        std::fs::File::open(file)
            .and_then(|f| f.take(limit).read_to_string(&mut text))
            .with_context(|| format!("reading {file}"))?;
    }
    crate::strict::guard(&text, file)?;
    Ok(text)
}

fn crds(args: CrdsArgs) -> Result<ExitCode> {
    match args.dir {
        None => print!("{}", ballast_api::all_crds_yaml()),
        Some(dir) => write_crds(&dir)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn write_crds(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for crd in ballast_api::crds() {
        let path = dir.join(ballast_api::crd_file_name(&crd));
        std::fs::write(&path, ballast_api::crd_yaml(&crd))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Writes the completion script of `args.shell` for every subcommand and flag to standard output.
fn completions(args: CompletionsArgs) -> Result<ExitCode> {
    let mut command = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(args.shell, &mut command, "ballast", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

fn convert(args: ConvertArgs) -> Result<ExitCode> {
    let text = read_input(&args.file)?;
    let results = ballast_api::convert::convert_yaml_stream(&text);
    if results.is_empty() {
        bail!("{}: no objects found", args.file);
    }
    let mut failed = false;
    let mut dropped = false;
    let mut converted: Vec<&Converted> = Vec::new();
    for r in &results {
        match r {
            Ok(c) => {
                for n in &c.notes {
                    eprintln!("{}: {n}", c.source);
                    dropped |= n.kind == ballast_api::convert::NoteKind::Dropped;
                }
                let refused = refusals(c);
                for line in &refused {
                    eprintln!("error: {line}");
                }
                failed |= !refused.is_empty();
                if refused.is_empty() && !c.object.is_null() {
                    converted.push(c);
                }
            }
            Err(e @ (ConvertError::Invalid { .. } | ConvertError::Unsupported { .. })) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    match args.output {
        Format::Yaml => {
            let docs: Vec<String> = converted
                .iter()
                .map(|c| {
                    ballast_api::yaml::to_string(&c.object).expect("JSON values serialize as YAML")
                })
                .collect();
            print!("{}", docs.join("---\n"));
        }
        Format::Json => {
            println!("{}", serde_json::to_string_pretty(&converted)?);
        }
    }
    Ok(if failed || (args.strict && dropped) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn validate(args: ValidateArgs) -> Result<ExitCode> {
    let text = read_input(&args.file)?;
    let reports = validate_documents(&text);
    if reports.is_empty() {
        bail!("{}: no objects found", args.file);
    }
    let invalid = reports.iter().filter(|r| !r.is_valid()).count();
    match args.output {
        Some(Format::Json) => println!("{}", serde_json::to_string_pretty(&reports)?),
        Some(Format::Yaml) => print!("{}", serde_yaml::to_string(&reports)?),
        None => {
            for r in &reports {
                if r.is_valid() {
                    println!("{}: valid", r.object);
                } else {
                    for e in &r.errors {
                        println!("{}: {e}", r.object);
                    }
                }
            }
            println!("{} valid, {invalid} invalid", reports.len() - invalid);
        }
    }
    Ok(if invalid > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Why the object a conversion made would be refused by the API server or its controller (the
/// source's own values out of range: `minReplicas: -3`, min above max, a zero target...).
fn refusals(c: &Converted) -> Vec<String> {
    let api_version = c.object.get("apiVersion").and_then(|v| v.as_str());
    let kind = c.object.get("kind").and_then(|v| v.as_str());
    match (api_version, kind) {
        (Some(v), Some(k)) if ballast_api::validate::is_ballast_kind(v, k) => {}
        // Kept objects (a Secret, a Deployment) are the API server's to judge.
        _ => return Vec::new(),
    }
    let mut report = ballast_api::validate::validate_object(&c.object);
    crate::check::add_core_problems(&c.object, &mut report);
    report
        .errors
        .iter()
        .map(|e| {
            format!(
                "{}: the converted {} would be refused: {e}",
                c.source, report.object
            )
        })
        .collect()
}

/// The schema's, CEL's and the controllers' verdict on every document of a YAML stream.
fn validate_documents(text: &str) -> Vec<ObjectReport> {
    ballast_api::validate::yaml_documents(text)
        .into_iter()
        .map(|doc| match doc {
            Ok(object) => {
                let mut report = ballast_api::validate::validate_object(&object);
                crate::check::add_core_problems(&object, &mut report);
                report
            }
            Err(e) => ObjectReport {
                object: format!("document {}", e.index + 1),
                errors: vec![FieldError {
                    field: "(yaml)".into(),
                    message: e.message,
                }],
            },
        })
        .collect()
}
